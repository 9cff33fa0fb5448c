// The read proxy's per-host tokens (issue 21): the tokens file it reads holds one line per host, `HOST sha256:HEX`,
// and a client proves itself with HTTP Basic credentials `HOST:TOKEN` (Nix sends them from its netrc file). Tokens
// are 40 random characters (~238 bits), so a plain sha256 is enough: no one can brute-force such a token from its
// hash, and the file lets no one in if it leaks. Pure; node built-ins only (bundled into the proxy's host script).
import * as crypto from "crypto";

/** A host name as the settings allow it (lib/config/settings.ts checkHostName): DNS-like, lower case. */
const HOST_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const HASH = /^sha256:[0-9a-f]{64}$/;

export const isHostName = (name: string): boolean => name.length <= 253 && HOST_NAME.test(name);

/** "sha256:HEX" of the token's UTF-8 bytes. */
export function tokenHash(token: string): string {
  return `sha256:${crypto.createHash("sha256").update(token, "utf8").digest("hex")}`;
}

/** The tokens file: `HOST sha256:HEX\n` per host, sorted by host. Throws on a host name the file cannot hold. */
export function tokenHashesText(tokens: Readonly<Record<string, string>> | ReadonlyMap<string, string>): string {
  const entries = tokens instanceof Map ? [...tokens.entries()] : Object.entries(tokens as Readonly<Record<string, string>>);
  for (const [host, token] of entries) {
    if (!isHostName(host)) throw new Error(`tokens: '${host}' is not a host name (lower-case letters, digits, '-' and '.')`);
    if (token === "") throw new Error(`tokens: the token of ${host} is empty`);
  }
  return entries
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([host, token]) => `${host} ${tokenHash(token)}\n`)
    .join("");
}

/**
 * Reads a tokens file: host → "sha256:HEX". Blank lines and `#` comments are skipped; any other line that is not
 * `HOST sha256:HEX` (or names a host twice) throws, naming the line by number (never quoting a hash).
 */
export function parseTokenHashes(text: string): Map<string, string> {
  const hashes = new Map<string, string>();
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const fields = line.split(/\s+/);
    const where = `tokens file line ${i + 1}`;
    if (fields.length !== 2) throw new Error(`${where}: want 'HOST sha256:HEX', found ${fields.length} field(s)`);
    const [host, hash] = fields;
    if (!isHostName(host)) throw new Error(`${where}: '${host}' is not a host name (lower-case letters, digits, '-' and '.')`);
    if (!HASH.test(hash)) throw new Error(`${where}: the hash of ${host} is not sha256: and 64 lower-case hex digits`);
    if (hashes.has(host)) throw new Error(`${where}: ${host} appears a second time`);
    hashes.set(host, hash);
  });
  return hashes;
}

// Compared when the claimed host is unknown, so an unknown host costs the same time as a wrong token.
const NO_HASH = Buffer.alloc(32);

/**
 * The host an `Authorization: Basic …` header proves, or undefined (no header, another scheme, malformed, unknown
 * host, wrong token). The token's hash is compared in constant time; the host name is not secret.
 */
export function checkBasicAuth(headerValue: string | undefined, hashes: ReadonlyMap<string, string>): { host: string } | undefined {
  if (headerValue === undefined) return undefined;
  const m = /^basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(headerValue);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 1) return undefined;
  const host = decoded.slice(0, colon);
  const token = decoded.slice(colon + 1);
  const want = hashes.get(host);
  const wanted = want === undefined ? NO_HASH : Buffer.from(want.slice("sha256:".length), "hex");
  const given = crypto.createHash("sha256").update(token, "utf8").digest();
  const equal = wanted.length === given.length && crypto.timingSafeEqual(wanted, given);
  return equal && want !== undefined && token !== "" ? { host } : undefined;
}
