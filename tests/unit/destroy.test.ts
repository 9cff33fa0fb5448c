// The destroy guard's decision (lib/minio/destroy.ts): all or nothing.
import { cachedKeys, destroyRefusal } from "../../lib/minio/destroy";

test("nix-cache-info alone is no cache: destroy goes ahead", () => {
  expect(cachedKeys(["nix-cache-info"])).toEqual([]);
  expect(destroyRefusal("nix-cache", ["nix-cache-info"], false, false)).toBeUndefined();
  expect(destroyRefusal("nix-cache", [], false, false)).toBeUndefined();
});

test("cached objects without forceDestroy: refused, naming the setting, what is kept, and both ways out", () => {
  const refusal = destroyRefusal("nix-cache", ["abc.narinfo", "nix-cache-info", "nar/abc.nar.xz", "gc/lease"], false, false);
  expect(refusal).toMatch(/^bucket 'nix-cache' still holds 3 cached objects \(e\.g\. abc\.narinfo, nar\/abc\.nar\.xz, gc\/lease\) and nix-cache:forceDestroy is false; nothing was deleted\./);
  expect(refusal).toContain("pulumi config set nix-cache:forceDestroy true && pulumi up && pulumi destroy");
  expect(refusal).toContain("pulumi stack output --show-secrets secretKey");
  expect(refusal).toContain("pulumi stack rm --force");
  expect(destroyRefusal("nix-cache", ["a.narinfo"], true, false)).toContain("still holds 1 or more cached objects");
});

test("forceDestroy lets it go ahead, objects and all", () => {
  expect(destroyRefusal("nix-cache", ["abc.narinfo"], false, true)).toBeUndefined();
});
