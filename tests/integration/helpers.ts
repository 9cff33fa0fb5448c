// Shared by the drift, fault, bad-input and secret tests: requests made as MinIO's root user behind
// Pulumi's back, a reading of which resources an operation would change, and a check that the cache works.
import { execFile, spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { ConfigMap, EngineEvent, OpType, OutputMap, Stack } from "@pulumi/pulumi/automation";
import { parseCacheInfo } from "../../lib/config/cacheInfo";
import { adminRequest, AdminCredentials, minioAdmin, MinioTarget, s3Client } from "../../providers/minioClients";
import { MinioServer } from "../../harness/minio";
import { PROJECT_DIR, TestStack } from "../../harness/stack";
import { scriptCommand, Via } from "../support/scriptCommand";

export const BUCKET = "nix-cache";
export const BUILDER = "nixbuilder";

export const targetOf = (minio: MinioServer): MinioTarget => ({ endpoint: minio.endpoint, region: "us-east-1", ca: minio.tls?.ca.certPem });
export const rootOf = (minio: MinioServer): AdminCredentials => ({ accessKey: minio.rootUser, secretKey: minio.rootPassword });
export const rootS3 = (minio: MinioServer) => s3Client(targetOf(minio), rootOf(minio));

/** The error code of a failed SDK call, or "ok". */
export const codeOf = async (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => "ok",
    (e: { code?: string }) => e.code ?? String(e),
  );

/** Operations that change something (refresh/read/same only look). */
const CHANGING: OpType[] = ["create", "update", "delete", "replace", "create-replacement", "delete-replaced", "import"];

/** The resources an operation would change or changed, name → operation, from its engine events. */
export function changesOf(events: EngineEvent[]): Record<string, string> {
  const changes: Record<string, string> = {};
  for (const e of events) {
    const m = e.resourcePreEvent?.metadata;
    // Provider resources change with the stack config; they are not part of the cache.
    if (m && CHANGING.includes(m.op) && !m.type.startsWith("pulumi:providers:")) {
      const name = m.urn.split("::").pop() ?? m.urn;
      // A replacement shows as three steps (create-replacement, replace, delete-replaced): one "replace".
      const op = /replace/.test(m.op) ? "replace" : m.op;
      if (!(changes[name] ?? "").split(",").includes(op)) changes[name] = changes[name] ? `${changes[name]},${op}` : op;
    }
  }
  return changes;
}

export interface DriftPreview {
  /** Did `preview --refresh --expect-no-changes` fail? */
  failed: boolean;
  /** The error's text (stdout and stderr of the CLI) when it failed, else the preview's stdout. */
  text: string;
  /** Resources the preview would change, name → operation. */
  changes: Record<string, string>;
}

/** The drift check users run in cron or CI: `pulumi preview --refresh --expect-no-changes`. */
export async function driftPreview(stack: Stack): Promise<DriftPreview> {
  const events: EngineEvent[] = [];
  try {
    const res = await stack.preview({ refresh: true, expectNoChanges: true, onEvent: (e) => events.push(e) });
    return { failed: false, text: res.stdout, changes: changesOf(events) };
  } catch (err) {
    return { failed: true, text: String((err as Error).message), changes: changesOf(events) };
  }
}

/**
 * A digest of what the stack's state says is deployed: each resource's URN and outputs (the serialized provider
 * code left out). Equal before and after a refused operation: it changed nothing that is deployed. (A refused
 * `up` may still record a resource's new inputs beside its old outputs, as the engine does for any failed update;
 * the providers diff against the outputs, so those inputs change nothing.) A test that only has to show that a
 * refusal changed nothing compares this (one export, under a second) instead of running a drift preview (the
 * engine and the program, about ten seconds). A digest, because the export holds the secrets in plain text and
 * a failed comparison prints both sides.
 */
export async function stateFingerprint(stack: Stack): Promise<string> {
  const resources = ((await stack.exportStack()).deployment as { resources?: { urn: string; type: string; outputs?: object }[] }).resources ?? [];
  const deployed = resources
    // The provider resources hold the stack's config (what a refused up was asked to do), not what is deployed.
    .filter((r) => !r.type.startsWith("pulumi:providers:"))
    .map((r) => ({ urn: r.urn, outputs: Object.fromEntries(Object.entries(r.outputs ?? {}).filter(([k]) => k !== "__provider")) }))
    .sort((a, b) => a.urn.localeCompare(b.urn));
  return `${deployed.length} resources, sha256 ${createHash("sha256").update(JSON.stringify(deployed)).digest("hex")}`;
}

/** Distinct "error:" diagnostics of a failed operation, without the resource prefix each line carries. */
export function errorLines(text: string): string[] {
  return [...new Set(text.split("\n").map((l) => l.trim()).filter((l) => /^error: /.test(l)))];
}

const ANSI = /\x1b\[[0-9;]*m/g;

/**
 * Stack-trace lines ("    at fn (file:line:col)") of our code: the provider plugin (its bundle, dist/provider.js),
 * lib/, components/, index.ts. Left out: frames inside Pulumi's SDK, gRPC and node itself, which the SDK
 * prints ("failed to deliver log message ... Channel has been shut down") when the engine stops a program
 * mid-registration after any failure; that is Pulumi's, not ours, and not under our control.
 */
export function stackTraceLines(text: string): string[] {
  return text
    .replace(ANSI, "")
    .split("\n")
    .filter((l) => /\sat .+:\d+:\d+\)?\s*$/.test(l))
    .filter((l) => !/node_modules\/(@grpc|@pulumi)\/|\(node:internal\//.test(l));
}

/**
 * The cache works as the stack outputs say: anonymous clients read nix-cache-info (and cannot write), the
 * builder uploads (and cannot delete). Returns a list of what does not hold, empty when all is well; it
 * never includes credentials.
 */
export async function cacheProblems(minio: MinioServer, outputs: OutputMap, expectedPriority = 40): Promise<string[]> {
  const problems: string[] = [];
  const base = String(outputs.substituterUrl?.value);
  const bucket = new URL(base).pathname.replace(/^\/+|\/+$/g, "");
  const info = await fetch(`${base}/nix-cache-info`);
  const text = await info.text();
  if (info.status !== 200) problems.push(`anonymous GET nix-cache-info answered ${info.status}`);
  else if (parseCacheInfo(text).priority !== expectedPriority) problems.push(`nix-cache-info reads ${JSON.stringify(text)}`);
  const anonPut = await fetch(`${base}/anon-probe`, { method: "PUT", body: "x" });
  if (anonPut.status !== 403) problems.push(`anonymous PUT answered ${anonPut.status}, not 403`);

  const builder = s3Client(targetOf(minio), {
    accessKey: String(outputs.builderAccessKey?.value),
    secretKey: String(outputs.builderSecretKey?.value),
  });
  const put = await codeOf(builder.putObject(bucket, "drift-probe.narinfo", Buffer.from("StorePath: /nix/store/probe")));
  if (put !== "ok") problems.push(`builder PUT failed: ${put}`);
  const del = await codeOf(builder.removeObject(bucket, "drift-probe.narinfo"));
  if (del !== "AccessDenied") problems.push(`builder DELETE answered ${del}, not AccessDenied`);
  await rootS3(minio).removeObject(bucket, "drift-probe.narinfo").catch(() => undefined);
  return problems;
}

/** What exists on the server: buckets, the given users, and canned policies other than MinIO's built-in ones. */
export async function serverInventory(
  minio: MinioServer,
  userNames: string[] = [BUILDER],
): Promise<{ buckets: string[]; users: string[]; policies: string[] }> {
  const buckets = (await rootS3(minio).listBuckets()).map((b) => b.name).sort();
  const listed = await adminRequest(targetOf(minio), rootOf(minio), "GET", "list-canned-policies", {});
  const builtIn = new Set(["consoleAdmin", "diagnostics", "readonly", "readwrite", "writeonly"]);
  const policies = Object.keys(JSON.parse(listed.body.toString("utf8")) as Record<string, unknown>)
    .filter((p) => !builtIn.has(p))
    .sort();
  // MinIO answers list-users encrypted with argon2id, which node cannot derive; ask for each name instead.
  const users: string[] = [];
  for (const name of userNames) {
    if ((await minioAdmin.userInfo(targetOf(minio), rootOf(minio), name).catch(() => undefined)) !== undefined) users.push(name);
  }
  return { buckets, users: users.sort(), policies };
}

/** The pid of a test MinIO (a process this test started), found by the address it listens on. */
export function minioPid(minio: MinioServer): number {
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (path.basename(argv[0]) === "minio" && argv.includes(`127.0.0.1:${minio.port}`)) return Number(entry);
    } catch {
      // the process ended while we looked
    }
  }
  throw new Error(`no minio process listens on 127.0.0.1:${minio.port}`);
}

/** The pids of every process below `pid` (its children, their children, ...). */
export function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ')'.
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // the process ended while we looked
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the pulumi CLI on the test stack, as a user would, with the stack's environment. */
export function pulumiCli(t: TestStack, args: string[], timeoutMs = 300_000): CliResult {
  const res = spawnSync("pulumi", [...args, "--stack", t.stack.name, "--non-interactive"], {
    cwd: PROJECT_DIR,
    env: { ...process.env, ...t.env },
    encoding: "utf8",
    timeout: timeoutMs,
    // A stack export can pass spawnSync's 1 MiB default (a stack from before the plugin holds provider code).
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: res.status ?? -1, stdout: res.stdout ?? "", stderr: res.stderr ?? "" };
}

/** Sets the stack's config to exactly `config`: keys not in it are removed (setAllConfig only adds). */
export async function setExactConfig(t: TestStack, config: ConfigMap): Promise<void> {
  const extra = Object.keys(await t.stack.getAllConfig()).filter((k) => !(k in config));
  if (extra.length > 0) await t.stack.removeAllConfig(extra);
  await t.stack.setAllConfig(config);
}

export interface VerifyRun {
  status: number | null;
  stdout: string;
  stderr: string;
  /** check name → "PASS" | "FAIL" */
  verdicts: Map<string, string>;
}

/**
 * `npm run verify -- --stack NAME` in the project directory, with the test stack's backend and passphrase
 * (started directly unless `via` is "npm": tests/support/scriptCommand.ts).
 * Asynchronous, so that servers living in the test process (relays) keep answering while it runs.
 */
export async function runVerifyCli(t: TestStack, args: string[] = ["--stack", t.stack.name], via: Via = "node"): Promise<VerifyRun> {
  const command = scriptCommand("verify", args, via);
  const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    execFile(
      command.file,
      command.args,
      { cwd: command.cwd, env: { ...process.env, ...command.env, ...t.env }, encoding: "utf8", timeout: 180_000 },
      (err, stdout, stderr) => {
        const code = (err as { code?: unknown } | null)?.code;
        if (err && typeof code !== "number") return reject(err);
        resolve({ status: err ? (code as number) : 0, stdout, stderr });
      },
    );
  });
  const verdicts = new Map<string, string>();
  for (const line of r.stdout.split("\n")) {
    const m = /^(PASS|FAIL) +([a-z-]+) /.exec(line);
    if (m) verdicts.set(m[2], m[1]);
  }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, verdicts };
}

/** Runs `run`, which must fail, and returns its error text (the test fails when it succeeds). */
export async function failureOf(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (err) {
    return String((err as Error).message);
  }
  throw new Error("the operation succeeded, but it had to fail");
}
