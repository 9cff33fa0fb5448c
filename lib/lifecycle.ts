// The cache's expiry rule. The chapter's whole-bucket rule also expires `nix-cache-info`, which silently
// turns the cache off for every client. Every narinfo and NAR is larger than nix-cache-info (a narinfo alone
// holds a full store path, two hashes and a signature), so a size filter keeps it: only objects strictly
// larger than nix-cache-info expire.

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

/** The configuration in the shape the MinIO SDK's setBucketLifecycle takes. */
export function lifecycleConfiguration(rule: ExpiryRule) {
  return {
    Rule: [
      {
        ID: rule.id,
        Status: rule.enabled ? "Enabled" : "Disabled",
        Filter: { ObjectSizeGreaterThan: rule.keepUpToBytes },
        Expiration: { Days: rule.days },
      },
    ],
  };
}

type Loose = Record<string, unknown> | undefined;
const first = (v: unknown): Loose => (Array.isArray(v) ? (v[0] as Loose) : (v as Loose));
const num = (v: unknown): number | undefined => (v === undefined || v === null || v === "" ? undefined : Number(v));

/**
 * Reads the rules back from what getBucketLifecycle returns (XML parsed loosely: values may be strings,
 * single rules may not be lists). Every rule is read, so an added or removed rule shows as a change, and so
 * does any edit of what decides expiry here (ID, status, days, size filter, prefix). Other elements (tags,
 * transitions) are not compared.
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
