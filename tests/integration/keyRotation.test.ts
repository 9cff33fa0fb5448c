// Rotating the signing key as docs/operations.md's runbook does it, on a real MinIO with the real engine: step 1 keeps
// the old key (byte for byte) behind the new one, step 2 retires it, each run as written (docs/rotate-key-step1.sh
// and docs/rotate-key-step2.sh, which the doc shows verbatim: tests/unit/runbookDocs.test.ts; their key names are
// K1 and K2 here); the one-step rotation is refused before anything changes; a retired name is never used again;
// allowKeyDrop drops a key on purpose. One stack, the cases run in order.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { OutputMap } from "@pulumi/pulumi/automation";
import { fingerprint, nix32, parseNarinfo, verifySignatures } from "../../lib/signing/narinfo";
import { publicKeyOf, signDetached } from "../../lib/signing/signingKey";
import { narinfoKey } from "../../lib/gc/plan";
import { S3Rest } from "../../lib/s3/client";
import { MinioServer } from "../../harness/minio";
import { deployCache, removeDeployment, TestStack } from "../../harness/stack";
import { Reader, readerOf, succeeded } from "../support/runbook";
import { BUCKET, cacheProblems, driftPreview, errorLines, failureOf, pulumiCli, serverInventory, stackTraceLines, stateFingerprint } from "./helpers";

let minio: MinioServer;
let t: TestStack;
let first: OutputMap;
let reader: Reader;
let root: S3Rest;

const K1 = "s3.homelab.local-1";
const K2 = "s3.homelab.local-2";
const K3 = "s3.homelab.local-3";
/** Where the runbooks' `npm run host-config -- --out ~/nixos-config/nix-cache --secrets-dir ~/nix-cache-secrets` writes. */
const hostDir = () => path.join(reader.home, "nixos-config", "nix-cache");
const secretsDir = () => path.join(reader.home, "nix-cache-secrets");

beforeAll(async () => {
  ({ minio, t, outputs: first } = await deployCache("it-rotate"));
  reader = readerOf(t);
  root = new S3Rest({ endpoint: minio.endpoint, region: "us-east-1", bucket: BUCKET, accessKey: minio.rootUser, secretKey: minio.rootPassword });
});
afterAll(async () => {
  root?.close();
  reader?.remove();
  await removeDeployment(t, minio);
});

const strings = (v: unknown) => v as string[];
const outputs = async () => t.stack.outputs();

test("a new stack has one key: trustedPublicKeys and secretKeys hold it alone", async () => {
  expect(strings(first.trustedPublicKeys.value)).toEqual([first.publicKey.value]);
  expect(strings(first.secretKeys.value)).toEqual([first.secretKey.value]);
  expect(first.secretKeys.secret).toBe(true);
  expect(first.trustedPublicKeys.secret).toBe(false);
  expect(String(first.publicKey.value)).toMatch(new RegExp(`^${K1}:`));
});

test("a stack made by the single-key version keeps its key: one update rewrites the state, nothing replaced", async () => {
  // Turn the key ring's state into what the single-key version wrote: inputs {keyName}, outputs {keyName,
  // publicKey, secretKey (secret)}, through stack export/import as a user's old stack would hold it (the
  // Automation API's: the CLI's `--show-secrets` text of this stack is over spawnSync's 1 MiB default buffer
  // since the GC identity's resources came; other secrets stay encrypted for the same stack).
  const deployment = await t.stack.exportStack();
  const ring = deployment.deployment.resources.find((r: { type: string }) => r.type === "nix-cache:index:NixSigningKeypair");
  const SECRET_SIG = "4dabf18193072939515e22adb298388d";
  const secretOf = (v: string) => ({ [SECRET_SIG]: "1b47061264138c4ac30d75fd1eb44270", plaintext: JSON.stringify(v) });
  ring.inputs = { __provider: ring.inputs.__provider, keyName: K1 };
  ring.outputs = { __provider: ring.outputs.__provider, keyName: K1, publicKey: first.publicKey.value, secretKey: secretOf(String(first.secretKey.value)) };
  await t.stack.importStack(deployment);

  const up = await t.stack.up();
  expect(up.summary.result).toBe("succeeded");
  expect(up.summary.resourceChanges).toMatchObject({ update: 1 });
  expect(up.summary.resourceChanges?.replace ?? 0).toBe(0);
  const now = await outputs();
  expect(now.publicKey.value).toBe(first.publicKey.value);
  expect(now.secretKey.value).toBe(first.secretKey.value);
  expect(now.trustedPublicKeys.value).toEqual([first.publicKey.value]);
  expect((await driftPreview(t.stack)).failed).toBe(false);
});

