// The expiry rule: it keeps nix-cache-info and expires narinfos and NARs; reading it back from the shapes the
// MinIO SDK returns; the stable text used to compare rule sets.
import * as http from "http";
import { AddressInfo } from "net";
import * as Minio from "minio";
import { renderCacheInfo } from "../../lib/config/cacheInfo";
import {
  canonicalRules,
  EXPIRY_RULE_ID,
  expiryRule,
  ExpiryRule,
  lifecycleConfiguration,
  lifecycleConfigurationOf,
  readExpiryRules,
  retentionRules,
  wouldExpire,
} from "../../lib/minio/lifecycle";
import { generateKeypair, signDetached } from "../../lib/signing/signingKey";
import { DEFAULTS } from "../../lib/config/settings";

const defaultInfo = renderCacheInfo({ storeDir: DEFAULTS.storeDir, wantMassQuery: DEFAULTS.wantMassQuery, priority: DEFAULTS.priority });

/** A narinfo as `nix copy --to` writes it, signed with a real key. */
function narinfo(storeDir: string, name: string, withExtras: boolean): string {
  const hashPart = "0c6bfvhqrb4hp2ijbdy6wsqsll0fzgkq";
  const narHash = "sha256:0yzhigwjl6bws649vcs2asa4lbs8hg93hyix187gc7s7a74w5h80";
  const lines = [
    `StorePath: ${storeDir}/${hashPart}-${name}`,
    "URL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.zst",
    "Compression: zstd",
    "FileHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3",
    "FileSize: 50088",
    `NarHash: ${narHash}`,
    "NarSize: 226488",
  ];
  if (withExtras) {
    const refs = [`${hashPart}-${name}`, "bw9ra96lbfcm8hgbdvkh8gyqy7jhg0ri-glibc-2.35-163"];
    lines.push(`References: ${refs.join(" ")}`, "Deriver: 3v3bsr4ng39cgrmh5x3lf5gjx7ibnzx1-hello-2.12.1.drv");
    const fingerprint = `1;${storeDir}/${hashPart}-${name};${narHash};226488;${refs.map((r) => `${storeDir}/${r}`).join(",")}`;
    lines.push(`Sig: ${signDetached(generateKeypair("s3.homelab.local-1").secretKey, fingerprint)}`);
  }
  return lines.join("\n") + "\n";
}

describe("expiryRule", () => {
  const rule = expiryRule(7, defaultInfo);

  test("keeps objects up to nix-cache-info's size, expires after the given days, whole bucket", () => {
    expect(rule).toEqual({ id: EXPIRY_RULE_ID, enabled: true, days: 7, keepUpToBytes: Buffer.byteLength(defaultInfo), prefix: "" });
    expect(rule.keepUpToBytes).toBe(51);
  });

  test("never expires nix-cache-info", () => {
    expect(wouldExpire([rule], "nix-cache-info", Buffer.byteLength(defaultInfo))).toBe(false);
  });

  test("expires a typical narinfo and NAR", () => {
    const text = narinfo("/nix/store", "hello-2.12.1", true);
    expect(Buffer.byteLength(text)).toBeGreaterThan(400);
    expect(wouldExpire([rule], "0c6bfvhqrb4hp2ijbdy6wsqsll0fzgkq.narinfo", Buffer.byteLength(text))).toBe(true);
    expect(wouldExpire([rule], "nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.zst", 50088)).toBe(true);
  });

  test.each([
    ["/nix/store", 40],
    ["/a", 0],
    ["/very/long/custom/store/directory/for/nix", 2147483647],
  ] as const)("even a minimal narinfo outgrows nix-cache-info (storeDir %s, priority %i)", (storeDir, priority) => {
    for (const wantMassQuery of [true, false]) {
      const info = renderCacheInfo({ storeDir, wantMassQuery, priority });
      const r = expiryRule(1, info);
      expect(wouldExpire([r], "nix-cache-info", Buffer.byteLength(info))).toBe(false);
      const minimal = narinfo(storeDir, "x", false);
      expect(wouldExpire([r], "k.narinfo", Buffer.byteLength(minimal))).toBe(true);
    }
  });

  test("counts bytes, not characters", () => {
    expect(expiryRule(7, "StoreDir: /nix/störe\n").keepUpToBytes).toBe(22);
  });
});

