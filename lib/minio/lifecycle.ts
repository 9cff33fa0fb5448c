// The bucket's lifecycle configuration, per retention mode (nix-cache:retention).
//
// retention=lifecycle: the chapter's expiry rule. Its whole-bucket rule also expires `nix-cache-info`, which
// silently turns the cache off for every client. Every narinfo and NAR is larger than nix-cache-info (a narinfo
// alone holds a full store path, two hashes and a signature), so a size filter keeps it: only objects strictly
// larger than nix-cache-info expire. It still breaks closures (each object expires on its own, by upload age:
// ../shared/facts/cache-retention.md).
//
// retention=gc (the default): the closure-safe GC (`npm run gc`) deletes, so the lifecycle expires nothing.
// AWS's answer to abandoned multipart uploads, a rule with only AbortIncompleteMultipartUpload, is refused by
// MinIO (checked against a real server: setBucketLifecycle answers "The XML you provided was not well-formed or
// did not validate against our published schema"). In minio/minio @7aac2a2c its Rule type has no such field
// (internal/bucket/lifecycle/rule.go:44, a FIXME), so the element is dropped while parsing, and a rule with no
// Expiration, Transition, NoncurrentVersion* or DelMarkerExpiration is refused (rule.go:177). So in gc mode
// the bucket has no lifecycle configuration at all (the provider removes any), and MinIO aborts stale uploads
// by itself: every `api stale_uploads_cleanup_interval` (default 6h, internal/config/api/api.go:130;
// cmd/erasure-sets.go:517-534) it removes uploads older than `api stale_uploads_expiry` (default 24h,
// internal/config/api/api.go:134; cmd/erasure-multipart.go:194), i.e. about the same 1 day.
import type { Retention } from "../config/settings";

export const EXPIRY_RULE_ID = "nix-cache-expiry";

/** The rule as we declare and compare it. */
export interface ExpiryRule {
  id: string;
  enabled: boolean;
  days: number;
  /** Objects of this many bytes or fewer never expire. */
  keepUpToBytes: number;
  prefix: string;
}

export function expiryRule(days: number, cacheInfoText: string): ExpiryRule {
  return { id: EXPIRY_RULE_ID, enabled: true, days, keepUpToBytes: Buffer.byteLength(cacheInfoText, "utf8"), prefix: "" };
}

/**
 * The rules the bucket's lifecycle holds in a retention mode: the expiry rule with retention=lifecycle, none
 * with retention=gc (see the header: MinIO refuses an abort-multipart-only rule, and the GC does the deleting).
 */
export function retentionRules(retention: Retention, expireDays: number, cacheInfoText: string): ExpiryRule[] {
  return retention === "lifecycle" ? [expiryRule(expireDays, cacheInfoText)] : [];
}

const ruleConfiguration = (rule: ExpiryRule) => ({
  ID: rule.id,
  Status: rule.enabled ? "Enabled" : "Disabled",
  Filter: { ObjectSizeGreaterThan: rule.keepUpToBytes },
  Expiration: { Days: rule.days },
});

/** The configuration in the shape the MinIO SDK's setBucketLifecycle takes. */
export function lifecycleConfiguration(rule: ExpiryRule) {
  return { Rule: [ruleConfiguration(rule)] };
}

/** The configuration for a list of rules; undefined for none (the lifecycle is then removed, not set empty). */
export function lifecycleConfigurationOf(rules: readonly ExpiryRule[]): { Rule: ReturnType<typeof ruleConfiguration>[] } | undefined {
  return rules.length === 0 ? undefined : { Rule: rules.map(ruleConfiguration) };
}

type Loose = Record<string, unknown> | undefined;
const first = (v: unknown): Loose => (Array.isArray(v) ? (v[0] as Loose) : (v as Loose));
const num = (v: unknown): number | undefined => (v === undefined || v === null || v === "" ? undefined : Number(v));

/**
 * Reads the rules back from what getBucketLifecycle returns (XML parsed loosely: values may be strings,
 * single rules may not be lists). Every rule is read, so an added or removed rule shows as a change, and so
 * does any edit of what decides expiry here (ID, status, days, size filter, prefix). Other elements (tags,
 * transitions) are not compared. In gc mode we declare no rules: any rule added by hand reads as a change.
 */
export function readExpiryRules(config: unknown): ExpiryRule[] {
  const root = (config ?? {}) as Record<string, unknown>;
  const rules = root.Rule === undefined ? [] : Array.isArray(root.Rule) ? root.Rule : [root.Rule];
  return rules.map((r) => {
    const rule = r as Record<string, unknown>;
    const filter = first(rule.Filter) ?? {};
    const and = first(filter.And) ?? {};
    const size = num(filter.ObjectSizeGreaterThan) ?? num(and.ObjectSizeGreaterThan) ?? 0;
    const prefix = String(filter.Prefix ?? and.Prefix ?? rule.Prefix ?? "");
    const expiration = first(rule.Expiration) ?? {};
    return {
      id: String(rule.ID ?? ""),
      enabled: rule.Status === "Enabled",
      days: num(expiration.Days) ?? 0,
      keepUpToBytes: size,
      prefix,
    };
  });
}

/** A stable text for comparing the wanted rule list with the live one. */
export function canonicalRules(rules: ExpiryRule[]): string {
  return JSON.stringify([...rules].sort((a, b) => a.id.localeCompare(b.id)));
}

/** Would this rule set ever expire an object of `size` bytes (ignoring age)? */
export function wouldExpire(rules: ExpiryRule[], key: string, size: number): boolean {
  return rules.some((r) => r.enabled && r.days > 0 && key.startsWith(r.prefix) && size > r.keepUpToBytes);
}
