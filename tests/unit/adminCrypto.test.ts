// MinIO's encrypted admin bodies: round trips over the fragment boundaries, failures, and byte-for-byte
// agreement with vectors made by MinIO's own Go code (madmin-go + sio-go, see fixtures/madminVectors.ts).
import * as crypto from "crypto";
import { decryptAdminBody, encryptAdminBody } from "../../lib/minio/adminCrypto";
import { MADMIN_VECTORS, VECTOR_NONCE, VECTOR_PASSWORD, VECTOR_SALT, vectorPattern } from "./fixtures/madminVectors";

const PASSWORD = "unit-test-admin-password";
const HEADER = 32 + 1 + 8;
const FRAGMENT = 16384;
const TAG = 16;

/** The first offset where two buffers differ, or undefined: keeps a failure message short. */
function firstDifference(a: Buffer, b: Buffer): number | undefined {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return undefined;
}

describe("round trip", () => {
  test.each([0, 1, 16383, FRAGMENT, FRAGMENT + 1, 2 * FRAGMENT, 40000])("%i bytes", (size) => {
    const plaintext = crypto.randomBytes(size);
    const body = encryptAdminBody(PASSWORD, plaintext);
    const fragments = Math.max(1, Math.ceil(size / FRAGMENT));
    expect(body.length).toBe(HEADER + size + fragments * TAG);
    expect(body[32]).toBe(0x02);
    expect(decryptAdminBody(PASSWORD, body).equals(plaintext)).toBe(true);
  });

  test("takes text as UTF-8", () => {
    const text = '{"secretKey":"pässwörd","status":"enabled"}';
    expect(decryptAdminBody(PASSWORD, encryptAdminBody(PASSWORD, text)).toString("utf8")).toBe(text);
  });

  test("uses a fresh salt and nonce each time", () => {
    const a = encryptAdminBody(PASSWORD, "same");
    const b = encryptAdminBody(PASSWORD, "same");
    expect(a.subarray(0, 32).equals(b.subarray(0, 32))).toBe(false);
    expect(a.subarray(33, HEADER).equals(b.subarray(33, HEADER))).toBe(false);
  });
});

describe("failures", () => {
  const plaintext = crypto.randomBytes(40000);
  const body = encryptAdminBody(PASSWORD, plaintext);

  test("a wrong password does not decrypt", () => {
    expect(() => decryptAdminBody("wrong-password", body)).toThrow();
  });

  test("a changed byte in any fragment does not decrypt", () => {
    for (const offset of [HEADER + 5, HEADER + FRAGMENT + TAG + 5, body.length - 1, 3 /* salt */, 35 /* nonce */]) {
      const changed = Buffer.from(body);
      changed[offset] ^= 0x01;
      expect(() => decryptAdminBody(PASSWORD, changed)).toThrow();
    }
  });

  test("a stream cut at a fragment boundary does not decrypt (the final flag is authenticated)", () => {
    const cut = body.subarray(0, HEADER + 2 * (FRAGMENT + TAG));
    expect(() => decryptAdminBody(PASSWORD, cut)).toThrow();
  });

  test("swapped fragments do not decrypt (the sequence number is in the nonce)", () => {
    const first = body.subarray(HEADER, HEADER + FRAGMENT + TAG);
    const second = body.subarray(HEADER + FRAGMENT + TAG, HEADER + 2 * (FRAGMENT + TAG));
    const swapped = Buffer.concat([body.subarray(0, HEADER), second, first, body.subarray(HEADER + 2 * (FRAGMENT + TAG))]);
    expect(() => decryptAdminBody(PASSWORD, swapped)).toThrow();
  });

  test("a too short body and other cipher ids are refused with a clear error", () => {
    expect(() => decryptAdminBody(PASSWORD, body.subarray(0, HEADER + 3))).toThrow(/too short/);
    const argon = Buffer.from(body);
    argon[32] = 0x00;
    expect(() => decryptAdminBody(PASSWORD, argon)).toThrow(/cipher id 0/);
  });

  test("a salt or nonce of the wrong size is refused", () => {
    expect(() => encryptAdminBody(PASSWORD, "x", { salt: Buffer.alloc(31), nonce: Buffer.alloc(8) })).toThrow(/32-byte salt/);
    expect(() => encryptAdminBody(PASSWORD, "x", { salt: Buffer.alloc(32), nonce: Buffer.alloc(12) })).toThrow(/8-byte nonce/);
  });
});

describe("MinIO's own vectors (madmin-go v3.0.109, sio-go v0.3.1, id 0x02)", () => {
  test("the plaintext formula is the one the vectors were made with", () => {
    expect(vectorPattern(4).toString("hex")).toBe("07264564");
  });

  test.each(MADMIN_VECTORS.map((v) => [v.name, v] as const))("%s: encryption matches byte for byte", (_name, v) => {
    const ours = encryptAdminBody(VECTOR_PASSWORD, v.plaintext, { salt: VECTOR_SALT, nonce: VECTOR_NONCE });
    const theirs = Buffer.from(v.ciphertextHex, "hex");
    expect(ours.length).toBe(theirs.length);
    expect(firstDifference(ours, theirs)).toBeUndefined();
  });

  test.each(MADMIN_VECTORS.map((v) => [v.name, v] as const))("%s: decrypts to the plaintext", (_name, v) => {
    const plaintext = decryptAdminBody(VECTOR_PASSWORD, Buffer.from(v.ciphertextHex, "hex"));
    expect(firstDifference(plaintext, v.plaintext)).toBeUndefined();
  });

  test("a vector does not decrypt with another password", () => {
    expect(() => decryptAdminBody(PASSWORD, Buffer.from(MADMIN_VECTORS[1].ciphertextHex, "hex"))).toThrow();
  });
});
