// The takeover plan (lib/minio/takeover.ts): from what a cache made by hand holds and what the stack wants, one
// line per change with its reason, and the refusal that keeps hosts from rejecting the cache.
import { signerNamesOf, TakeoverFacts, takeoverPlan, TakeoverWanted } from "../../lib/minio/takeover";
import { builderPolicy, gcPolicy } from "../../lib/minio/policies";
import { renderCacheInfo } from "../../lib/config/cacheInfo";
import { generateKeypair } from "../../lib/signing/signingKey";

const CACHE_INFO = renderCacheInfo({ storeDir: "/nix/store", wantMassQuery: true, priority: 40 });
const chapterKey = generateKeypair("s3.homelab.local-1");

// What `mc anonymous set download` leaves, as MinIO returns it.
const DOWNLOAD = JSON.stringify({
  Version: "2012-10-17",
  Statement: [
    { Effect: "Allow", Principal: { AWS: ["*"] }, Action: ["s3:GetBucketLocation", "s3:ListBucket"], Resource: ["arn:aws:s3:::nix-cache"] },
    { Effect: "Allow", Principal: { AWS: ["*"] }, Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::nix-cache/*"] },
  ],
});
// The chapter's nix-cache-write.json: one statement, both resources.
const CHAPTER_POLICY = {
  Version: "2012-10-17",
  Statement: [
    {
      Effect: "Allow",
      Action: builderPolicy("nix-cache").Statement.flatMap((s) => s.Action),
      Resource: ["arn:aws:s3:::nix-cache", "arn:aws:s3:::nix-cache/*"],
    },
  ],
};

const chapterFacts = (over: Partial<TakeoverFacts> = {}): TakeoverFacts => ({
  bucket: "nix-cache",
  bucketExists: true,
  objectCount: 41,
  objectCountCapped: false,
  bucketPolicy: DOWNLOAD,
  rules: [{ id: "d1k9", enabled: true, days: 7, keepUpToBytes: 0, prefix: "" }],
  cacheInfo: { content: CACHE_INFO, contentType: "application/octet-stream" },
  signers: [
    { name: "s3.homelab.local-1", narinfos: 20 },
    { name: "cache.nixos.org-1", narinfos: 12 },
  ],
  narinfosSampled: 20,
  builder: { name: "nixbuilder", exists: true, policies: ["nix-cache-write"], keptPasswordWorks: true },
  builderPolicy: { name: "nix-cache-write", document: CHAPTER_POLICY },
  gc: { name: "nixgc", exists: false, policies: [] },
  gcPolicy: { name: "nix-cache-gc" },
  ...over,
});

const wanted = (over: Partial<TakeoverWanted> = {}): TakeoverWanted => ({
  anonymousList: false,
  retention: "gc",
  expireDays: 7,
  cacheInfo: CACHE_INFO,
  keyNames: ["s3.homelab.local-1"],
  importedPublicKeys: [chapterKey.publicKey],
  allowKeyDrop: false,
  ...over,
});

describe("the chapter's cache, with its key imported and its password kept", () => {
  const plan = takeoverPlan(chapterFacts(), wanted());

  test("goes ahead, one line per thing, what it is now → what it becomes, and why", () => {
    expect(plan.refusal).toBeUndefined();
    expect(plan.lines).toEqual([
      "bucket 'nix-cache': taken over and marked as this stack's (its tags); its 41 objects are kept as they are, none deleted or rewritten",
      "anonymous access: 'download' (mc anonymous set download: anyone may list every path in the bucket, and read it) → read objects only (GetObject): Nix never lists a cache, and a listing tells anyone what it holds",
      expect.stringMatching(/^bucket lifecycle: expiry rule 'd1k9' \(expires every object, nix-cache-info included after 7 days\) → removed; retention=gc: .* breaks closures .* turns the cache off for every host$/),
      "nix-cache-info: the same text; its content type 'application/octet-stream' → 'text/x-nix-cache-info' (written again, byte for byte)",
      expect.stringMatching(/^builder user 'nixbuilder': password kept \(nix-cache:builderPassword is its current password\)/),
      "builder policy 'nix-cache-write': the same actions on the same bucket as its document now; rewritten only to mark it as this stack's (statement Sids)",
      "GC user 'nixgc': does not exist → made, with a generated password",
      "GC policy 'nix-cache-gc': does not exist → made and attached to 'nixgc'",
      `signing key 's3.homelab.local-1': imported (nix-cache:importKeys), the key hosts already trust: ${chapterKey.publicKey}`,
      "signatures by keys this stack does not hold stay as they are: 'cache.nixos.org-1' (12 of 20 narinfos)",
    ]);
  });

  test("never shows a secret key", () => {
    expect(plan.lines.join("\n")).not.toContain(chapterKey.secretKey.split(":")[1]);
  });
});

describe("refusal: a new key under the name the cache's paths are signed with", () => {
  test("refused when the key is not imported, saying how to import it", () => {
    const plan = takeoverPlan(chapterFacts(), wanted({ importedPublicKeys: [] }));
    expect(plan.refusal).toMatch(/^the cache's paths are signed by a key named 's3.homelab.local-1' \(20 of the 20 narinfos looked at\), and this stack would generate a new key under that name; nothing was changed\./);
    expect(plan.refusal).toContain(`pulumi config set --secret --path 'nix-cache:importKeys[0]' "$(cat ~/.config/nix/secret.key)"`);
    expect(plan.refusal).toContain("pulumi config set nix-cache:allowKeyDrop true");
  });
  test("allowKeyDrop turns it into a warning line", () => {
    const plan = takeoverPlan(chapterFacts(), wanted({ importedPublicKeys: [], allowKeyDrop: true }));
    expect(plan.refusal).toBeUndefined();
    expect(plan.lines).toContainEqual(expect.stringMatching(/^signing key 's3.homelab.local-1': a NEW key under the name the cache's paths are signed with/));
  });
  test("a key name no path is signed with is simply generated", () => {
    const plan = takeoverPlan(chapterFacts(), wanted({ keyNames: ["cache.example-2"], importedPublicKeys: [] }));
    expect(plan.refusal).toBeUndefined();
    expect(plan.lines).toContainEqual("signing key 'cache.example-2': generated (new); hosts need the stack's publicKey output (npm run host-config)");
    expect(plan.lines).toContainEqual("signatures by keys this stack does not hold stay as they are: 's3.homelab.local-1' (20 of 20 narinfos), 'cache.nixos.org-1' (12 of 20 narinfos)");
  });
});

describe("other starting points", () => {
  test("the password: a generated one, or a given one that does not work, says who is locked out", () => {
    const generated = takeoverPlan(chapterFacts({ builder: { name: "nixbuilder", exists: true, policies: ["nix-cache-write"] } }), wanted()).lines;
    expect(generated).toContainEqual(expect.stringMatching(/^builder user 'nixbuilder': its password → a new generated one \(MinIO never reveals a password\).*awsCredentials output \(to keep the current one: pulumi config set --secret nix-cache:builderPassword PASSWORD\)$/));
    const wrong = takeoverPlan(chapterFacts({ builder: { name: "nixbuilder", exists: true, policies: ["nix-cache-write"], keptPasswordWorks: false } }), wanted()).lines;
    expect(wrong).toContainEqual(expect.stringMatching(/^builder user 'nixbuilder': nix-cache:builderPassword is NOT its current password → the password is set to it/));
  });
  test("a policy that grants more or less says what changes; other attached policies are named", () => {
    const wider = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["s3:*"], Resource: ["arn:aws:s3:::*"] }] };
    const lines = takeoverPlan(chapterFacts({ builder: { name: "nixbuilder", exists: true, policies: ["nix-cache-write", "readwrite"], keptPasswordWorks: true }, builderPolicy: { name: "nix-cache-write", document: wider } }), wanted()).lines;
    expect(lines).toContainEqual(expect.stringMatching(/^builder policy 'nix-cache-write': its document → this stack's, which also allows AbortMultipartUpload, .*; no longer allows \*; also covers nix-cache, nix-cache\/\*; no longer covers \*$/));
    expect(lines).toContainEqual(expect.stringMatching(/^builder user 'nixbuilder': policies 'readwrite' stay attached/));
    const gc = takeoverPlan(chapterFacts({ gcPolicy: { name: "nix-cache-gc", document: gcPolicy("nix-cache") }, gc: { name: "nixgc", exists: true, policies: ["nix-cache-gc"] } }), wanted()).lines;
    expect(gc).toContainEqual(expect.stringMatching(/^GC user 'nixgc': its password → a new generated one .* gcCredentials output$/));
    expect(gc).toContainEqual(expect.stringMatching(/^GC policy 'nix-cache-gc': the same actions on the same bucket/));
  });
  test("retention=lifecycle keeps an age rule, now one that never expires nix-cache-info; no anonymous policy, no nix-cache-info", () => {
    const lines = takeoverPlan(chapterFacts({ bucketPolicy: "", cacheInfo: undefined }), wanted({ retention: "lifecycle", expireDays: 14 })).lines;
    expect(lines).toContainEqual("anonymous access: none → read objects only (GetObject), so hosts substitute without credentials");
    expect(lines).toContainEqual(expect.stringMatching(/^bucket lifecycle: expiry rule 'd1k9' .* → this stack's rule \(retention=lifecycle\): expires objects over 51 bytes after 14 days, so never nix-cache-info; it still breaks closures/));
    expect(lines).toContainEqual(expect.stringMatching(/^nix-cache-info: missing → written \(StoreDir: \/nix\/store, WantMassQuery: 1, Priority: 40\)/));
  });
  test("access=private: the chapter's 'download' goes, with nothing in its place; a bucket with no policy needs no line", () => {
    const lines = takeoverPlan(chapterFacts(), wanted({ access: "private" })).lines;
    expect(lines).toContainEqual(
      "anonymous access: 'download' (mc anonymous set download) → none (nix-cache:access private): hosts read with the reader's credentials or a read-proxy token",
    );
    const none = takeoverPlan(chapterFacts({ bucketPolicy: "" }), wanted({ access: "private" })).lines;
    expect(none.some((l) => l.startsWith("anonymous access"))).toBe(false);
  });
  test("a bucket that does not exist yet: made new, nothing to take over", () => {
    const lines = takeoverPlan(chapterFacts({ bucketExists: false, signers: [], narinfosSampled: 0, bucketPolicy: "", rules: [], cacheInfo: undefined }), wanted({ importedPublicKeys: [] })).lines;
    expect(lines[0]).toBe("bucket 'nix-cache': does not exist → made new (nothing to take over)");
    expect(lines.some((l) => l.startsWith("nix-cache-info"))).toBe(false);
  });
});

test("signerNamesOf reads the key names of a narinfo's Sig lines, each once", () => {
  const narinfo = "StorePath: /nix/store/x\nSig: a-1:AAAA\nSig: cache.nixos.org-1:BBBB\nSig: a-1:CCCC\nReferences: \n";
  expect(signerNamesOf(narinfo)).toEqual(["a-1", "cache.nixos.org-1"]);
  expect(signerNamesOf("StorePath: /nix/store/x\n")).toEqual([]);
});