describe("wouldExpire", () => {
  const rule = expiryRule(7, defaultInfo);
  test("ignores disabled rules, rules without days and other prefixes", () => {
    expect(wouldExpire([{ ...rule, enabled: false }], "a.narinfo", 1000)).toBe(false);
    expect(wouldExpire([{ ...rule, days: 0 }], "a.narinfo", 1000)).toBe(false);
    expect(wouldExpire([{ ...rule, prefix: "nar/" }], "a.narinfo", 1000)).toBe(false);
    expect(wouldExpire([{ ...rule, prefix: "nar/" }], "nar/a.nar", 1000)).toBe(true);
    expect(wouldExpire([], "a.narinfo", 1000)).toBe(false);
  });

  test("the chapter's whole-bucket rule (no size filter) would expire nix-cache-info", () => {
    expect(wouldExpire([{ ...rule, keepUpToBytes: 0 }], "nix-cache-info", 51)).toBe(true);
  });
});

describe("lifecycleConfiguration", () => {
  test("is the shape setBucketLifecycle takes", () => {
    expect(lifecycleConfiguration(expiryRule(7, defaultInfo))).toEqual({
      Rule: [{ ID: EXPIRY_RULE_ID, Status: "Enabled", Filter: { ObjectSizeGreaterThan: 51 }, Expiration: { Days: 7 } }],
    });
    expect(lifecycleConfiguration({ ...expiryRule(3, defaultInfo), enabled: false }).Rule[0].Status).toBe("Disabled");
  });
});

describe("retentionRules", () => {
  test("retention=lifecycle: exactly the expiry rule (days, nix-cache-info's size kept)", () => {
    expect(retentionRules("lifecycle", 7, defaultInfo)).toEqual([expiryRule(7, defaultInfo)]);
    expect(retentionRules("lifecycle", 30, defaultInfo)[0].days).toBe(30);
  });

  test("retention=gc: no rule at all, so nothing ever expires by age (expireDays is ignored)", () => {
    expect(retentionRules("gc", 7, defaultInfo)).toEqual([]);
    expect(retentionRules("gc", 1, defaultInfo)).toEqual([]);
    for (const [key, size] of [["a.narinfo", 1000], ["nar/x.nar.xz", 50088], ["nix-cache-info", 51]] as const) {
      expect(wouldExpire(retentionRules("gc", 7, defaultInfo), key, size)).toBe(false);
    }
  });

  test("the two modes compare as different rule sets (switching is a change the preview shows)", () => {
    expect(canonicalRules(retentionRules("gc", 7, defaultInfo))).not.toBe(canonicalRules(retentionRules("lifecycle", 7, defaultInfo)));
  });
});

describe("lifecycleConfigurationOf", () => {
  test("one rule: the same configuration as lifecycleConfiguration", () => {
    const rule = expiryRule(7, defaultInfo);
    expect(lifecycleConfigurationOf([rule])).toEqual(lifecycleConfiguration(rule));
  });

  test("no rules: no configuration (the provider removes the bucket's lifecycle instead of setting an empty one)", () => {
    expect(lifecycleConfigurationOf([])).toBeUndefined();
  });
});

