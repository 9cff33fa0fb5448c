// Nix `.narinfo` files: parse (keeping every byte), the signed fingerprint, the Sig lines, and adding our
// signatures without touching anything else. Pure: no Pulumi runtime, no I/O. The rules come from Nix's source
// (../shared/facts/nix-signatures.md): nar-info.cc for the format, path-info.cc / store-api.cc for the
// fingerprint, local-keys.cc / crypto.cc for Sig lines.
//
// Strictness: a narinfo is only ever signed when it is exactly what Nix reads, so parse refuses (NarinfoError)
// whatever Nix would call corrupt or read differently from us: a line that is not `Name: value`, a blank line,
// a '\r', a missing final '\n' (Nix: corrupt; we do not repair it, because a file Nix never accepted is not ours to
// make valid), a second StorePath/NarHash/NarSize/References/CA line, a missing StorePath/URL/NarHash/NarSize,
// NarSize 0, and a NarHash that is not sha256 in one of the encodings Nix accepts.
import { checkKeyName, detachedSigner, detachedVerifier, publicKeyOf } from "./signingKey";

/** A narinfo that Nix would not read as we do: never signed, never rewritten. */
export class NarinfoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NarinfoError";
  }
}

export interface NarinfoField {
  name: string;
  value: string;
}

export interface Narinfo {
  /** The text exactly as read. */
  raw: string;
  /** Every line as `name: value`, in file order, unknown fields included. */
  fields: NarinfoField[];
  /** Full store path, e.g. /nix/store/<hash>-hello-2.10. */
  storePath: string;
  /** dirname(storePath), e.g. /nix/store. */
  storeDir: string;
  url: string;
  /** The NarHash value as written (any encoding Nix accepts). */
  narHash: string;
  narSize: number;
  /** Base names from References (file order); empty when the line is missing or empty. */
  references: string[];
  /** The Sig values (`name:base64`), file order, as written. */
  sigs: string[];
  ca?: string;
}

const NIX32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz";

/** Nix's base-32 (`nix32`) of bytes: its own alphabet and reversed bit order (libutil base-nix-32.cc). */
export function nix32(bytes: Uint8Array): string {
  if (bytes.length === 0) return "";
  let s = "";
  for (let n = Math.floor((bytes.length * 8 - 1) / 5); n >= 0; n--) {
    const bit = n * 5;
    const i = bit >> 3;
    const j = bit & 7;
    const c = (bytes[i] >> j) | (i + 1 < bytes.length ? (bytes[i + 1] << (8 - j)) & 0xff : 0);
    s += NIX32_ALPHABET[c & 31];
  }
  return s;
}

/** The bytes of a nix32 string of `size` bytes; undefined when it is not one (bad digit, length or overflow). */
export function nix32Decode(text: string, size: number): Buffer | undefined {
  if (text.length !== Math.ceil((size * 8) / 5)) return undefined;
  const out = Buffer.alloc(size);
  for (let n = 0; n < text.length; n++) {
    const digit = NIX32_ALPHABET.indexOf(text[text.length - n - 1]);
    if (digit < 0) return undefined;
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i] |= (digit << j) & 0xff;
    const carry = digit >> (8 - j);
    if (i < size - 1) out[i + 1] |= carry;
    else if (carry !== 0) return undefined;
  }
  return out;
}

/** Standard base64 with padding, decoded strictly (Node's decoder skips what it does not know). */
function strictBase64(text: string): Buffer | undefined {
  if (text.length === 0 || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, "base64");
  return bytes.toString("base64") === text ? bytes : undefined;
}

/**
 * The 32 bytes of a sha256 NarHash in any form Nix's Hash::parseAnyPrefixed takes: `sha256:` + base16 (64),
 * nix32 (52) or base64 (44), or SRI `sha256-<base64>`. Throws NarinfoError for anything else.
 */
