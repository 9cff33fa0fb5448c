// Faults: MinIO down before or during `up`, MinIO hanging, MinIO's data wiped, wrong admin credentials,
// and the pulumi CLI killed mid-run. Each fails with a clear error naming the endpoint in bounded time,
// and afterwards the documented recovery converges with nothing duplicated or left behind.
import { spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { EngineEvent, OutputMap } from "@pulumi/pulumi/automation";
import { REQUEST_TIMEOUT_MS } from "../../providers/minioClients";
import { MinioServer, startMinio } from "../../harness/minio";
import { createTestStack, minioConfig, PROJECT_DIR, TestStack } from "../../harness/stack";
import { continueProcess, stopProcess } from "../support/processState";
import {
  BUCKET,
  BUILDER,
  cacheProblems,
  changesOf,
  descendantsOf,
  driftPreview,
  errorLines,
  minioPid,
  pulumiCli,
  setExactConfig,
  serverInventory,
  stackTraceLines,
} from "./helpers";

let minio: MinioServer;
let t: TestStack;

beforeAll(async () => {
  minio = await startMinio();
  t = await createTestStack("it-faults", minioConfig(minio));
});

afterAll(async () => {
  await t?.remove();
  await minio?.destroy();
});

/** Runs `run`, which must fail; returns its error text and how long it took. */
async function failure(run: () => Promise<unknown>): Promise<{ text: string; seconds: number }> {
  const start = Date.now();
  try {
    await run();
  } catch (err) {
    return { text: String((err as Error).message), seconds: (Date.now() - start) / 1000 };
  }
  throw new Error("the operation succeeded, but it had to fail");
}

/**
 * The error messages a failed operation shows, less Pulumi's own: the "update failed" summary, and the
 * "failed to deliver log message ... error: Error: Channel has been shut down" the SDK prints when the
 * engine stops the program while it still registers resources (after any failure; not ours to change).
 */
const ourErrors = (text: string) =>
  errorLines(text)
    .map((l) => l.replace(/^error: (Preview failed: |)/, ""))
    .filter((l) => !/^(preview|update|refresh) failed$/.test(l) && l !== "Error: Channel has been shut down");

/** The converged cache: one of everything on the server, every resource in the state, none pending. */
async function expectConverged(stack: TestStack = t): Promise<void> {
  expect(await serverInventory(minio, [BUILDER, "nixgc"])).toEqual({ buckets: [BUCKET], users: [BUILDER, "nixgc"], policies: [`${BUCKET}-gc`, `${BUCKET}-write`] });
  const state = (await stack.stack.exportStack()).deployment as { resources?: { type: string; custom?: boolean }[]; pending_operations?: unknown[] };
  expect((state.resources ?? []).filter((r) => r.custom && r.type.startsWith("nix-cache:index:"))).toHaveLength(15);
  expect(state.pending_operations ?? []).toEqual([]);
  const check = await driftPreview(stack.stack);
  expect(check.changes).toEqual({});
  expect(check.failed).toBe(false);
  const outputs: OutputMap = await stack.stack.outputs();
  expect(await cacheProblems(minio, outputs)).toEqual([]);
}

/** Empties MinIO's data directory while it is stopped: every bucket, user and policy is gone. */
async function wipeMinio(): Promise<void> {
  await minio.stop();
  for (const entry of fs.readdirSync(minio.dataDir)) fs.rmSync(path.join(minio.dataDir, entry), { recursive: true, force: true });
  await minio.restart();
}

const unreachable = () => new RegExp(`cannot reach MinIO at ${minio.endpoint.replace(/[.]/g, "\\.")} \\((ECONNREFUSED|ECONNRESET)\\): is the server running, and is nix-cache:endpoint right\\?`);

test("MinIO stopped before up: one clear error naming the endpoint, fast; after a restart up converges", async () => {
  await minio.stop();
  const { text, seconds } = await failure(() => t.stack.up()).finally(() => minio.restart());
  expect(seconds).toBeLessThan(30);
  const errors = ourErrors(text);
  expect(errors.length).toBeGreaterThan(0);
  for (const e of errors) expect(e).toMatch(unreachable());
  expect(new Set(errors).size).toBe(1);
  expect(stackTraceLines(text)).toEqual([]);

  const up = await t.stack.up();
  expect(up.summary.result).toBe("succeeded");
  await expectConverged();
});

test("MinIO killed in the middle of up: a clear error naming the endpoint; after a restart up converges", async () => {
  // Work to do: a new nix-cache-info, expiry rule (retention=lifecycle) and anonymous policy (three updates
  // after the bucket is read).
  await setExactConfig(t, minioConfig(minio, { priority: "41", retention: "lifecycle", expireDays: "8", anonymousList: "true" }));
  const pid = minioPid(minio);
  let killed = false;
  const { text, seconds } = await failure(() =>
    t.stack.up({
      onEvent: (e: EngineEvent) => {
        // nix-cache-info is updated; the expiry rule and the anonymous policy wait for it (they take the
        // bucket from it). Kill the server now: they find it gone.
        const m = e.resOutputsEvent?.metadata;
        if (!killed && m && m.urn.endsWith("::nix-cache-store-nix-cache-info")) {
          killed = true;
          process.kill(pid, "SIGKILL");
        }
      },
    }),
  );
  await minio.stop();
  await minio.restart();
  expect(killed).toBe(true);
  expect(seconds).toBeLessThan(60);
  const errors = ourErrors(text);
  expect(errors.length).toBeGreaterThan(0);
  for (const e of errors) expect(e).toMatch(unreachable());
  expect(stackTraceLines(text)).toEqual([]);

  const events: EngineEvent[] = [];
  const up = await t.stack.up({ refresh: true, onEvent: (e) => events.push(e) });
  expect(up.summary.result).toBe("succeeded");
  // Only what the change needs, whatever part of it the killed run had done.
  expect(Object.values(changesOf(events)).every((op) => op === "update")).toBe(true);
  await setExactConfig(t, minioConfig(minio));
  await t.stack.up();
  await expectConverged();
});

test(`MinIO hanging (SIGSTOP): up fails within the ${REQUEST_TIMEOUT_MS / 1000} s request bound naming the endpoint, no hang`, async () => {
  const pid = minioPid(minio);
  await stopProcess(pid);
  let result: { text: string; seconds: number };
  try {
    result = await failure(() => t.stack.up({ refresh: true }));
  } finally {
    await continueProcess(pid);
  }
  expect(result.seconds).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS / 1000 - 1);
  expect(result.seconds).toBeLessThan(REQUEST_TIMEOUT_MS / 1000 + 30);
  const errors = ourErrors(result.text);
  expect(errors.length).toBeGreaterThan(0);
  const hung = `MinIO at ${minio.endpoint} did not answer within ${REQUEST_TIMEOUT_MS / 1000} s: is the server running, and is nix-cache:endpoint right?`;
  for (const e of errors) expect(e === hung || unreachable().test(e)).toBe(true);
  expect(errors).toContain(hung);
  expect(stackTraceLines(result.text)).toEqual([]);
  await expectConverged();
});

