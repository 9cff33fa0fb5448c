// What `npm run host-config` writes for given outputs, and how it reads its command line.
import { AWS_CREDENTIALS_FILE_NAME, builderModule, SIGNING_KEY_FILE_NAME } from "../../lib/builderModule";
import { SetupError, UsageError } from "../../lib/cli";
import { nixosModule } from "../../lib/hostConfig";
import {
  BUILDER_MODULE_FILE,
  CLIENT_MODULE_FILE,
  hostFiles,
  nonSecretOutputs,
  Outputs,
  OUTPUTS_JSON_FILE,
  parseHostConfigArgs,
  SECRET_MARKER,
} from "../../lib/hostFiles";

const SECRET_KEY = "s3.homelab.local-1:c2VjcmV0LXNlZWQtYnl0ZXMtc2VjcmV0LXNlZWQtYnl0ZXMtcHVibGljLWhhbGYtcHVibGljLWhhbGYtMTIzNA==";
const BUILDER_SECRET = "b3VpbGRlci1zZWNyZXQtdmFsdWUtMTIzNDU2Nzg5MA";
const CREDENTIALS = `[nixbuilder]\naws_access_key_id = nixbuilder\naws_secret_access_key = ${BUILDER_SECRET}\n`;

const revealed: Outputs = {
  substituterUrl: "https://s3.homelab.local/nix-cache",
  publicKey: "s3.homelab.local-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=",
  pushUrl: "s3://nix-cache?profile=nixbuilder&endpoint=https://s3.homelab.local&region=us-east-1&compression=zstd",
  builderAccessKey: "nixbuilder",
  nixosModule: "…",
  secretKey: SECRET_KEY,
  builderSecretKey: BUILDER_SECRET,
  awsCredentials: CREDENTIALS,
};
/** As `pulumi stack output --json` prints them without --show-secrets. */
const plain: Outputs = { ...revealed, secretKey: SECRET_MARKER, builderSecretKey: SECRET_MARKER, awsCredentials: SECRET_MARKER };

describe("hostFiles", () => {
  test("writes the client module from the lib (the nixosModule output's text), the builder module and the JSON", () => {
    const files = hostFiles(plain);
    expect(files.public.map((f) => f.name)).toEqual([CLIENT_MODULE_FILE, BUILDER_MODULE_FILE, OUTPUTS_JSON_FILE]);
    expect(files.public[0].content).toBe(nixosModule(String(revealed.substituterUrl), String(revealed.publicKey)));
    expect(files.public[1].content).toBe(builderModule({ pushUrl: String(revealed.pushUrl), publicKey: String(revealed.publicKey) }));
    expect(JSON.parse(files.public[2].content)).toEqual({
      builderAccessKey: "nixbuilder",
      nixosModule: "…",
      publicKey: revealed.publicKey,
      pushUrl: revealed.pushUrl,
      substituterUrl: revealed.substituterUrl,
    });
    expect(files.secret).toEqual([]);
  });

  test("writes the secret files only from the revealed outputs, the key without a trailing newline", () => {
    const files = hostFiles(plain, { ...revealed, secretKey: `${SECRET_KEY}\n` });
    expect(files.secret).toEqual([
      { name: SIGNING_KEY_FILE_NAME, content: SECRET_KEY },
      { name: AWS_CREDENTIALS_FILE_NAME, content: CREDENTIALS },
    ]);
    const publicText = files.public.map((f) => f.content).join("\n");
    expect([SECRET_KEY.split(":")[1], BUILDER_SECRET].map((s) => publicText.includes(s))).toEqual([false, false]);
  });

  test("keeps known secrets out of the public files even when the outputs were not masked", () => {
    const files = hostFiles(revealed);
    const publicText = files.public.map((f) => f.content).join("\n");
    expect([SECRET_KEY.split(":")[1], BUILDER_SECRET].map((s) => publicText.includes(s))).toEqual([false, false]);
  });

  test("names a missing output and what to do", () => {
    const { pushUrl: _, ...withoutPush } = plain;
    expect(() => hostFiles(withoutPush)).toThrow("the stack has no 'pushUrl' output: run `pulumi up` on it first");
    expect(() => hostFiles(plain, { ...revealed, secretKey: SECRET_MARKER })).toThrow("no 'secretKey' output");
    expect(() => hostFiles(withoutPush)).toThrow(SetupError);
  });
});

describe("nonSecretOutputs", () => {
  test("drops masked values and known secret names, and sorts by name", () => {
    expect(nonSecretOutputs({ z: 1, awsCredentials: "x", a: SECRET_MARKER, m: true, b: "ok" })).toEqual({ b: "ok", m: true, z: 1 });
    expect(Object.keys(nonSecretOutputs({ z: 1, b: "ok" }))).toEqual(["b", "z"]);
  });
});

describe("parseHostConfigArgs", () => {
  test("reads --stack, --out and --secrets-dir in both forms, relative to the user's directory", () => {
    expect(parseHostConfigArgs(["--stack", "homelab", "--out", "hosts", "--secrets-dir=/root/secrets"], "/home/me")).toEqual({
      stack: "homelab",
      out: "/home/me/hosts",
      secretsDir: "/root/secrets",
    });
    expect(parseHostConfigArgs(["--out=/etc/nixos/nix-cache"], "/x")).toEqual({ stack: undefined, out: "/etc/nixos/nix-cache", secretsDir: undefined });
    expect(parseHostConfigArgs(["--out", "x", "--help"], "/x")).toBe("help");
  });

  test("rejects bad command lines with one clear message", () => {
    expect(() => parseHostConfigArgs([], "/x")).toThrow("--out DIR is required");
    expect(() => parseHostConfigArgs(["--out"], "/x")).toThrow("--out needs a value");
    expect(() => parseHostConfigArgs(["--out", "--stack", "s"], "/x")).toThrow("--out needs a value");
    expect(() => parseHostConfigArgs(["--out", "x", "--secret-dir", "y"], "/x")).toThrow(
      "unknown argument '--secret-dir' (allowed: --stack NAME, --out DIR, --secrets-dir DIR)",
    );
    expect(() => parseHostConfigArgs(["--out", "x", "extra"], "/x")).toThrow("unknown argument 'extra'");
    // Usage errors: the command prints the usage after the message and exits 2.
    for (const argv of [[], ["--out"], ["--out", "x", "--bogus"], ["--out", "x", "--secrets-dir", "x/s"]]) {
      expect(() => parseHostConfigArgs(argv, "/x")).toThrow(UsageError);
    }
  });

  test("refuses a secrets directory that is the output directory or inside it", () => {
    expect(() => parseHostConfigArgs(["--out", "flake/hosts", "--secrets-dir", "flake/hosts"], "/x")).toThrow(
      "--secrets-dir (/x/flake/hosts) must not be --out or inside it",
    );
    expect(() => parseHostConfigArgs(["--out", "flake", "--secrets-dir", "flake/secrets"], "/x")).toThrow("must not be --out or inside it");
    expect(parseHostConfigArgs(["--out", "flake", "--secrets-dir", "flake-secrets"], "/x")).toMatchObject({ secretsDir: "/x/flake-secrets" });
  });
});
