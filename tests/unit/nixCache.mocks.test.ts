// The NixCache component's wiring, under Pulumi's mocks (no engine, no MinIO): the resource tree, the names,
// what flows from one resource into another, the computed outputs and which of them are secret.
import * as pulumi from "@pulumi/pulumi";
import { CacheInfo, renderCacheInfo } from "../../lib/config/cacheInfo";
import { awsCredentials, nixosModule, pushCommand, pushUrl, signCommand } from "../../lib/hosts/hostConfig";
import { ExpiryRule, expiryRule } from "../../lib/minio/lifecycle";
import { expiryRuleId, ownerOfPolicy, ownerOfRules } from "../../lib/minio/ownership";
import { anonymousPolicy, builderPolicy, canonicalPolicy, gcPolicy, noAnonymousPolicy, readerPolicy } from "../../lib/minio/policies";
import { netrcLine, proxyClientModule, readerNixosModule, readerSubstituterUrl } from "../../lib/hosts/privateModules";
import { tokenHashesText } from "../../lib/proxy/tokens";
import { keypairFromSeed } from "../../lib/signing/signingKey";
import type { NixCache as NixCacheType, NixCacheArgs } from "../../components/nixCache";

interface Registration {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

// Plausible provider results: a real keypair (fixed seed) and a password of the asked length.
const KEYPAIR = keypairFromSeed("cache.example.org-1", Buffer.alloc(32, 7));
const PASSWORD = "MockPassw0rdMockPassw0rdMockPassw0rdMock";
const ADMIN_PASSWORD = "mock-admin-Secret-4711";
const OWNER_ID = "0123456789abcdef0123456789abcdef";
const registrations: Registration[] = [];

/** What the program's transformations saw: each resource with its parent. */
interface Seen {
  resource: pulumi.Resource;
  type: string;
  name: string;
  parent?: pulumi.Resource;
}

function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => resolve(v)));
}

const CUSTOM: NixCacheArgs = {
  endpoint: "http://127.0.0.1:9000",
  publicUrl: "https://cache.example.org",
  region: "eu-west-1",
  bucket: "my-cache",
  builderUser: "ci-builder",
  keyName: "cache.example.org-1",
  storeDir: "/nix/store",
  wantMassQuery: false,
  priority: 30,
  retention: "lifecycle",
  retainDays: 10,
  expireDays: 3,
  gcUser: "ci-gc",
  anonymousList: true,
  forceDestroy: true,
};

let NixCache: typeof NixCacheType;

/** Builds a NixCache and waits until all its resources are registered with the mock monitor. */
async function build(name: string, args: NixCacheArgs): Promise<{ cache: NixCacheType; seen: Seen[] }> {
  const seen: Seen[] = [];
  const record: pulumi.ResourceTransformation = (a) => {
    seen.push({ resource: a.resource, type: a.type, name: a.name, parent: a.opts.parent });
    return undefined;
  };
  const cache = new NixCache(name, args, { transformations: [record] });
  await Promise.all(seen.map((s) => valueOf(s.resource.urn)));
  await valueOf(cache.pushCommand);
  return { cache, seen };
}

const inputsOf = (name: string): Record<string, unknown> => {
  const found = registrations.filter((r) => r.name === name);
  if (found.length !== 1) throw new Error(`expected one registration named ${name}, found ${found.length}`);
  return found[0].inputs;
};

