// The key ring's decisions (lib/signing/keyRing.ts): which key changes go ahead, and that kept keys stay byte for byte.
import { importRefusal, keyChangeRefusal, nextRing, ringChanges, ringOf } from "../../lib/signing/keyRing";
import { generateKeypair, keypairFromSeed, publicKeyOf } from "../../lib/signing/signingKey";

const one = generateKeypair("s3.homelab.local-1");
const legacy = { keyName: "s3.homelab.local-1", publicKey: one.publicKey, secretKey: one.secretKey };

describe("ringOf reads the state of this version and of the single-key one", () => {
  test("a single-key state becomes a ring of that key", () => {
    expect(ringOf(legacy)).toEqual({ keyNames: ["s3.homelab.local-1"], publicKeys: [one.publicKey], secretKeys: [one.secretKey], retiredKeyNames: [], importedKeyNames: [] });
  });
  test("nothing yet: an empty ring", () => {
    expect(ringOf({})).toEqual({ keyNames: [], publicKeys: [], secretKeys: [], retiredKeyNames: [], importedKeyNames: [] });
  });
});

describe("nextRing", () => {
  test("rotation step 1: the new key is made, the old one kept byte for byte behind it", () => {
    const ring = nextRing(ringOf(legacy), ["s3.homelab.local-2", "s3.homelab.local-1"]);
    expect(ring.keyNames).toEqual(["s3.homelab.local-2", "s3.homelab.local-1"]);
    expect(ring.publicKeys[1]).toBe(one.publicKey);
    expect(ring.secretKeys[1]).toBe(one.secretKey);
    expect(ring.publicKeys[0]).toMatch(/^s3\.homelab\.local-2:[A-Za-z0-9+/]{43}=$/);
    expect(publicKeyOf(ring.secretKeys[0])).toBe(ring.publicKeys[0]);
    expect(ring.retiredKeyNames).toEqual([]);
  });
  test("retire: the old key leaves the ring and its name is remembered", () => {
    const two = nextRing(ringOf(legacy), ["s3.homelab.local-2", "s3.homelab.local-1"]);
    const retired = nextRing(two, ["s3.homelab.local-2"]);
    expect(retired.keyNames).toEqual(["s3.homelab.local-2"]);
    expect(retired.secretKeys).toEqual([two.secretKeys[0]]);
    expect(retired.retiredKeyNames).toEqual(["s3.homelab.local-1"]);
  });
  test("keys are made only for new names (the generator is called once per new name)", () => {
    const made: string[] = [];
    const gen = (name: string) => {
      made.push(name);
      return keypairFromSeed(name, Buffer.alloc(32, made.length));
    };
    const first = nextRing(ringOf({}), ["a-1"], gen);
    nextRing(first, ["a-2", "a-1"], gen);
    expect(made).toEqual(["a-1", "a-2"]);
  });
});

describe("keyChangeRefusal", () => {
  const ring = ringOf(legacy);
  test("adding a new active key while keeping the old one: allowed", () => {
    expect(keyChangeRefusal(ring, ["s3.homelab.local-2", "s3.homelab.local-1"], false)).toBeUndefined();
  });
  test("the same key: allowed; a first key: allowed", () => {
    expect(keyChangeRefusal(ring, ["s3.homelab.local-1"], false)).toBeUndefined();
    expect(keyChangeRefusal(ringOf({}), ["x-1"], false)).toBeUndefined();
  });
  test("the one-step rotation is refused, with the safe two-step commands and the opt-in", () => {
    const refusal = keyChangeRefusal(ring, ["s3.homelab.local-2"], false);
    expect(refusal).toContain("nix-cache:keyName changed from 's3.homelab.local-1' to 's3.homelab.local-2'");
    expect(refusal).toContain("nothing was changed");
    expect(refusal).toContain("pulumi config set --path 'nix-cache:previousKeyNames[0]' s3.homelab.local-1 && pulumi up && npm run resign");
    expect(refusal).toContain("pulumi config set nix-cache:allowKeyDrop true");
    // With previous keys already listed, the command appends after them.
    const two = nextRing(ring, ["s3.homelab.local-2", "s3.homelab.local-1"]);
    expect(keyChangeRefusal(two, ["s3.homelab.local-3", "s3.homelab.local-1"], false)).toContain("'nix-cache:previousKeyNames[1]' s3.homelab.local-2");
  });
  test("a deliberate drop (allowKeyDrop) goes ahead", () => {
    expect(keyChangeRefusal(ring, ["s3.homelab.local-2"], true)).toBeUndefined();
  });
  test("retiring a previous key is not a drop", () => {
    const two = nextRing(ring, ["s3.homelab.local-2", "s3.homelab.local-1"]);
    expect(keyChangeRefusal(two, ["s3.homelab.local-2"], false)).toBeUndefined();
  });
  test("the name of a retired key is never used again, even with allowKeyDrop", () => {
    const retired = nextRing(nextRing(ring, ["s3.homelab.local-2", "s3.homelab.local-1"]), ["s3.homelab.local-2"]);
    for (const allow of [false, true]) {
      const refusal = keyChangeRefusal(retired, ["s3.homelab.local-1", "s3.homelab.local-2"], allow);
      expect(refusal).toContain("'s3.homelab.local-1' belonged to a key this stack retired");
      expect(refusal).toContain("Pick a name never used before");
    }
  });
});

