// index.ts under Pulumi's mocks with good stack configuration: the settings reach the NixCache and the
// program exports every output hosts consume, the secret ones as secrets.
import * as pulumi from "@pulumi/pulumi";

const ADMIN_PASSWORD = "mock-admin-Secret-4711";
const registrations: { type: string; name: string; inputs: Record<string, unknown> }[] = [];

function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => resolve(v)));
}

beforeAll(async () => {
  pulumi.runtime.setAllConfig(
    {
      "nix-cache:endpoint": "http://127.0.0.1:9000",
      "nix-cache:publicUrl": "https://cache.example.org",
      "nix-cache:bucket": "team-cache",
      "nix-cache:builderUser": "ci-builder",
      "nix-cache:retention": "lifecycle",
      "nix-cache:retainDays": "21",
      "nix-cache:expireDays": "14",
      "nix-cache:gcUser": "ci-gc",
      "nix-cache:adminUser": "minioadmin",
      "nix-cache:adminPassword": ADMIN_PASSWORD,
    },
    ["nix-cache:adminPassword"],
  );
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const inputs = args.inputs as Record<string, unknown>;
        registrations.push({ type: args.type, name: args.name, inputs });
        if (args.type === "nix-cache:index:NixSigningKeypair") {
          const names = inputs.keyNames as string[];
          return { id: "k", state: { ...inputs, publicKeys: names.map((n) => `${n}:pub`), secretKeys: names.map((n) => `${n}:sec`) } };
        }
        if (args.type === "nix-cache:index:NixCacheOwner") {
          return { id: "o", state: { ...inputs, ownerId: "0123456789abcdef0123456789abcdef" } };
        }
        if (args.type === "nix-cache:index:RandomPassword") {
          return { id: "p", state: { ...inputs, result: "x".repeat(Number(inputs.length)) } };
        }
        return { id: args.custom ? `${args.name}-id` : undefined, state: inputs };
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

test("exports every output, built from the stack config", async () => {
  const program = await import("../../index");
  const exported: Record<string, pulumi.Output<unknown> | undefined> = { ...program };
  const outputs = Object.fromEntries(Object.entries(exported).filter((e): e is [string, pulumi.Output<unknown>] => e[1] !== undefined));
  expect(Object.keys(outputs).sort()).toEqual(
    [
      "awsCredentials", "builderAccessKey", "builderSecretKey", "caCertificate", "nixosModule", "publicKey", "pushCommand",
      "pushUrl", "secretKey", "secretKeys", "signCommand", "substituterUrl", "trustedPublicKeys",
      "gcAccessKey", "gcSecretKey", "gcCredentials", "retention", "retainDays", "access",
    ].sort(),
  );
  // A public cache: the private read side is not exported at all (undefined exports are no stack outputs).
  expect(Object.keys(exported).filter((k) => exported[k] === undefined).sort()).toEqual(
    ["netrc", "proxyClientModule", "proxyTokenHashes", "proxyUrl", "readerAccessKey", "readerCredentials", "readerSecretKey", "readerSubstituterUrl", "readerTokens"],
  );
  expect(await valueOf(program.access)).toBe("public");
  expect(await valueOf(program.substituterUrl)).toBe("https://cache.example.org/team-cache");
  expect(await valueOf(program.builderAccessKey)).toBe("ci-builder");
  expect(await valueOf(program.gcAccessKey)).toBe("ci-gc");
  expect(await valueOf(program.gcCredentials)).toMatch(/^\[ci-gc\]\naws_access_key_id = ci-gc\naws_secret_access_key = x{40}\n$/);
  expect(await valueOf(program.retention)).toBe("lifecycle");
  expect(await valueOf(program.retainDays)).toBe(21);
  expect(await valueOf(program.publicKey)).toBe("s3.homelab.local-1:pub");
  expect(await valueOf(program.trustedPublicKeys)).toEqual(["s3.homelab.local-1:pub"]);
  // No nix-cache:caCertificate: the output is empty and the module adds no certificate.
  expect(await valueOf(program.caCertificate)).toBe("");
  expect(await valueOf(program.nixosModule)).not.toContain("security.pki");
  expect(await valueOf(program.pushUrl)).toContain("s3://team-cache?profile=ci-builder&endpoint=http://127.0.0.1:9000&");
  for (const name of ["secretKey", "secretKeys", "builderSecretKey", "awsCredentials", "gcSecretKey", "gcCredentials"]) {
    expect([name, await pulumi.isSecret(outputs[name])]).toEqual([name, true]);
  }
  // The lifecycle registers last (after the owner id, the bucket policy and nix-cache-info): wait for it.
  for (let i = 0; i < 100 && !registrations.some((r) => r.type === "nix-cache:index:MinioLifecycle"); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const lifecycle = registrations.find((r) => r.type === "nix-cache:index:MinioLifecycle");
  expect((lifecycle?.inputs.rules as { days: number }[])[0].days).toBe(14);
  // The admin password stays in the config: no resource input (so no state) holds it.
  for (const r of registrations) expect(JSON.stringify(r.inputs)).not.toContain(ADMIN_PASSWORD);
});
