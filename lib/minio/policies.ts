// IAM policy documents for the cache, and a normal form to compare what MinIO returns with what we want
// (MinIO reorders actions and may turn single values into lists).

export interface PolicyStatement {
  /** The owner marker (lib/minio/ownership.ts markPolicy); not part of what the policy grants. */
  Sid?: string;
  Effect: "Allow" | "Deny";
  Principal?: { AWS: string[] };
  Action: string[];
  Resource: string[];
}

export interface PolicyDocument {
  /** The owning stack's name (lib/minio/ownership.ts markPolicy); not part of what the policy grants. */
  Id?: string;
  Version: "2012-10-17";
  Statement: PolicyStatement[];
}

/** What the chapter's `nixbuilder` may do: upload and read, never delete, only this bucket. */
export const BUILDER_BUCKET_ACTIONS = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"];
export const BUILDER_OBJECT_ACTIONS = [
  "s3:AbortMultipartUpload",
  "s3:GetObject",
  "s3:ListMultipartUploadParts",
  "s3:PutObject",
];

const bucketArn = (bucket: string) => `arn:aws:s3:::${bucket}`;
const objectsArn = (bucket: string) => `arn:aws:s3:::${bucket}/*`;

/**
 * The prefix of the GC's own bookkeeping keys (its lease and pins): the only keys the GC identity may write.
 * The same prefix as lib/gc/plan.ts GC_KEY_PREFIX (a unit test keeps them equal; lib/gc/plan.ts imports nothing).
 */
export const GC_PREFIX = "gc/";

/** The GC reads the whole cache and deletes what is dead; it writes nothing but its bookkeeping. */
export const GC_BUCKET_ACTIONS = ["s3:GetBucketLocation", "s3:ListBucket"];
export const GC_OBJECT_ACTIONS = ["s3:DeleteObject", "s3:GetObject"];
export const GC_BOOKKEEPING_ACTIONS = ["s3:PutObject"];
/** Denied on nix-cache-info even though DeleteObject is allowed on bucket/*: an explicit Deny always wins. */
export const GC_CACHE_INFO_DENIED = ["s3:DeleteObject", "s3:PutObject"];

/** The canned policy attached to the builder user. */
export function builderPolicy(bucket: string): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      { Effect: "Allow", Action: [...BUILDER_BUCKET_ACTIONS], Resource: [bucketArn(bucket)] },
      { Effect: "Allow", Action: [...BUILDER_OBJECT_ACTIONS], Resource: [objectsArn(bucket)] },
    ],
  };
}

/**
 * The canned policy attached to the GC user: list, read and delete in the bucket; PutObject only under
 * GC_PREFIX (so it can never overwrite a cached path with other bytes); and nix-cache-info, without which
 * every client ignores the cache, neither deleted nor rewritten whatever the GC's code does.
 */
export function gcPolicy(bucket: string): PolicyDocument {
  const cacheInfoArn = `${bucketArn(bucket)}/nix-cache-info`;
  return {
    Version: "2012-10-17",
    Statement: [
      { Effect: "Allow", Action: [...GC_BUCKET_ACTIONS], Resource: [bucketArn(bucket)] },
      { Effect: "Allow", Action: [...GC_OBJECT_ACTIONS], Resource: [objectsArn(bucket)] },
      { Effect: "Allow", Action: [...GC_BOOKKEEPING_ACTIONS], Resource: [`${bucketArn(bucket)}/${GC_PREFIX}*`] },
      { Effect: "Deny", Action: [...GC_CACHE_INFO_DENIED], Resource: [cacheInfoArn] },
    ],
  };
}

/** The owner-marker roles (lib/minio/ownership.ts markPolicy) of gcPolicy's statements, in order. */
export const GC_POLICY_ROLES = ["Bucket", "Objects", "Bookkeeping", "KeepCacheInfo"] as const;

/**
 * What the reader of a private cache may do: read objects, and list the bucket, without which a missing narinfo
 * is Access Denied instead of the 404 Nix needs (NixOS/nixos-homepage#731). Nothing else, on no other bucket.
 */
export const READER_BUCKET_ACTIONS = ["s3:GetBucketLocation", "s3:ListBucket"];
export const READER_OBJECT_ACTIONS = ["s3:GetObject"];

/** The canned policy attached to the reader user (access=private). */
export function readerPolicy(bucket: string): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      { Effect: "Allow", Action: [...READER_BUCKET_ACTIONS], Resource: [bucketArn(bucket)] },
      { Effect: "Allow", Action: [...READER_OBJECT_ACTIONS], Resource: [objectsArn(bucket)] },
    ],
  };
}

/** The owner-marker roles of readerPolicy's statements, in order. */
export const READER_POLICY_ROLES = ["Bucket", "Objects"] as const;

/**
 * The bucket policy of a private cache: none at all (no statement), so anonymous GET, HEAD and LIST are refused.
 * The bucket-policy resource keeps this as its wanted state, so a policy added by hand reads as drift.
 */
export function noAnonymousPolicy(): PolicyDocument {
  return { Version: "2012-10-17", Statement: [] };
}

/** The statements of a policy document given as JSON text or "" (none). */
export function policyStatementCount(doc: string): number {
  if (doc.trim() === "") return 0;
  const parsed = JSON.parse(doc) as { Statement?: unknown };
  return Array.isArray(parsed.Statement) ? parsed.Statement.length : parsed.Statement ? 1 : 0;
}

/** The bucket policy for anonymous clients: read objects; list the bucket only when asked to. */
export function anonymousPolicy(bucket: string, allowList: boolean): PolicyDocument {
  const statements: PolicyStatement[] = [
    { Effect: "Allow", Principal: { AWS: ["*"] }, Action: ["s3:GetObject"], Resource: [objectsArn(bucket)] },
  ];
  if (allowList) {
    statements.push({ Effect: "Allow", Principal: { AWS: ["*"] }, Action: ["s3:ListBucket"], Resource: [bucketArn(bucket)] });
  }
  return { Version: "2012-10-17", Statement: statements };
}

const asList = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : v === undefined ? [] : [String(v)]);

/**
 * A canonical text of a policy for comparison: statements with sorted, de-duplicated actions, resources and
 * principals, in a stable order. Two documents that grant the same thing give the same text.
 */
export function canonicalPolicy(doc: unknown): string {
  const parsed: unknown = typeof doc === "string" ? (doc.trim() === "" ? {} : JSON.parse(doc)) : doc;
  const raw = (parsed ?? {}) as { Statement?: unknown };
  const statements: unknown[] = Array.isArray(raw.Statement) ? raw.Statement : raw.Statement ? [raw.Statement] : [];
  const norm = statements.map((s) => {
    const st = s as Record<string, unknown>;
    const principal = st.Principal;
    const principals =
      principal === undefined
        ? []
        : principal === "*"
          ? ["*"]
          : asList((principal as Record<string, unknown>).AWS);
    const sorted = (v: unknown) => [...new Set(asList(v))].sort();
    return {
      Effect: String(st.Effect),
      Principal: [...new Set(principals)].sort(),
      Action: sorted(st.Action),
      NotAction: sorted(st.NotAction),
      Resource: sorted(st.Resource),
      Condition: st.Condition ?? null,
    };
  });
  norm.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  return JSON.stringify(norm);
}
