// Nix signing keys in Nix's own text formats (what `nix key generate-secret` writes):
//   secret: NAME:base64(seed32 ‖ pub32)   public: NAME:base64(pub32)
import * as crypto from "crypto";

/** A Nix ed25519 signing keypair as the two strings Nix reads. */
export interface NixKeypair {
  /** `NAME:base64(seed ‖ public key)`, the content of a `secret-key-files` entry. */
  secretKey: string;
  /** `NAME:base64(public key)`, an entry of `trusted-public-keys`. */
  publicKey: string;
}

// The DER prefixes node uses for raw ed25519 keys (RFC 8410); the raw 32 bytes follow them. Kept as text:
// this code is serialized into the dynamic provider, and a captured Buffer does not survive that.
const PKCS8_ED25519_PREFIX = "302e020100300506032b657004220420";
const SPKI_ED25519_PREFIX = "302a300506032b6570032100";
const der = (prefixHex: string, raw: Buffer) => Buffer.concat([Buffer.from(prefixHex, "hex"), raw]);

/** Nix key names: no ':' (it separates name and key) and no white space (Nix splits key lists on it). */
export function checkKeyName(name: string): string | undefined {
  if (name.length === 0) return "must not be empty";
  if (/[:\s]/.test(name)) return "must not contain ':' or white space";
  return undefined;
}

function requireKeyName(name: string): void {
  const problem = checkKeyName(name);
  if (problem) throw new Error(`key name '${name}' ${problem}`);
}

/** Builds the keypair strings from a 32-byte ed25519 seed. */
export function keypairFromSeed(name: string, seed: Buffer): NixKeypair {
  requireKeyName(name);
  if (seed.length !== 32) throw new Error(`an ed25519 seed is 32 bytes, got ${seed.length}`);
  const privateKey = crypto.createPrivateKey({
    key: der(PKCS8_ED25519_PREFIX, seed),
    format: "der",
    type: "pkcs8",
  });
  const pub = crypto.createPublicKey(privateKey).export({ format: "der", type: "spki" }).subarray(-32);
  return {
    secretKey: `${name}:${Buffer.concat([seed, pub]).toString("base64")}`,
    publicKey: `${name}:${pub.toString("base64")}`,
  };
}

/** Generates a new keypair from node's CSPRNG. */
export function generateKeypair(name: string): NixKeypair {
  const { privateKey } = crypto.generateKeyPairSync("ed25519");
  const seed = privateKey.export({ format: "der", type: "pkcs8" }).subarray(-32);
  return keypairFromSeed(name, seed);
}

/** Splits `NAME:base64` and checks the decoded length. */
function parseKey(text: string, bytes: number, what: string): { name: string; key: Buffer } {
  const colon = text.indexOf(":");
  if (colon <= 0) throw new Error(`${what} must look like NAME:BASE64`);
  const key = Buffer.from(text.slice(colon + 1), "base64");
  if (key.length !== bytes) throw new Error(`${what} must hold ${bytes} bytes, got ${key.length}`);
  return { name: text.slice(0, colon), key };
}

/** A Nix secret key read from text, or why it is not one (never quoting the key). */
export type ReadSecretKey = { ok: true; name: string; secretKey: string; publicKey: string } | { ok: false; name?: string; problem: string };

/**
 * Reads a Nix secret key (`NAME:base64(seed ‖ pub)`) given by a user: tells a public key given instead, a
 * wrong length, and a public half that does not belong to the seed (a key file edited or pasted together).
 */
export function readSecretKey(text: string): ReadSecretKey {
  const colon = text.indexOf(":");
  if (colon <= 0) return { ok: false, problem: "is not a Nix secret key (no NAME: before the key)" };
  const name = text.slice(0, colon);
  const nameProblem = checkKeyName(name);
  if (nameProblem) return { ok: false, problem: `is not a Nix secret key (its name ${nameProblem})` };
  const body = text.slice(colon + 1);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) return { ok: false, name, problem: "is not a Nix secret key (the part after NAME: is not base64)" };
  const key = Buffer.from(body, "base64");
  if (key.length === 32) {
    return { ok: false, name, problem: "is a public key (the content of public.key), not a secret key (the content of secret.key)" };
  }
  if (key.length !== 64) return { ok: false, name, problem: `is not a Nix secret key (it holds ${key.length} bytes, not 64)` };
  const pair = keypairFromSeed(name, key.subarray(0, 32));
  if (pair.secretKey !== `${name}:${body}`) {
    return { ok: false, name, problem: "is not a Nix secret key: its public half does not belong to its seed" };
  }
  return { ok: true, name, secretKey: pair.secretKey, publicKey: pair.publicKey };
}

/** The public key that belongs to a Nix secret key (what `nix key convert-secret-to-public` prints). */
export function publicKeyOf(secretKey: string): string {
  const { name, key } = parseKey(secretKey, 64, "a Nix secret key");
  return keypairFromSeed(name, key.subarray(0, 32)).publicKey;
}

/** Signs a message as Nix does for a narinfo fingerprint: `NAME:base64(signature)`. */
export function signDetached(secretKey: string, message: string): string {
  return detachedSigner(secretKey)(message);
}

/** Verifies a `NAME:base64(signature)` against a public key in Nix's format. */
export function verifyDetached(publicKey: string, message: string, signature: string): boolean {
  return detachedVerifier(publicKey)(message, signature);
}

/** signDetached for one secret key, its key object made once (for signing many messages). */
export function detachedSigner(secretKey: string): (message: string) => string {
  const { name, key } = parseKey(secretKey, 64, "a Nix secret key");
  const privateKey = crypto.createPrivateKey({
    key: der(PKCS8_ED25519_PREFIX, key.subarray(0, 32)),
    format: "der",
    type: "pkcs8",
  });
  return (message) => `${name}:${crypto.sign(null, Buffer.from(message, "utf8"), privateKey).toString("base64")}`;
}

/** verifyDetached for one public key, its key object made once (for checking many signatures). */
export function detachedVerifier(publicKey: string): (message: string, signature: string) => boolean {
  const pub = parseKey(publicKey, 32, "a Nix public key");
  const key = crypto.createPublicKey({ key: der(SPKI_ED25519_PREFIX, pub.key), format: "der", type: "spki" });
  return (message, signature) => {
    const sig = parseKey(signature, 64, "a Nix signature");
    if (pub.name !== sig.name) return false;
    return crypto.verify(null, Buffer.from(message, "utf8"), key, sig.key);
  };
}