describe("imported keys (nix-cache:importKeys): the chapter's key kept, never swapped silently", () => {
  const chapter = generateKeypair("s3.homelab.local-1");
  const empty = ringOf({});

  test("a first up uses the imported key for its name and generates the others", () => {
    const ring = nextRing(empty, ["s3.homelab.local-2", "s3.homelab.local-1"], undefined, [chapter.secretKey]);
    expect(ring.secretKeys[1]).toBe(chapter.secretKey);
    expect(ring.publicKeys[1]).toBe(chapter.publicKey);
    expect(ring.secretKeys[0]).not.toBe(chapter.secretKey);
    expect(ring.importedKeyNames).toEqual(["s3.homelab.local-1"]);
    expect(importRefusal(empty, ["s3.homelab.local-1"], [chapter.secretKey], false)).toBeUndefined();
  });

  test("once in the ring, the same import changes nothing; a rotation keeps it byte for byte", () => {
    const ring = nextRing(empty, ["s3.homelab.local-1"], undefined, [chapter.secretKey]);
    expect(ringChanges(ring, ["s3.homelab.local-1"], [chapter.secretKey])).toBe(false);
    const rotated = nextRing(ring, ["s3.homelab.local-2", "s3.homelab.local-1"], undefined, [chapter.secretKey]);
    expect(ringChanges(ring, ["s3.homelab.local-2", "s3.homelab.local-1"], [chapter.secretKey])).toBe(true);
    expect(rotated.secretKeys[1]).toBe(chapter.secretKey);
    // Retiring it: the name and its import leave together, which is no refusal.
    expect(importRefusal(rotated, ["s3.homelab.local-2"], [], false)).toBeUndefined();
    expect(nextRing(rotated, ["s3.homelab.local-2"]).retiredKeyNames).toEqual(["s3.homelab.local-1"]);
  });

  test("an import under a name the ring holds with another key is refused, unless allowKeyDrop", () => {
    const generated = nextRing(empty, ["s3.homelab.local-1"]);
    expect(ringChanges(generated, ["s3.homelab.local-1"], [chapter.secretKey])).toBe(true);
    const refusal = importRefusal(generated, ["s3.homelab.local-1"], [chapter.secretKey], false);
    expect(refusal).toMatch(/^nix-cache:importKeys holds a key named 's3.homelab.local-1' that is not the key this stack already has under that name; nothing was changed\./);
    expect(refusal).toContain("pulumi config set nix-cache:allowKeyDrop true");
    expect(refusal).not.toContain(chapter.secretKey.split(":")[1]);
    expect(importRefusal(generated, ["s3.homelab.local-1"], [chapter.secretKey], true)).toBeUndefined();
    expect(nextRing(generated, ["s3.homelab.local-1"], undefined, [chapter.secretKey]).secretKeys).toEqual([chapter.secretKey]);
  });

  test("dropping the import of a name still in use is refused: it would swap in a generated key", () => {
    const ring = nextRing(empty, ["s3.homelab.local-1"], undefined, [chapter.secretKey]);
    expect(ringChanges(ring, ["s3.homelab.local-1"], [])).toBe(true);
    const refusal = importRefusal(ring, ["s3.homelab.local-1"], [], false);
    expect(refusal).toMatch(/^nix-cache:importKeys no longer holds 's3.homelab.local-1', the key this stack imported, while nix-cache:keyName still names it; nothing was changed\./);
    expect(refusal).toContain(`pulumi config set --secret --path 'nix-cache:importKeys[0]'`);
    // Moved to previousKeyNames by a rotation, the same holds.
    expect(importRefusal(nextRing(ring, ["s3.homelab.local-2", "s3.homelab.local-1"], undefined, [chapter.secretKey]), ["s3.homelab.local-2", "s3.homelab.local-1"], [], false)).toContain(
      "while nix-cache:previousKeyNames still names it",
    );
    expect(importRefusal(ring, ["s3.homelab.local-1"], [], true)).toBeUndefined();
  });
});
