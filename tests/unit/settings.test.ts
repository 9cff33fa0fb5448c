// Stack configuration: defaults, and one clear error naming every bad setting and what is allowed.
import { CacheSettings, DEFAULTS, defaultUserNames, parseSettings, RawSettings, SettingsError } from "../../lib/config/settings";
import { generateKeypair } from "../../lib/signing/signingKey";

const ENDPOINT = "http://127.0.0.1:9000";

/** The SettingsError parseSettings throws for `raw`, or a failure if it does not throw one. */
function errorOf(raw: RawSettings): SettingsError {
  try {
    parseSettings(raw);
  } catch (err) {
    if (err instanceof SettingsError) return err;
    throw err;
  }
  throw new Error(`parseSettings accepted ${JSON.stringify(raw)}`);
}

describe("defaults", () => {
  test("only the endpoint is required; everything else has the documented default", () => {
    const expected: CacheSettings = {
      endpoint: ENDPOINT,
      publicUrl: ENDPOINT,
      region: "us-east-1",
      bucket: "nix-cache",
      builderUser: "nixbuilder",
      builderUserDefaulted: true,
      gcUserDefaulted: true,
      importKeys: [],
      keyName: "s3.homelab.local-1",
      previousKeyNames: [],
      storeDir: "/nix/store",
      wantMassQuery: true,
      priority: 40,
      retention: "gc",
      retainDays: 7,
      expireDays: 7,
      gcUser: "nixgc",
      anonymousList: false,
      access: "public",
      readerUser: "nixreader",
      readerHosts: [],
      proxyUrl: "http://127.0.0.1:8480",
      forceDestroy: false,
      adopt: false,
    };
    expect(parseSettings({ endpoint: ENDPOINT })).toEqual(expected);
    expect({ ...DEFAULTS }).toEqual(
      Object.fromEntries(
        Object.entries(expected).filter(([k]) => !["endpoint", "publicUrl", "builderUserDefaulted", "gcUserDefaulted", "importKeys", "adopt", "readerHosts", "proxyUrl"].includes(k)),
      ),
    );
  });

  test("a missing endpoint is an error that says how to set it", () => {
    const err = errorOf({});
    expect(err.problems).toHaveLength(1);
    expect(err.message).toContain("nix-cache:endpoint is not set");
    expect(err.message).toContain("pulumi config set nix-cache:endpoint");
  });
});

describe("good values", () => {
  test("are taken as given", () => {
    const s = parseSettings({
      endpoint: "https://s3.homelab.local/",
      publicUrl: "https://cache.homelab.local:8443",
      region: "eu-central-1",
      bucket: "my.nix-cache",
      builderUser: "ci_builder-1",
      keyName: "cache.homelab.local-2",
      storeDir: "/gnu/store",
      wantMassQuery: "false",
      priority: "0",
      retention: "lifecycle",
      retainDays: "14",
      expireDays: "30",
      gcUser: "cache_gc-1",
      anonymousList: "true",
      forceDestroy: "true",
    });
    expect(s).toEqual({
      endpoint: "https://s3.homelab.local",
      publicUrl: "https://cache.homelab.local:8443",
      region: "eu-central-1",
      bucket: "my.nix-cache",
      builderUser: "ci_builder-1",
      builderUserDefaulted: false,
      gcUserDefaulted: false,
      importKeys: [],
      keyName: "cache.homelab.local-2",
      previousKeyNames: [],
      storeDir: "/gnu/store",
      wantMassQuery: false,
      priority: 0,
      retention: "lifecycle",
      retainDays: 14,
      expireDays: 30,
      gcUser: "cache_gc-1",
      anonymousList: true,
      access: "public",
      readerUser: "my.nix-cache-reader",
      readerHosts: [],
      proxyUrl: "https://cache.homelab.local:8480",
      forceDestroy: true,
      adopt: false,
    });
  });

  test.each([
    ["bucket", "abc"],
    ["bucket", "a".repeat(63)],
    ["bucket", "nix-cache.example.org"],
    ["builderUser", "abc"],
    ["builderUser", "A".repeat(20)],
    ["expireDays", "1"],
    ["priority", "100"],
    ["retention", "gc"],
    ["retention", "lifecycle"],
    ["retainDays", "1"],
    ["retainDays", "3650"],
    ["gcUser", "gc1"],
    ["gcUser", "G".repeat(20)],
  ] as const)("%s = %j is accepted", (name, value) => {
    const numeric = ["expireDays", "priority", "retainDays"].includes(name);
    expect(parseSettings({ endpoint: ENDPOINT, [name]: value })[name]).toBe(numeric ? Number(value) : value);
  });
});

