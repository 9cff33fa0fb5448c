// Rotating the signing key as docs/operations.md's runbook does it, on a real MinIO with the real engine: step 1 keeps
// the old key (byte for byte) behind the new one, step 2 retires it; the one-step rotation is refused before
// anything changes; a retired name is never used again; allowKeyDrop drops a key on purpose. One stack, the
// cases run in order.
import { OutputMap } from "@pulumi/pulumi/automation";
import { publicKeyOf } from "../../lib/signing/signingKey";
import { MinioServer } from "../../harness/minio";
import { deployCache, removeDeployment, TestStack } from "../../harness/stack";
import { cacheProblems, driftPreview, errorLines, failureOf, pulumiCli, serverInventory, stackTraceLines, stateFingerprint } from "./helpers";

let minio: MinioServer;
let t: TestStack;
let first: OutputMap;

const K1 = "s3.homelab.local-1";
const K2 = "s3.homelab.local-2";
const K3 = "s3.homelab.local-3";

beforeAll(async () => {
  ({ minio, t, outputs: first } = await deployCache("it-rotate"));
});
afterAll(() => removeDeployment(t, minio));

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
  const ring = deployment.deployment.resources.find((r: { type: string }) => r.type === "pulumi-nodejs:dynamic:NixSigningKeypair");
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

test("step 1: keyName K2 with K1 in previousKeyNames: both trusted and signing, K1 byte-identical, no drift", async () => {
  await t.stack.setConfig("nix-cache:previousKeyNames[0]", { value: K1 }, true);
  const up = await t.stack.up();
  expect(up.summary.result).toBe("succeeded");
  // Only the key ring changes (an update, never a replacement).
  expect(up.summary.resourceChanges).toMatchObject({ update: 1 });
  expect(up.summary.resourceChanges?.replace ?? 0).toBe(0);
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
  expect(await cacheProblems(minio, now)).toEqual([]);
  expect((await driftPreview(t.stack)).failed).toBe(false);
});

test("step 2 (retire): K1 removed from previousKeyNames: only K2 is left, unchanged; no drift", async () => {
  const before = await outputs();
  await t.stack.removeConfig("nix-cache:previousKeyNames");
  const up = await t.stack.up();
  expect(up.summary.result).toBe("succeeded");
  const now = await outputs();
  expect(now.trustedPublicKeys.value).toEqual([strings(before.trustedPublicKeys.value)[0]]);
  expect(now.secretKeys.value).toEqual([strings(before.secretKeys.value)[0]]);
  expect(String(now.nixosModule.value)).not.toContain(`${K1}:`);
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
