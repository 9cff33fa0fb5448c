// nix-cache:caCertificate: PEM certificates only (a bundle is fine), normalized; garbage and a private key
// pasted by mistake are refused with a message that names the setting and never shows the value. Then the
// texts hosts get from it: the client module and the builder module carry it as security.pki.certificates.
import { generateKeyPairSync, X509Certificate } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { CA_CERTIFICATE_KEY, certificateBlocks, parseCaCertificate } from "../../lib/config/caCertificate";
import { builderModule } from "../../lib/hosts/builderModule";
import { nixosModule } from "../../lib/hosts/hostConfig";
import { LocalCa, makeCa } from "../../harness/localCa";
import { parseSettings } from "../../lib/config/settings";
import { nixOk, nixSandbox } from "./support/nix";

let ca: LocalCa;
let other: LocalCa;
const nix = nixSandbox();
afterAll(() => nix.cleanup());

beforeAll(async () => {
  ca = await makeCa({ commonName: "Homelab Root CA" });
  other = await makeCa({ commonName: "Homelab Intermediate" });
});

const problemOf = (value: string): string => {
  const parsed = parseCaCertificate(value);
  if (parsed.ok) throw new Error("expected a refusal");
  return parsed.problem;
};

describe("parseCaCertificate", () => {
  test("one certificate: accepted, re-encoded with \\n line ends and one trailing newline", () => {
    const parsed = parseCaCertificate(ca.certPem.replace(/\n/g, "\r\n"));
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.pem).not.toContain("\r");
    expect(parsed.pem.endsWith("-----END CERTIFICATE-----\n")).toBe(true);
    expect(new X509Certificate(parsed.pem).fingerprint256).toBe(new X509Certificate(ca.certPem).fingerprint256);
    expect(parsed.certificates).toEqual([expect.objectContaining({ isCa: true, subject: expect.stringContaining("CN=Homelab Root CA") })]);
  });

  test("a bundle of several certificates keeps all of them, in order", () => {
    const parsed = parseCaCertificate(`${ca.certPem}\n\n${other.certPem}`);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    const blocks = certificateBlocks(parsed.pem);
    expect(blocks).toHaveLength(2);
    expect(blocks.map((b) => new X509Certificate(b).subject)).toEqual([
      new X509Certificate(ca.certPem).subject,
      new X509Certificate(other.certPem).subject,
    ]);
  });

  test.each([
    ["empty text", "   ", /holds no PEM certificate/],
    ["garbage", "hello, this is not a certificate", /holds no PEM certificate/],
    ["a file path instead of its content", "/etc/ssl/homelab-ca.pem", /holds no PEM certificate/],
    ["a PEM block with a broken body", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", /certificate 1 of 1 is not a valid X\.509 certificate/],
    ["a certificate request", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", /not certificates \(CERTIFICATE REQUEST\)/],
  ])("%s is refused, naming the setting and what is allowed", (_what, value, reason) => {
    const problem = problemOf(value);
    expect(problem.startsWith(CA_CERTIFICATE_KEY)).toBe(true);
    expect(problem).toMatch(reason);
    expect(problem).toContain('allowed is one or more PEM certificates ("-----BEGIN CERTIFICATE-----"');
    expect(problem).toContain(`pulumi config set ${CA_CERTIFICATE_KEY} -- "$(cat ca.pem)"`);
  });

  test("text around the certificates is refused without being shown", () => {
    const problem = problemOf(`note: secret-sauce-123\n${ca.certPem}`);
    expect(problem).toMatch(/holds text outside its PEM certificates \(not shown here\)/);
    expect(problem).not.toContain("secret-sauce-123");
  });

  test.each([
    ["the server's private key (PKCS#8)", () => ca.keyPem],
    ["a certificate and its key pasted together", () => `${ca.certPem}${ca.keyPem}`],
    ["an RSA key in the old format", () => generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ format: "pem", type: "pkcs1" }).toString()],
  ])("%s is refused, and no byte of the key is echoed", (_what, value) => {
    const text = value();
    const problem = problemOf(text);
    expect(problem).toContain(`${CA_CERTIFICATE_KEY} holds a PRIVATE KEY (not shown here)`);
    expect(problem).toContain(`pulumi config rm ${CA_CERTIFICATE_KEY}`);
    // No line of the key's body appears in the message.
    const keyLines = text.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"));
    expect(keyLines.length).toBeGreaterThan(0);
    expect(keyLines.filter((l) => problem.includes(l))).toEqual([]);
  });
});