// Each bad value: the setting it belongs to, and words of the allowed values the message must show.
const BAD: [keyof RawSettings, string, RegExp][] = [
  ["bucket", "Nix-Cache", /3 to 63 characters of lowercase letters/],
  ["bucket", "nix_cache", /lowercase letters, digits, '\.' and '-'/],
  ["bucket", "ab", /3 to 63 characters/],
  ["bucket", "a".repeat(64), /3 to 63 characters/],
  ["bucket", "192.168.1.10", /not an IP address/],
  ["bucket", "-cache", /starting and ending with a letter or digit/],
  ["bucket", "nix..cache", /3 to 63 characters/],
  ["bucket", "", /3 to 63 characters/],
  ["expireDays", "0", /a whole number ≥ 1/],
  ["expireDays", "-1", /a whole number ≥ 1/],
  ["expireDays", "1.5", /a whole number ≥ 1/],
  ["expireDays", "abc", /a whole number ≥ 1/],
  ["expireDays", "99999999999999999999", /a whole number ≥ 1/],
  ["retainDays", "0", /a whole number ≥ 1/],
  ["retainDays", "-3", /a whole number ≥ 1/],
  ["retainDays", "2.5", /a whole number ≥ 1/],
  ["retainDays", "7d", /a whole number ≥ 1/],
  ["retention", "GC", /"gc" or "lifecycle"/],
  ["retention", "expire", /"gc" or "lifecycle"/],
  ["gcUser", "gc", /3 to 20 characters/],
  ["gcUser", "gc user", /letters, digits, '\.', '_' and '-'/],
  ["gcUser", "nixbuilder", /a user name other than nix-cache:builderUser \("nixbuilder"\)/],
  ["priority", "-1", /a whole number ≥ 0/],
  ["priority", "x", /a whole number ≥ 0/],
  ["keyName", "", /must not be empty/],
  ["keyName", "a:b", /must not contain ':' or white space/],
  ["keyName", "a b", /must not contain ':' or white space/],
  ["builderUser", "ab", /3 to 20 characters/],
  ["builderUser", "a=b", /letters, digits, '\.', '_' and '-'/],
  ["builderUser", "b".repeat(21), /3 to 20 characters/],
  ["endpoint", "ftp://s3.homelab.local", /an http:\/\/ or https:\/\/ URL/],
  ["endpoint", "s3.homelab.local:9000", /an http:\/\/ or https:\/\/ URL/],
  ["endpoint", "not a url", /an http:\/\/ or https:\/\/ URL/],
  ["endpoint", "https://s3.homelab.local/nix-cache", /with no path/],
  ["endpoint", "https://s3.homelab.local/?x=1", /with no path/],
  ["publicUrl", "ftp://cache.homelab.local", /an http:\/\/ or https:\/\/ URL/],
  ["publicUrl", "https://cache.homelab.local/nix-cache", /with no path/],
  ["region", "US East", /an S3 region name such as us-east-1/],
  ["storeDir", "nix/store", /an absolute path/],
  ["storeDir", "/nix/store/", /no trailing '\/'/],
  ["wantMassQuery", "yes", /true or false/],
  ["anonymousList", "1", /true or false/],
  ["forceDestroy", "TRUE", /true or false/],
];