beforeAll(async () => {
  // Admin credentials live in the stack config, where the providers read them at run time.
  pulumi.runtime.setAllConfig(
    { "nix-cache:adminUser": "minioadmin", "nix-cache:adminPassword": ADMIN_PASSWORD },
    ["nix-cache:adminPassword"],
  );
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const inputs = args.inputs as Record<string, unknown>;
        registrations.push({ type: args.type, name: args.name, inputs });
        switch (args.type) {
          case "nix-cache:index:NixSigningKeypair": {
            // The key ring: KEYPAIR for cache.example.org-1, a key from a seed of the name's length otherwise.
            const pairs = (inputs.keyNames as string[]).map((n) => (n === "cache.example.org-1" ? KEYPAIR : keypairFromSeed(n, Buffer.alloc(32, n.length))));
            return {
              id: String((inputs.keyNames as string[])[0]),
              state: { ...inputs, publicKeys: pairs.map((p) => p.publicKey), secretKeys: pairs.map((p) => p.secretKey), retiredKeyNames: [] },
            };
          }
          case "nix-cache:index:RandomPassword":
            return { id: `${args.name}-id`, state: { ...inputs, result: PASSWORD.slice(0, Number(inputs.length)) } };
          case "nix-cache:index:NixCacheOwner":
            return { id: OWNER_ID, state: { ...inputs, ownerId: OWNER_ID } };
          default:
            return { id: args.custom ? `${args.name}-id` : undefined, state: inputs };
        }
      },
      call(args) {
        return args.inputs as Record<string, unknown>;
      },
    },
    "nix-cache",
    "unit",
    false,
  );
  ({ NixCache } = await import("../../components/nixCache"));
});

describe("resource tree", () => {
  let seen: Seen[];
  beforeAll(async () => {
    ({ seen } = await build("cache", CUSTOM));
  });

  test("every resource has the expected type and parent, and its name derives from its parent's", () => {
    const nameOf = (r?: pulumi.Resource) => seen.find((s) => s.resource === r)?.name;
    const tree = Object.fromEntries(seen.map((s) => [s.name, `${s.type} < ${nameOf(s.parent) ?? "(root)"}`]));
    expect(tree).toEqual({
      cache: "nix-cache:index:NixCache < (root)",
      "cache-owner": "nix-cache:index:NixCacheOwner < cache",
      "cache-store": "nix-cache:index:CacheBucket < cache",
      "cache-store-bucket": "nix-cache:index:MinioBucket < cache-store",
      "cache-store-nix-cache-info": "nix-cache:index:MinioObject < cache-store",
      "cache-anonymous": "nix-cache:index:AnonymousAccess < cache",
      "cache-anonymous-policy": "nix-cache:index:MinioBucketPolicy < cache-anonymous",
      "cache-expiry": "nix-cache:index:CacheExpiry < cache",
      "cache-expiry-lifecycle": "nix-cache:index:MinioLifecycle < cache-expiry",
      "cache-builder": "nix-cache:index:BuilderAccess < cache",
      "cache-builder-password": "nix-cache:index:RandomPassword < cache-builder",
      "cache-builder-user": "nix-cache:index:MinioUser < cache-builder",
      "cache-builder-policy": "nix-cache:index:MinioPolicy < cache-builder",
      "cache-builder-attachment": "nix-cache:index:MinioPolicyAttachment < cache-builder",
      "cache-gc": "nix-cache:index:GcAccess < cache",
      "cache-gc-password": "nix-cache:index:RandomPassword < cache-gc",
      "cache-gc-user": "nix-cache:index:MinioUser < cache-gc",
      "cache-gc-policy": "nix-cache:index:MinioPolicy < cache-gc",
      "cache-gc-attachment": "nix-cache:index:MinioPolicyAttachment < cache-gc",
      "cache-signing": "nix-cache:index:SigningKey < cache",
      "cache-signing-keypair": "nix-cache:index:NixSigningKeypair < cache-signing",
      "cache-destroy-guard": "nix-cache:index:MinioDestroyGuard < cache",
    });
    for (const s of seen.filter((x) => x.parent)) {
      expect(s.name.startsWith(`${nameOf(s.parent)}-`)).toBe(true);
    }
  });

  test("the engine is told the same parents (the URN carries the parent's type)", async () => {
    for (const s of seen) {
      const urn = await valueOf(s.resource.urn);
      const parentType = s.parent ? seen.find((p) => p.resource === s.parent)?.type : undefined;
      const qualified = parentType ? `${parentType}$${s.type}` : s.type;
      expect(urn).toBe(`urn:pulumi:unit::nix-cache::${qualified}::${s.name}`);
    }
  });

  test("components are not registered as custom resources; only the dynamic ones are", () => {
    const custom = seen.filter((s) => s.resource instanceof pulumi.CustomResource).map((s) => s.name);
    expect(custom.every((n) => seen.find((s) => s.name === n)?.type.startsWith("nix-cache:index:"))).toBe(true);
    expect(custom).toHaveLength(15);
  });
});

