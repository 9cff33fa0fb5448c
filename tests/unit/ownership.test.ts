// Ownership (lib/minio/ownership.ts): the markers a stack writes on what it makes, reading them back, and the
// refusals for a bucket, user or policy that is another stack's or nobody's.
import { EXPIRY_RULE_ID, expiryRule } from "../../lib/minio/lifecycle";
import {
  ADOPT_KEY,
  claimRefusal,
  ClaimArgs,
  bucketOwner,
  expiryRuleId,
  isOwnerId,
  markPolicy,
  mayDelete,
  newOwnerId,
  ownerOfPolicy,
  ownerOfRules,
  ownerOfTags,
  pickOwner,
  readAdopt,
  StackOwner,
  takenOverRefusal,
  withOwnerTags,
  withoutOwnerTags,
} from "../../lib/minio/ownership";
import { anonymousPolicy, builderPolicy, canonicalPolicy } from "../../lib/minio/policies";
import { parseSettings, SettingsError, SETTING_KEYS } from "../../lib/config/settings";

const A: StackOwner = { id: "0123456789abcdef0123456789abcdef", project: "nix-cache", stack: "homelab" };
const B: StackOwner = { id: "fedcba9876543210fedcba9876543210", project: "nix-cache", stack: "private" };

describe("the owner id", () => {
  test("is 32 random hex digits, a new one each time", () => {
    const ids = new Set(Array.from({ length: 50 }, () => newOwnerId()));
    expect(ids.size).toBe(50);
    for (const id of ids) expect(isOwnerId(id)).toBe(true);
  });
  test.each(["", "0123", "0123456789ABCDEF0123456789ABCDEF", `${A.id}0`, undefined, 42])("%j is not an owner id", (v) => {
    expect(isOwnerId(v)).toBe(false);
  });
});

describe("bucket tags", () => {
  test("carry the owner id and the project/stack, and keep the bucket's other tags", () => {
    const tags = withOwnerTags([{ Key: "team", Value: "infra" }], A);
    expect(tags).toEqual({ team: "infra", "nix-cache-owner": A.id, "nix-cache-stack": "nix-cache/homelab" });
    expect(ownerOfTags(Object.entries(tags).map(([Key, Value]) => ({ Key, Value })))).toEqual({ id: A.id, label: "nix-cache/homelab" });
  });
  test("another stack's marker is replaced, other tags stay", () => {
    const theirs = withOwnerTags({ team: "infra" }, B);
    expect(withOwnerTags(theirs, A)).toEqual({ team: "infra", "nix-cache-owner": A.id, "nix-cache-stack": "nix-cache/homelab" });
    expect(withoutOwnerTags(theirs)).toEqual({ team: "infra" });
  });
  test("no tags, other tags, or a malformed id: unmarked", () => {
    expect(ownerOfTags([])).toBeUndefined();
    expect(ownerOfTags(undefined)).toBeUndefined();
    expect(ownerOfTags({ team: "infra" })).toBeUndefined();
    expect(ownerOfTags({ "nix-cache-owner": "mine" })).toBeUndefined();
  });
  test("the name is optional", () => {
    expect(ownerOfTags({ "nix-cache-owner": A.id })).toEqual({ id: A.id, label: undefined });
  });
});

describe("policy markers", () => {
  test("each statement's Sid carries the id, the Id names the stack; what the policy grants is unchanged", () => {
    const doc = markPolicy(builderPolicy("nix-cache"), A, ["Bucket", "Objects"]);
    expect(doc.Id).toBe("nix-cache nix-cache/homelab");
    expect(doc.Statement.map((s) => s.Sid)).toEqual([`NixCacheOwner${A.id}Bucket`, `NixCacheOwner${A.id}Objects`]);
    expect(canonicalPolicy(doc)).toBe(canonicalPolicy(builderPolicy("nix-cache")));
    expect(ownerOfPolicy(JSON.stringify(doc))).toEqual({ id: A.id, label: "nix-cache/homelab" });
  });
  test("read back as MinIO returns it (the Id as ID, statements reordered)", () => {
    const doc = markPolicy(anonymousPolicy("nix-cache", true), B, ["Objects", "List"]);
    const minio = { ID: doc.Id, Version: doc.Version, Statement: [...doc.Statement].reverse() };
    expect(ownerOfPolicy(minio)).toEqual({ id: B.id, label: "nix-cache/private" });
  });
  test("a stack rename changes the Id only: the owner id read back is the same", () => {
    const renamed = markPolicy(builderPolicy("nix-cache"), { ...A, stack: "homelab-2" }, ["Bucket", "Objects"]);
    expect(ownerOfPolicy(renamed)?.id).toBe(A.id);
  });
  test("unmarked: the chapter's by-hand policy, no owner, garbage", () => {
    expect(ownerOfPolicy(builderPolicy("nix-cache"))).toBeUndefined();
    expect(markPolicy(builderPolicy("nix-cache"), undefined, [])).toEqual(builderPolicy("nix-cache"));
    expect(ownerOfPolicy({ Statement: [{ Sid: "AllowNixBuilder", Effect: "Allow" }] })).toBeUndefined();
    expect(ownerOfPolicy("not json")).toBeUndefined();
    expect(ownerOfPolicy("")).toBeUndefined();
  });
});

