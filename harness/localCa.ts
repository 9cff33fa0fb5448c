// A throwaway certificate authority and server certificates for a local MinIO served over HTTPS (the demo's
// `--tls` mode and the integration/e2e tests). Made with @peculiar/x509 on node's WebCrypto: no openssl binary.
//
// @peculiar/x509 registers its algorithms with tsyringe, which throws at load time unless a Reflect metadata
// polyfill is installed first; the import must therefore stay above the @peculiar/x509 one.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { writeFileAtomic } from "../lib/cli/writeFile";

/** A certificate and its private key, both PEM. */
export interface Pem {
  /** The certificate, `-----BEGIN CERTIFICATE-----`. */
  certPem: string;
  /** The private key as PKCS#8, `-----BEGIN PRIVATE KEY-----` (what MinIO, curl and node all read). */
  keyPem: string;
}

/** A certificate authority that can sign server certificates (see {@link makeCa}). */
export interface LocalCa extends Pem {
  /** The CA's private key as a WebCrypto key, so signing needs no re-import of `keyPem`. */
  signingKey: crypto.webcrypto.CryptoKey;
}

// ECDSA P-256 with SHA-256: key generation takes milliseconds (RSA takes up to seconds), and Go's crypto/tls
// (MinIO), curl/OpenSSL and node all accept it.
const KEY_ALGORITHM: crypto.webcrypto.EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING_ALGORITHM: crypto.webcrypto.EcdsaParams = { name: "ECDSA", hash: "SHA-256" };
// Passed to every @peculiar/x509 call instead of setting its global `cryptoProvider`, so loading this module
// changes nothing for other users of the library.
const webcrypto = crypto.webcrypto;

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
// Certificates start an hour in the past: a MinIO in a VM or container whose clock lags a little behind must
// not see them as "not yet valid".
const CLOCK_SKEW_MS = HOUR_MS;
const DEFAULT_CA_DAYS = 3650;
// 825 days is the longest server certificate validity Apple's TLS stack accepts.
const DEFAULT_SERVER_DAYS = 825;

function toPem(label: string, der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

async function generateKeys(): Promise<crypto.webcrypto.CryptoKeyPair> {
  // Extractable, or the private key could not be exported as PKCS#8 PEM.
  return webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
}

async function privateKeyPem(key: crypto.webcrypto.CryptoKey): Promise<string> {
  return toPem("PRIVATE KEY", Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key)));
}

// A positive 128-bit serial (RFC 5280 allows up to 20 octets); random so that a client that cached an earlier
// certificate of the same CA never sees two different certificates with one issuer and serial.
function randomSerial(): string {
  const bytes = crypto.randomBytes(16);
  bytes[0] = (bytes[0] & 0x7f) | 0x01; // clear the sign bit, and keep the first octet non-zero
  return bytes.toString("hex");
}

function checkDays(validDays: number): void {
  if (!Number.isFinite(validDays) || validDays <= 0) throw new Error(`validDays must be a positive number, got ${validDays}`);
}

function checkValidity(notBefore: Date, notAfter: Date): void {
  if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime())) throw new Error("invalid notBefore/notAfter date");
  if (notAfter.getTime() <= notBefore.getTime()) {
    throw new Error(`notAfter (${notAfter.toISOString()}) must be later than notBefore (${notBefore.toISOString()})`);
  }
}

/** Makes a self-signed ECDSA P-256 CA ("nix-cache local CA", 3650 days, from an hour ago unless told). */
export async function makeCa(opts: { commonName?: string; validDays?: number; notBefore?: Date } = {}): Promise<LocalCa> {
  const validDays = opts.validDays ?? DEFAULT_CA_DAYS;
  checkDays(validDays);
  const notBefore = opts.notBefore ?? new Date(Date.now() - CLOCK_SKEW_MS);
  const notAfter = new Date(notBefore.getTime() + validDays * DAY_MS);
  checkValidity(notBefore, notAfter);
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      // The JSON form, not "CN=…" text: a name with ',' or '+' needs no escaping.
      name: [{ CN: [opts.commonName ?? "nix-cache local CA"] }],
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        // pathLen 0: this CA only ever signs leaf certificates.
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        // Chain builders (OpenSSL, Go) match the leaf's authorityKeyIdentifier against this.
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
  return { certPem: cert.toString("pem") + "\n", keyPem: await privateKeyPem(keys.privateKey), signingKey: keys.privateKey };
}

