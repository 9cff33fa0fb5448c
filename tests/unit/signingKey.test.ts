// Nix signing keys: our conversion against RFC 8032's test 1, and against the real `nix key` commands.
import {
  checkKeyName,
  generateKeypair,
  keypairFromSeed,
  publicKeyOf,
  signDetached,
  verifyDetached,
} from "../../lib/signing/signingKey";
import { nixOk, nixSandbox } from "./support/nix";

// RFC 8032 section 7.1, TEST 1 (the empty message).
const RFC_SEED = Buffer.from("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "hex");
const RFC_PUBLIC = Buffer.from("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "hex");
const RFC_SIGNATURE = Buffer.from(
  "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  "hex",
);
const NAME = "cache.example.org-1";

describe("keypairFromSeed (RFC 8032 test 1)", () => {
  const pair = keypairFromSeed(NAME, RFC_SEED);

  test("secret key is NAME:base64(seed ‖ public key)", () => {
    expect(pair.secretKey).toBe(`${NAME}:${Buffer.concat([RFC_SEED, RFC_PUBLIC]).toString("base64")}`);
  });

  test("public key is NAME:base64(public key)", () => {
    expect(pair.publicKey).toBe(`${NAME}:${RFC_PUBLIC.toString("base64")}`);
  });

  test("publicKeyOf recovers the public key from the secret key", () => {
    expect(publicKeyOf(pair.secretKey)).toBe(`${NAME}:${RFC_PUBLIC.toString("base64")}`);
  });

  test("rejects a seed that is not 32 bytes and a bad name", () => {
    expect(() => keypairFromSeed(NAME, RFC_SEED.subarray(0, 31))).toThrow(/32 bytes, got 31/);
    expect(() => keypairFromSeed("a:b", RFC_SEED)).toThrow(/key name 'a:b'/);
  });
});

describe("signDetached / verifyDetached", () => {
  const pair = keypairFromSeed(NAME, RFC_SEED);
  const signature = `${NAME}:${RFC_SIGNATURE.toString("base64")}`;

  test("signing the empty message gives RFC 8032's signature", () => {
    expect(signDetached(pair.secretKey, "")).toBe(signature);
  });

  test("the RFC signature verifies against the RFC public key", () => {
    expect(verifyDetached(pair.publicKey, "", signature)).toBe(true);
  });

  test("a signature does not verify for another message, key name or a changed byte", () => {
    expect(verifyDetached(pair.publicKey, "x", signature)).toBe(false);
    const renamed = `other-1:${RFC_SIGNATURE.toString("base64")}`;
    expect(verifyDetached(`other-1:${RFC_PUBLIC.toString("base64")}`, "", renamed)).toBe(true);
    expect(verifyDetached(pair.publicKey, "", renamed)).toBe(false);
    const flipped = Buffer.from(RFC_SIGNATURE);
    flipped[10] ^= 0x01;
    expect(verifyDetached(pair.publicKey, "", `${NAME}:${flipped.toString("base64")}`)).toBe(false);
  });

  test("a narinfo-style fingerprint round-trips and other keys do not verify it", () => {
    const fingerprint =
      "1;/nix/store/0c6bfvhqrb4hp2ijbdy6wsqsll0fzgkq-hello-2.12.1;sha256:0yzhigwjl6bws649vcs2asa4lbs8hg93hyix187gc7s7a74w5h80;226488;";
    const sig = signDetached(pair.secretKey, fingerprint);
    expect(verifyDetached(pair.publicKey, fingerprint, sig)).toBe(true);
    expect(verifyDetached(generateKeypair(NAME).publicKey, fingerprint, sig)).toBe(false);
  });

  test("malformed keys and signatures are refused with a clear error", () => {
    expect(() => signDetached("no-colon", "")).toThrow(/NAME:BASE64/);
    expect(() => signDetached(`${NAME}:${RFC_SEED.toString("base64")}`, "")).toThrow(/64 bytes, got 32/);
    expect(() => publicKeyOf(`:${Buffer.concat([RFC_SEED, RFC_PUBLIC]).toString("base64")}`)).toThrow(/NAME:BASE64/);
    expect(() => verifyDetached(pair.publicKey, "", `${NAME}:AAAA`)).toThrow(/signature must hold 64 bytes/);
  });
});

describe("generateKeypair", () => {
  test("makes Nix-format keys that belong together", () => {
    const pair = generateKeypair(NAME);
    expect(pair.secretKey).toMatch(/^cache\.example\.org-1:[A-Za-z0-9+/]{86}==$/);
    expect(pair.publicKey).toMatch(/^cache\.example\.org-1:[A-Za-z0-9+/]{43}=$/);
    const secret = Buffer.from(pair.secretKey.split(":")[1], "base64");
    const pub = Buffer.from(pair.publicKey.split(":")[1], "base64");
    expect(secret.subarray(32).equals(pub)).toBe(true);
    expect(publicKeyOf(pair.secretKey)).toBe(pair.publicKey);
    const sig = signDetached(pair.secretKey, "message");
    expect(verifyDetached(pair.publicKey, "message", sig)).toBe(true);
  });

  test("makes a different key each time", () => {
    expect(generateKeypair(NAME).secretKey).not.toBe(generateKeypair(NAME).secretKey);
  });

  test("refuses a bad key name", () => {
    expect(() => generateKeypair("")).toThrow(/must not be empty/);
  });
});

describe("checkKeyName", () => {
  test.each(["", ":", "a:b", "a b", "a\tb", "a\nb", " lead", "trail "])("rejects %j", (name) => {
    expect(checkKeyName(name)).toEqual(expect.any(String));
  });

  test.each(["s3.homelab.local-1", "cache.example.org-12", "x"])("accepts %j", (name) => {
    expect(checkKeyName(name)).toBeUndefined();
  });
});

describe("agreement with the real Nix CLI (Nix 2.8)", () => {
  const nix = nixSandbox();
  afterAll(() => nix.cleanup());

  test("`nix key convert-secret-to-public` gives publicKeyOf's answer for our generated key", () => {
    const pair = generateKeypair(NAME);
    const fromNix = nixOk(nix, "nix", ["key", "convert-secret-to-public"], pair.secretKey).trim();
    expect(fromNix).toBe(pair.publicKey);
    expect(fromNix).toBe(publicKeyOf(pair.secretKey));
  });

  test("publicKeyOf reads a key made by `nix key generate-secret`", () => {
    const secret = nixOk(nix, "nix", ["key", "generate-secret", "--key-name", NAME]).trim();
    const fromNix = nixOk(nix, "nix", ["key", "convert-secret-to-public"], secret).trim();
    expect(fromNix.startsWith(`${NAME}:`)).toBe(true);
    expect(publicKeyOf(secret)).toBe(fromNix);
  });

  test("Nix accepts the RFC 8032 key in our format", () => {
    const pair = keypairFromSeed(NAME, RFC_SEED);
    expect(nixOk(nix, "nix", ["key", "convert-secret-to-public"], pair.secretKey).trim()).toBe(pair.publicKey);
  });
});