describe("lifecycle rule marker", () => {
  test("the rule ID carries the id; unmarked it is the plain ID of earlier versions", () => {
    expect(expiryRuleId(A.id)).toBe(`${EXPIRY_RULE_ID}-${A.id}`);
    expect(expiryRuleId(undefined)).toBe(EXPIRY_RULE_ID);
    const rule = { ...expiryRule(7, "StoreDir: /nix/store\n"), id: expiryRuleId(A.id) };
    expect(ownerOfRules([rule])).toEqual({ id: A.id });
    expect(ownerOfRules([expiryRule(7, "x")])).toBeUndefined();
    expect(ownerOfRules([])).toBeUndefined();
  });
});

describe("whose a bucket is", () => {
  const rule = { ...expiryRule(7, "x"), id: expiryRuleId(B.id) };
  test("its tags first; with the tags removed, its bucket policy's or rule's marker", () => {
    expect(bucketOwner(withOwnerTags([], A), markPolicy(anonymousPolicy("b", false), B, ["Objects"]), [rule])?.id).toBe(A.id);
    expect(bucketOwner([], JSON.stringify(markPolicy(anonymousPolicy("b", false), B, ["Objects"])), [])?.id).toBe(B.id);
    expect(bucketOwner([], "", [rule])?.id).toBe(B.id);
    expect(bucketOwner([], "", [])).toBeUndefined();
  });
  test("a user's owner: another stack's marker is the one to name, else this stack's", () => {
    expect(pickOwner([undefined, { id: A.id }, { id: B.id }], A.id)).toEqual({ id: B.id });
    expect(pickOwner([undefined, { id: A.id }], A.id)).toEqual({ id: A.id });
    expect(pickOwner([undefined], A.id)).toBeUndefined();
  });
});