export function decodeNarHash(value: string): Buffer {
  const bad = (why: string) => new NarinfoError(`NarHash '${value}' ${why}`);
  let bytes: Buffer | undefined;
  if (value.startsWith("sha256-")) {
    bytes = strictBase64(value.slice(7));
  } else if (value.startsWith("sha256:")) {
    const body = value.slice(7);
    if (body.length === 64) bytes = /^[0-9a-fA-F]{64}$/.test(body) ? Buffer.from(body, "hex") : undefined;
    else if (body.length === 52) bytes = nix32Decode(body, 32);
    else if (body.length === 44) bytes = strictBase64(body);
    else throw bad("is not a sha256 hash in base16 (64 digits), nix32 (52) or base64 (44)");
  } else {
    throw bad("is not a sha256 hash (sha256:… or sha256-…)");
  }
  if (!bytes || bytes.length !== 32) throw bad("does not decode to a 32-byte sha256 hash");
  return bytes;
}

/** NarHash as Nix signs it, whatever the encoding in the file: `sha256:<nix32>`. */
export function canonicalNarHash(value: string): string {
  return `sha256:${nix32(decodeNarHash(value))}`;
}

// A store path base name: 32 nix32 characters, '-', a name (Nix's allowed name characters).
const BASE_NAME = /^[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/;
/** Fields that a second line would make ambiguous (Nix: last one wins, or corrupt). */
const SINGLE = ["StorePath", "URL", "NarHash", "NarSize", "CA"];

/** Parses a narinfo as Nix does, keeping the text; throws NarinfoError for anything Nix would call corrupt. */
export function parseNarinfo(raw: string): Narinfo {
  const corrupt = (why: string) => new NarinfoError(`corrupt narinfo: ${why}`);
  if (raw.length === 0) throw corrupt("empty");
  if (raw.includes("\r")) throw corrupt("contains a carriage return ('\\r')");
  if (!raw.endsWith("\n")) throw corrupt("the last line does not end in a newline (Nix refuses such a file)");
  const lines = raw.slice(0, -1).split("\n");
  const fields: NarinfoField[] = [];
  lines.forEach((line, index) => {
    if (line === "") throw corrupt(`line ${index + 1} is blank`);
    const colon = line.indexOf(":");
    if (colon <= 0 || line[colon + 1] !== " ") throw corrupt(`line ${index + 1} is not 'Name: value'`);
    fields.push({ name: line.slice(0, colon), value: line.slice(colon + 2) });
  });
  const all = (name: string) => fields.filter((f) => f.name === name).map((f) => f.value);
  for (const name of SINGLE) if (all(name).length > 1) throw corrupt(`more than one ${name} line`);
  const refLines = all("References");
  if (refLines.filter((v) => v !== "").length > 1) throw corrupt("more than one non-empty References line");
  const one = (name: string): string => {
    const v = all(name)[0];
    if (v === undefined || v === "") throw corrupt(`no ${name}`);
    return v;
  };
  const storePath = one("StorePath");
  const slash = storePath.lastIndexOf("/");
  const storeDir = storePath.slice(0, slash);
  if (slash <= 0 || !storePath.startsWith("/") || !BASE_NAME.test(storePath.slice(slash + 1))) {
    throw corrupt(`StorePath '${storePath}' is not a full store path`);
  }
  const url = one("URL");
  const narHash = one("NarHash");
  decodeNarHash(narHash);
  const sizeText = one("NarSize");
  const narSize = Number(sizeText);
  if (!/^[0-9]+$/.test(sizeText) || !Number.isSafeInteger(narSize)) throw corrupt(`NarSize '${sizeText}' is not a number`);
  if (narSize === 0) throw corrupt("NarSize is 0");
  const references = (refLines.find((v) => v !== "") ?? "").split(" ").filter((r) => r !== "");
  for (const r of references) if (!BASE_NAME.test(r)) throw corrupt(`reference '${r}' is not a store path base name`);
  const ca = all("CA")[0];
  return { raw, fields, storePath, storeDir, url, narHash, narSize, references, sigs: all("Sig"), ...(ca !== undefined ? { ca } : {}) };
}

/** What the fingerprint is made of. */
export type FingerprintInput = Pick<Narinfo, "storePath" | "narHash" | "narSize" | "references">;

/**
 * The text Nix signs: `1;<store path>;sha256:<nix32>;<narSize>;<refs>`, refs being the References with the store
 * dir (dirname of StorePath) prefixed, sorted as strings, joined with ',' (empty: the text ends in ';').
 */
export function fingerprint(info: FingerprintInput): string {
  if (!(info.narSize > 0)) throw new NarinfoError(`cannot sign ${info.storePath}: NarSize must be > 0`);
  const storeDir = info.storePath.slice(0, info.storePath.lastIndexOf("/"));
  const refs = [...new Set(info.references.filter((r) => r !== ""))].map((r) => `${storeDir}/${r}`).sort();
  return `1;${info.storePath};${canonicalNarHash(info.narHash)};${info.narSize};${refs.join(",")}`;
}

/** The Sig values of a narinfo (`name:base64`), in file order. */
export function signatures(info: Pick<Narinfo, "sigs">): string[] {
  return [...info.sigs];
}

const keyName = (text: string) => text.slice(0, Math.max(0, text.indexOf(":")));

// Key objects made once per key: resign checks and signs thousands of narinfos with the same few keys, and
// making node's key object is about as slow as the check itself.
const verifiers = new Map<string, ReturnType<typeof detachedVerifier>>();
const signers = new Map<string, ReturnType<typeof detachedSigner>>();
function verifierFor(publicKey: string) {
  let v = verifiers.get(publicKey);
  if (!v) verifiers.set(publicKey, (v = detachedVerifier(publicKey)));
  return v;
}
function signerFor(secretKey: string) {
  let s = signers.get(secretKey);
  if (!s) signers.set(secretKey, (s = detachedSigner(secretKey)));
  return s;
}

/** A Sig value Nix (every version) reads: a valid key name, ':', strict base64 of exactly 64 bytes. */
export function isWellFormedSig(sig: string): boolean {
  const colon = sig.indexOf(":");
  if (colon <= 0 || checkKeyName(sig.slice(0, colon)) !== undefined) return false;
  return strictBase64(sig.slice(colon + 1))?.length === 64;
}

export interface SignatureCheck {
  /** Names of our keys with a Sig that verifies. */
  verified: string[];
  /** Names of our keys with a well-formed Sig that does not verify (content or signature changed). */
  invalid: string[];
  /** Names of our keys with a Sig Nix cannot decode (not 64 bytes of base64): Nix aborts its check on those. */
  corrupt: string[];
  /** Names of Sig lines under keys that are not ours (ignored by clients that do not trust them). */
  foreign: string[];
}

/** Which of `publicKeys` (Nix format `name:base64`) sign this narinfo, and what else its Sig lines are. */
export function verifySignatures(info: Narinfo, publicKeys: readonly string[]): SignatureCheck {
  const fp = fingerprint(info);
  const byName = new Map(publicKeys.map((k) => [keyName(k), k]));
  const result: SignatureCheck = { verified: [], invalid: [], corrupt: [], foreign: [] };
  const add = (list: string[], name: string) => {
    if (!list.includes(name)) list.push(name);
  };
  for (const sig of info.sigs) {
    const name = keyName(sig);
    const key = byName.get(name);
    if (key === undefined) {
      add(result.foreign, name || sig);
    } else if (!isWellFormedSig(sig)) {
      add(result.corrupt, name);
    } else if (verifierFor(key)(fp, sig)) {
      add(result.verified, name);
    } else {
      add(result.invalid, name);
    }
  }
  result.invalid = result.invalid.filter((n) => !result.verified.includes(n));
  return result;
}

/**
 * `raw` with one `Sig: <sig>\n` line per signature appended; every existing byte is kept. Refuses (throws) a
 * malformed signature, and a text that does not end in '\n' (Nix reads that as corrupt; we never repair it).
 */
export function appendSignatures(raw: string, sigs: readonly string[]): string {
  if (!raw.endsWith("\n")) throw new NarinfoError("corrupt narinfo: the last line does not end in a newline (Nix refuses such a file)");
  for (const sig of sigs) {
    if (!isWellFormedSig(sig)) throw new NarinfoError(`refusing to write a malformed Sig line ('${sig.slice(0, 40)}…' is not NAME:base64 of 64 bytes)`);
  }
  return raw + sigs.map((s) => `Sig: ${s}\n`).join("");
}

export interface SigningKey {
  /** `name:base64(seed ‖ public)`. */
  secretKey: string;
  /** `name:base64(public)`. */
  publicKey: string;
}

/** Key lists already checked (resign passes the same list for every narinfo: derive each public key once). */
const checkedKeyLists = new WeakSet<readonly SigningKey[]>();

/** Our keys must be usable together: at least one, each public key the half of its secret key, distinct names. */
function checkOurKeys(ourKeys: readonly SigningKey[]): void {
  if (checkedKeyLists.has(ourKeys)) return;
  if (ourKeys.length === 0) throw new Error("resignDecision needs at least one key");
  const names = new Set<string>();
  for (const k of ourKeys) {
    const name = keyName(k.publicKey);
    if (publicKeyOf(k.secretKey) !== k.publicKey) throw new Error(`key ${name}: the public key is not the public half of the secret key`);
    if (names.has(name)) throw new Error(`two of our keys are named ${name}: Nix would only trust one of them`);
    names.add(name);
  }
  checkedKeyLists.add(ourKeys);
}

export type ResignDecision =
  | { kind: "already-signed" }
  | { kind: "sign"; newText: string; added: string[] }
  | { kind: "refused"; reason: string };

/**
 * What to do with one narinfo, given our keys (active first). Signs only a narinfo whose existing signatures
 * prove it is ours: at least one Sig verifies under one of our keys, and no Sig under one of our names is
 * corrupt or fails to verify. Then it appends a Sig of each of our keys that has none (in the order of `ourKeys`).
 * Everything else (foreign, tampered, corrupt, unparsable) is refused with the reason; nothing is ever written
 * for it.
 */
export function resignDecision(raw: string, ourKeys: readonly SigningKey[]): ResignDecision {
  checkOurKeys(ourKeys);
  let info: Narinfo;
  let fp: string;
  let check: SignatureCheck;
  try {
    info = parseNarinfo(raw);
    fp = fingerprint(info);
    check = verifySignatures(info, ourKeys.map((k) => k.publicKey));
  } catch (err) {
    if (err instanceof NarinfoError) return { kind: "refused", reason: err.message };
    throw err;
  }
  if (check.corrupt.length > 0) {
    return { kind: "refused", reason: `corrupt signature under our key ${check.corrupt.join(", ")} (Nix rejects the whole narinfo)` };
  }
  if (check.invalid.length > 0) {
    return { kind: "refused", reason: `a signature under our key ${check.invalid.join(", ")} does not verify (tampered?)` };
  }
  if (check.verified.length === 0) {
    const seen = info.sigs.length === 0 ? "no signature at all" : `signed only by ${check.foreign.join(", ")}`;
    return { kind: "refused", reason: `not signed by any of our keys (${seen})` };
  }
  const missing = ourKeys.filter((k) => !check.verified.includes(keyName(k.publicKey)));
  if (missing.length === 0) return { kind: "already-signed" };
  const sigs = missing.map((k) => signerFor(k.secretKey)(fp));
  return { kind: "sign", newText: appendSignatures(raw, sigs), added: missing.map((k) => keyName(k.publicKey)) };
}
