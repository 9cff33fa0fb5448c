// provider/construct.ts: the plugin's Construct of NixCache, under Pulumi's mocks (no engine, no MinIO). It checks
// the inputs as index.ts checks the stack config (one error naming each bad input), builds the component, and
// returns the outputs index.ts exports, secret where the schema says so.
import * as pulumi from "@pulumi/pulumi";
import type * as constructModule from "../../provider/construct";
import { NIX_CACHE_OUTPUTS, PRIVATE_ONLY } from "../../provider/schema";
import { keypairFromSeed } from "../../lib/signing/signingKey";

const KEYPAIR = keypairFromSeed("cache.example.org-1", Buffer.alloc(32, 7));
const registrations: { type: string; name: string; inputs: Record<string, unknown> }[] = [];
let construct: typeof constructModule;

function valueOf<T>(output: pulumi.Input<T>): Promise<T> {
  return new Promise((resolve) => pulumi.output(output).apply((v) => resolve(v as T)));
}

beforeAll(async () => {
  pulumi.runtime.setAllConfig({ "nix-cache:adminUser": "minioadmin", "nix-cache:adminPassword": "admin-Secret-4711" }, ["nix-cache:adminPassword"]);
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const inputs = args.inputs as Record<string, unknown>;
        registrations.push({ type: args.type, name: args.name, inputs });
        switch (args.type) {
          case "nix-cache:index:NixSigningKeypair":
            return { id: "k", state: { ...inputs, publicKeys: [KEYPAIR.publicKey], secretKeys: [KEYPAIR.secretKey], retiredKeyNames: [] } };
          case "nix-cache:index:RandomPassword":
            return { id: `${args.name}-id`, state: { ...inputs, result: "p".repeat(Number(inputs.length)) } };
          case "nix-cache:index:NixCacheOwner":
            return { id: "owner", state: { ...inputs, ownerId: "0123456789abcdef0123456789abcdef" } };
          default:
            return { id: args.custom ? `${args.name}-id` : undefined, state: inputs };
        }
      },
      call: (args) => args.inputs as Record<string, unknown>,
    },
    "yaml-consumer",
    "unit",
    false,
  );
  construct = await import("../../provider/construct");
});

const inputsOf = (name: string) => registrations.find((r) => r.name === name)?.inputs ?? {};

describe("a public cache from YAML-like inputs (plain values, numbers and booleans as such)", () => {
  let result: Awaited<ReturnType<typeof constructModule.constructNixCache>>;
  beforeAll(async () => {
    result = await construct.constructNixCache(
      "cache",
      { endpoint: "http://127.0.0.1:9000/", keyName: "cache.example.org-1", priority: 30, wantMassQuery: false, retainDays: 10 },
      {},
    );
    await valueOf(result.state.pushCommand);
  });

  test("the state holds every output a public cache has, under index.ts's names", () => {
    const always = Object.entries(NIX_CACHE_OUTPUTS).filter(([, p]) => !p.description?.endsWith(PRIVATE_ONLY)).map(([n]) => n);
    expect(Object.keys(result.state)).toEqual(always);
  });

  test("the inputs are normalized and defaulted as index.ts does (endpoint without '/', derived user names)", async () => {
    expect(await valueOf(result.state.substituterUrl)).toBe("http://127.0.0.1:9000/nix-cache");
    expect(await valueOf(result.state.publicKey)).toBe(KEYPAIR.publicKey);
    expect(await valueOf(result.state.builderAccessKey)).toBe("nixbuilder");
    expect(await valueOf(result.state.retainDays)).toBe(10);
    expect(inputsOf("cache-store-nix-cache-info").content).toBe("StoreDir: /nix/store\nWantMassQuery: 0\nPriority: 30\n");
    expect(await valueOf(result.urn)).toMatch(/::yaml-consumer::nix-cache:index:NixCache::cache$/);
  });

  test("the secret outputs are secret, the others not", async () => {
    for (const [name, output] of Object.entries(result.state)) {
      const secret = await pulumi.isSecret(pulumi.output(output));
      expect({ name, secret }).toEqual({ name, secret: NIX_CACHE_OUTPUTS[name].secret ?? false });
    }
  });
});

