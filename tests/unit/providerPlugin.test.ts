// The provider plugin's translation layer (provider/plugin.ts, provider/config.ts, resources/kinds.ts): for each
// resource type, what the engine is told is no change, an update or a replacement; how the stack config and
// secrets reach the implementations; and the one-time rewrite of a resource deployed as a dynamic resource.
// No MinIO: the cases here are the ones the implementations answer from the props alone.
import { NixCacheProvider } from "../../provider/plugin";
import { configFrom, keepSecrets, unwrapSecrets } from "../../provider/config";
import { dynamicTokenOf, kindOfToken, RESOURCE_KINDS, ResourceKind, tokenOf, typeOfUrn } from "../../resources/kinds";

const urnOf = (kind: ResourceKind, name = "x") => `urn:pulumi:dev::nix-cache::nix-cache:index:NixCache$${tokenOf(kind)}::${name}`;
const secret = (value: unknown) => ({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value });

const target = { endpoint: "http://127.0.0.1:9000", region: "us-east-1" };
const owner = { id: "0123456789abcdef0123456789abcdef", project: "nix-cache", stack: "dev" };
const policyDoc = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::nix-cache/*"] }] };

/** Per type: deployed props, and news that keep it, update it, replace it (undefined: no input replaces it). */
interface Case {
  olds: Record<string, unknown>;
  update: Record<string, unknown>;
  replace?: Record<string, unknown>;
}

const CASES: Record<ResourceKind, Case> = {
  MinioBucket: { olds: { ...target, bucket: "nix-cache", forceDestroy: false, owner }, update: { forceDestroy: true }, replace: { endpoint: "http://10.0.0.2:9000" } },
  MinioObject: {
    olds: { ...target, bucket: "nix-cache", key: "nix-cache-info", content: "StoreDir: /nix/store\n", contentType: "text/x-nix-cache-info" },
    update: { content: "StoreDir: /nix/store\nPriority: 30\n" },
    replace: { key: "other" },
  },
  MinioBucketPolicy: { olds: { ...target, bucket: "nix-cache", policy: policyDoc }, update: { policy: { ...policyDoc, Statement: [] } }, replace: { endpoint: "http://10.0.0.2:9000" } },
  MinioLifecycle: { olds: { ...target, bucket: "nix-cache", rules: [] }, update: { rules: [{ id: "expire", prefix: "", days: 3 }] }, replace: { endpoint: "http://10.0.0.2:9000" } },
  MinioDestroyGuard: { olds: { ...target, bucket: "nix-cache", forceDestroy: false }, update: { forceDestroy: true } },
  MinioUser: { olds: { ...target, user: "nixbuilder", secretKey: "old-password-1234", owner, status: "enabled", secretKeyWorks: true }, update: { secretKey: "new-password-5678" }, replace: { user: "other" } },
  MinioPolicy: { olds: { ...target, name: "nix-cache-write", document: policyDoc }, update: { document: { ...policyDoc, Statement: [] } }, replace: { name: "other" } },
  MinioPolicyAttachment: { olds: { ...target, user: "nixbuilder", policy: "nix-cache-write" }, update: { region: "eu-west-1" }, replace: { policy: "other" } },
  NixCacheOwner: { olds: { project: "nix-cache", stack: "dev", ownerId: owner.id }, update: {} },
  NixSigningKeypair: {
    olds: { keyNames: ["a-1"], publicKeys: ["a-1:pub"], secretKeys: ["a-1:sec"], retiredKeyNames: [], importedKeyNames: [] },
    update: { keyNames: ["a-2", "a-1"] },
  },
  RandomPassword: { olds: { length: 40, result: "x".repeat(40) }, update: {}, replace: { length: 48 } },
  NixCacheTakeover: { olds: { ...target, bucket: "nix-cache", plan: ["taken over"] }, update: { plan: ["something else"] } },
};

/** News for a case: the inputs the program sends (computed outputs left out). */
const newsOf = (kind: ResourceKind, change: Record<string, unknown> = {}) => {
  const { result: _r, status: _s, secretKeyWorks: _w, ownerId: _o, publicKeys: _p, secretKeys: _k, retiredKeyNames: _t, importedKeyNames: _i, ...inputs } =
    CASES[kind].olds;
  return { ...inputs, ...change };
};

let plugin: NixCacheProvider;

beforeAll(() => {
  plugin = new NixCacheProvider("0.1.0");
  plugin.configure({ adminUser: "root", adminPassword: secret("root-password") });
});

describe("every type: no change, update, replace", () => {
  test.each([...RESOURCE_KINDS])("%s", async (kind) => {
    const c = CASES[kind];
    const same = await plugin.diff("id", urnOf(kind), c.olds, newsOf(kind));
    expect(same.changes).toBe(false);
    if (Object.keys(c.update).length > 0) {
      const update = await plugin.diff("id", urnOf(kind), c.olds, newsOf(kind, c.update));
      expect([update.changes, update.replaces ?? []]).toEqual([true, []]);
    }
    if (c.replace) {
      const replace = await plugin.diff("id", urnOf(kind), c.olds, newsOf(kind, c.replace));
      expect(replace.changes).toBe(true);
      expect(replace.replaces).toEqual(Object.keys(c.replace));
    }
  });
});