// The DER inside the single PEM block labelled `label`, or undefined when there is not exactly one.
function pemBody(pem: string, label: string): Buffer | undefined {
  const blocks = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g)];
  if (blocks.length !== 1 || blocks[0][1] !== label) return undefined;
  return Buffer.from(blocks[0][2].replace(/\s+/g, ""), "base64");
}

/**
 * Loads a CA made earlier by {@link makeCa} (its `certPem` and `keyPem`, e.g. read back from files) so that it
 * can sign again. Throws when the certificate is not a CA certificate, the key is not an unencrypted PKCS#8
 * ECDSA P-256 key, or the key does not belong to the certificate. Messages never quote the key.
 */
export async function loadCa(certPem: string, keyPem: string): Promise<LocalCa> {
  let cert: crypto.X509Certificate;
  try {
    cert = new crypto.X509Certificate(certPem);
  } catch (err) {
    throw new Error(`the CA certificate is not a PEM certificate (${(err as Error).message})`);
  }
  if (!cert.ca) throw new Error(`the CA certificate (${cert.subject}) is not a CA certificate (basicConstraints CA:TRUE missing)`);

  const der = pemBody(keyPem, "PRIVATE KEY");
  if (der === undefined) {
    throw new Error('the CA key is not one unencrypted PKCS#8 PEM key ("-----BEGIN PRIVATE KEY-----"), as makeCa writes it');
  }
  let signingKey: crypto.webcrypto.CryptoKey;
  try {
    // Not extractable: keyPem is kept as given, and the key is only ever used to sign.
    signingKey = await webcrypto.subtle.importKey("pkcs8", der, KEY_ALGORITHM, false, ["sign"]);
  } catch (err) {
    throw new Error(`the CA key is not an ECDSA P-256 private key (${(err as Error).message})`);
  }
  // node's check compares the key's public half with the certificate's public key.
  if (!cert.checkPrivateKey(crypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" }))) {
    throw new Error(`the CA key does not belong to the CA certificate (${cert.subject}, serial ${cert.serialNumber}): they come from different CAs`);
  }
  return { certPem, keyPem, signingKey };
}

/**
 * Makes a server certificate signed by `ca` for the given DNS names and IP addresses (at least one of them).
 * Valid from an hour ago for 825 days unless told; `notAfter` may lie in the past (an expired certificate).
 */
export async function makeServerCert(
  ca: LocalCa,
  opts: {
    dnsNames?: string[];
    ipAddresses?: string[];
    commonName?: string;
    notBefore?: Date;
    notAfter?: Date;
    validDays?: number;
  },
): Promise<Pem> {
  const dnsNames = opts.dnsNames ?? [];
  const ipAddresses = opts.ipAddresses ?? [];
  // Clients check the name only against subjectAltName (the common name is ignored), so a certificate
  // without one could never be used.
  if (dnsNames.length === 0 && ipAddresses.length === 0) throw new Error("a server certificate needs a DNS name or an IP address");
  for (const ip of ipAddresses) if (net.isIP(ip) === 0) throw new Error(`'${ip}' is not an IP address`);
  for (const name of dnsNames) if (name.length === 0 || /[\s,]/.test(name)) throw new Error(`'${name}' is not a DNS name`);
  if (opts.notAfter !== undefined && opts.validDays !== undefined) throw new Error("give either notAfter or validDays, not both");

  const validDays = opts.validDays ?? DEFAULT_SERVER_DAYS;
  checkDays(validDays);
  let notBefore = opts.notBefore ?? new Date(Date.now() - CLOCK_SKEW_MS);
  // An expired certificate asked for by notAfter alone: start it validDays before its end instead.
  if (opts.notBefore === undefined && opts.notAfter !== undefined && opts.notAfter.getTime() <= notBefore.getTime()) {
    notBefore = new Date(opts.notAfter.getTime() - validDays * DAY_MS);
  }
  const notAfter = opts.notAfter ?? new Date(notBefore.getTime() + validDays * DAY_MS);
  checkValidity(notBefore, notAfter);

  const caCert = new x509.X509Certificate(ca.certPem);
  const caKeyId = caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const keys = await generateKeys();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    // digitalSignature is all an ECDSA key does in TLS (keyEncipherment only applies to RSA key exchange).
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
    new x509.SubjectAlternativeNameExtension([
      ...dnsNames.map((value) => ({ type: x509.DNS, value })),
      ...ipAddresses.map((value) => ({ type: x509.IP, value })),
    ]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
  ];
  // The CA's own key identifier, copied rather than recomputed, so it matches whatever the CA certificate says.
  if (caKeyId !== undefined) extensions.push(new x509.AuthorityKeyIdentifierExtension(caKeyId, false));

  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: [{ CN: [opts.commonName ?? dnsNames[0] ?? ipAddresses[0]] }],
      // The CA's subject as encoded in its certificate: Go's crypto/x509 matches issuer to subject byte for byte.
      issuer: caCert.subjectName,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: ca.signingKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions,
    },
    webcrypto,
  );
  return { certPem: cert.toString("pem") + "\n", keyPem: await privateKeyPem(keys.privateKey) };
}


