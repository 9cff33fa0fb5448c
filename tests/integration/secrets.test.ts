// Secrets: the builder password, the signing secret and the MinIO admin password never appear in plain
// text in the state, in `pulumi stack output` without --show-secrets, or in what up/preview print (also with
// --diff, on changes, on drift, on failures). Every check reports only WHERE a secret showed, never the
// secret itself, so a failing run does not leak it into the test output either.
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { EngineEvent, OutputMap } from "@pulumi/pulumi/automation";
import { minioAdmin } from "../../providers/minioClients";
import { MinioServer, startMinio } from "../../harness/minio";
import { backendText, createTestStack, minioConfig, PROJECT_DIR, TestStack } from "../../harness/stack";
import { BUILDER, CliResult, pulumiCli, rootOf, setExactConfig, targetOf } from "./helpers";

/**
 * pulumiCli with room for a big output: `pulumi stack export` of this stack (every dynamic resource carries its
 * serialized provider) is over the 1 MiB spawnSync keeps by default since the GC identity's resources came.
 */
function pulumiCliBig(t: TestStack, args: string[]): CliResult {
  const res = spawnSync("pulumi", [...args, "--stack", t.stack.name, "--non-interactive"], {
    cwd: PROJECT_DIR,
    env: { ...process.env, ...t.env },
    encoding: "utf8",
    timeout: 300_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: res.status ?? -1, stdout: res.stdout ?? "", stderr: res.stderr ?? "" };
}

let minio: MinioServer;
let t: TestStack;
/** Everything the CLI printed or the engine reported, by where it came from. */
const seen: { where: string; text: string }[] = [];
const events: EngineEvent[] = [];
const record = (where: string) => ({
  onOutput: (s: string) => seen.push({ where: `${where} (stdout)`, text: s }),
  onError: (s: string) => seen.push({ where: `${where} (stderr)`, text: s }),
  onEvent: (e: EngineEvent) => events.push(e),
});

beforeAll(async () => {
  minio = await startMinio();
  t = await createTestStack("it-secrets", minioConfig(minio));
});

afterAll(async () => {
  await t?.remove();
  await minio?.destroy();
});

/** The secrets to look for, by name; each with the forms it could leak in. */
function secretForms(outputs: OutputMap): Record<string, string[]> {
  const builder = String(outputs.builderSecretKey.value);
  const signing = String(outputs.secretKey.value);
  const signingB64 = signing.slice(signing.indexOf(":") + 1);
  const seed = Buffer.from(signingB64, "base64").subarray(0, 32);
  return {
    "builder password": [builder],
    "GC password": [String(outputs.gcSecretKey.value)],
    // The whole key, its base64, the part of it that encodes the seed alone, and the seed in hex.
    "signing secret": [signing, signingB64, signingB64.slice(0, 40), seed.toString("hex")],
    "admin password": [minio.rootPassword],
  };
}

/** "<secret> in <where>" for every secret form found in any text; empty when nothing leaked. */
function leaks(secrets: Record<string, string[]>, texts: { where: string; text: string }[]): string[] {
  const found: string[] = [];
  for (const [name, forms] of Object.entries(secrets)) {
    for (const { where, text } of texts) {
      if (forms.some((f) => f.length >= 16 && text.includes(f))) found.push(`${name} in ${where}`);
    }
  }
  return [...new Set(found)];
}

test("no secret shows in up/preview output (also --diff, drift and failures), stack output, or state", async () => {
  // Deploy, then a clean check and a diff preview.
  const up = await t.stack.up(record("up"));
  seen.push({ where: "up result", text: `${up.stdout}\n${up.stderr}` });
  const outputs = await t.stack.outputs();
  const secrets = secretForms(outputs);
  expect(outputs.builderSecretKey.secret && outputs.secretKey.secret && outputs.awsCredentials.secret).toBe(true);
  expect(outputs.gcSecretKey.secret && outputs.gcCredentials.secret).toBe(true);
  for (const forms of Object.values(secrets)) for (const f of forms) expect(f.length).toBeGreaterThanOrEqual(16);

  const preview = await t.stack.preview({ refresh: true, diff: true, ...record("preview --refresh --diff") });
  seen.push({ where: "preview result", text: `${preview.stdout}\n${preview.stderr}` });

  // Drift on the user holding the secret (its password changed behind Pulumi's back): the diff shows the
  // user's properties, and up puts the stack's password back.
  await minioAdmin.addUser(targetOf(minio), rootOf(minio), BUILDER, crypto.randomBytes(24).toString("base64url"));
  const drift = await t.stack.preview({ refresh: true, diff: true, ...record("drift preview --diff") }).catch((e: Error) => e);
  seen.push({ where: "drift preview result", text: drift instanceof Error ? drift.message : `${drift.stdout}\n${drift.stderr}` });
  const repair = await t.stack.up({ refresh: true, diff: true, ...record("up --refresh --diff") });
  expect(repair.summary.resourceChanges?.update).toBe(1);
  seen.push({ where: "up --refresh --diff result", text: `${repair.stdout}\n${repair.stderr}` });

  // A config change with --diff.
  await setExactConfig(t, minioConfig(minio, { priority: "30" }));
  const change = await t.stack.up({ diff: true, ...record("up --diff (change)") });
  seen.push({ where: "up --diff (change) result", text: `${change.stdout}\n${change.stderr}` });

  // A failure: a wrong admin password (it must not show either).
  const wrong = `Wrong-Admin-${crypto.randomBytes(9).toString("base64url")}`;
  const config = minioConfig(minio, { priority: "30" });
  config["nix-cache:adminPassword"] = { value: wrong, secret: true };
  await setExactConfig(t, config);
  const failed = await t.stack.preview({ refresh: true, runProgram: true, diff: true, ...record("failing preview") }).catch((e: Error) => e);
  expect(failed).toBeInstanceOf(Error);
  seen.push({ where: "failing preview error", text: String((failed as Error).message) });
  secrets["wrong admin password"] = [wrong];
  await setExactConfig(t, minioConfig(minio, { priority: "30" }));

  // The CLI as a user runs it, without --show-secrets.
  for (const args of [
    ["stack", "output"],
    ["stack", "output", "--json"],
    ["stack", "export"],
    ["config"],
    ["preview", "--diff", "--refresh"],
    ["stack", "history"],
  ]) {
    const res = pulumiCliBig(t, args);
    expect([args.join(" "), res.code]).toEqual([args.join(" "), 0]);
    seen.push({ where: `pulumi ${args.join(" ")}`, text: `${res.stdout}\n${res.stderr}` });
  }
  const masked = pulumiCli(t, ["stack", "output", "builderSecretKey"]);
  expect(masked.stdout.trim()).toBe("[secret]");

  // The engine's event stream, the state (with its history and backups) and the stack's config file.
  // Left out: debug-level diagnostics, which only `--debug`/`-v` runs print. Pulumi's SDK writes every
  // RegisterResource response there unmasked ("RegisterResource RPC finished ... resp: ..."), secrets
  // included; that is the SDK's, and docs/troubleshooting.md warns not to share debug logs.
  const isDebug = (e: EngineEvent) => String(e.diagnosticEvent?.severity) === "debug" || e.diagnosticEvent?.prefix === "debug: ";
  const shown = events.filter((e) => !isDebug(e));
  expect(shown.length).toBeGreaterThan(0);
  seen.push({ where: "engine events (non-debug)", text: JSON.stringify(shown) });
  seen.push({ where: "state backend", text: backendText(t.backendDir) });
  seen.push({ where: "Pulumi.<stack>.yaml", text: fs.readFileSync(path.join(PROJECT_DIR, `Pulumi.${t.stack.name}.yaml`), "utf8") });

  // The checks see the real texts: the builder's name and the public key are there in the clear.
  const all = seen.map((s) => s.text).join("\n");
  expect(all).toContain(BUILDER);
  expect(all).toContain(String(outputs.publicKey.value));
  expect(leaks(secrets, seen)).toEqual([]);
});
