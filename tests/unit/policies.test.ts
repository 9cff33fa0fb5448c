// The builder's canned policy, the anonymous bucket policy, and the normal form used to compare them with
// what MinIO returns.
import { GC_KEY_PREFIX } from "../../lib/gc/plan";
import { markPolicy, ownerOfPolicy } from "../../lib/minio/ownership";
import {
  anonymousPolicy,
  builderPolicy,
  canonicalPolicy,
  GC_POLICY_ROLES,
  GC_PREFIX,
  gcPolicy,
  noAnonymousPolicy,
  PolicyDocument,
  policyStatementCount,
  READER_POLICY_ROLES,
  readerPolicy,
} from "../../lib/minio/policies";

const BUCKET = "nix-cache";
const BUCKET_ARN = "arn:aws:s3:::nix-cache";
const OBJECTS_ARN = "arn:aws:s3:::nix-cache/*";

/** Every (effect, action, resource) the document grants, as sortable text. */
function grants(doc: PolicyDocument): string[] {
  return doc.Statement.flatMap((s) => s.Action.flatMap((a) => s.Resource.map((r) => `${s.Effect} ${a} ${r}`))).sort();
}

describe("builderPolicy", () => {
  const doc = builderPolicy(BUCKET);

  test("grants exactly the 7 upload/read actions, each on the bucket or its objects", () => {
    expect(grants(doc)).toEqual(
      [
        `Allow s3:AbortMultipartUpload ${OBJECTS_ARN}`,
        `Allow s3:GetBucketLocation ${BUCKET_ARN}`,
        `Allow s3:GetObject ${OBJECTS_ARN}`,
        `Allow s3:ListBucket ${BUCKET_ARN}`,
        `Allow s3:ListBucketMultipartUploads ${BUCKET_ARN}`,
        `Allow s3:ListMultipartUploadParts ${OBJECTS_ARN}`,
        `Allow s3:PutObject ${OBJECTS_ARN}`,
      ].sort(),
    );
  });

  test("has no delete, no wildcard, no admin action and no other bucket", () => {
    const actions = doc.Statement.flatMap((s) => s.Action);
    expect(actions.filter((a) => /delete|\*|^admin:|^kms:|^sts:/i.test(a))).toEqual([]);
    const resources = doc.Statement.flatMap((s) => s.Resource);
    expect([...new Set(resources)].sort()).toEqual([BUCKET_ARN, OBJECTS_ARN]);
    expect(doc.Statement.every((s) => s.Effect === "Allow" && s.Principal === undefined)).toBe(true);
  });

  test("names only the bucket it is for", () => {
    const text = JSON.stringify(builderPolicy("other-cache"));
    expect(text).toContain("arn:aws:s3:::other-cache");
    expect(text).not.toContain(BUCKET_ARN);
    expect(JSON.parse(text)).toEqual(builderPolicy("other-cache"));
  });
});

describe("gcPolicy", () => {
  const doc = gcPolicy(BUCKET);

  test("grants list and read of the cache, delete of its objects, PutObject only under gc/, and denies touching nix-cache-info", () => {
    expect(grants(doc)).toEqual(
      [
        `Allow s3:GetBucketLocation ${BUCKET_ARN}`,
        `Allow s3:ListBucket ${BUCKET_ARN}`,
        `Allow s3:GetObject ${OBJECTS_ARN}`,
        `Allow s3:DeleteObject ${OBJECTS_ARN}`,
        `Allow s3:PutObject arn:aws:s3:::nix-cache/gc/*`,
        `Deny s3:DeleteObject arn:aws:s3:::nix-cache/nix-cache-info`,
        `Deny s3:PutObject arn:aws:s3:::nix-cache/nix-cache-info`,
      ].sort(),
    );
  });

  test("PutObject is allowed on no cache path: only the bookkeeping prefix", () => {
    const puts = doc.Statement.filter((s) => s.Effect === "Allow" && s.Action.includes("s3:PutObject")).flatMap((s) => s.Resource);
    expect(puts).toEqual([`${BUCKET_ARN}/${GC_PREFIX}*`]);
    expect(GC_PREFIX).toBe("gc/");
    // The GC (lib/gc/plan.ts) writes its lease and pins under the same prefix the policy allows.
    expect(GC_KEY_PREFIX).toBe(GC_PREFIX);
  });

  test("has no wildcard action, no admin action, no multipart or tagging grant and no other bucket", () => {
    const actions = doc.Statement.flatMap((s) => s.Action);
    expect(actions.filter((a) => /\*|^admin:|^kms:|^sts:|Multipart|Tagging|Policy|Lifecycle|CreateBucket|DeleteBucket$/i.test(a))).toEqual([]);
    const resources = [...new Set(doc.Statement.flatMap((s) => s.Resource))].sort();
    expect(resources.every((r) => r === BUCKET_ARN || r.startsWith(`${BUCKET_ARN}/`))).toBe(true);
    expect(doc.Statement.every((s) => s.Principal === undefined)).toBe(true);
    expect(JSON.stringify(gcPolicy("other-cache"))).not.toContain(BUCKET_ARN);
  });

  test("the builder's policy still grants no delete", () => {
    expect(builderPolicy(BUCKET).Statement.flatMap((s) => s.Action).filter((a) => /Delete/.test(a))).toEqual([]);
  });

  test("marked with an owner: one Sid per statement, the owner is read back, what it grants is unchanged", () => {
    const owner = { id: "0123456789abcdef0123456789abcdef", project: "nix-cache", stack: "dev" };
    const marked = markPolicy(doc, owner, GC_POLICY_ROLES);
    expect(marked.Statement.map((s) => s.Sid)).toEqual(GC_POLICY_ROLES.map((r) => `NixCacheOwner${owner.id}${r}`));
    expect(ownerOfPolicy(JSON.stringify(marked))).toEqual({ id: owner.id, label: "nix-cache/dev" });
    expect(canonicalPolicy(marked)).toBe(canonicalPolicy(doc));
    expect(canonicalPolicy(marked)).not.toBe(canonicalPolicy(builderPolicy(BUCKET)));
  });
});

