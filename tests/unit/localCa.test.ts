// The throwaway CA for a local HTTPS MinIO: certificate contents read back with node's own X509 parser, and
// real TLS handshakes against node's https server and client (the checks curl and Go make are the same ones).
import "reflect-metadata"; // before @peculiar/x509 (see harness/localCa.ts)
import * as x509 from "@peculiar/x509";
import * as crypto from "crypto";
import * as fs from "fs";
import * as https from "https";
import type { AddressInfo } from "net";
import * as os from "os";
import * as path from "path";
import { describeCertificate, loadCa, type LocalCa, makeCa, makeServerCert, type Pem, writeMinioCerts } from "../../harness/localCa";

const DAY_MS = 24 * 60 * 60 * 1000;

let ca: LocalCa;
let server: Pem;
let otherName: Pem;
let expired: Pem;

beforeAll(async () => {
  ca = await makeCa();
  server = await makeServerCert(ca, { dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
  otherName = await makeServerCert(ca, { dnsNames: ["minio.example.org"] });
  expired = await makeServerCert(ca, { dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], notAfter: new Date(Date.now() - DAY_MS) });
});

describe("makeCa", () => {
  test("is a self-signed CA with the default name, valid from about an hour ago for 3650 days", () => {
    const cert = new crypto.X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.checkIssued(cert)).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    const facts = describeCertificate(ca.certPem);
    expect(facts).toMatchObject({ subject: "CN=nix-cache local CA", issuer: "CN=nix-cache local CA", isCa: true });
    expect(facts.dnsNames).toEqual([]);
    expect(Math.abs(facts.notBefore.getTime() - (Date.now() - 3600_000))).toBeLessThan(60_000);
    // Certificates carry whole seconds.
    expect(Math.abs(facts.notAfter.getTime() - facts.notBefore.getTime() - 3650 * DAY_MS)).toBeLessThan(1000);
  });

  test("takes a name, a start and a length", async () => {
    const notBefore = new Date("2030-01-01T00:00:00Z");
    const other = await makeCa({ commonName: "test CA, with comma", notBefore, validDays: 10 });
    const facts = describeCertificate(other.certPem);
    // One CN holding the comma (node escapes it), not a name split at it.
    expect(facts.subject).toBe(String.raw`CN=test CA\, with comma`);
    expect(facts.notBefore).toEqual(notBefore);
    expect(facts.notAfter).toEqual(new Date("2030-01-11T00:00:00Z"));
  });

  test("the key is PKCS#8 PEM and belongs to the certificate", () => {
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+\n-----END PRIVATE KEY-----\n$/);
    const key = crypto.createPrivateKey(ca.keyPem);
    expect(key.asymmetricKeyType).toBe("ec");
    expect(key.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(new crypto.X509Certificate(ca.certPem).checkPrivateKey(key)).toBe(true);
  });

  test("refuses a validity that is not a positive number of days", async () => {
    await expect(makeCa({ validDays: 0 })).rejects.toThrow(/validDays must be a positive number/);
  });
});