/**
 * Writes `server` (and `ca` if given) in MinIO's `--certs-dir` layout: `public.crt`, `private.key` (0600) and
 * `CAs/ca.crt`, creating the directory with mode 0700.
 */
export function writeMinioCerts(certsDir: string, server: Pem, ca?: Pem): void {
  fs.mkdirSync(certsDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(certsDir, 0o700);
  writeFileAtomic(path.join(certsDir, "public.crt"), server.certPem, 0o644);
  writeFileAtomic(path.join(certsDir, "private.key"), server.keyPem, 0o600);
  if (ca) {
    // MinIO trusts the certificates in CAs/ for its own outgoing TLS connections (e.g. to itself).
    const casDir = path.join(certsDir, "CAs");
    fs.mkdirSync(casDir, { recursive: true, mode: 0o700 });
    writeFileAtomic(path.join(casDir, "ca.crt"), ca.certPem, 0o644);
  }
}

/** What {@link describeCertificate} reads back from a certificate. */
export interface CertificateFacts {
  /** Subject distinguished name as node prints it, e.g. `CN=localhost`. */
  subject: string;
  /** Issuer distinguished name as node prints it. */
  issuer: string;
  /** Whether basicConstraints says CA:TRUE. */
  isCa: boolean;
  /** DNS entries of subjectAltName. */
  dnsNames: string[];
  /** IP entries of subjectAltName, as node prints them (IPv6 uncompressed, e.g. `0:0:0:0:0:0:0:1`). */
  ipAddresses: string[];
  /** Start of validity. */
  notBefore: Date;
  /** End of validity. */
  notAfter: Date;
}

// Splits node's subjectAltName text ("DNS:a, IP Address:1.2.3.4") into [kind, value] pairs. Node writes a value
// holding ',' or other special characters as a JSON string, so commas inside quotes do not split.
function subjectAltNames(text: string | undefined): Array<[string, string]> {
  if (!text) return [];
  const entries = text.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? [];
  return entries.map((entry) => {
    const trimmed = entry.trim();
    const colon = trimmed.indexOf(":");
    const kind = trimmed.slice(0, colon);
    const raw = trimmed.slice(colon + 1);
    const value: unknown = raw.startsWith('"') ? JSON.parse(raw) : raw;
    return [kind, String(value)];
  });
}

/** Reads the facts tests and the demo care about back from a PEM certificate, with node's own X509 parser. */
export function describeCertificate(pem: string): CertificateFacts {
  const cert = new crypto.X509Certificate(pem);
  const names = subjectAltNames(cert.subjectAltName);
  return {
    subject: cert.subject,
    issuer: cert.issuer,
    isCa: cert.ca,
    dnsNames: names.filter(([kind]) => kind === "DNS").map(([, value]) => value),
    ipAddresses: names.filter(([kind]) => kind === "IP Address").map(([, value]) => value),
    // validFrom/validTo text rather than validFromDate/validToDate, which node 20 lacks.
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  };
}