test("a private cache also returns the reader's outputs; a secret input stays secret", async () => {
  const result = await construct.constructNixCache(
    "private",
    { endpoint: "http://127.0.0.1:9000", bucket: "private-cache", access: "private", readerHosts: ["laptop"], builderPassword: pulumi.secret("kept-Passw0rd") },
    {},
  );
  await valueOf(result.state.proxyClientModule);
  expect(Object.keys(result.state)).toEqual(Object.keys(NIX_CACHE_OUTPUTS));
  expect(await valueOf(result.state.builderSecretKey)).toBe("kept-Passw0rd");
  expect(await pulumi.isSecret(pulumi.output(result.state.builderSecretKey))).toBe(true);
  expect(Object.keys(await valueOf(result.state.readerTokens))).toEqual(["laptop"]);
});

describe("bad inputs: one error naming each bad input, before any resource is declared", () => {
  test("several bad values", async () => {
    const before = registrations.length;
    const err = await construct
      .constructNixCache("bad", { endpoint: "ftp://x", priority: -1, previousKeyNames: ["a:b"], retention: "never" }, {})
      .then(() => undefined, (e: unknown) => e);
    expect(pulumi.InputPropertiesError.isInstance(err)).toBe(true);
    const e = err as pulumi.InputPropertiesError;
    expect(e.errors.map((x) => x.propertyPath).sort()).toEqual(["endpoint", "previousKeyNames[0]", "priority", "retention"]);
    expect(e.message).toBe("invalid NixCache inputs: endpoint, retention, previousKeyNames[0], priority");
    // The engine shows each with its value: the reason does not repeat it.
    expect(e.errors.find((x) => x.propertyPath === "retention")?.reason).toBe('allowed is "gc" or "lifecycle"');
    expect(e.errors.find((x) => x.propertyPath === "previousKeyNames[0]")?.reason).toMatch(/^it must not contain ':'/);
    expect(registrations.length).toBe(before);
  });

  test("no endpoint, and an input NixCache does not have", async () => {
    const err = (await construct.constructNixCache("bad2", { bucketName: "x" }, {}).catch((e: unknown) => e)) as pulumi.InputPropertiesError;
    expect(err.errors.map((x) => x.propertyPath).sort()).toEqual(["bucketName", "endpoint"]);
    expect(err.errors.find((x) => x.propertyPath === "bucketName")?.reason).toMatch(/^is not an input of NixCache: allowed are endpoint, publicUrl,/);
  });
});

function errorOf(run: () => unknown): pulumi.InputPropertiesError {
  try {
    run();
  } catch (e) {
    if (pulumi.InputPropertiesError.isInstance(e)) return e;
    throw e;
  }
  throw new Error("no error");
}
const errorsOf = (run: () => unknown) => errorOf(run).errors.map((e) => e.propertyPath);

describe("validateInputs with inputs not known yet (a preview)", () => {
  test("unknown inputs are not checked, known ones are; nothing is returned to build from", () => {
    expect(construct.validateInputs({ endpoint: { known: false }, bucket: { known: true, value: "my-cache" } })).toBeUndefined();
    expect(errorsOf(() => construct.validateInputs({ endpoint: { known: false }, bucket: { known: true, value: "A" } }))).toEqual(["bucket"]);
  });

  test("access, readerHosts and adopt must be known: they decide which resources there are", () => {
    const err = errorOf(() => construct.validateInputs({ endpoint: { known: true, value: "http://h:9000" }, access: { known: false } }));
    expect(err.errors).toEqual([{ propertyPath: "access", reason: expect.stringMatching(/^is not known until another resource is made/) }]);
  });
});
