// The library's public API, the package's `main`: re-exports only, so importing it declares nothing and reads
// no config. This project's own stack program (../index.ts) uses it like any other program does
// (docs/library.md, examples/own-program).
export { NixCache } from "./nixCache";
export type { NixCacheArgs, PrivateReadOutputs } from "./nixCache";
// The settings the component's arguments take, and the stack-config reader this project's program uses: a
// program may read its cache settings from any config namespace with it (SETTING_KEYS names them).
export { ACCESS_MODES, CONFIG_NAMESPACE, DEFAULTS, parseSettings, RETENTIONS, SETTING_KEYS, SettingsError } from "../lib/config/settings";
export type { AccessMode, CacheSettings, RawSettings, Retention } from "../lib/config/settings";