describe("bad values", () => {
  test.each(BAD)("nix-cache:%s = %j is refused naming the setting and what is allowed", (name, value, allowed) => {
    const raw: RawSettings = name === "endpoint" ? { endpoint: value } : { endpoint: ENDPOINT, [name]: value };
    const err = errorOf(raw);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe("SettingsError");
    expect(err.problems).toHaveLength(1);
    const problem = err.problems[0];
    expect(problem.startsWith(`nix-cache:${name} is ${JSON.stringify(value)}: allowed is `)).toBe(true);
    expect(problem).toMatch(allowed);
    expect(err.message).toContain(problem);
  });

  test("a URL with credentials is refused without showing the password", () => {
    const err = errorOf({ endpoint: "https://admin:hunter2-Secret@s3.homelab.local" });
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(/^nix-cache:endpoint is "https:\/\/admin:\*\*\*@s3\.homelab\.local\/": allowed is an http/);
    expect(err.message).not.toContain("hunter2");
  });

  test("several bad settings are all named in one error", () => {
    const err = errorOf({
      endpoint: "ftp://x",
      bucket: "Bad_Name",
      expireDays: "0",
      priority: "x",
      keyName: "a:b",
      builderUser: "ab",
      forceDestroy: "yes",
    });
    const named = err.problems.map((p) => /^nix-cache:(\w+) /.exec(p)?.[1]);
    expect(named.sort()).toEqual(["bucket", "builderUser", "endpoint", "expireDays", "forceDestroy", "keyName", "priority"]);
    for (const name of named) expect(err.message).toContain(`nix-cache:${name}`);
    expect(err.message.split("\n")[0]).toBe("invalid configuration:");
  });

  test("gcUser must differ from builderUser, whichever of the two is set", () => {
    const problems = errorOf({ endpoint: ENDPOINT, builderUser: "nixgc" }).problems;
    expect(problems).toEqual([
      'nix-cache:gcUser is "nixgc": allowed is a user name other than nix-cache:builderUser ("nixgc"): the builder must not be able to delete',
    ]);
    expect(errorOf({ endpoint: ENDPOINT, builderUser: "ci-user", gcUser: "ci-user" }).problems).toEqual([
      'nix-cache:gcUser is "ci-user": allowed is a user name other than nix-cache:builderUser ("ci-user"): the builder must not be able to delete',
    ]);
    // A bad builderUser is reported once, not again as a clash.
    expect(errorOf({ endpoint: ENDPOINT, builderUser: "a b", gcUser: "a b" }).problems.map((p) => /^nix-cache:(\w+) /.exec(p)?.[1])).toEqual([
      "builderUser",
      "gcUser",
    ]);
    expect(parseSettings({ endpoint: ENDPOINT, builderUser: "nixgc", gcUser: "nixbuilder" }).gcUser).toBe("nixbuilder");
  });

  test("expireDays is still checked in gc mode, retainDays in lifecycle mode (a later switch must not surprise)", () => {
    expect(errorOf({ endpoint: ENDPOINT, retention: "gc", expireDays: "0" }).problems[0]).toMatch(/^nix-cache:expireDays /);
    expect(errorOf({ endpoint: ENDPOINT, retention: "lifecycle", retainDays: "0" }).problems[0]).toMatch(/^nix-cache:retainDays /);
  });

  test("an empty admin-facing value is not silently replaced by a default", () => {
    // Unset (undefined) means the default; "" set on purpose is a mistake for names of MinIO things.
    expect(parseSettings({ endpoint: ENDPOINT }).bucket).toBe("nix-cache");
    expect(errorOf({ endpoint: ENDPOINT, bucket: "", builderUser: "", keyName: "" }).problems).toHaveLength(2);
    // The users' "" is Pulumi.yaml's way to have no default: the names derived from the bucket.
    expect(parseSettings({ endpoint: ENDPOINT, bucket: "team", builderUser: "", gcUser: "" })).toMatchObject({ builderUser: "team-builder", gcUser: "team-gc" });
  });
});