describe("inputs flow between resources", () => {
  beforeAll(async () => {
    if (!registrations.some((r) => r.name === "cache")) await build("cache", CUSTOM);
  });

  test("the builder user's secret key is the generated password, and its name the configured user", () => {
    expect(inputsOf("cache-builder-user").secretKey).toBe(PASSWORD);
    expect(inputsOf("cache-builder-user").user).toBe("ci-builder");
    expect(inputsOf("cache-builder-password").length).toBe(40);
  });

  test("the policy is the builder policy for the bucket and is attached to the user", () => {
    const policy = inputsOf("cache-builder-policy");
    expect(policy.name).toBe("my-cache-write");
    expect(canonicalPolicy(policy.document)).toBe(canonicalPolicy(builderPolicy("my-cache")));
    expect(inputsOf("cache-builder-attachment")).toMatchObject({ user: "ci-builder", policy: "my-cache-write" });
  });

  test("the GC user has its own generated password, the GC policy for the bucket, attached to it alone", () => {
    expect(inputsOf("cache-gc-user")).toMatchObject({ user: "ci-gc", secretKey: PASSWORD });
    expect(inputsOf("cache-gc-password").length).toBe(40);
    const policy = inputsOf("cache-gc-policy");
    expect(policy.name).toBe("my-cache-gc");
    expect(canonicalPolicy(policy.document)).toBe(canonicalPolicy(gcPolicy("my-cache")));
    expect(inputsOf("cache-gc-attachment")).toMatchObject({ user: "ci-gc", policy: "my-cache-gc" });
    // The builder's policy is untouched: no delete.
    expect(String(inputsOf("cache-builder-policy").document)).not.toContain("DeleteObject");
  });

  test("the owner id looks at the GC user and policy before the first write, besides the builder's", () => {
    expect(inputsOf("cache-owner")).toMatchObject({
      bucket: "my-cache",
      user: "ci-builder",
      policy: "my-cache-write",
      gcUser: "ci-gc",
      gcPolicy: "my-cache-gc",
    });
  });

  test("the bucket, nix-cache-info, anonymous policy and lifecycle follow the settings", () => {
    const info: CacheInfo = { storeDir: "/nix/store", wantMassQuery: false, priority: 30 };
    expect(inputsOf("cache-store-bucket")).toMatchObject({ bucket: "my-cache", forceDestroy: true });
    expect(inputsOf("cache-store-nix-cache-info")).toMatchObject({
      bucket: "my-cache",
      key: "nix-cache-info",
      content: renderCacheInfo(info),
      contentType: "text/x-nix-cache-info",
    });
    const anonymous = inputsOf("cache-anonymous-policy");
    expect(anonymous.bucket).toBe("my-cache");
    expect(canonicalPolicy(anonymous.policy)).toBe(canonicalPolicy(anonymousPolicy("my-cache", true)));
    expect(inputsOf("cache-expiry-lifecycle")).toMatchObject({
      bucket: "my-cache",
      rules: [{ ...expiryRule(3, renderCacheInfo(info)), id: expiryRuleId(OWNER_ID) }],
    });
    expect(inputsOf("cache-signing-keypair").keyNames).toEqual(["cache.example.org-1"]);
  });

  test("everything on MinIO is marked with the stack's owner id; the project and stack name ride along", () => {
    const owner = { id: OWNER_ID, project: "nix-cache", stack: "unit" };
    expect(inputsOf("cache-owner")).toMatchObject({ project: "nix-cache", stack: "unit" });
    expect(inputsOf("cache-store-bucket").owner).toEqual(owner);
    for (const name of ["cache-builder-user", "cache-builder-policy", "cache-gc-user", "cache-gc-policy", "cache-anonymous-policy", "cache-expiry-lifecycle"]) {
      expect([name, inputsOf(name).owner]).toEqual([name, owner]);
    }
    expect(ownerOfPolicy(inputsOf("cache-builder-policy").document)).toEqual({ id: OWNER_ID, label: "nix-cache/unit" });
    expect(ownerOfPolicy(inputsOf("cache-anonymous-policy").policy)).toEqual({ id: OWNER_ID, label: "nix-cache/unit" });
    expect(ownerOfPolicy(inputsOf("cache-gc-policy").document)).toEqual({ id: OWNER_ID, label: "nix-cache/unit" });
    expect(ownerOfRules(inputsOf("cache-expiry-lifecycle").rules as ExpiryRule[])).toEqual({ id: OWNER_ID });
    // The object and the attachment live in a marked bucket and on a marked user: no marker of their own.
    expect(inputsOf("cache-store-nix-cache-info").owner).toBeUndefined();
    expect(inputsOf("cache-builder-attachment").owner).toBeUndefined();
    expect(inputsOf("cache-gc-attachment").owner).toBeUndefined();
  });

  test("every MinIO resource gets the endpoint and region, never the admin credentials", () => {
    const minio = registrations.filter((r) => /^nix-cache:index:Minio/.test(r.type) && r.name.startsWith("cache-"));
    expect(minio).toHaveLength(11);
    for (const r of minio) expect(r.inputs).toMatchObject({ endpoint: "http://127.0.0.1:9000", region: "eu-west-1" });
    // The inputs become the state: neither the admin password nor any config reference may be in them.
    for (const r of registrations) expect(JSON.stringify(r.inputs)).not.toContain(ADMIN_PASSWORD);
  });
});

