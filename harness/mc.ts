// MinIO's own client `mc`, for the tests: it runs the chapter's set-up verbatim (harness/chapter.ts) and judges
// what a MinIO holds independently of this project's S3 and admin code. Each Mc has its own MC_CONFIG_DIR, so
// nothing reads or writes ~/.mc, and one alias `s3` (the chapter's name) for a harness MinIO.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { MinioServer } from "./minio";
import { requireTool } from "./toolchain";

export const MC_HINT = "the tests need MinIO's client mc; run them with `npm test`, which builds it (toolchain/toolchain.sh --nix)";

/** What an `mc --json` command prints when it fails (on stdout, with exit status 1). */
export interface McFailure {
  status: "error";
  error: { message: string; cause?: { message?: string; error?: { Code?: string } } };
}

// The parts of mc's --json answers the tests read (mc built from minio/mc v0.0.0-20250313080218-cf909e1063a9).

/** A statement as mc prints policies: MinIO's normal form (lists, `Principal: {AWS: [...]}` on bucket policies). */
export interface McStatement {
  Sid?: string;
  Effect: "Allow" | "Deny";
  Principal?: { AWS: string[] };
  Action: string[];
  Resource: string[];
}

/** `mc --json anonymous get ALIAS/BUCKET`: `anonymous` is the bucket policy, absent when it is `private`. */
export interface McAnonymous {
  permission: "private" | "download" | "upload" | "public" | "custom";
  anonymous?: { Version: string; Statement: McStatement[] };
}

/** `mc --json ilm rule ls ALIAS/BUCKET` (a bucket without rules is an McFailure, NoSuchLifecycleConfiguration). */
export interface McLifecycle {
  config: {
    Rules: { ID: string; Status: string; Expiration?: { Days?: number }; Filter?: { Prefix?: string } }[];
  };
}

/** `mc --json admin user info ALIAS USER`. */
export interface McUserInfo {
  accessKey: string;
  policyName?: string;
  userStatus: "enabled" | "disabled";
}

/** `mc --json admin policy info ALIAS POLICY` (MinIO drops a Principal from a canned policy). */
export interface McPolicyInfo {
  policy: string;
  policyInfo: { PolicyName: string; Policy: { ID?: string; Version: string; Statement: McStatement[] } };
}

export interface McRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

export class Mc {
  /** The environment mc runs in: PATH and MC_CONFIG_DIR only (no MC_HOST_* from the caller). */
  readonly env: NodeJS.ProcessEnv;

  /** An mc whose config lives in `configDir` (created); call aliasFor before using an alias. */
  constructor(readonly configDir: string) {
    requireTool("mc", MC_HINT);
    fs.mkdirSync(configDir, { recursive: true });
    this.env = { PATH: process.env.PATH, HOME: configDir, MC_CONFIG_DIR: configDir };
  }

  /** Runs `mc ARGS`; never throws on mc's exit status. */
  attempt(args: string[]): McRun {
    const r = spawnSync("mc", args, { env: this.env, encoding: "utf8", timeout: 60_000 });
    if (r.error) throw r.error;
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** Runs `mc ARGS` and returns stdout; a failure throws with what mc said (--json errors go to stdout). */
  run(args: string[]): string {
    const r = this.attempt(args);
    if (r.status !== 0) throw new Error(`mc ${args.join(" ")} exited ${r.status}: ${(r.stderr + r.stdout).trim()}`);
    return r.stdout;
  }

  /** `mc --json ARGS`, parsed: the one JSON object mc prints; a failure throws with mc's own error. */
  json<T>(args: string[]): T {
    return parseOne<T>(this.run(["--json", ...args]), args);
  }

  /** Deletes the config dir: its aliases hold the root password. */
  remove(): void {
    fs.rmSync(this.configDir, { recursive: true, force: true });
  }

  /** `mc --json ARGS`, parsed whether it succeeds or not: for checks that expect mc to report an error. */
  jsonOutcome<T>(args: string[]): T | McFailure {
    const r = this.attempt(["--json", ...args]);
    return parseOne<T | McFailure>(r.stdout, args, r.stderr);
  }
}

function parseOne<T>(stdout: string, args: string[], stderr = ""): T {
  const lines = stdout.split("\n").filter((l) => l.trim() !== "");
  if (lines.length !== 1) throw new Error(`mc --json ${args.join(" ")} printed ${lines.length} lines, not one JSON object: ${stdout}${stderr}`);
  return JSON.parse(lines[0]) as T;
}

/**
 * An mc with the alias `alias` (the chapter's `s3`) set to `minio` as its root user, in `configDir` (default a
 * new temp dir). For https, the server's CA goes where mc looks for extra CAs ($MC_CONFIG_DIR/certs/CAs/)
 * before the alias is set: `mc alias set` already connects to the server.
 */
export function mcFor(minio: MinioServer, configDir = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-mc-")), alias = "s3"): Mc {
  const mc = new Mc(configDir);
  if (minio.tls) {
    const cas = path.join(configDir, "certs", "CAs");
    fs.mkdirSync(cas, { recursive: true });
    fs.writeFileSync(path.join(cas, "harness-ca.crt"), minio.tls.ca.certPem);
  }
  // Arguments, not a shell line: the root password stays out of any shell's parsing.
  mc.run(["alias", "set", alias, minio.endpoint, minio.rootUser, minio.rootPassword]);
  return mc;
}