describe("previousKeyNames and allowKeyDrop", () => {
  const E = "http://127.0.0.1:9000";
  test("a JSON list of key names, unset or empty is none", () => {
    expect(parseSettings({ endpoint: E }).previousKeyNames).toEqual([]);
    expect(parseSettings({ endpoint: E, previousKeyNames: "" }).previousKeyNames).toEqual([]);
    expect(parseSettings({ endpoint: E, previousKeyNames: "[]" }).previousKeyNames).toEqual([]);
    expect(parseSettings({ endpoint: E, keyName: "c-3", previousKeyNames: '["c-2","c-1"]' }).previousKeyNames).toEqual(["c-2", "c-1"]);
  });
  test.each([
    ["c-1", "not a list", /nix-cache:previousKeyNames is "c-1": allowed is a list of Nix key names/],
    ["c-2", '["c-1", 3]', /nix-cache:previousKeyNames is .*: allowed is a list of Nix key names/],
    ["c-2", '["c-1","c-1"]', /nix-cache:previousKeyNames\[1\] is "c-1", listed twice: allowed is/],
    ["c-2", '["c-2"]', /nix-cache:previousKeyNames\[0\] is "c-2", the active nix-cache:keyName too: allowed is/],
    ["c-2", '["a:b"]', /nix-cache:previousKeyNames\[0\] is "a:b": it must not contain ':' or white space; allowed is/],
  ])("keyName %s with %s is refused naming the setting", (keyName, value, message) => {
    const raw = value === "not a list" ? keyName : value;
    const err = errorOf({ endpoint: E, keyName, previousKeyNames: raw });
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(message);
    expect(err.problems[0]).toContain("pulumi config set --path 'nix-cache:previousKeyNames[0]'");
  });
  test("allowKeyDrop is true or false", () => {
    expect(() => parseSettings({ endpoint: E, allowKeyDrop: "true" })).not.toThrow();
    expect(errorOf({ endpoint: E, allowKeyDrop: "yes" }).problems).toEqual(['nix-cache:allowKeyDrop is "yes": allowed is true or false']);
  });
});

describe("importKeys: existing Nix secret keys (the chapter's secret.key), validated without showing them", () => {
  const E = "http://127.0.0.1:9000";
  const chapter = generateKeypair("s3.homelab.local-1");
  const older = generateKeypair("s3.homelab.local-0");
  const raw = (keys: string[] | string, extra: RawSettings = {}): RawSettings => ({
    endpoint: E,
    importKeys: typeof keys === "string" ? keys : JSON.stringify(keys),
    ...extra,
  });
  const secretParts = (k: string) => [k, k.slice(k.indexOf(":") + 1), k.slice(k.indexOf(":") + 1, k.indexOf(":") + 30)];

  test("a list (config set --path) or one key as text; unset or empty is none", () => {
    expect(parseSettings({ endpoint: E }).importKeys).toEqual([]);
    expect(parseSettings(raw("")).importKeys).toEqual([]);
    expect(parseSettings(raw([chapter.secretKey])).importKeys).toEqual([chapter.secretKey]);
    // `$(cat secret.key)` keeps no trailing newline, but a file read otherwise might: it is not part of the key.
    expect(parseSettings(raw(`${chapter.secretKey}\n`)).importKeys).toEqual([chapter.secretKey]);
    const both = parseSettings(raw([chapter.secretKey, older.secretKey], { previousKeyNames: '["s3.homelab.local-0"]' }));
    expect(both.importKeys).toEqual([chapter.secretKey, older.secretKey]);
  });

  const tampered = (() => {
    // The seed of one key with the public half of another: pasted together from two files.
    const seed = Buffer.from(chapter.secretKey.split(":")[1], "base64").subarray(0, 32);
    const pub = Buffer.from(older.publicKey.split(":")[1], "base64");
    return `s3.homelab.local-1:${Buffer.concat([seed, pub]).toString("base64")}`;
  })();
  test.each([
    ["a public key given instead", chapter.publicKey, /importKeys\[0\] \(key name "s3.homelab.local-1"\) is a public key \(the content of public.key\), not a secret key/],
    ["seed and public half that do not match", tampered, /importKeys\[0\] \(key name "s3.homelab.local-1"\) is not a Nix secret key: its public half does not belong to its seed/],
    ["no name", chapter.secretKey.slice(chapter.secretKey.indexOf(":") + 1), /importKeys\[0\] is not a Nix secret key \(no NAME: before the key\)/],
    ["not base64", "s3.homelab.local-1:not*base64", /importKeys\[0\] \(key name "s3.homelab.local-1"\) is not a Nix secret key \(the part after NAME: is not base64\)/],
    ["a wrong length", `s3.homelab.local-1:${Buffer.alloc(48, 7).toString("base64")}`, /is not a Nix secret key \(it holds 48 bytes, not 64\)/],
    ["a name no setting uses", generateKeypair("other-1").secretKey, /importKeys\[0\] is the key "other-1", a name no setting uses \(nix-cache:keyName is "s3.homelab.local-1"\).*pulumi config set nix-cache:keyName other-1/],
  ])("%s: one error naming the entry, never the key", (_what, key, message) => {
    const err = errorOf(raw([key]));
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(message);
    expect(err.problems[0]).toContain(`pulumi config set --secret --path 'nix-cache:importKeys[0]' "$(cat ~/.config/nix/secret.key)"`);
    for (const part of secretParts(key).filter((p) => p.length > 8)) expect(err.message).not.toContain(part);
  });

  test("the same name twice is refused at the second entry", () => {
    const again = generateKeypair("s3.homelab.local-1");
    const err = errorOf(raw([chapter.secretKey, again.secretKey]));
    expect(err.problems).toEqual([expect.stringMatching(/^nix-cache:importKeys\[1\] is a second key named "s3.homelab.local-1": allowed is/)]);
    for (const part of [...secretParts(chapter.secretKey), ...secretParts(again.secretKey)]) expect(err.message).not.toContain(part);
  });

  test("a value that is not a list of texts is refused without showing it", () => {
    const err = errorOf(raw('[{"key": "s3.homelab.local-1:abc"}]'));
    expect(err.problems).toEqual([expect.stringMatching(/^nix-cache:importKeys is not a list of text values \(its value is secret and not shown\)/)]);
    expect(err.message).not.toContain("abc");
  });
});