describe("claimRefusal: may this stack write the thing?", () => {
  const base: ClaimArgs = { kind: "bucket", name: "nix-cache", found: { exists: false }, us: A.id, adopt: false, inState: false };

  test("absent, or marked as this stack's (also after a stack rename: the id is compared): yes", () => {
    expect(claimRefusal(base)).toBeUndefined();
    expect(claimRefusal({ ...base, found: { exists: true, owner: { id: A.id, label: "nix-cache/old-name" } } })).toBeUndefined();
  });

  test("another stack's bucket: refused, naming it, with what to do and what adoption overwrites", () => {
    const r = claimRefusal({ ...base, found: { exists: true, owner: { id: B.id, label: "nix-cache/private" } } }) ?? "";
    expect(r).toMatch(/^bucket 'nix-cache' belongs to stack 'nix-cache\/private' \(owner id fedcba9876543210fedcba9876543210\); nothing was changed\./);
    expect(r).toContain("pulumi config set nix-cache:bucket NAME");
    expect(r).toContain(`pulumi config set ${ADOPT_KEY} true, then pulumi up`);
    expect(r).toContain("overwrites the bucket's anonymous-read policy, its expiry (lifecycle) rule and its nix-cache-info");
    expect(r).toContain("cached objects are kept");
  });

  test("another stack's user: the message says the password is overwritten", () => {
    const r = claimRefusal({ ...base, kind: "user", name: "nixbuilder", found: { exists: true, owner: { id: B.id } } }) ?? "";
    expect(r).toMatch(/^MinIO user 'nixbuilder' belongs to another stack \(owner id fedcba9876543210fedcba9876543210\); nothing was changed\./);
    expect(r).toContain("pulumi config set nix-cache:builderUser NAME");
    expect(r).toContain("overwrites the user's password");
  });

  test("another stack's policy: the message says the document is overwritten", () => {
    const r = claimRefusal({ ...base, kind: "policy", name: "nix-cache-write", found: { exists: true, owner: { id: B.id, label: "p/s" } } }) ?? "";
    expect(r).toMatch(/^MinIO policy 'nix-cache-write' belongs to stack 'p\/s'/);
    expect(r).toContain("overwrites the policy's document");
  });

  test("unmarked (made by hand): refused, saying so", () => {
    const r = claimRefusal({ ...base, found: { exists: true } }) ?? "";
    expect(r).toMatch(/^bucket 'nix-cache' exists and is not marked as any nix-cache stack's \(made by hand, e\.g\. with mc/);
    expect(r).toContain("nothing was changed");
    expect(r).toContain("pulumi config set nix-cache:adopt true");
  });

  test("unmarked but already in this stack's state (a stack from before markers): this stack's", () => {
    expect(claimRefusal({ ...base, found: { exists: true }, inState: true })).toBeUndefined();
    // ... but not when another stack has marked it since.
    expect(claimRefusal({ ...base, found: { exists: true, owner: { id: B.id } }, inState: true })).toMatch(/belongs to another stack/);
  });

  test("a first preview (this stack's id not known yet): another's or unmarked is still refused", () => {
    expect(claimRefusal({ ...base, us: undefined, found: { exists: true } })).toMatch(/not marked/);
    expect(claimRefusal({ ...base, us: undefined, found: { exists: true, owner: { id: B.id } } })).toMatch(/belongs to/);
  });

  test("with nix-cache:adopt: never refused", () => {
    expect(claimRefusal({ ...base, adopt: true, found: { exists: true } })).toBeUndefined();
    expect(claimRefusal({ ...base, adopt: true, found: { exists: true, owner: { id: B.id } } })).toBeUndefined();
  });
});

describe("takenOverRefusal: a thing of this stack's state now marked as another's", () => {
  test("refused naming the other stack, unless adopt", () => {
    const r = takenOverRefusal("bucket", "nix-cache", { id: B.id, label: "nix-cache/private" }, A.id, false) ?? "";
    expect(r).toMatch(/^bucket 'nix-cache' of this stack is now marked as stack 'nix-cache\/private' .*; nothing was changed\./);
    expect(r).toContain("pulumi destroy leaves things other stacks own in place");
    expect(takenOverRefusal("bucket", "nix-cache", { id: B.id }, A.id, true)).toBeUndefined();
  });
  test("its own marker, no marker, or its own id unknown: no refusal", () => {
    expect(takenOverRefusal("user", "nixbuilder", { id: A.id }, A.id, false)).toBeUndefined();
    expect(takenOverRefusal("user", "nixbuilder", undefined, A.id, false)).toBeUndefined();
    expect(takenOverRefusal("user", "nixbuilder", { id: B.id }, undefined, false)).toBeUndefined();
  });
  test("destroy deletes only what carries no other stack's marker", () => {
    expect(mayDelete(undefined, A.id)).toBe(true);
    expect(mayDelete({ id: A.id }, A.id)).toBe(true);
    expect(mayDelete({ id: B.id }, A.id)).toBe(false);
  });
});

describe("nix-cache:adopt", () => {
  test.each([
    [undefined, { allowed: false }],
    ["", { allowed: false }],
    ["false", { allowed: false }],
    ["true", { allowed: true }],
  ])("%j reads as %j", (value, expected) => {
    expect(readAdopt(value)).toEqual(expected);
  });
  test.each(["yes", "1", "TRUE"])("%j is a problem naming the setting and what is allowed", (value) => {
    const problem = `nix-cache:adopt is ${JSON.stringify(value)}: allowed is true or false`;
    expect(readAdopt(value)).toEqual({ allowed: false, problem });
    expect(SETTING_KEYS).toContain("adopt");
    try {
      parseSettings({ endpoint: "http://127.0.0.1:9000", adopt: value });
      throw new Error("accepted");
    } catch (err) {
      expect((err as SettingsError).problems).toEqual([problem]);
    }
  });
});