describe("outputs", () => {
  let cache: NixCacheType;
  beforeAll(async () => {
    ({ cache } = await build("outs", CUSTOM));
  });

  test("are computed from the inputs and the resources' results", async () => {
    const url = "https://cache.example.org/my-cache";
    const push = pushUrl({ bucket: "my-cache", endpoint: "http://127.0.0.1:9000", region: "eu-west-1", profile: "ci-builder" });
    expect(await valueOf(cache.substituterUrl)).toBe(url);
    expect(await valueOf(cache.publicKey)).toBe(KEYPAIR.publicKey);
    expect(await valueOf(cache.secretKey)).toBe(KEYPAIR.secretKey);
    expect(await valueOf(cache.builderAccessKey)).toBe("ci-builder");
    expect(await valueOf(cache.builderSecretKey)).toBe(PASSWORD);
    expect(await valueOf(cache.awsCredentials)).toBe(awsCredentials("ci-builder", "ci-builder", PASSWORD));
    expect(await valueOf(cache.gcAccessKey)).toBe("ci-gc");
    expect(await valueOf(cache.gcSecretKey)).toBe(PASSWORD);
    expect(await valueOf(cache.gcCredentials)).toBe(awsCredentials("ci-gc", "ci-gc", PASSWORD));
    expect(await valueOf(cache.gcCredentials)).toMatch(/^\[ci-gc\]\naws_access_key_id = ci-gc\n/);
    expect(await valueOf(cache.retention)).toBe("lifecycle");
    expect(await valueOf(cache.retainDays)).toBe(10);
    expect(await valueOf(cache.nixosModule)).toBe(nixosModule(url, KEYPAIR.publicKey));
    expect(await valueOf(cache.nixosModule)).toContain(`extra-substituters = [ "${url}" ];`);
    expect(await valueOf(cache.pushUrl)).toBe(push);
    expect(push).toMatch(/^s3:\/\/my-cache\?profile=ci-builder&endpoint=http:\/\/127\.0\.0\.1:9000&region=eu-west-1&/);
    expect(await valueOf(cache.pushCommand)).toBe(pushCommand(push));
    expect(await valueOf(cache.signCommand)).toBe(signCommand());
  });

  test("secret keys and the credentials file are secret; the rest is not", async () => {
    const secret: Record<string, pulumi.Output<unknown>> = {
      secretKey: cache.secretKey,
      secretKeys: cache.secretKeys,
      builderSecretKey: cache.builderSecretKey,
      awsCredentials: cache.awsCredentials,
      gcSecretKey: cache.gcSecretKey,
      gcCredentials: cache.gcCredentials,
    };
    for (const [name, output] of Object.entries(secret)) {
      expect([name, await pulumi.isSecret(output)]).toEqual([name, true]);
    }
    const plain: Record<string, pulumi.Output<unknown>> = {
      substituterUrl: cache.substituterUrl,
      publicKey: cache.publicKey,
      trustedPublicKeys: cache.trustedPublicKeys,
      builderAccessKey: cache.builderAccessKey,
      gcAccessKey: cache.gcAccessKey,
      retention: cache.retention,
      retainDays: cache.retainDays,
      nixosModule: cache.nixosModule,
      pushUrl: cache.pushUrl,
      pushCommand: cache.pushCommand,
      signCommand: cache.signCommand,
    };
    for (const [name, output] of Object.entries(plain)) {
      expect([name, await pulumi.isSecret(output)]).toEqual([name, false]);
    }
  });
});

