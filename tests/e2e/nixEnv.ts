// Real Nix for the end-to-end tests: each NixClient is one "host" with a fresh HOME and XDG dirs (Nix caches
// narinfo lookups in $XDG_CACHE_HOME, which would let a later negative check pass wrongly) and no daemon;
// the tests pass --store DIR so nothing touches /nix. Missing Nix fails the test with the way to install it.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { OutputMap } from "@pulumi/pulumi/automation";
import { defaultSecretKeyFiles } from "../../lib/hosts/hostConfig";
import { nixEnv } from "../../harness/nix";
import { requireTool } from "../../harness/toolchain";

export const NIX_HINT =
  "the e2e tests need Nix ≥ 2.8 (Debian's nix-bin); run them with `npm test` or `bash scripts/test.sh tests/e2e`, " +
  "which install it (toolchain/toolchain.sh --nix)";

/** Fails (never skips) when the Nix tools are missing. */
export function requireNix(): void {
  for (const tool of ["nix", "nix-build", "nix-store"]) requireTool(tool, NIX_HINT);
}

export interface NixResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export class NixClient {
  readonly home: string;
  private readonly env: NodeJS.ProcessEnv;

  /** A fresh client under `root/name` (its own HOME, caches and config); `extraEnv` adds variables, e.g. the
   *  NIX_SSL_CERT_FILE of a host that trusts a homelab's CA. */
  constructor(root: string, name: string, extraEnv: NodeJS.ProcessEnv = {}) {
    this.home = path.join(root, `home-${name}`);
    this.env = { ...nixEnv(this.home), ...extraEnv };
  }

  run(tool: string, args: string[], cwd?: string, input?: string): NixResult {
    const r = spawnSync(tool, args, { env: this.env, cwd, input, encoding: "utf8", timeout: 120_000 });
    if (r.error) throw r.error;
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** Runs a shell command line (e.g. a command as our outputs print it) in this client's environment. */
  shell(commandLine: string, cwd: string): NixResult {
    return this.run("sh", ["-c", commandLine], cwd);
  }

  /** Runs and returns stdout; a non-zero exit throws with Nix's own message. */
  ok(tool: string, args: string[], cwd?: string, input?: string): string {
    const r = this.run(tool, args, cwd, input);
    if (r.status !== 0) throw new Error(`${tool} ${args.join(" ")} exited ${r.status}: ${r.stderr.trim()}`);
    return r.stdout;
  }
}

/** A tiny input-addressed derivation (so signatures are checked), unique per run through `nonce`. */
export function payloadExpression(nonce: string): string {
  return `derivation {
  name = "payload";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo hello ${nonce} > $out" ];
}
`;
}

/** Two input-addressed paths, the second ("top") referring to the first ("dep") at run time: a closure of two. */
export function closureExpression(nonce: string): string {
  return `let
  dep = derivation { name = "dep"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo dep ${nonce} > $out" ]; };
in derivation { name = "top"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo \${dep} > $out" ]; }
`;
}

/** What a host gets from a client module (the nixosModule output, nix-cache.nix): its substituters and the
 *  keys it trusts, in the module's order. */
export function clientModuleSettings(module: string): { substituters: string[]; trustedKeys: string[] } {
  const list = (option: string): string[] => {
    const body = new RegExp(`${option} = \\[([^\\]]*)\\];`).exec(module)?.[1] ?? "";
    return [...body.matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  };
  const settings = { substituters: list("extra-substituters"), trustedKeys: list("extra-trusted-public-keys") };
  if (settings.substituters.length === 0 || settings.trustedKeys.length === 0) throw new Error(`client module lacks a substituter or key:\n${module}`);
  return settings;
}

/**
 * Runs the stack's signCommand exactly as printed, in `cwd` (which holds ./result), as `builder` with the
 * secretKeys output where the command reads them (mode 0600) and `store` as its store. Returns what Nix
 * printed ("added N signatures"); a failure throws with it.
 */
export function signAsPrinted(builder: NixClient, outputs: OutputMap, store: string, cwd: string): string {
  const files = defaultSecretKeyFiles(outputs.trustedPublicKeys.value as string[]);
  const secrets = outputs.secretKeys.value as string[];
  if (files.length !== secrets.length) throw new Error(`${secrets.length} secret keys for ${files.length} trusted keys`);
  files.forEach((file, i) => {
    const full = path.join(builder.home, file.replace(/^~\//, ""));
    fs.mkdirSync(path.dirname(full), { recursive: true });
    fs.writeFileSync(full, secrets[i], { mode: 0o600 });
  });
  // The store through NIX_CONFIG, so the printed command runs as it is, every part of it.
  const r = builder.shell(`export NIX_CONFIG="$NIX_CONFIG\nstore = ${store}"; ${String(outputs.signCommand.value)}`, cwd);
  if (r.status !== 0) throw new Error(`signCommand failed: ${r.stderr}`);
  return r.stderr;
}
