// A Pulumi YAML program (examples/yaml) declares a NixCache, which the provider plugin constructs: `up` on a real
// MinIO → the cache works as its outputs say (anonymous nix-cache-info, the builder uploads), the outputs are what
// index.ts exports with secrets kept secret (also in the state) → a clean `preview --refresh` → `destroy`.
import * as path from "path";
import { OutputMap, Stack } from "@pulumi/pulumi/automation";
import { MinioServer, startMinio } from "../../harness/minio";
import { backendText, createTestStack, minioConfig, PROJECT_DIR, TestStack } from "../../harness/stack";
import { requireTool } from "../../harness/toolchain";
import { cacheProblems, serverInventory } from "./helpers";

const YAML_DIR = path.join(PROJECT_DIR, "examples", "yaml");
/** The example's project name: its own settings are `nix-cache-yaml:*`; the plugin's stay `nix-cache:*`. */
const PROJECT = "nix-cache-yaml";
const KEY_NAME = "yaml-test-1";

let minio: MinioServer;
let t: TestStack;
let stack: Stack;
let outputs: OutputMap;

beforeAll(async () => {
  requireTool("pulumi-language-yaml");
  minio = await startMinio();
  // The admin credentials (and a CA) as the plugin reads them; the endpoint and key name as the program's own config.
  const { "nix-cache:endpoint": endpoint, ...plugin } = minioConfig(minio);
  // The program load applies to TypeScript programs only; this YAML one runs as pulumi-language-yaml runs it.
  t = await createTestStack("yaml", { ...plugin, [`${PROJECT}:endpoint`]: endpoint, [`${PROJECT}:keyName`]: { value: KEY_NAME } }, "cached", YAML_DIR);
  stack = t.stack;
});

afterAll(async () => {
  await stack?.destroy().catch(() => undefined);
  await t?.remove();
  await minio?.destroy();
});

test("up: the component with its resources, and a resource on its own, with the outputs index.ts exports", async () => {
  const up = await stack.up();
  expect(up.summary.result).toBe("succeeded");
  expect(up.summary.resourceChanges).toMatchObject({ create: 24 });
  outputs = up.outputs;
  expect(outputs.substituterUrl.value).toBe(`${minio.endpoint}/nix-cache`);
  expect(outputs.publicKey.value).toMatch(new RegExp(`^${KEY_NAME}:[A-Za-z0-9+/]{43}=$`));
  expect(outputs.trustedPublicKeys.value).toEqual([outputs.publicKey.value]);
  expect(outputs.builderAccessKey.value).toBe("nixbuilder");
  expect(outputs.pushUrl.value).toContain("s3://nix-cache?profile=nixbuilder&endpoint=");
});

test("the cache works as its outputs say: anonymous nix-cache-info, no anonymous write, the builder uploads", async () => {
  const info = await fetch(`${outputs.substituterUrl.value}/nix-cache-info`);
  expect(await info.text()).toBe("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n");
  // Also: the builder (with the output credentials) may upload but not delete.
  expect(await cacheProblems(minio, outputs)).toEqual([]);
});

test("the builder's password and a RandomPassword declared on its own are secret outputs, encrypted in the state", () => {
  expect(outputs.builderSecretKey.secret).toBe(true);
  expect(String(outputs.builderSecretKey.value)).toMatch(/^[A-Za-z0-9]{40}$/);
  expect(outputs.otherPassword.secret).toBe(true);
  expect(String(outputs.otherPassword.value)).toMatch(/^[A-Za-z0-9]{24}$/);
  const state = backendText(t.backendDir);
  expect([outputs.builderSecretKey.value, outputs.otherPassword.value].filter((pw) => state.includes(String(pw)))).toEqual([]);
});

test("preview --refresh shows no change", async () => {
  const preview = await stack.preview({ expectNoChanges: true, refresh: true });
  expect(preview.changeSummary).toEqual({ same: 24 });
});

test("destroy removes it all: no bucket, user or policy is left", async () => {
  const destroy = await stack.destroy();
  expect(destroy.summary.result).toBe("succeeded");
  expect(destroy.summary.resourceChanges).toMatchObject({ delete: 24 });
  expect(await serverInventory(minio, ["nixbuilder", "nixgc"])).toEqual({ buckets: [], users: [], policies: [] });
});

test("a bad input stops the preview with one error naming it, before anything is made", async () => {
  await stack.setConfig(`${PROJECT}:keyName`, { value: "bad key" });
  const err = await stack.preview().then(() => undefined, (e: unknown) => String(e));
  expect(err).toContain("invalid NixCache inputs: keyName");
  expect(err).toMatch(/property keyName with value "bad key" has a problem: allowed is a Nix key name/);
  expect(await serverInventory(minio, ["nixbuilder", "nixgc"])).toEqual({ buckets: [], users: [], policies: [] });
});
