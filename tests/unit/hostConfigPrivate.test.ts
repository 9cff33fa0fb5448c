// `host-config` (scripts/hostConfig.ts) on a private stack's outputs, start to end: a stand-in `pulumi` prints the
// outputs as `pulumi stack output --json [--show-secrets]` would, and the command writes the files. What files, with
// what modes, where; that it names a revoked host's netrc file; that nothing it prints or writes to --out holds a
// secret. (A real private stack: the lead's integration and e2e tests.)
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { awsCredentials } from "../../lib/hosts/hostConfig";
import { Outputs, SECRET_MARKER, SECRET_OUTPUTS } from "../../lib/hosts/hostFiles";
import { netrcLine } from "../../lib/hosts/privateModules";
import { proxyScriptText } from "../../lib/proxy/bundle";
import { scriptCommand } from "../support/scriptCommand";

const READER_SECRET = "cmVhZGVyLXNlY3JldC12YWx1ZS0xMjM0NTY3ODkw";
const BUILDER_SECRET = "YnVpbGRlci1zZWNyZXQtdmFsdWUtMTIzNDU2Nzg5MA";
const TOKENS = { "web-1": "Zq3xV9kLmN2pR7sT1uW4yA6bC8dE0fG5hJ1kL3mN", "db.lan": "Pp0oO9iI8uU7yY6tT5rR4eE3wW2qQ1aAsSdDfFgG" };
const PROXY_URL = "https://cache.homelab.local:8480";
const hashes = Object.entries(TOKENS)
  .sort(([a], [b]) => a.localeCompare(b))
  .map(([h, t]) => `${h} sha256:${createHash("sha256").update(t).digest("hex")}\n`)
  .join("");
const REVEALED: Outputs = {
  access: "private",
  substituterUrl: "https://s3.homelab.local/nix-cache",
  publicKey: "s3.homelab.local-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=",
  pushUrl: "s3://nix-cache?profile=nixbuilder&endpoint=https://s3.homelab.local&region=us-east-1&compression=zstd",
  secretKey: "s3.homelab.local-1:c2VjcmV0LXNlZWQtYnl0ZXMtc2VjcmV0LXNlZWQtYnl0ZXMtcHVibGljLWhhbGYtcHVibGljLWhhbGYtMTIzNA==",
  builderSecretKey: BUILDER_SECRET,
  awsCredentials: awsCredentials("nixbuilder", "nixbuilder", BUILDER_SECRET),
  readerAccessKey: "nixreader",
  readerSecretKey: READER_SECRET,
  readerCredentials: awsCredentials("nixreader", "nixreader", READER_SECRET),
  readerSubstituterUrl: "s3://nix-cache?endpoint=https://s3.homelab.local&region=us-east-1&profile=nixreader",
  readerTokens: TOKENS,
  netrc: Object.fromEntries(Object.entries(TOKENS).map(([h, t]) => [h, netrcLine(PROXY_URL, h, t)])),
  proxyUrl: PROXY_URL,
  proxyTokenHashes: hashes,
};
const PLAIN: Outputs = Object.fromEntries(Object.entries(REVEALED).map(([k, v]) => [k, SECRET_OUTPUTS.includes(k) ? SECRET_MARKER : v]));

let work: string;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-hostconfig-"));
  fs.mkdirSync(path.join(work, "bin"));
  fs.writeFileSync(path.join(work, "plain.json"), JSON.stringify(PLAIN));
  fs.writeFileSync(path.join(work, "revealed.json"), JSON.stringify(REVEALED));
  // The stand-in pulumi: the revealed outputs only when asked for secrets, as the real one.
  fs.writeFileSync(
    path.join(work, "bin", "pulumi"),
    `#!/bin/sh\ncase " $* " in *" --show-secrets "*) cat ${work}/revealed.json ;; *) cat ${work}/plain.json ;; esac\n`,
    { mode: 0o755 },
  );
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function hostConfig(args: string[]) {
  const c = scriptCommand("host-config", args, "node", work);
  return spawnSync(c.file, c.args, {
    cwd: c.cwd,
    env: { ...process.env, ...c.env, PATH: `${path.join(work, "bin")}:${process.env.PATH}` },
    encoding: "utf8",
    timeout: 120_000,
  });
}

const modeOf = (f: string) => (fs.statSync(f).mode & 0o777).toString(8);

test("writes the private files: modules into --out, the reader's and the hosts' secrets (0600) into --secrets-dir", () => {
  fs.mkdirSync(path.join(work, "secrets"), { mode: 0o700 });
  // A host revoked since an earlier run left its file.
  fs.writeFileSync(path.join(work, "secrets", "nix-cache-netrc-old-host"), "machine x login old-host password y\n", { mode: 0o600 });
  const r = hostConfig(["--out", "hosts", "--secrets-dir", "secrets"]);
  expect([r.status, r.stderr]).toEqual([0, ""]);
  const out = path.join(work, "hosts");
  const secrets = path.join(work, "secrets");
  expect(fs.readdirSync(out).sort()).toEqual(
    ["nix-cache-builder.nix", "nix-cache-proxy-client.nix", "nix-cache-proxy.nix", "nix-cache.json", "nix-cache.nix"].sort(),
  );
  expect(fs.readdirSync(secrets).sort()).toEqual(
    [
      "nix-cache-aws-credentials",
      "nix-cache-netrc-db.lan",
      "nix-cache-netrc-old-host",
      "nix-cache-netrc-web-1",
      "nix-cache-proxy-tokens",
      "nix-cache-reader-credentials",
      "nix-cache-signing-key",
    ].sort(),
  );
  for (const f of fs.readdirSync(secrets)) expect([f, modeOf(path.join(secrets, f))]).toEqual([f, "600"]);
  const secret = (f: string) => fs.readFileSync(path.join(secrets, f), "utf8");
  expect(secret("nix-cache-reader-credentials") === REVEALED.readerCredentials).toBe(true);
  expect(secret("nix-cache-netrc-web-1") === `machine cache.homelab.local login web-1 password ${TOKENS["web-1"]}\n`).toBe(true);
  expect(secret("nix-cache-proxy-tokens")).toBe(hashes);
  expect(r.stdout).toContain(`left ${path.join(secrets, "nix-cache-netrc-old-host")}: its host is not in readerHosts any more (revoked)`);
  // The real proxy is in its module (lib/proxy's bundle), and the module and the client module are the S3 reader's and the proxy's.
  const text = (f: string) => fs.readFileSync(path.join(out, f), "utf8");
  expect(text("nix-cache-proxy.nix")).toContain(proxyScriptText().split("\n")[0]);
  expect(text("nix-cache.nix")).toContain(`"${REVEALED.readerSubstituterUrl}"`);
  expect(text("nix-cache-proxy-client.nix")).toContain(`extra-substituters = [ "${PROXY_URL}" ];`);

  const secretValues = [READER_SECRET, BUILDER_SECRET, ...Object.values(TOKENS)];
  const exposed = [...fs.readdirSync(out).map(text), r.stdout, r.stderr];
  expect(secretValues.map((s) => exposed.some((t) => t.includes(s)))).toEqual(secretValues.map(() => false));
});