describe("a resource deployed as a dynamic resource (its props carry __provider)", () => {
  test("an otherwise unchanged one updates once, and that update keeps its outputs minus the code, without a request", async () => {
    // MinioBucket's own update would reach MinIO (nothing listens at this endpoint): the rewrite does not.
    const olds = { ...CASES.MinioBucket.olds, __provider: "exports.handler = ..." };
    expect((await plugin.diff("nix-cache", urnOf("MinioBucket"), olds, newsOf("MinioBucket"))).changes).toBe(true);
    const updated = await plugin.update("nix-cache", urnOf("MinioBucket"), olds, newsOf("MinioBucket"));
    expect(updated.outs).toEqual(CASES.MinioBucket.olds);
  });

  test("a real change still goes to the implementation, which never sees the code", async () => {
    const olds = { ...CASES.RandomPassword.olds, __provider: "exports.handler = ..." };
    const diff = await plugin.diff("id", urnOf("RandomPassword"), olds, { length: 48 });
    expect(diff.replaces).toEqual(["length"]);
    const checked = await plugin.check(urnOf("RandomPassword"), olds, { length: 48, __provider: "exports.handler = ..." });
    expect(checked.inputs).toEqual({ length: 48 });
  });

  test("the old type token names the same kind; the alias is the dynamic provider's type", () => {
    for (const kind of RESOURCE_KINDS) {
      expect(kindOfToken(tokenOf(kind))).toBe(kind);
      expect(kindOfToken(dynamicTokenOf(kind))).toBe(kind);
    }
    expect(dynamicTokenOf("MinioBucket")).toBe("pulumi-nodejs:dynamic:MinioBucket");
  });
});

describe("configuration and secrets", () => {
  test("Configure's bare, namespaced and variables-map keys all read as nix-cache:KEY; secrets and lists arrive plain", () => {
    const config = configFrom({ adminUser: "root", "nix-cache:adopt": "true", "nix-cache:config:caCertificate": "PEM", adminPassword: secret("pw"), previousKeyNames: ["a", "b"] });
    expect(config.get("nix-cache:adminUser")).toBe("root");
    expect(config.get("adopt")).toBe("true");
    expect(config.get("nix-cache:caCertificate")).toBe("PEM");
    expect(config.get("nix-cache:adminPassword")).toBe("pw");
    expect(config.get("nix-cache:previousKeyNames")).toBe('["a","b"]');
    expect(config.get("nix-cache:missing")).toBeUndefined();
    expect(() => config.require("nix-cache:missing")).toThrow("nix-cache:missing");
  });

  test("secret wrappers are removed at any depth", () => {
    expect(unwrapSecrets({ a: secret("x"), b: [secret({ c: secret(1) })] })).toEqual({ a: "x", b: [{ c: 1 }] });
  });

  test("the implementation gets plain inputs; what the plugin returns keeps each secret input's mark", async () => {
    const checked = await plugin.check(urnOf("RandomPassword"), undefined, { length: secret(40) });
    expect(checked.inputs).toEqual({ length: secret(40) });
    const created = await plugin.create(urnOf("RandomPassword"), { length: secret(12) });
    expect(created.outs).toEqual({ length: secret(12), result: expect.stringMatching(/^[A-Za-z0-9]{12}$/) });
  });

  test("keepSecrets marks as the engine's annotateSecrets does: same-name properties, objects property by property", () => {
    const ins = { a: secret("x"), b: { c: secret(1), d: 2 }, e: [secret("y")], f: "plain" };
    expect(keepSecrets({ a: "x", b: { c: 1, d: 2 }, e: ["y"], f: "plain", g: "new" }, ins)).toEqual({
      a: secret("x"),
      b: { c: secret(1), d: 2 },
      e: secret(["y"]),
      f: "plain",
      g: "new",
    });
    expect(keepSecrets({ a: secret("x") }, ins)).toEqual({ a: secret("x") });
  });

  test("without the admin credentials a MinIO type fails naming the settings; a type that needs none still works", async () => {
    const bare = new NixCacheProvider("0.1.0");
    bare.configure({});
    await expect(bare.diff("id", urnOf("MinioObject"), CASES.MinioObject.olds, newsOf("MinioObject"))).rejects.toThrow(/nix-cache:adminUser and nix-cache:adminPassword/);
    expect((await bare.diff("id", urnOf("RandomPassword"), CASES.RandomPassword.olds, newsOf("RandomPassword"))).changes).toBe(false);
  });

  test("a type the plugin does not serve is refused by name; URNs give their type", async () => {
    expect(typeOfUrn(urnOf("MinioUser"))).toBe("nix-cache:index:MinioUser");
    expect(kindOfToken("nix-cache:index:Nope")).toBeUndefined();
    await expect(plugin.diff("id", "urn:pulumi:dev::p::nix-cache:index:Nope::x", {}, {})).rejects.toThrow("does not serve the resource type nix-cache:index:Nope");
  });
});