describe("several signing keys (a rotation)", () => {
  test("one key ring resource holds the active key first, then previousKeyNames; outputs keep that order", async () => {
    const { cache } = await build("rot", { ...CUSTOM, keyName: "cache.example.org-2", previousKeyNames: ["cache.example.org-1"] });
    expect(inputsOf("rot-signing-keypair").keyNames).toEqual(["cache.example.org-2", "cache.example.org-1"]);
    const second = keypairFromSeed("cache.example.org-2", Buffer.alloc(32, "cache.example.org-2".length));
    expect(await valueOf(cache.publicKey)).toBe(second.publicKey);
    expect(await valueOf(cache.secretKey)).toBe(second.secretKey);
    expect(await valueOf(cache.trustedPublicKeys)).toEqual([second.publicKey, KEYPAIR.publicKey]);
    expect(await valueOf(cache.secretKeys)).toEqual([second.secretKey, KEYPAIR.secretKey]);
    expect(await pulumi.isSecret(cache.secretKeys)).toBe(true);
    expect(await pulumi.isSecret(cache.trustedPublicKeys)).toBe(false);
    // Hosts trust both; the printed command signs with both (one `nix store sign` per key, active first).
    expect(await valueOf(cache.nixosModule)).toBe(nixosModule("https://cache.example.org/my-cache", [second.publicKey, KEYPAIR.publicKey]));
    expect(await valueOf(cache.signCommand)).toBe(
      "nix store sign --key-file ~/.config/nix/secret.key --recursive ./result && " +
        "nix store sign --key-file ~/.config/nix/secret-cache.example.org-1.key --recursive ./result",
    );
  });
});

describe("defaults", () => {
  test("a cache with only an endpoint uses the documented defaults", async () => {
    const { cache, seen } = await build("plain", { endpoint: "https://s3.homelab.local" });
    expect(seen.map((s) => s.name).every((n) => n === "plain" || n.startsWith("plain-"))).toBe(true);
    expect(inputsOf("plain-store-bucket")).toMatchObject({ bucket: "nix-cache", region: "us-east-1", forceDestroy: false });
    expect(inputsOf("plain-store-nix-cache-info").content).toBe("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n");
    expect(inputsOf("plain-builder-user").user).toBe("nixbuilder");
    expect(inputsOf("plain-signing-keypair").keyNames).toEqual(["s3.homelab.local-1"]);
    expect(canonicalPolicy(inputsOf("plain-anonymous-policy").policy)).toBe(canonicalPolicy(anonymousPolicy("nix-cache", false)));
    // retention=gc by default: the bucket's lifecycle holds no rule, so nothing expires by age.
    expect(inputsOf("plain-expiry-lifecycle").rules).toEqual([]);
    expect(inputsOf("plain-gc-user").user).toBe("nixgc");
    expect(inputsOf("plain-gc-policy").name).toBe("nix-cache-gc");
    expect(await valueOf(cache.retention)).toBe("gc");
    expect(await valueOf(cache.retainDays)).toBe(7);
    expect(await valueOf(cache.substituterUrl)).toBe("https://s3.homelab.local/nix-cache");
  });
});

