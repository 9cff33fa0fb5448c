// The one stack helper of the project, used by the tests, the bench and the demo: drives THIS project through
// the Automation API (LocalWorkspace on the project directory) on a file:// backend with a passphrase, the
// stack config pointing at a MinIO from harness/minio.ts.
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigMap, LocalWorkspace, OutputMap, Stack, UpOptions } from "@pulumi/pulumi/automation";
import { MinioServer, startMinio, StartOptions } from "./minio";
import { requireTool } from "./toolchain";

export const PROJECT_DIR = path.resolve(__dirname, "..");

export interface TestStack {
  stack: Stack;
  /** The file:// backend directory (holds the state files). */
  backendDir: string;
  /** Environment for running the pulumi CLI by hand against the same stack. */
  env: Record<string, string>;
  /** Removes the stack (and its Pulumi.<stack>.yaml) and the backend. */
  remove(): Promise<void>;
}

/** Non-secret config values of the cache (names without the namespace). */
export type CacheConfig = Record<string, string>;

export function minioConfig(minio: MinioServer, extra: CacheConfig = {}): ConfigMap {
  const config: ConfigMap = {
    "nix-cache:endpoint": { value: minio.endpoint },
    "nix-cache:adminUser": { value: minio.rootUser },
    "nix-cache:adminPassword": { value: minio.rootPassword, secret: true },
  };
  // A MinIO serving https with its test CA: the stack trusts that CA, as a homelab stack trusts its own.
  if (minio.tls) config["nix-cache:caCertificate"] = { value: minio.tls.ca.certPem };
  for (const [k, v] of Object.entries(extra)) config[`nix-cache:${k}`] = { value: v };
  return config;
}

/** The passphrase that encrypts the stack's secrets: given, or read by pulumi from a file. */
export type Passphrase = { text: string } | { file: string };

/** The environment of the pulumi CLI and the Automation API for a file:// backend in `backendDir`, with its
 *  own PULUMI_HOME (`home`), the passphrase, and no update check or legacy-backend warning. */
export function backendEnv(backendDir: string, home: string, passphrase: Passphrase): Record<string, string> {
  return {
    PULUMI_BACKEND_URL: `file://${backendDir}`,
    ...("text" in passphrase ? { PULUMI_CONFIG_PASSPHRASE: passphrase.text } : { PULUMI_CONFIG_PASSPHRASE_FILE: passphrase.file }),
    PULUMI_HOME: home,
    PULUMI_SKIP_UPDATE_CHECK: "1",
    PULUMI_DIY_BACKEND_NO_LEGACY_WARNING: "1",
  };
}

/**
 * The stack `stackName` of this project (or of the Pulumi project in `workDir`, e.g. an example) on the backend of
 * `env` (backendEnv), created when missing.
 */
export async function openStack(stackName: string, env: Record<string, string>, workDir = PROJECT_DIR): Promise<Stack> {
  requireTool("pulumi");
  requireTool("pulumi-language-nodejs");
  requireTool("pulumi-resource-pulumi-nodejs");
  return LocalWorkspace.createOrSelectStack({ stackName, workDir }, { envVars: env });
}

/**
 * How the engine loads the program: "ts-node", as `pulumi up` does for users (the demo and the bench measure
 * that), or "cached": the same TypeScript through harness/programCache.js, transpiled once per file content
 * instead of once per engine run (the tests: about a second less per `up` or `preview`).
 */
export type ProgramLoad = "ts-node" | "cached";

/** NODE_OPTIONS that preload harness/programCache.js, kept after any NODE_OPTIONS already set. */
export function cachedProgramEnv(): Record<string, string> {
  const preload = `--require ${path.join(__dirname, "programCache.js")}`;
  return { NODE_OPTIONS: [process.env.NODE_OPTIONS, preload].filter(Boolean).join(" ") };
}

/** A test stack of this project (or of the Pulumi project in `workDir`) on a backend of its own, with `config`. */
export async function createTestStack(prefix: string, config: ConfigMap, load: ProgramLoad = "cached", workDir = PROJECT_DIR): Promise<TestStack> {
  const backendDir = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-backend-"));
  const home = path.join(backendDir, "home");
  fs.mkdirSync(home);
  const env = { ...backendEnv(backendDir, home, { text: "nix-cache-test-passphrase" }), ...(load === "cached" ? cachedProgramEnv() : {}) };
  const stackName = `${prefix}-${crypto.randomBytes(3).toString("hex")}`;
  const stack = await openStack(stackName, env, workDir);
  await stack.setAllConfig(config);
  return {
    stack,
    backendDir,
    env,
    remove: async () => {
      await stack.workspace.removeStack(stackName, { force: true }).catch(() => undefined);
      fs.rmSync(path.join(workDir, `Pulumi.${stackName}.yaml`), { force: true });
      fs.rmSync(backendDir, { recursive: true, force: true });
    },
  };
}

/** An earlier version of this project's program, unpacked from `archive` (a tar.gz of its files, as in
 *  tests/fixtures/) into a temp dir of its own with this checkout's node_modules, and the stack of `t` (same name,
 *  backend and environment) opened on it with `config` (its Pulumi.<stack>.yaml lives beside that program).
 *  `remove` deletes the dir; the stack stays t's to remove. */
export async function programFromArchive(
  t: TestStack,
  archive: string,
  config: ConfigMap,
): Promise<{ stack: Stack; dir: string; remove(): void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-earlier-"));
  const remove = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    execFileSync("tar", ["-xzf", archive, "-C", dir]);
    // The earlier versions' npm packages are a subset of this one's (same @pulumi/pulumi and minio).
    fs.symlinkSync(path.join(PROJECT_DIR, "node_modules"), path.join(dir, "node_modules"));
    const stack = await LocalWorkspace.selectStack({ stackName: t.stack.name, workDir: dir }, { envVars: t.env });
    await stack.setAllConfig(config);
    return { stack, dir, remove };
  } catch (err) {
    remove();
    throw err;
  }
}

/** Every file of the backend (state, history, backups) as text, to search for leaked secrets. */
export function backendText(backendDir: string): string {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== "home") walk(p);
      } else {
        out.push(fs.readFileSync(p).toString("utf8"));
      }
    }
  };
  walk(backendDir);
  return out.join("\n");
}

/** A cache deployed by this project on a private MinIO: the common start of integration and e2e tests. */
export interface DeployedCache {
  minio: MinioServer;
  t: TestStack;
  outputs: OutputMap;
}

/** Starts a MinIO, deploys the project on it with `pulumi up` (extra config values by name) and reads the outputs. */
export async function deployCache(
  prefix: string,
  extra: CacheConfig = {},
  upOptions?: UpOptions,
  minioOptions?: StartOptions,
): Promise<DeployedCache> {
  const minio = await startMinio(minioOptions);
  const t = await createTestStack(prefix, minioConfig(minio, extra));
  const up = await t.stack.up(upOptions);
  if (up.summary.result !== "succeeded") throw new Error(`pulumi up ended ${up.summary.result}`);
  return { minio, t, outputs: await t.stack.outputs() };
}

/** Removes the stack and the MinIO of deployCache (either may be missing when the start failed). */
export async function removeDeployment(t?: TestStack, minio?: MinioServer): Promise<void> {
  await t?.remove();
  await minio?.destroy();
}