describe("readExpiryRules", () => {
  const rule = expiryRule(7, defaultInfo);

  test("reads the single-rule, string-valued shape the SDK's XML parser can give", () => {
    const loose = { Rule: { ID: EXPIRY_RULE_ID, Status: "Enabled", Filter: { ObjectSizeGreaterThan: "51" }, Expiration: { Days: "7" } } };
    expect(readExpiryRules(loose)).toEqual([rule]);
  });

  test("reads an And filter, list-wrapped parts and a legacy rule-level prefix", () => {
    const loose = {
      Rule: [
        {
          ID: "b",
          Status: "Disabled",
          Filter: [{ And: [{ Prefix: "nar/", ObjectSizeGreaterThan: "100", Tag: { Key: "k", Value: "v" } }] }],
          Expiration: [{ Days: 30 }],
        },
        { ID: "a", Status: "Enabled", Prefix: "old/", Expiration: { Days: 1 } },
      ],
    };
    expect(readExpiryRules(loose)).toEqual([
      { id: "b", enabled: false, days: 30, keepUpToBytes: 100, prefix: "nar/" },
      { id: "a", enabled: true, days: 1, keepUpToBytes: 0, prefix: "old/" },
    ]);
  });

  test("reads nothing from an empty or missing configuration", () => {
    expect(readExpiryRules(null)).toEqual([]);
    expect(readExpiryRules(undefined)).toEqual([]);
    expect(readExpiryRules({})).toEqual([]);
  });

  test("reads a rule of any other form too, so a rule added by hand in gc mode shows as drift", () => {
    const noncurrent = { Rule: { ID: "hand", Status: "Enabled", Filter: { Prefix: "" }, NoncurrentVersionExpiration: { NoncurrentDays: "3" } } };
    const rules = readExpiryRules(noncurrent);
    expect(rules).toEqual([{ id: "hand", enabled: true, days: 0, keepUpToBytes: 0, prefix: "" }]);
    expect(canonicalRules(rules)).not.toBe(canonicalRules(retentionRules("gc", 7, defaultInfo)));
  });

  test("reads a rule without expiration days as 0 days (never expires by age here)", () => {
    const [r] = readExpiryRules({ Rule: { ID: "x", Status: "Enabled", Expiration: { Date: "2030-01-01T00:00:00Z" } } });
    expect(r.days).toBe(0);
    expect(wouldExpire([r], "a.narinfo", 1000)).toBe(false);
  });
});

describe("round trip through the real MinIO SDK (set, then get, against a recording S3 stub)", () => {
  let server: http.Server;
  let stored = "";
  let client: Minio.Client;

  beforeAll(async () => {
    // The stub keeps the XML the SDK PUTs and serves it back as MinIO does (with the S3 namespace).
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        if (req.method === "PUT" && req.url?.includes("lifecycle")) {
          stored = Buffer.concat(chunks).toString("utf8");
          res.end();
        } else if (req.method === "GET" && req.url?.includes("lifecycle")) {
          res.setHeader("Content-Type", "application/xml");
          res.end(
            `<?xml version="1.0" encoding="UTF-8"?>\n` +
              stored.replace("<LifecycleConfiguration>", '<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'),
          );
        } else {
          res.statusCode = 501;
          res.end();
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    client = new Minio.Client({ endPoint: "127.0.0.1", port, useSSL: false, accessKey: "stub", secretKey: "stub-secret", region: "us-east-1" });
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test("what we set reads back as the same rule", async () => {
    const rule = expiryRule(7, defaultInfo);
    await client.setBucketLifecycle("nix-cache", lifecycleConfiguration(rule) as never);
    expect(stored).toContain("<ObjectSizeGreaterThan>51</ObjectSizeGreaterThan>");
    expect(stored).toContain("<Days>7</Days>");
    const live: unknown = await client.getBucketLifecycle("nix-cache");
    expect(readExpiryRules(live)).toEqual([rule]);
    expect(canonicalRules(readExpiryRules(live))).toBe(canonicalRules([rule]));
  });
});

describe("canonicalRules", () => {
  const a: ExpiryRule = { id: "a", enabled: true, days: 1, keepUpToBytes: 0, prefix: "" };
  const b: ExpiryRule = expiryRule(7, defaultInfo);

  test("does not depend on rule order and is repeatable", () => {
    expect(canonicalRules([a, b])).toBe(canonicalRules([b, a]));
    expect(canonicalRules([b])).toBe(canonicalRules([expiryRule(7, defaultInfo)]));
  });

  test("does not change its input", () => {
    const list = [b, a];
    canonicalRules(list);
    expect(list).toEqual([b, a]);
  });

  test.each([
    ["days", { days: 8 }],
    ["size", { keepUpToBytes: 0 }],
    ["status", { enabled: false }],
    ["prefix", { prefix: "nar/" }],
    ["id", { id: "other" }],
  ] as const)("differs when the %s differs", (_what, change) => {
    expect(canonicalRules([{ ...b, ...change }])).not.toBe(canonicalRules([b]));
  });

  test("differs when a rule is added or removed", () => {
    expect(canonicalRules([a, b])).not.toBe(canonicalRules([b]));
    expect(canonicalRules([])).not.toBe(canonicalRules([b]));
  });
});
