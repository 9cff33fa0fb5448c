// examples/host-stack, the StackReference way of consuming the outputs: deployed with the real engine
// against a cache stack in the same file:// backend (two keys: one active, one kept in previousKeyNames),
// its outputs equal the cache stack's.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { LocalWorkspace, OutputMap, Stack } from "@pulumi/pulumi/automation";
import { builderModule, previousSigningKeyFileName } from "../../lib/hosts/builderModule";
import { gcTimerInputOf } from "../../lib/hosts/hostFiles";
import { nixosModule } from "../../lib/hosts/hostConfig";
import { MinioServer, startMinio } from "../../harness/minio";
import { backendText, createTestStack, minioConfig, PROJECT_DIR, TestStack } from "../../harness/stack";

const EXAMPLE_DIR = path.join(PROJECT_DIR, "examples", "host-stack");

let minio: MinioServer;
let cache: TestStack;
let cacheOutputs: OutputMap;
let host: Stack | undefined;
let hostName: string;
let hostOutputs: OutputMap;
const value = (outputs: OutputMap, name: string): unknown => outputs[name]?.value;
/** The cache's keys: the active one, and the one kept in nix-cache:previousKeyNames. */
const ACTIVE_KEY = "it-hostref-2";
const PREVIOUS_KEY = "it-hostref-1";

beforeAll(async () => {
  minio = await startMinio();
  cache = await createTestStack("it-hostref", minioConfig(minio, { keyName: ACTIVE_KEY }));
  await cache.stack.setConfig("nix-cache:previousKeyNames[0]", { value: PREVIOUS_KEY }, true);
  expect((await cache.stack.up()).summary.result).toBe("succeeded");
  cacheOutputs = await cache.stack.outputs();

  hostName = `it-host-${crypto.randomBytes(3).toString("hex")}`;
  host = await LocalWorkspace.createOrSelectStack({ stackName: hostName, workDir: EXAMPLE_DIR }, { envVars: cache.env });
  // A file:// backend names every stack organization/PROJECT/STACK.
  await host.setConfig("nix-cache-host:cacheStack", { value: `organization/nix-cache/${cache.stack.name}` });
  const up = await host.up();
  expect(up.summary.result).toBe("succeeded");
  hostOutputs = await host.outputs();
});

afterAll(async () => {
  if (host) {
    await host.destroy().catch(() => undefined);
    await host.workspace.removeStack(hostName, { force: true }).catch(() => undefined);
  }
  fs.rmSync(path.join(EXAMPLE_DIR, `Pulumi.${hostName}.yaml`), { force: true });
  await cache?.remove();
  await minio?.destroy();
});

describe("examples/host-stack reads the cache stack with a StackReference", () => {
  test("its outputs equal the cache stack's", () => {
    for (const name of ["substituterUrl", "publicKey", "pushUrl", "nixosModule", "caCertificate"]) {
      expect(typeof value(hostOutputs, name)).toBe("string");
      expect(value(hostOutputs, name)).toBe(value(cacheOutputs, name));
      expect(hostOutputs[name].secret).toBe(false);
    }
    expect(value(hostOutputs, "substituterUrl")).toBe(`${minio.endpoint}/nix-cache`);
  });

  test("it passes on trustedPublicKeys: both keys, the active first, not secret", () => {
    const keys = value(hostOutputs, "trustedPublicKeys") as string[];
    expect(keys).toEqual(value(cacheOutputs, "trustedPublicKeys"));
    expect(keys.map((k) => k.split(":")[0])).toEqual([ACTIVE_KEY, PREVIOUS_KEY]);
    expect(keys[0]).toBe(value(cacheOutputs, "publicKey"));
    expect(hostOutputs.trustedPublicKeys.secret).toBe(false);
    // The client module it passes on trusts both.
    expect(value(hostOutputs, "nixosModule")).toBe(nixosModule(String(value(cacheOutputs, "substituterUrl")), keys));
  });

  test("its builder module is the text host-config writes for the same outputs, the daily GC included", () => {
    const expected = builderModule({
      pushUrl: String(value(cacheOutputs, "pushUrl")),
      publicKey: String(value(cacheOutputs, "publicKey")),
      trustedPublicKeys: value(cacheOutputs, "trustedPublicKeys") as string[],
      gc: gcTimerInputOf({
        pushUrl: String(value(cacheOutputs, "pushUrl")),
        gcAccessKey: String(value(cacheOutputs, "gcAccessKey")),
        retainDays: Number(value(cacheOutputs, "retainDays")),
      }),
    });
    expect(expected).toContain("nix-cache-gc");
    expect(value(hostOutputs, "builderModule")).toBe(expected);
    // It signs with the previous key too: its file is in previousSigningKeyFiles' default.
    expect(expected).toContain(`default = [ "/run/secrets/${previousSigningKeyFileName(PREVIOUS_KEY)}" ];`);
  });

  test("it exports no secret, and its state holds none of the cache's secrets in plain text", () => {
    expect(Object.keys(hostOutputs).sort()).toEqual([
      "builderModule", "caCertificate", "nixosModule", "publicKey", "pushUrl", "substituterUrl", "trustedPublicKeys",
    ]);
    const state = backendText(cache.backendDir);
    expect(state).toContain(hostName);
    const secrets = [
      ...(value(cacheOutputs, "secretKeys") as string[]).map((k) => k.split(":")[1]),
      String(value(cacheOutputs, "builderSecretKey")),
      minio.rootPassword,
    ];
    expect(secrets.map((s) => s.length > 20)).toEqual([true, true, true, true]);
    expect(secrets.map((s) => state.includes(s))).toEqual([false, false, false, false]);
  });

  test("a second up changes nothing", async () => {
    const preview = await host!.preview({ expectNoChanges: true });
    expect(Object.keys(preview.changeSummary).filter((k) => k !== "same")).toEqual([]);
  });
});
