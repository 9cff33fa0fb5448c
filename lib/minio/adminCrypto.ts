// MinIO's encrypted admin bodies (madmin's format, read from madmin-go encrypt.go and sio-go):
//   salt(32) ‖ id(1) ‖ nonce(8) ‖ sio stream
// id 0x02: key = PBKDF2-HMAC-SHA256(password, salt, 8192, 32), AEAD = AES-256-GCM. The server accepts it
// whatever its own default, and it needs nothing but node's crypto.
import * as crypto from "crypto";

const SALT_LEN = 32;
const NONCE_LEN = 8;
const TAG_LEN = 16;
const FRAGMENT_LEN = 16384;
const PBKDF2_AES_GCM = 0x02;
const PBKDF2_ITERATIONS = 8192;

/** Randomness the encryption uses; tests pass fixed bytes to check known vectors. */
export interface AdminCryptoRandom {
  salt: Buffer;
  nonce: Buffer;
}

function deriveKey(password: string, salt: Buffer): Buffer {
  return crypto.pbkdf2Sync(Buffer.from(password, "utf8"), salt, PBKDF2_ITERATIONS, 32, "sha256");
}

function fragmentNonce(nonce8: Buffer, seq: number): Buffer {
  const n = Buffer.alloc(12);
  nonce8.copy(n, 0);
  n.writeUInt32LE(seq, 8);
  return n;
}

function seal(key: Buffer, nonce: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const c = crypto.createCipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_LEN });
  c.setAAD(aad);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

function open(key: Buffer, nonce: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  const d = crypto.createDecipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_LEN });
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - TAG_LEN));
  return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG_LEN)), d.final()]);
}

/** The 16-byte tag of sealing nothing under sequence number 0: part of every fragment's associated data. */
function headerTag(key: Buffer, nonce8: Buffer): Buffer {
  return seal(key, fragmentNonce(nonce8, 0), Buffer.alloc(0), Buffer.alloc(0));
}

function fragmentAad(final: boolean, tag0: Buffer): Buffer {
  return Buffer.concat([Buffer.from([final ? 0x80 : 0x00]), tag0]);
}

/** Encrypts an admin request body with the admin secret key, as `madmin.EncryptData` does. */
export function encryptAdminBody(password: string, plaintext: Buffer | string, random?: AdminCryptoRandom): Buffer {
  const data = Buffer.isBuffer(plaintext) ? plaintext : Buffer.from(plaintext, "utf8");
  const salt = random?.salt ?? crypto.randomBytes(SALT_LEN);
  const nonce8 = random?.nonce ?? crypto.randomBytes(NONCE_LEN);
  if (salt.length !== SALT_LEN || nonce8.length !== NONCE_LEN) {
    throw new Error(`admin body encryption needs a ${SALT_LEN}-byte salt and an ${NONCE_LEN}-byte nonce`);
  }
  const key = deriveKey(password, salt);
  const tag0 = headerTag(key, nonce8);
  const parts: Buffer[] = [salt, Buffer.from([PBKDF2_AES_GCM]), nonce8];
  // The last fragment (possibly empty) is always sealed as the final one.
  let offset = 0;
  let seq = 1;
  for (;;) {
    const end = Math.min(offset + FRAGMENT_LEN, data.length);
    const final = end >= data.length;
    parts.push(seal(key, fragmentNonce(nonce8, seq), data.subarray(offset, end), fragmentAad(final, tag0)));
    if (final) break;
    offset = end;
    seq += 1;
  }
  return Buffer.concat(parts);
}

/** Decrypts a body in the same format (MinIO encrypts some responses with the admin secret key). */
export function decryptAdminBody(password: string, body: Buffer): Buffer {
  const header = SALT_LEN + 1 + NONCE_LEN;
  if (body.length < header + TAG_LEN) throw new Error("encrypted admin body is too short");
  const salt = body.subarray(0, SALT_LEN);
  const id = body[SALT_LEN];
  if (id !== PBKDF2_AES_GCM) {
    throw new Error(`encrypted admin body uses cipher id ${id}; only 2 (PBKDF2 + AES-256-GCM) is supported`);
  }
  const nonce8 = body.subarray(SALT_LEN + 1, header);
  const key = deriveKey(password, salt);
  const tag0 = headerTag(key, nonce8);
  const stream = body.subarray(header);
  const sealedLen = FRAGMENT_LEN + TAG_LEN;
  const out: Buffer[] = [];
  let offset = 0;
  let seq = 1;
  for (;;) {
    const end = Math.min(offset + sealedLen, stream.length);
    const final = end >= stream.length;
    out.push(open(key, fragmentNonce(nonce8, seq), stream.subarray(offset, end), fragmentAad(final, tag0)));
    if (final) break;
    offset = end;
    seq += 1;
  }
  return Buffer.concat(out);
}