test("MinIO's data wiped: the drift check names everything, up --refresh recreates it all", async () => {
  await wipeMinio();
  expect(await serverInventory(minio, [BUILDER, "nixgc"])).toEqual({ buckets: [], users: [], policies: [] });
  const check = await driftPreview(t.stack);
  expect(check.failed).toBe(true);
  expect(check.changes).toEqual({
    "nix-cache-store-bucket": "create",
    "nix-cache-store-nix-cache-info": "update",
    "nix-cache-anonymous-policy": "create",
    "nix-cache-expiry-lifecycle": "create",
    "nix-cache-builder-user": "create",
    "nix-cache-builder-policy": "create",
    "nix-cache-builder-attachment": "create",
    "nix-cache-gc-user": "create",
    "nix-cache-gc-policy": "create",
    "nix-cache-gc-attachment": "create",
  });
  const up = await t.stack.up({ refresh: true });
  expect(up.summary.result).toBe("succeeded");
  await expectConverged();
});

describe("wrong admin credentials", () => {
  const rejected = (code: string) =>
    `MinIO at ${minio.endpoint} rejected the admin credentials (${code}): check nix-cache:adminUser and nix-cache:adminPassword (pulumi config set --secret nix-cache:adminPassword)`;

  afterAll(async () => {
    await setExactConfig(t, minioConfig(minio));
  });

  test.each([
    ["a wrong password", "adminPassword", "Wrong-Admin-Password-1", "SignatureDoesNotMatch: wrong password"],
    ["an unknown user", "adminUser", "nosuchadmin", "InvalidAccessKeyId: no such user"],
  ])("%s: the drift check and up --refresh --run-program fail with one clear error", async (_what, key, value, code) => {
    const config = minioConfig(minio);
    config[`nix-cache:${key}`] = { value, secret: key === "adminPassword" };
    await setExactConfig(t, config);
    for (const run of [
      () => t.stack.preview({ refresh: true, runProgram: true, expectNoChanges: true }),
      () => t.stack.up({ refresh: true, runProgram: true }),
    ]) {
      const { text } = await failure(run);
      expect(new Set(ourErrors(text))).toEqual(new Set([rejected(code)]));
      expect(stackTraceLines(text)).toEqual([]);
      expect(text.includes(value) && key === "adminPassword").toBe(false);
    }
  });

  test("a change made with a wrong password fails with the same error; the fix is the right password and up --refresh --run-program", async () => {
    const config = minioConfig(minio, { priority: "42" });
    config["nix-cache:adminPassword"] = { value: "Wrong-Admin-Password-2", secret: true };
    await setExactConfig(t, config);
    const { text } = await failure(() => t.stack.up());
    expect(new Set(ourErrors(text))).toEqual(new Set([rejected("SignatureDoesNotMatch: wrong password")]));

    // The failed up stored the wrong password with the stack's provider: a plain refresh now uses it.
    await setExactConfig(t, minioConfig(minio));
    const stale = await failure(() => t.stack.preview({ refresh: true }));
    expect(new Set(ourErrors(stale.text))).toEqual(new Set([rejected("SignatureDoesNotMatch: wrong password")]));
    // Refreshing with the program's (current) configuration repairs it.
    const up = await t.stack.up({ refresh: true, runProgram: true });
    expect(up.summary.result).toBe("succeeded");
    await expectConverged();
  });
});