describe("makeServerCert", () => {
  test("is issued and signed by the CA, is not a CA, and names localhost and 127.0.0.1", () => {
    const caCert = new crypto.X509Certificate(ca.certPem);
    const cert = new crypto.X509Certificate(server.certPem);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.checkIssued(cert)).toBe(false);
    expect(cert.ca).toBe(false);
    expect(cert.checkHost("localhost")).toBe("localhost");
    expect(cert.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(cert.checkHost("example.org")).toBeUndefined();
    expect(cert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]); // node reports extendedKeyUsage here: serverAuth
    expect(describeCertificate(server.certPem)).toMatchObject({
      subject: "CN=localhost",
      issuer: "CN=nix-cache local CA",
      isCa: false,
      dnsNames: ["localhost"],
      ipAddresses: ["127.0.0.1"],
    });
  });

  test("serials are random", async () => {
    const again = await makeServerCert(ca, { dnsNames: ["localhost"] });
    expect(new crypto.X509Certificate(again.certPem).serialNumber).not.toBe(new crypto.X509Certificate(server.certPem).serialNumber);
  });

  test("the key is PKCS#8 PEM and belongs to the certificate, not to the CA's", () => {
    expect(server.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const key = crypto.createPrivateKey(server.keyPem);
    expect(new crypto.X509Certificate(server.certPem).checkPrivateKey(key)).toBe(true);
    expect(new crypto.X509Certificate(ca.certPem).checkPrivateKey(key)).toBe(false);
  });

  test("default validity: from an hour ago for 825 days", () => {
    const facts = describeCertificate(server.certPem);
    expect(Math.abs(facts.notBefore.getTime() - (Date.now() - 3600_000))).toBeLessThan(60_000);
    expect(Math.abs(facts.notAfter.getTime() - facts.notBefore.getTime() - 825 * DAY_MS)).toBeLessThan(1000);
  });

  test("validity as asked, and an expired certificate", async () => {
    const notBefore = new Date("2031-05-01T12:00:00Z");
    const notAfter = new Date("2031-06-01T12:00:00Z");
    const asked = describeCertificate((await makeServerCert(ca, { dnsNames: ["a.test"], notBefore, notAfter })).certPem);
    expect(asked.notBefore).toEqual(notBefore);
    expect(asked.notAfter).toEqual(notAfter);
    const days = describeCertificate((await makeServerCert(ca, { ipAddresses: ["::1"], notBefore, validDays: 2 })).certPem);
    expect(days.notAfter).toEqual(new Date("2031-05-03T12:00:00Z"));
    expect(days.ipAddresses).toEqual(["0:0:0:0:0:0:0:1"]);
    expect(days.subject).toBe("CN=::1");

    const old = describeCertificate(expired.certPem);
    expect(old.notAfter.getTime()).toBeLessThan(Date.now());
    expect(old.notBefore.getTime()).toBeLessThan(old.notAfter.getTime());
  });

  test("refuses certificates no client could use", async () => {
    await expect(makeServerCert(ca, {})).rejects.toThrow(/needs a DNS name or an IP address/);
    await expect(makeServerCert(ca, { ipAddresses: ["localhost"] })).rejects.toThrow(/not an IP address/);
    await expect(makeServerCert(ca, { dnsNames: ["a b"] })).rejects.toThrow(/not a DNS name/);
    const when = new Date("2031-01-01T00:00:00Z");
    await expect(makeServerCert(ca, { dnsNames: ["a.test"], notBefore: when, notAfter: when })).rejects.toThrow(/must be later/);
    await expect(makeServerCert(ca, { dnsNames: ["a.test"], notAfter: when, validDays: 1 })).rejects.toThrow(/either notAfter or validDays/);
  });
});

