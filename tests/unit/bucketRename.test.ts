// Renaming the bucket (lib/config/settings.ts): refused unless the user opts in, never a silent replacement.
import { bucketRenameRefusal, parseSettings, readAllowBucketRename, SettingsError } from "../../lib/config/settings";

test("the same bucket is never refused", () => {
  expect(bucketRenameRefusal("nix-cache", "nix-cache", false)).toBeUndefined();
});

test("a new name is refused with what would be lost and both ways out", () => {
  const refusal = bucketRenameRefusal("nix-cache", "nix-cache-two", false) ?? "";
  expect(refusal).toMatch(/^nix-cache:bucket changed from 'nix-cache' to 'nix-cache-two'; nothing was changed\. /);
  expect(refusal).toContain("leave the cache in 'nix-cache' behind");
  expect(refusal).toContain("pulumi config set nix-cache:bucket nix-cache.");
  expect(refusal).toContain("pulumi config set nix-cache:allowBucketRename true, then pulumi up");
  expect(refusal).toContain("nothing deleted");
});

test("with the opt-in the rename goes ahead", () => {
  expect(bucketRenameRefusal("nix-cache", "nix-cache-two", true)).toBeUndefined();
});

test.each([
  [undefined, { allowed: false }],
  ["", { allowed: false }],
  ["false", { allowed: false }],
  ["true", { allowed: true }],
])("nix-cache:allowBucketRename = %j reads as %j", (value, expected) => {
  expect(readAllowBucketRename(value)).toEqual(expected);
});

test.each(["yes", "TRUE", "1"])("nix-cache:allowBucketRename = %j is a problem naming the setting and what is allowed", (value) => {
  expect(readAllowBucketRename(value)).toEqual({
    allowed: false,
    problem: `nix-cache:allowBucketRename is ${JSON.stringify(value)}: allowed is true or false`,
  });
  // parseSettings reports it with the other settings when the program passes it.
  try {
    parseSettings({ endpoint: "http://127.0.0.1:9000", allowBucketRename: value });
    throw new Error("accepted");
  } catch (err) {
    expect((err as SettingsError).problems).toEqual([`nix-cache:allowBucketRename is ${JSON.stringify(value)}: allowed is true or false`]);
  }
});

test("a SettingsError is a Pulumi RunError, so Pulumi prints its message without a stack trace", () => {
  const err = new SettingsError(["nix-cache:bucket is \"\": allowed is ..."]);
  expect(err.__pulumiRunError).toBe(true);
  expect(err).toBeInstanceOf(Error);
});
