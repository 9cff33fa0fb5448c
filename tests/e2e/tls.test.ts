// HTTPS end to end with real Nix 2.8: a cache deployed on a MinIO serving a certificate from a throwaway CA,
// hosts configured only from what `npm run host-config` writes. The CA reaches a host the way NixOS carries
// it: security.pki.certificates from nix-cache.nix, added to the system bundle that Nix reads (ssl-cert-file).
// The builder's drain pushes over https with the bundle its module exports (NIX_SSL_CERT_FILE); a client pulls
// the signed path over https; the same client without the CA is refused with Nix's certificate error.
// Nix 2.8 reads its CA bundle from NIX_SSL_CERT_FILE (the ssl-cert-file setting came later), as NixOS sets it.
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import { OutputMap } from "@pulumi/pulumi/automation";
import { certificateBlocks } from "../../lib/config/caCertificate";
import { AWS_CREDENTIALS_FILE_NAME, PUSH_COMMAND_ENV, SIGNING_KEY_FILE_NAME } from "../../lib/hosts/builderModule";
import { BUILDER_MODULE_FILE, CLIENT_MODULE_FILE } from "../../lib/hosts/hostFiles";
import { MinioServer } from "../../harness/minio";
import { evalHostModules, EvaluatedModules, nixEnv } from "../support/nixosStandIn";
import { deployCache, PROJECT_DIR, removeDeployment, TestStack } from "../../harness/stack";
import { payloadExpression, requireNix } from "./nixEnv";
import { scriptCommand } from "../support/scriptCommand";

/** The system bundle a Debian or NixOS host starts from; NixOS appends security.pki.certificates to it. */
const SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";

let minio: MinioServer;
let t: TestStack;
let outputs: OutputMap;
let work: string;
let client: EvaluatedModules;
/** The host's CA bundle as NixOS builds it from the client module: the system's plus the module's. */
let hostBundle: string;
let built = "";
const out = (name: string): string => String(outputs[name]?.value);
const hostDir = () => path.join(work, "host");
const secretsDir = () => path.join(work, "secrets");
const files = () => ({ client: path.join(hostDir(), CLIENT_MODULE_FILE), builder: path.join(hostDir(), BUILDER_MODULE_FILE) });
const store = (name: string) => path.join(work, `store-${name}`);

function httpsStatus(url: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    https.get(url, { ca, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on("error", reject);
  });
}

/**
 * The environment of a host whose CA bundle is `bundle`. Nix 2.8 has no ssl-cert-file setting yet: it reads
 * NIX_SSL_CERT_FILE (then SSL_CERT_FILE, then /etc/ssl/certs/ca-certificates.crt, NixOS's system bundle).
 */
const hostEnv = (name: string, bundle: string) => ({ ...nixEnv(path.join(work, `home-${name}`)), NIX_SSL_CERT_FILE: bundle });

/** A host realising `built` from the cache, trusting `bundle`. */
function substitute(name: string, bundle: string) {
  const settings = client.client.nix.settings as Record<string, string[]>;
  return spawnSync(
    "nix-store",
    [
      "--store", store(name), "-r", built,
      "--option", "substituters", settings["extra-substituters"].join(" "),
      "--option", "trusted-public-keys", settings["extra-trusted-public-keys"].join(" "),
    ],
    { env: hostEnv(name, bundle), encoding: "utf8", timeout: 120_000 },
  );
}

beforeAll(async () => {
  requireNix();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-e2e-tls-"));
  ({ minio, t, outputs } = await deployCache("e2e-tls", {}, undefined, { tls: true }));
  const command = scriptCommand("host-config", ["--stack", t.stack.name, "--out", "host", "--secrets-dir", "secrets"], "node", work);
  const cli = spawnSync(command.file, command.args, {
    cwd: command.cwd,
    env: { ...process.env, ...command.env, ...t.env },
    encoding: "utf8",
    timeout: 120_000,
  });
  if (cli.status !== 0) throw new Error(`host-config failed: ${cli.stderr}`);
  client = evalHostModules(path.join(work, "eval-client"), files(), {}, path.join(work, "client-scripts"));
  hostBundle = path.join(work, "host-ca-certificates.crt");
  const added = client.client.security?.pki.certificates ?? [];
  fs.writeFileSync(hostBundle, [fs.readFileSync(SYSTEM_BUNDLE, "utf8"), ...added].join("\n"));
});