describe("nix-cache:caCertificate in the settings", () => {
  const base = { endpoint: "https://s3.homelab.local" };

  test("unset or empty: no CA, the system trust store", () => {
    expect(parseSettings(base).caCertificate).toBeUndefined();
    expect(parseSettings({ ...base, caCertificate: "" }).caCertificate).toBeUndefined();
  });

  test("set: the normalized PEM", () => {
    expect(parseSettings({ ...base, caCertificate: ca.certPem.replace(/\n/g, "\r\n") }).caCertificate).toBe(
      (parseCaCertificate(ca.certPem) as { pem: string }).pem,
    );
  });

  test("a private key is one problem among the others, and the error never shows it", () => {
    let message = "";
    try {
      parseSettings({ ...base, caCertificate: ca.keyPem, priority: "-1" });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain("nix-cache:priority");
    expect(message).toContain(`${CA_CERTIFICATE_KEY} holds a PRIVATE KEY`);
    expect(message).not.toContain(ca.keyPem.split("\n")[1]);
  });

  test("a CA with only http:// URLs is a mistake: refused, naming endpoint and publicUrl", () => {
    expect(() => parseSettings({ endpoint: "http://127.0.0.1:9000", caCertificate: ca.certPem })).toThrow(
      /nix-cache:caCertificate is set but nix-cache:endpoint and nix-cache:publicUrl are http:\/\/ URLs/,
    );
    // An https publicUrl (a TLS proxy in front of an http MinIO) is a use for it.
    expect(parseSettings({ endpoint: "http://127.0.0.1:9000", publicUrl: "https://cache.homelab.local", caCertificate: ca.certPem }).caCertificate).toBeDefined();
  });
});

describe("the host modules carry the CA", () => {
  const url = "https://s3.homelab.local/nix-cache";
  const key = "s3.homelab.local-1:6Xqc6rBOEk7fBtqxmTaJhbSDmMQSrd/9MnWOnBbJ6tk=";

  test("without a CA the client module is as before: no security.pki", () => {
    expect(nixosModule(url, key)).not.toContain("security.pki");
    expect(nixosModule(url, key, "")).toBe(nixosModule(url, key));
  });

  test("with a bundle, the client module evaluates to one security.pki.certificates entry per certificate, byte for byte", () => {
    const bundle = (parseCaCertificate(`${ca.certPem}${other.certPem}`) as { pem: string }).pem;
    const file = path.join(nix.dir, "client.nix");
    fs.writeFileSync(file, nixosModule(url, key, bundle));
    const evalJson = (expr: string): unknown =>
      JSON.parse(nixOk(nix, "nix-instantiate", ["--eval", "--strict", "--json", "--store", "dummy://", "-E", expr]));
    expect(evalJson(`(import ${file} { }).security.pki.certificates`)).toEqual(certificateBlocks(bundle).map((b) => `${b}\n`));
    const settings = evalJson(`(import ${file} { }).nix.settings`);
    expect(settings).toEqual({ "extra-substituters": [url], "extra-trusted-public-keys": [key] });
  });

  test("the builder module trusts it too, and its drain exports the bundle Nix's S3 client reads", () => {
    const pem = (parseCaCertificate(ca.certPem) as { pem: string }).pem;
    const text = builderModule({ pushUrl: "s3://nix-cache?endpoint=https://s3.homelab.local", publicKey: key, caCertificate: pem });
    expect(text).toContain("security.pki.certificates = [");
    expect(text).toContain(pem.split("\n")[1]);
    expect(text).toContain("export NIX_SSL_CERT_FILE=${lib.escapeShellArg cfg.sslCertFile}");
    expect(builderModule({ pushUrl: "s3://nix-cache", publicKey: key })).not.toContain("security.pki.certificates = [");
  });
});