describe("taking over a cache made by hand (adopt, importKeys, builderPassword)", () => {
  // How the mock monitor receives a secret input: wrapped with Pulumi's secret signature, never as plain text.
  const secret = (value: unknown) => ({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value });
  const CHAPTER = keypairFromSeed("s3.homelab.local-1", Buffer.alloc(32, 9));
  const KEPT = "ChapterPwgenPassword0123456789ab";
  let cache: NixCacheType;
  let seen: Seen[];
  beforeAll(async () => {
    ({ cache, seen } = await build("taken", {
      endpoint: "https://s3.homelab.local",
      bucket: "team-cache",
      adopt: true,
      importKeys: pulumi.secret([CHAPTER.secretKey]),
      builderPassword: pulumi.secret(KEPT),
    }));
  });

  test("a takeover record plans it: names, wanted settings, the imported keys' public halves only", () => {
    expect(seen.find((s) => s.name === "taken-takeover")?.type).toBe("nix-cache:index:NixCacheTakeover");
    const inputs = inputsOf("taken-takeover");
    expect(inputs).toMatchObject({
      bucket: "team-cache",
      builderUser: "team-cache-builder",
      builderPolicy: "team-cache-write",
      gcUser: "team-cache-gc",
      gcPolicy: "team-cache-gc",
      retention: "gc",
      anonymousList: false,
      keyNames: ["s3.homelab.local-1"],
      importedPublicKeys: [CHAPTER.publicKey],
      builderPassword: secret(KEPT),
      cacheInfo: "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n",
    });
    expect(JSON.stringify(inputs.importedPublicKeys)).not.toContain(CHAPTER.secretKey.split(":")[1]);
  });

  test("the kept password is the builder's (no generated one); the key ring gets the imported key", async () => {
    expect(seen.some((s) => s.name === "taken-builder-password")).toBe(false);
    expect(inputsOf("taken-builder-user")).toMatchObject({ user: "team-cache-builder", secretKey: secret(KEPT), keepExistingName: true });
    expect(inputsOf("taken-gc-user")).toMatchObject({ user: "team-cache-gc", keepExistingName: true });
    expect(inputsOf("taken-signing-keypair").importedKeys).toEqual(secret([CHAPTER.secretKey]));
    expect(await valueOf(cache.builderSecretKey)).toBe(KEPT);
    expect(await pulumi.isSecret(cache.builderSecretKey)).toBe(true);
  });

  test("without adopt there is no takeover record, and set user names are not defaults", async () => {
    await build("own", { endpoint: "https://s3.homelab.local", bucket: "team-cache", builderUser: "ci-1" });
    expect(registrations.some((r) => r.name === "own-takeover")).toBe(false);
    expect(inputsOf("own-builder-user").user).toBe("ci-1");
    expect(inputsOf("own-builder-user").keepExistingName).toBeUndefined();
    expect(inputsOf("own-gc-user")).toMatchObject({ user: "team-cache-gc", keepExistingName: true });
  });
});

describe("a CA for MinIO's certificate", () => {
  const CA = "-----BEGIN CERTIFICATE-----\nMIIBtestCAbodyOnlyForTheWiring\n-----END CERTIFICATE-----\n";

  test("reaches the caCertificate output and the client module, and no resource input (the providers read the config)", async () => {
    const { cache, seen } = await build("tls", { endpoint: "https://s3.homelab.local", caCertificate: CA });
    expect(await valueOf(cache.caCertificate)).toBe(CA);
    const url = await valueOf(cache.substituterUrl);
    expect(await valueOf(cache.nixosModule)).toBe(nixosModule(url, await valueOf(cache.publicKey), CA));
    expect(await valueOf(cache.nixosModule)).toContain("security.pki.certificates = [");
    const names = seen.map((s) => s.name);
    for (const r of registrations.filter((reg) => names.includes(reg.name))) {
      expect([r.name, JSON.stringify(r.inputs).includes("MIIBtestCAbody")]).toEqual([r.name, false]);
    }
  });

  test("without one, the output is empty and the module has no security.pki", async () => {
    const { cache } = await build("plain-http", { endpoint: "http://127.0.0.1:9000" });
    expect(await valueOf(cache.caCertificate)).toBe("");
    expect(await valueOf(cache.nixosModule)).not.toContain("security.pki");
  });
});