afterAll(async () => {
  await removeDeployment(t, minio);
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe("https with the homelab's own CA, with real Nix 2.8", () => {
  test("nix-cache.nix carries the stack's CA as security.pki.certificates, and points at the https cache", () => {
    expect(out("substituterUrl")).toBe(`${minio.endpoint}/nix-cache`);
    expect(out("substituterUrl").startsWith("https://localhost:")).toBe(true);
    expect(client.client.security?.pki.certificates).toEqual(certificateBlocks(out("caCertificate")).map((b) => `${b}\n`));
    expect(certificateBlocks(out("caCertificate"))).toHaveLength(1);
  });

  test("the builder signs a build and its drain pushes it over https, trusting the bundle its module exports", async () => {
    const spool = path.join(work, "spool");
    const builder = evalHostModules(path.join(work, "eval-builder"), files(), {
      spoolDir: spool,
      signingKeyFile: path.join(secretsDir(), SIGNING_KEY_FILE_NAME),
      awsCredentialsFile: path.join(secretsDir(), AWS_CREDENTIALS_FILE_NAME),
      sslCertFile: hostBundle,
      pushAttempts: 1,
      retryDelaySec: 1,
    }, path.join(work, "builder-scripts"));
    expect(builder.drainText).toContain(`export NIX_SSL_CERT_FILE='${hostBundle}'\n`);

    const drv = path.join(work, "payload.nix");
    const nonce = crypto.randomBytes(8).toString("hex");
    fs.writeFileSync(drv, payloadExpression(nonce));
    const settings = builder.builder.nix.settings;
    const build = spawnSync("nix-build", ["--store", store("builder"), "--no-out-link", drv], {
      env: nixEnv(path.join(work, "home-builder"), [
        `post-build-hook = ${settings["post-build-hook"]}`,
        `secret-key-files = ${settings["secret-key-files"].join(" ")}`,
      ]),
      encoding: "utf8",
    });
    expect(build.status).toBe(0);
    built = build.stdout.trim();
    expect(fs.readdirSync(path.join(spool, "queue"))).toHaveLength(1);

    // Debian's Nix has no S3 store: the drain's push goes through file:// plus an upload that trusts, as Nix's
    // S3 client does, the CA file in NIX_SSL_CERT_FILE, which the drain itself exports.
    const pushViaFile = `node -r ${require.resolve("ts-node/register/transpile-only")} ${path.join(PROJECT_DIR, "tests/support/pushViaFile.ts")}`;
    const drain = spawnSync(String(builder.builder.systemd.services["nix-cache-push"].serviceConfig.ExecStart), [], {
      cwd: PROJECT_DIR,
      env: { ...nixEnv(path.join(work, "home-drain"), [`store = ${store("builder")}`]), [PUSH_COMMAND_ENV]: pushViaFile },
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(drain.stderr).not.toContain("pushViaFile:");
    expect(drain.stdout).toContain("nix-cache: pushed 1 paths to s3://");
    expect(drain.status).toBe(0);
    const narinfo = `${out("substituterUrl")}/${path.basename(built).slice(0, 32)}.narinfo`;
    expect(await httpsStatus(narinfo, out("caCertificate"))).toBe(200);
  });

  test("a client configured only from the generated files substitutes the signed path over https", () => {
    expect(built).not.toBe("");
    const r = substitute("client", hostBundle);
    expect(r.stderr).not.toContain("SSL");
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(built);
    expect(fs.readFileSync(path.join(store("client"), built), "utf8")).toMatch(/^hello [0-9a-f]{16}\n$/);
  });

  test("the same client without the CA is refused with Nix's certificate error", () => {
    expect(built).not.toBe("");
    const settings = client.client.nix.settings as Record<string, string[]>;
    const copy = spawnSync(
      "nix",
      ["copy", "--from", settings["extra-substituters"][0], "--to", store("no-ca-copy"), "--option", "trusted-public-keys", settings["extra-trusted-public-keys"][0], built],
      { env: hostEnv("no-ca-copy", SYSTEM_BUNDLE), encoding: "utf8", timeout: 120_000 },
    );
    expect(copy.status).not.toBe(0);
    // Debian's Nix uses curl with GnuTLS, which says only this (curl with OpenSSL adds "SSL certificate problem:
    // unable to get local issuer certificate").
    expect(copy.stderr).toContain(`error: unable to download '${out("substituterUrl")}/nix-cache-info': SSL peer certificate or SSH remote key was not OK (60)`);

    const substituted = substitute("no-ca", SYSTEM_BUNDLE);
    expect(substituted.status).not.toBe(0);
    expect(substituted.stderr).toContain("SSL peer certificate or SSH remote key was not OK (60)");
    expect(fs.existsSync(path.join(store("no-ca"), built))).toBe(false);
  });
});