describe("readerPolicy (access=private)", () => {
  test("reads objects and lists the bucket, on this bucket only: no write, no delete, no admin", () => {
    const doc = readerPolicy("team-cache");
    const actions = doc.Statement.flatMap((st) => st.Action).sort();
    expect(actions).toEqual(["s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket"]);
    expect(doc.Statement.every((st) => st.Effect === "Allow")).toBe(true);
    expect(doc.Statement.flatMap((st) => st.Resource).sort()).toEqual(["arn:aws:s3:::team-cache", "arn:aws:s3:::team-cache/*"]);
    expect(doc.Statement).toHaveLength(READER_POLICY_ROLES.length);
  });
  test("a private cache's bucket policy has no statement, and reads as none", () => {
    expect(noAnonymousPolicy().Statement).toEqual([]);
    expect(policyStatementCount(JSON.stringify(noAnonymousPolicy()))).toBe(0);
    expect(policyStatementCount("")).toBe(0);
    expect(policyStatementCount(JSON.stringify(anonymousPolicy("b", true)))).toBe(2);
    expect(canonicalPolicy(JSON.stringify(noAnonymousPolicy()))).toBe(canonicalPolicy(""));
  });
});

describe("anonymousPolicy", () => {
  test("grants anyone s3:GetObject on the objects, nothing else", () => {
    expect(anonymousPolicy(BUCKET, false)).toEqual({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Principal: { AWS: ["*"] }, Action: ["s3:GetObject"], Resource: [OBJECTS_ARN] }],
    });
  });

  test("adds s3:ListBucket on the bucket itself only when listing is allowed", () => {
    const doc = anonymousPolicy(BUCKET, true);
    expect(grants(doc)).toEqual([`Allow s3:GetObject ${OBJECTS_ARN}`, `Allow s3:ListBucket ${BUCKET_ARN}`]);
    expect(doc.Statement.every((s) => JSON.stringify(s.Principal) === '{"AWS":["*"]}')).toBe(true);
  });
});

describe("canonicalPolicy", () => {
  const doc = builderPolicy(BUCKET);
  const canonical = canonicalPolicy(doc);

  test("is the same for reordered actions (as MinIO returns them)", () => {
    const reordered = { ...doc, Statement: doc.Statement.map((s) => ({ ...s, Action: [...s.Action].reverse() })) };
    expect(canonicalPolicy(reordered)).toBe(canonical);
  });

  test("is the same for reordered statements and for JSON text", () => {
    expect(canonicalPolicy({ ...doc, Statement: [...doc.Statement].reverse() })).toBe(canonical);
    expect(canonicalPolicy(JSON.stringify(doc, null, 2))).toBe(canonical);
  });

  test("is the same for a single string and a one-element list", () => {
    const listed = anonymousPolicy(BUCKET, false);
    const single = {
      Version: "2012-10-17",
      Statement: { Effect: "Allow", Principal: { AWS: "*" }, Action: "s3:GetObject", Resource: OBJECTS_ARN },
    };
    expect(canonicalPolicy(single)).toBe(canonicalPolicy(listed));
    const starPrincipal = { ...single, Statement: { ...single.Statement, Principal: "*" } };
    expect(canonicalPolicy(starPrincipal)).toBe(canonicalPolicy(listed));
  });

  test("differs for an added action, another resource or another effect", () => {
    const added = { ...doc, Statement: [doc.Statement[0], { ...doc.Statement[1], Action: [...doc.Statement[1].Action, "s3:DeleteObject"] }] };
    expect(canonicalPolicy(added)).not.toBe(canonical);
    expect(canonicalPolicy(builderPolicy("other-cache"))).not.toBe(canonical);
    const denied = { ...doc, Statement: doc.Statement.map((s) => ({ ...s, Effect: "Deny" })) };
    expect(canonicalPolicy(denied)).not.toBe(canonical);
    expect(canonicalPolicy(anonymousPolicy(BUCKET, true))).not.toBe(canonicalPolicy(anonymousPolicy(BUCKET, false)));
  });

  test("reads an empty policy as no statements", () => {
    expect(canonicalPolicy("")).toBe("[]");
    expect(canonicalPolicy(undefined)).toBe("[]");
  });
});
