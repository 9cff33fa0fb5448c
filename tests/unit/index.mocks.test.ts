// index.ts under Pulumi's mocks: bad stack configuration stops the program with one SettingsError naming
// every bad setting, before any resource is registered (so before any request could reach MinIO).
import * as pulumi from "@pulumi/pulumi";
import { SettingsError } from "../../lib/config/settings";

const registered: string[] = [];

beforeAll(async () => {
  pulumi.runtime.setAllConfig(
    {
      "nix-cache:endpoint": "http://127.0.0.1:9000",
      "nix-cache:bucket": "Bad_Name",
      "nix-cache:expireDays": "0",
      "nix-cache:retention": "forever",
      "nix-cache:retainDays": "0",
      "nix-cache:gcUser": "nixbuilder",
      "nix-cache:adminUser": "minioadmin",
      "nix-cache:adminPassword": "mock-admin-Secret-4711",
    },
    ["nix-cache:adminPassword"],
  );
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        registered.push(`${args.type}::${args.name}`);
        return { id: `${args.name}-id`, state: args.inputs as Record<string, unknown> };
      },
      call(args) {
        return args.inputs as Record<string, unknown>;
      },
    },
    "nix-cache",
    "unit",
    false,
  );
});

test("bad config throws the SettingsError before any resource is registered", async () => {
  const failure: unknown = await import("../../index").then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(failure).toBeInstanceOf(SettingsError);
  const err = failure as SettingsError;
  expect(err.problems).toHaveLength(5);
  expect(err.problems[0]).toMatch(/^nix-cache:bucket is "Bad_Name": allowed is 3 to 63 characters of lowercase letters/);
  expect(err.problems[1]).toMatch(/^nix-cache:gcUser is "nixbuilder": allowed is a user name other than nix-cache:builderUser/);
  expect(err.problems[2]).toBe('nix-cache:retention is "forever": allowed is "gc" or "lifecycle"');
  expect(err.problems[3]).toMatch(/^nix-cache:retainDays is "0": allowed is a whole number ≥ 1/);
  expect(err.problems[4]).toMatch(/^nix-cache:expireDays is "0": allowed is a whole number ≥ 1/);
  expect(err.message).not.toContain("mock-admin-Secret-4711");
  // Give any registration a program might have started time to reach the mock monitor.
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(registered).toEqual([]);
});
