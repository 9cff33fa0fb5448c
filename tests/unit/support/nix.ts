// Runs the real Nix CLI (Debian's nix-bin, Nix 2.8, installed by scripts/test.sh) in a throwaway HOME, so
// nothing from the machine's own Nix config or caches takes part. Missing Nix fails the test, never skips it.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { requireTool } from "../../../harness/toolchain";

const HINT = "the unit tests need Nix 2.8 (Debian's nix-bin); run them with `bash scripts/test.sh tests/unit`, which installs it";

export interface NixResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** A private environment for one test file's Nix runs; call `cleanup()` in afterAll. */
export function nixSandbox(): { dir: string; run: (tool: string, args: string[], input?: string) => NixResult; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-unit-"));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    XDG_CACHE_HOME: path.join(dir, ".cache"),
    XDG_CONFIG_HOME: path.join(dir, ".config"),
    NIX_CONFIG: "experimental-features = nix-command",
  };
  return {
    dir,
    run(tool, args, input) {
      requireTool(tool, HINT);
      const r = spawnSync(tool, args, { env, input, encoding: "utf8", timeout: 60_000 });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    },
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs a Nix tool and returns its stdout; a non-zero exit throws with Nix's own message. */
export function nixOk(sandbox: ReturnType<typeof nixSandbox>, tool: string, args: string[], input?: string): string {
  const r = sandbox.run(tool, args, input);
  if (r.status !== 0) throw new Error(`${tool} ${args.join(" ")} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}