test("the one-step rotation (keyName changed, old key not kept) is refused by preview and up; nothing changes", async () => {
  await t.stack.setConfig("nix-cache:keyName", { value: K2 });
  for (const run of [() => t.stack.preview(), () => t.stack.up()]) {
    const text = await failureOf(run);
    expect(errorLines(text).join("\n")).toContain(`nix-cache:keyName changed from '${K1}' to '${K2}' without keeping '${K1}' in nix-cache:previousKeyNames; nothing was changed.`);
    expect(text).toContain(`pulumi config set --path 'nix-cache:previousKeyNames[0]' ${K1} && pulumi up && npm run resign`);
    expect(text).toContain("pulumi config set nix-cache:allowKeyDrop true");
    expect(stackTraceLines(text)).toEqual([]);
  }
  const now = await outputs();
  expect(now.secretKey.value).toBe(first.secretKey.value);
  expect(now.trustedPublicKeys.value).toEqual(first.trustedPublicKeys.value);
  expect((await serverInventory(minio)).buckets).toEqual(["nix-cache"]);
});

test("step 1 as written (docs/rotate-key-step1.sh): K2 active, K1 kept byte-identical, both trusted and signing; the cache re-signed, the hosts' files written; no drift", async () => {
  // A path the builder pushed before the rotation, signed by K1 alone: the runbook's resign must add K2's signature.
  const nar = Buffer.alloc(64, 1);
  const hashPart = nix32(crypto.createHash("sha1").update("rotate-before").digest());
  const narHash = nix32(crypto.createHash("sha256").update(nar).digest());
  const narKey = `nar/${narHash}.nar`;
  const text = `StorePath: /nix/store/${hashPart}-rotate-before\nURL: ${narKey}\nCompression: none\nNarHash: sha256:${narHash}\nNarSize: ${nar.length}\nReferences: \n`;
  await root.put(narKey, nar, { contentType: "application/x-nix-nar" });
  await root.put(narinfoKey(hashPart), `${text}Sig: ${signDetached(String(first.secretKey.value), fingerprint(parseNarinfo(text)))}\n`, { contentType: "text/x-nix-narinfo" });

  const output = succeeded("rotate-key-step1.sh", await reader.run("rotate-key-step1.sh"));
  // Only the key ring changes (an update, never a replacement).
  const up = await t.stack.info(false);
  expect(up?.result).toBe("succeeded");
  expect(up?.resourceChanges).toMatchObject({ update: 1 });
  expect(up?.resourceChanges?.replace ?? 0).toBe(0);
  const now = await outputs();
  const trusted = strings(now.trustedPublicKeys.value);
  const secrets = strings(now.secretKeys.value);
  expect(trusted).toHaveLength(2);
  expect(trusted[0]).toMatch(new RegExp(`^${K2}:`));
  expect(trusted[1]).toBe(first.publicKey.value);
  expect(secrets[1]).toBe(first.secretKey.value);
  expect(publicKeyOf(secrets[0])).toBe(trusted[0]);
  expect(now.publicKey.value).toBe(trusted[0]);
  expect(now.secretKey.value).toBe(secrets[0]);
  expect(String(now.nixosModule.value)).toContain(trusted[0]);

  expect(output).toMatch(/^resign: 1 signed, 0 already signed, 0 refused$/m);
  const signed = parseNarinfo(String((await root.get(narinfoKey(hashPart)))?.body));
  expect(verifySignatures(signed, trusted).verified.sort()).toEqual([K1, K2]);
  // The files step 1 says it writes: the new key, the old one under its name, and the modules that trust both.
  expect(fs.readdirSync(secretsDir())).toEqual(expect.arrayContaining(["nix-cache-signing-key", `nix-cache-signing-key-${K1}`]));
  expect(fs.readFileSync(path.join(secretsDir(), "nix-cache-signing-key"), "utf8").trim()).toBe(secrets[0]);
  expect(fs.readFileSync(path.join(secretsDir(), `nix-cache-signing-key-${K1}`), "utf8").trim()).toBe(secrets[1]);
  for (const key of trusted) expect(fs.readFileSync(path.join(hostDir(), "nix-cache.nix"), "utf8")).toContain(key);
  expect(fs.readFileSync(path.join(hostDir(), "nix-cache-builder.nix"), "utf8")).toContain(`"/run/secrets/nix-cache-signing-key-${K1}"`);

  expect(await cacheProblems(minio, now)).toEqual([]);
  expect((await driftPreview(t.stack)).failed).toBe(false);
});