/**
 * A TCP relay to MinIO that holds the bucket's creation request (`PUT /BUCKET`) and never passes it on, and
 * says when it has one: the moment a user's `pulumi up` is inside the bucket's creation, on a MinIO that has not
 * made the bucket. (Stopping MinIO when the CLI prints "creating" raced the provider: its request could land first.)
 */
async function relayHoldingBucketCreation(): Promise<{ endpoint: string; held: Promise<void>; close(): void }> {
  const upstream = new URL(minio.endpoint);
  const sockets = new Set<net.Socket>();
  let holding = true;
  let onHeld = () => {};
  const held = new Promise<void>((resolve) => (onHeld = resolve));
  const createBucket = new RegExp(`(^|\\r\\n)PUT /${BUCKET}/? HTTP/1\\.1\\r\\n`);
  const server = net.createServer((client) => {
    const server = net.connect(Number(upstream.port), upstream.hostname);
    for (const s of [client, server]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => (client.destroy(), server.destroy()));
    }
    server.pipe(client);
    client.on("data", (chunk: Buffer) => {
      if (holding && createBucket.test(chunk.toString("latin1"))) {
        holding = false;
        client.pause();
        onHeld();
        return;
      }
      server.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    held,
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

test("pulumi CLI killed mid-up: pulumi cancel, refresh --clear-pending-creates, up --refresh converges", async () => {
  await wipeMinio();
  // A stack of its own that reaches MinIO through the relay (the same names: the wiped MinIO has none of them).
  const relay = await relayHoldingBucketCreation();
  const killedStack = await createTestStack("it-faults-kill", { ...minioConfig(minio), "nix-cache:endpoint": { value: relay.endpoint } });
  try {
    // A user's `pulumi up`, killed (SIGKILL, with everything it started) while the bucket's creation is in
    // flight: the state records it as a pending create, and the stack stays locked.
    const cli = spawn("pulumi", ["up", "--yes", "--skip-preview", "--refresh", "--non-interactive", "--stack", killedStack.stack.name], {
      cwd: PROJECT_DIR,
      env: { ...process.env, ...killedStack.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    cli.stdout.on("data", (d: Buffer) => (output += d.toString()));
    cli.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((resolve) => cli.once("exit", () => resolve()));
    const ended = exited.then(() => {
      throw new Error(`pulumi up ended before the bucket's creation reached MinIO:\n${output}`);
    });
    await Promise.race([relay.held, ended]);
    ended.catch(() => undefined); // settled by the kill below: expected, not a failure
    for (const p of [cli.pid ?? 0, ...descendantsOf(cli.pid ?? 0)]) process.kill(p, "SIGKILL");
    await exited;

    const pending = (await killedStack.stack.exportStack()).deployment as { pending_operations?: { type: string; resource: { urn: string } }[] };
    expect((pending.pending_operations ?? []).map((p) => `${p.type} ${p.resource.urn.split("::").pop()}`)).toContain("creating nix-cache-store-bucket");
    expect(await serverInventory(minio, [BUILDER, "nixgc"])).toMatchObject({ buckets: [] });
    // The stack is locked by the killed run.
    const locked = pulumiCli(killedStack, ["up", "--yes", "--skip-preview"]);
    expect(locked.code).not.toBe(0);
    expect(locked.stderr).toMatch(/the stack is currently locked by 1 lock\(s\).*pulumi cancel/s);

    // The recovery steps docs/troubleshooting.md gives.
    const cancel = pulumiCli(killedStack, ["cancel", "--yes"]);
    expect(cancel.code).toBe(0);
    const refresh = await killedStack.stack.refresh({ clearPendingCreates: true });
    expect(refresh.summary.result).toBe("succeeded");
    const up = await killedStack.stack.up({ refresh: true });
    expect(up.summary.result).toBe("succeeded");
    await expectConverged(killedStack);
  } finally {
    relay.close();
    await killedStack.remove();
  }
});
