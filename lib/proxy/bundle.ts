// The read proxy's host script (nix-cache-proxy.js): lib/proxy/service.ts and the lib/ modules it imports, bundled by
// lib/gc/bundle.ts's bundleScript into ONE file that plain `node` runs with no node_modules, as the proxy's NixOS
// module (nix-cache-proxy.service) does; a module that imports a package fails here, naming it, not on the host.
import * as path from "path";
import { bundleScript, GcBundle, ScriptSpec } from "../gc/bundle";

export const PROXY_SCRIPT: ScriptSpec = {
  entry: "proxy/service",
  fileName: "nix-cache-proxy.js",
  about: "the nix-cache read proxy (nix-cache-proxy.service runs `node nix-cache-proxy.js ARGS`;\n// --help says what it reads)",
  label: "proxy bundle",
  host: "the proxy host",
  scriptName: "proxy script",
  owner: "the proxy",
};

/** The bundle with its modules and built-ins (`libDir`: a lib/ directory; tests pass their own). */
export function bundleProxy(libDir = path.join(__dirname, "..")): GcBundle {
  return bundleScript(libDir, PROXY_SCRIPT);
}

let cached: string | undefined;

/** The proxy host's script: lib/proxy/service.ts and what it imports, in one file (computed once per process). */
export function proxyScriptText(): string {
  cached ??= bundleProxy().text;
  return cached;
}