test("step 2 as written (docs/rotate-key-step2.sh): K1 retired, only K2 is left, unchanged; the hosts' files trust K2 alone; no drift", async () => {
  const before = await outputs();
  // Step 1's last instruction: "Delete ~/nix-cache-secrets" once the builder has the keys.
  fs.rmSync(secretsDir(), { recursive: true });
  succeeded("rotate-key-step2.sh", await reader.run("rotate-key-step2.sh"));
  expect((await t.stack.info(false))?.result).toBe("succeeded");
  const now = await outputs();
  expect(now.trustedPublicKeys.value).toEqual([strings(before.trustedPublicKeys.value)[0]]);
  expect(now.secretKeys.value).toEqual([strings(before.secretKeys.value)[0]]);
  expect(String(now.nixosModule.value)).not.toContain(`${K1}:`);
  expect(fs.readFileSync(path.join(hostDir(), "nix-cache.nix"), "utf8")).not.toContain(`${K1}:`);
  expect(fs.readFileSync(path.join(hostDir(), "nix-cache-builder.nix"), "utf8")).not.toContain(`nix-cache-signing-key-${K1}`);
  expect(fs.readdirSync(secretsDir()).filter((f) => f.startsWith("nix-cache-signing-key"))).toEqual(["nix-cache-signing-key"]);
  expect(fs.readFileSync(path.join(secretsDir(), "nix-cache-signing-key"), "utf8").trim()).toBe(strings(before.secretKeys.value)[0]);
  expect((await driftPreview(t.stack)).failed).toBe(false);
});

test("a retired key's name is never used again, even with allowKeyDrop", async () => {
  const state = await stateFingerprint(t.stack);
  await t.stack.setConfig("nix-cache:previousKeyNames[0]", { value: K1 }, true);
  const text = await failureOf(() => t.stack.preview());
  expect(text).toContain(`the key name '${K1}' belonged to a key this stack retired; nothing was changed.`);
  await t.stack.setConfig("nix-cache:allowKeyDrop", { value: "true" });
  expect(await failureOf(() => t.stack.preview())).toContain(`'${K1}' belonged to a key this stack retired`);
  await t.stack.removeConfig("nix-cache:previousKeyNames");
  await t.stack.removeConfig("nix-cache:allowKeyDrop");
  expect(await stateFingerprint(t.stack)).toBe(state);
});

test("allowKeyDrop=true drops the active key at once (a compromised key): a new key, the old one gone", async () => {
  const before = await outputs();
  await t.stack.setConfig("nix-cache:keyName", { value: K3 });
  await t.stack.setConfig("nix-cache:allowKeyDrop", { value: "true" });
  const up = await t.stack.up();
  expect(up.summary.result).toBe("succeeded");
  const now = await outputs();
  const trusted = strings(now.trustedPublicKeys.value);
  expect(trusted).toHaveLength(1);
  expect(trusted[0]).toMatch(new RegExp(`^${K3}:`));
  expect(JSON.stringify(now.secretKeys.value)).not.toContain(String(before.secretKey.value));
  await t.stack.removeConfig("nix-cache:allowKeyDrop");
  expect((await driftPreview(t.stack)).failed).toBe(false);
});

test("bad key settings are refused before anything is read or changed, naming the setting", async () => {
  const state = await stateFingerprint(t.stack);
  const server = await serverInventory(minio);
  await t.stack.setConfig("nix-cache:previousKeyNames[0]", { value: K3 }, true);
  const text = await failureOf(() => t.stack.preview());
  expect(text).toContain(`nix-cache:previousKeyNames[0] is "${K3}", the active nix-cache:keyName too`);
  await t.stack.removeConfig("nix-cache:previousKeyNames");
  // The CLI path a user takes: the same refusal from `pulumi preview`.
  await t.stack.setConfig("nix-cache:allowKeyDrop", { value: "maybe" });
  const cli = pulumiCli(t, ["preview"]);
  expect(cli.code).not.toBe(0);
  expect(cli.stdout + cli.stderr).toMatch(/allowKeyDrop/);
  await t.stack.removeConfig("nix-cache:allowKeyDrop");
  expect(await stateFingerprint(t.stack)).toBe(state);
  expect(await serverInventory(minio)).toEqual(server);
});
