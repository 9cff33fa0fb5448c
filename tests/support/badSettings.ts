// Bad values of the stack's settings, each with words of "what is allowed" that its one error must carry:
// shared by the unit test that checks every case's message (tests/unit/badSettings.test.ts) and the
// integration test that runs a few of them through the engine (tests/integration/badInput.test.ts).
import { generateKeyPairSync } from "crypto";

/** A bad value, and what the one error must say besides the setting's name. */
export interface BadCase {
  setting: string;
  value: string;
  /** Words of "what is allowed" the message must carry. */
  allowed: RegExp;
}

// Settings Pulumi.yaml types (integer, boolean) are checked by Pulumi before our program runs: its message
// names the key and the type. Everything else is checked by lib/config/settings.ts: "nix-cache:KEY is VALUE:
// allowed is ...".
export const OURS = (what: string) => new RegExp(`allowed is .*${what}`);
export const TYPED = (type: string) => new RegExp(`must be of type '${type}'`);
// A private key pasted into nix-cache:caCertificate by mistake: refused like any bad value, and never shown.
export const PASTED_KEY = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "pem", type: "pkcs8" }).toString();
export const BAD_SETTINGS: BadCase[] = [
  { setting: "bucket", value: "NixCache", allowed: OURS("lowercase letters") },
  { setting: "bucket", value: "nix_cache", allowed: OURS("lowercase letters, digits, '\\.' and '-'") },
  { setting: "bucket", value: "nc", allowed: OURS("3 to 63 characters") },
  { setting: "bucket", value: "n".repeat(64), allowed: OURS("3 to 63 characters") },
  { setting: "bucket", value: "192.168.1.10", allowed: OURS("not an IP address") },
  { setting: "bucket", value: "", allowed: OURS("3 to 63 characters") },
  { setting: "expireDays", value: "0", allowed: OURS("a whole number ≥ 1") },
  { setting: "expireDays", value: "-7", allowed: OURS("a whole number ≥ 1") },
  { setting: "expireDays", value: "1.5", allowed: TYPED("integer") },
  { setting: "expireDays", value: "seven", allowed: TYPED("integer") },
  { setting: "retention", value: "forever", allowed: OURS('"gc" or "lifecycle"') },
  { setting: "retention", value: "GC", allowed: OURS('"gc" or "lifecycle"') },
  { setting: "retainDays", value: "0", allowed: OURS("a whole number ≥ 1") },
  { setting: "retainDays", value: "1.5", allowed: TYPED("integer") },
  { setting: "gcUser", value: "gc", allowed: OURS("3 to 20 characters") },
  { setting: "gcUser", value: "nix gc", allowed: OURS("letters, digits, '\\.', '_' and '-'") },
  { setting: "gcUser", value: "nixbuilder", allowed: OURS("a user name other than nix-cache:builderUser") },
  { setting: "priority", value: "-1", allowed: OURS("a whole number ≥ 0") },
  { setting: "priority", value: "2.5", allowed: TYPED("integer") },
  { setting: "priority", value: "high", allowed: TYPED("integer") },
  { setting: "keyName", value: "", allowed: OURS("must not be empty") },
  { setting: "keyName", value: "cache:1", allowed: OURS("must not contain ':' or white space") },
  { setting: "keyName", value: "cache 1", allowed: OURS("must not contain ':' or white space") },
  { setting: "keyName", value: "cache\t1", allowed: OURS("must not contain ':' or white space") },
  { setting: "builderUser", value: "ab", allowed: OURS("3 to 20 characters") },
  { setting: "builderUser", value: "nix builder", allowed: OURS("letters, digits, '\\.', '_' and '-'") },
  { setting: "builderUser", value: "nix=builder", allowed: OURS("letters, digits, '\\.', '_' and '-'") },
  { setting: "endpoint", value: "ftp://127.0.0.1:9000", allowed: OURS("an http:// or https:// URL") },
  { setting: "endpoint", value: "127.0.0.1:9000", allowed: OURS("an http:// or https:// URL") },
  { setting: "endpoint", value: "not a url", allowed: OURS("an http:// or https:// URL") },
  { setting: "publicUrl", value: "ftp://cache.homelab.local", allowed: OURS("an http:// or https:// URL") },
  { setting: "publicUrl", value: "cache.homelab.local", allowed: OURS("an http:// or https:// URL") },
  { setting: "anonymousList", value: "yes", allowed: TYPED("boolean") },
  { setting: "anonymousList", value: "1", allowed: TYPED("boolean") },
  { setting: "caCertificate", value: "/etc/ssl/homelab-ca.pem", allowed: OURS("one or more PEM certificates") },
  { setting: "caCertificate", value: PASTED_KEY, allowed: OURS("one or more PEM certificates") },
];