describe("a private cache (access=private)", () => {
  let cache: NixCacheType;
  let seen: Seen[];
  beforeAll(async () => {
    ({ cache, seen } = await build("priv", {
      endpoint: "http://127.0.0.1:9000",
      publicUrl: "https://cache.example.org",
      access: "private",
      readerHosts: ["desk", "laptop"],
    }));
  });

  test("a reader user with the read policy, one token per host, all under the ReaderAccess component", () => {
    const byName = (n: string) => seen.find((s) => s.name === n);
    expect(byName("priv-reader")?.type).toBe("nix-cache:index:ReaderAccess");
    for (const child of ["priv-reader-password", "priv-reader-user", "priv-reader-policy", "priv-reader-attachment", "priv-reader-token-desk", "priv-reader-token-laptop"]) {
      expect([child, byName(child)?.parent]).toEqual([child, byName("priv-reader")?.resource]);
    }
    expect(inputsOf("priv-reader-user")).toMatchObject({ user: "nixreader" });
    expect(inputsOf("priv-reader-policy").name).toBe("nix-cache-read");
    expect(canonicalPolicy(inputsOf("priv-reader-policy").document)).toBe(canonicalPolicy(readerPolicy("nix-cache")));
    expect(ownerOfPolicy(inputsOf("priv-reader-policy").document)?.id).toBe(OWNER_ID);
    expect(inputsOf("priv-reader-attachment")).toMatchObject({ user: "nixreader", policy: "nix-cache-read" });
    expect(inputsOf("priv-reader-token-laptop").length).toBe(40);
  });

  test("the bucket policy has no statement: no anonymous access at all", () => {
    expect(JSON.parse(String(inputsOf("priv-anonymous-policy").policy))).toEqual(noAnonymousPolicy());
  });

  test("outputs: the reader's s3:// URL on publicUrl, credentials, tokens, netrc lines and hashes; secrets stay secret", async () => {
    const reader = cache.reader;
    if (!reader) throw new Error("a private cache has reader outputs");
    expect(await valueOf(cache.access)).toBe("private");
    const url = readerSubstituterUrl({ bucket: "nix-cache", endpoint: "https://cache.example.org", region: "us-east-1", profile: "nixreader" });
    expect(await valueOf(reader.substituterUrl)).toBe(url);
    expect(await valueOf(reader.credentials)).toBe(awsCredentials("nixreader", "nixreader", PASSWORD));
    expect(await valueOf(reader.proxyUrl)).toBe("https://cache.example.org:8480");
    const tokens = await valueOf(reader.tokens);
    expect(Object.keys(tokens)).toEqual(["desk", "laptop"]);
    expect(await valueOf(reader.netrc)).toEqual({
      desk: netrcLine("https://cache.example.org:8480", "desk", tokens.desk),
      laptop: netrcLine("https://cache.example.org:8480", "laptop", tokens.laptop),
    });
    expect(await valueOf(reader.proxyTokenHashes)).toBe(tokenHashesText(tokens));
    const keys = await valueOf(cache.trustedPublicKeys);
    expect(await valueOf(cache.nixosModule)).toBe(readerNixosModule({ substituter: url, publicKeys: keys }));
    expect(await valueOf(reader.proxyClientModule)).toBe(proxyClientModule({ proxyUrl: "https://cache.example.org:8480", publicKeys: keys }));
    const secrets: [string, pulumi.Output<unknown>][] = [
      ["secretKey", reader.secretKey],
      ["credentials", reader.credentials],
      ["tokens", reader.tokens],
      ["netrc", reader.netrc],
    ];
    for (const [name, out] of secrets) expect([name, await pulumi.isSecret(out)]).toEqual([name, true]);
    expect(await pulumi.isSecret(reader.proxyTokenHashes)).toBe(false);
    expect(await pulumi.isSecret(reader.substituterUrl)).toBe(false);
  });

  test("a public cache has no reader, no tokens and the anonymous grant", async () => {
    const { cache: pub, seen: pubSeen } = await build("pub", { endpoint: "http://127.0.0.1:9000" });
    expect(pub.reader).toBeUndefined();
    expect(await valueOf(pub.access)).toBe("public");
    expect(pubSeen.some((s) => s.name.startsWith("pub-reader"))).toBe(false);
    expect(canonicalPolicy(inputsOf("pub-anonymous-policy").policy)).toBe(canonicalPolicy(anonymousPolicy("nix-cache", false)));
  });
});