describe("loadCa", () => {
  test("a CA loaded from its PEM files signs certificates issued by the original", async () => {
    const loaded = await loadCa(ca.certPem, ca.keyPem);
    expect(loaded.certPem).toBe(ca.certPem);
    expect(loaded.keyPem).toBe(ca.keyPem);
    const again = await makeServerCert(loaded, { dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
    const caCert = new crypto.X509Certificate(ca.certPem);
    const cert = new crypto.X509Certificate(again.certPem);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(describeCertificate(again.certPem).issuer).toBe("CN=nix-cache local CA");
    // The same authority key identifier as the original's certificates (chain builders match on it).
    const keyId = (pem: string) => new x509.X509Certificate(pem).getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
    expect(keyId(again.certPem)).toBeDefined();
    expect(keyId(again.certPem)).toBe(keyId(server.certPem));
  });

  test("takes the PEM texts as written to and read back from files (CRLF line ends too)", async () => {
    const crlf = (pem: string) => pem.replace(/\n/g, "\r\n");
    const loaded = await loadCa(crlf(ca.certPem), crlf(ca.keyPem));
    const cert = new crypto.X509Certificate((await makeServerCert(loaded, { ipAddresses: ["127.0.0.1"] })).certPem);
    expect(cert.verify(new crypto.X509Certificate(ca.certPem).publicKey)).toBe(true);
  });

  test("refuses a key that belongs to another CA, without quoting the key", async () => {
    const other = await makeCa();
    const err: Error = await loadCa(ca.certPem, other.keyPem).then(
      () => new Error("loadCa resolved"),
      (e: Error) => e,
    );
    expect(err.message).toMatch(/the CA key does not belong to the CA certificate \(CN=nix-cache local CA, serial [0-9A-F]+\)/);
    expect(err.message).not.toContain(other.keyPem.split("\n")[1]);
  });

  test("refuses what is not a CA certificate and an EC P-256 PKCS#8 key", async () => {
    await expect(loadCa("not a certificate", ca.keyPem)).rejects.toThrow(/the CA certificate is not a PEM certificate/);
    // A server certificate with its own (matching) key is still no CA.
    await expect(loadCa(server.certPem, server.keyPem)).rejects.toThrow(/CN=localhost\) is not a CA certificate/);
    await expect(loadCa(ca.certPem, "")).rejects.toThrow(/not one unencrypted PKCS#8 PEM key/);
    await expect(loadCa(ca.certPem, ca.keyPem + ca.keyPem)).rejects.toThrow(/not one unencrypted PKCS#8 PEM key/);
    await expect(loadCa(ca.certPem, ca.certPem)).rejects.toThrow(/not one unencrypted PKCS#8 PEM key/);
    const sec1 = crypto.createPrivateKey(ca.keyPem).export({ format: "pem", type: "sec1" }).toString();
    await expect(loadCa(ca.certPem, sec1)).rejects.toThrow(/not one unencrypted PKCS#8 PEM key/);
    const p384 = crypto.generateKeyPairSync("ec", { namedCurve: "secp384r1" }).privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    await expect(loadCa(ca.certPem, p384)).rejects.toThrow(/the CA key is not an ECDSA P-256 private key/);
    const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    await expect(loadCa(ca.certPem, rsa)).rejects.toThrow(/the CA key is not an ECDSA P-256 private key/);
  });
});

describe("TLS handshakes with node's https", () => {
  // Serves `pem` on 127.0.0.1 for the duration of `fn`.
  async function withServer<T>(pem: Pem, fn: (port: number) => Promise<T>): Promise<T> {
    const srv = https.createServer({ key: pem.keyPem, cert: pem.certPem }, (_req, res) => res.end("ok"));
    await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
    try {
      return await fn((srv.address() as AddressInfo).port);
    } finally {
      srv.closeAllConnections();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
  }

  // The status on success, or the error code of the failed handshake.
  function get(url: string, caPem?: string): Promise<number | string> {
    return new Promise((resolve) => {
      // family 4: "localhost" must reach the server on 127.0.0.1, not ::1. No agent: no pooled connections.
      const req = https.get(url, { ca: caPem, family: 4, agent: false }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
  }

  test("a client trusting the CA connects by name and by IP", async () => {
    await withServer(server, async (port) => {
      expect(await get(`https://localhost:${port}/`, ca.certPem)).toBe(200);
      expect(await get(`https://127.0.0.1:${port}/`, ca.certPem)).toBe(200);
    });
  });

  test("a client without the CA refuses the certificate", async () => {
    await withServer(server, async (port) => {
      expect(await get(`https://localhost:${port}/`)).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    });
  });

  test("a certificate for another name fails only the name check", async () => {
    await withServer(otherName, async (port) => {
      expect(await get(`https://localhost:${port}/`, ca.certPem)).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
      expect(await get(`https://127.0.0.1:${port}/`, ca.certPem)).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
    });
  });

  test("an expired certificate is refused as expired", async () => {
    await withServer(expired, async (port) => {
      expect(await get(`https://localhost:${port}/`, ca.certPem)).toBe("CERT_HAS_EXPIRED");
    });
  });

  test("another CA's client does not trust the certificate", async () => {
    const stranger = await makeCa();
    await withServer(server, async (port) => {
      expect(await get(`https://localhost:${port}/`, stranger.certPem)).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    });
  });
});

describe("writeMinioCerts", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "localca-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const mode = (file: string) => fs.statSync(file).mode & 0o777;

  test("writes public.crt, private.key (0600) and CAs/ca.crt into a new 0700 directory", () => {
    const certsDir = path.join(dir, "certs");
    writeMinioCerts(certsDir, server, ca);
    expect(mode(certsDir)).toBe(0o700);
    expect(fs.readFileSync(path.join(certsDir, "public.crt"), "utf8")).toBe(server.certPem);
    expect(fs.readFileSync(path.join(certsDir, "private.key"), "utf8")).toBe(server.keyPem);
    expect(mode(path.join(certsDir, "private.key"))).toBe(0o600);
    expect(fs.readFileSync(path.join(certsDir, "CAs", "ca.crt"), "utf8")).toBe(ca.certPem);
    expect(fs.readFileSync(path.join(certsDir, "CAs", "ca.crt"), "utf8")).not.toContain("PRIVATE KEY");
  });

  test("without a CA there is no CAs directory; an existing loose key file is tightened", () => {
    const certsDir = path.join(dir, "certs");
    fs.mkdirSync(certsDir, { mode: 0o755 });
    fs.writeFileSync(path.join(certsDir, "private.key"), "old", { mode: 0o644 });
    writeMinioCerts(certsDir, server);
    expect(mode(certsDir)).toBe(0o700);
    expect(mode(path.join(certsDir, "private.key"))).toBe(0o600);
    expect(fs.readFileSync(path.join(certsDir, "private.key"), "utf8")).toBe(server.keyPem);
    expect(fs.existsSync(path.join(certsDir, "CAs"))).toBe(false);
  });
});