describe("builderPassword: the adopted builder's existing password, never shown", () => {
  const E = "http://127.0.0.1:9000";
  test("kept as given; unset or empty is a generated one", () => {
    expect(parseSettings({ endpoint: E, builderPassword: "Kq3vX9pLm2Zt7wRb" }).builderPassword).toBe("Kq3vX9pLm2Zt7wRb");
    expect(parseSettings({ endpoint: E }).builderPassword).toBeUndefined();
    expect(parseSettings({ endpoint: E, builderPassword: "" }).builderPassword).toBeUndefined();
  });
  test.each([["short7ch"], ["with space inside"], ["x".repeat(41)]])("%s is refused with its length only", (value) => {
    const pw = value === "short7ch" ? "short7c" : value;
    const err = errorOf({ endpoint: E, builderPassword: pw });
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(/^nix-cache:builderPassword is \d+ characters.*allowed is the builder user's current MinIO password, 8 to 40 characters without white space/);
    expect(err.message).not.toContain(pw);
  });
});

describe("user names: a second cache needs only its own bucket", () => {
  const E = "http://127.0.0.1:9000";
  test("the default bucket keeps the chapter's nixbuilder and nixgc; another bucket derives both", () => {
    expect(parseSettings({ endpoint: E })).toMatchObject({ builderUser: "nixbuilder", gcUser: "nixgc", builderUserDefaulted: true, gcUserDefaulted: true });
    expect(parseSettings({ endpoint: E, bucket: "team-cache" })).toMatchObject({
      builderUser: "team-cache-builder",
      gcUser: "team-cache-gc",
      builderUserDefaulted: true,
      gcUserDefaulted: true,
    });
    expect(defaultUserNames("nix-cache")).toEqual({ builderUser: "nixbuilder", gcUser: "nixgc", readerUser: "nixreader" });
  });
  test("set names win and are marked as set", () => {
    expect(parseSettings({ endpoint: E, bucket: "team-cache", builderUser: "ci-1", gcUser: "ci-gc" })).toMatchObject({
      builderUser: "ci-1",
      gcUser: "ci-gc",
      builderUserDefaulted: false,
      gcUserDefaulted: false,
    });
  });
  test("a bucket name too long to derive from keeps the chapter's names (as every earlier version had them)", () => {
    expect(parseSettings({ endpoint: E, bucket: "a-rather-long-team-cache" })).toMatchObject({ builderUser: "nixbuilder", gcUser: "nixgc" });
    expect(defaultUserNames("nix-cache.example.org")).toEqual({ builderUser: "nixbuilder", gcUser: "nixgc", readerUser: "nixreader" });
    expect(defaultUserNames("twelve-chars")).toEqual({ builderUser: "twelve-chars-builder", gcUser: "twelve-chars-gc", readerUser: "twelve-chars-reader" });
  });

});

describe("a private cache (access, readerUser, readerHosts, proxyUrl)", () => {
  const E = ENDPOINT;
  test("access=private with hosts: hosts sorted, the reader derived from the bucket, the proxy on publicUrl's host", () => {
    expect(
      parseSettings({ endpoint: E, publicUrl: "https://cache.example.org", bucket: "team-cache", access: "private", readerHosts: '["laptop","builder-1","desk.lan"]' }),
    ).toMatchObject({
      access: "private",
      readerUser: "team-cache-reader",
      readerHosts: ["builder-1", "desk.lan", "laptop"],
      proxyUrl: "https://cache.example.org:8480",
    });
    expect(parseSettings({ endpoint: E, access: "private", readerUser: "reader-1", proxyUrl: "https://proxy.lan:9443/" })).toMatchObject({
      readerUser: "reader-1",
      proxyUrl: "https://proxy.lan:9443",
      readerHosts: [],
    });
    expect(parseSettings({ endpoint: "http://[::1]:9000", access: "private" }).proxyUrl).toBe("http://[::1]:8480");
  });

  test("Pulumi's empty defaults (readerUser \"\", readerHosts [], proxyUrl \"\") are the defaults", () => {
    expect(parseSettings({ endpoint: E, access: "public", readerUser: "", readerHosts: "[]", proxyUrl: "" })).toMatchObject({
      access: "public",
      readerUser: "nixreader",
      readerHosts: [],
    });
  });

  test.each<[string, RawSettings, string[]]>([
    ["an unknown mode", { access: "secret" }, ["nix-cache:access is \"secret\"", '"public" or "private"']],
    ["a reader named like the builder", { access: "private", readerUser: "nixbuilder" }, ["nix-cache:readerUser", "other than nix-cache:builderUser and nix-cache:gcUser"]],
    ["a reader with a bad name", { access: "private", readerUser: "a b" }, ["nix-cache:readerUser is \"a b\"", "3 to 20 characters"]],
    ["hosts not a list", { access: "private", readerHosts: "laptop" }, ["nix-cache:readerHosts is \"laptop\"", "a list of distinct host names"]],
    ["a host with a bad name", { access: "private", readerHosts: '["ok","Bad_Host"]' }, ["nix-cache:readerHosts[1] is \"Bad_Host\"", "lower-case letters"]],
    ["a host twice", { access: "private", readerHosts: '["a1","a1"]' }, ["nix-cache:readerHosts[1] is \"a1\", listed twice"]],
    ["hosts on a public cache", { readerHosts: '["laptop"]' }, ["nix-cache:readerHosts is set but nix-cache:access is \"public\"", "pulumi config set nix-cache:access private"]],
    ["a proxy URL with a path", { access: "private", proxyUrl: "https://proxy.lan/cache" }, ["nix-cache:proxyUrl is \"https://proxy.lan/cache\"", "no path"]],
    ["a proxy URL on a public cache", { proxyUrl: "https://proxy.lan" }, ["nix-cache:proxyUrl is set but nix-cache:access is \"public\""]],
  ])("%s: one problem naming the setting and what is allowed", (_what, raw, parts) => {
    const err = errorOf({ endpoint: E, ...raw });
    expect(err.problems).toHaveLength(1);
    for (const part of parts) expect(err.problems[0]).toContain(part);
  });
});
