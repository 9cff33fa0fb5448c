// A daemon-less Nix 2.8 as root (see shared facts nix-2.8-e2e.md), one environment per simulated host: its own
// HOME and caches (Nix caches narinfo lookups in $XDG_CACHE_HOME, which would let a later negative check pass
// wrongly), no substituters but the ones a command names, and a sandbox that has /bin/sh for tiny builders.
import * as fs from "fs";
import * as path from "path";

export const ROOT_NIX_CONFIG = [
  "experimental-features = nix-command",
  "substituters =",
  "build-users-group =",
  "sandbox-fallback = false",
  "extra-sandbox-paths = /bin/sh=/usr/bin/dash /lib /lib64 /usr",
];

/** The environment for Nix commands of one host living under `home`; `extraConfig` adds nix.conf lines. */
export function nixEnv(home: string, extraConfig: string[] = []): NodeJS.ProcessEnv {
  for (const d of ["", ".cache", ".config"]) fs.mkdirSync(path.join(home, d), { recursive: true });
  return {
    PATH: process.env.PATH,
    HOME: home,
    XDG_CACHE_HOME: path.join(home, ".cache"),
    XDG_CONFIG_HOME: path.join(home, ".config"),
    XDG_DATA_HOME: path.join(home, ".local", "share"),
    NIX_CONFIG: [...ROOT_NIX_CONFIG, ...extraConfig].join("\n"),
  };
}
