// The CA (or CA bundle) that signed MinIO's certificate, as the user pastes it into nix-cache:caCertificate:
// checked to be PEM certificates and nothing else, and normalized so every output carries the same text.
// Reads with node's built-in X509Certificate; no Pulumi runtime here.
import { X509Certificate } from "crypto";

/** The setting's full name, for messages. */
export const CA_CERTIFICATE_KEY = "nix-cache:caCertificate";

/** How to set it, for messages: the `--` keeps a PEM's leading dashes from being read as a flag. */
export const CA_CERTIFICATE_HOWTO = `pulumi config set ${CA_CERTIFICATE_KEY} -- "$(cat ca.pem)"`;

const ALLOWED = `one or more PEM certificates ("-----BEGIN CERTIFICATE-----" … "-----END CERTIFICATE-----"), e.g. ${CA_CERTIFICATE_HOWTO}`;

/** What one certificate of the bundle is, for messages and verify's checks. */
export interface CaFacts {
  subject: string;
  notAfter: Date;
  isCa: boolean;
}

export type CaParse = { ok: true; pem: string; certificates: CaFacts[] } | { ok: false; problem: string };

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/**
 * Parses the setting's value. Never echoes the value in a problem: a private key pasted by mistake must not
 * reach a terminal or a CI log. The normalized PEM is each certificate re-encoded from its DER, one after the
 * other, with "\n" line ends.
 */
export function parseCaCertificate(value: string): CaParse {
  const text = value.replace(/\r\n?/g, "\n");
  const blocks = [...text.matchAll(BLOCK)];
  if (blocks.some((b) => /PRIVATE KEY/.test(b[1]))) {
    return {
      ok: false,
      problem:
        `${CA_CERTIFICATE_KEY} holds a PRIVATE KEY (not shown here), which must never be given to this program or to ` +
        `hosts: it is stored in plain text in Pulumi.<stack>.yaml. Remove it with \`pulumi config rm ${CA_CERTIFICATE_KEY}\`, ` +
        `treat that key as exposed if the file was shared, and set the CA's certificate instead: allowed is ${ALLOWED}`,
    };
  }
  const others = [...new Set(blocks.map((b) => b[1]).filter((label) => label !== "CERTIFICATE"))];
  if (others.length > 0) {
    return { ok: false, problem: `${CA_CERTIFICATE_KEY} holds PEM blocks that are not certificates (${others.join(", ")}): allowed is ${ALLOWED}` };
  }
  if (blocks.length === 0) return { ok: false, problem: `${CA_CERTIFICATE_KEY} holds no PEM certificate: allowed is ${ALLOWED}` };
  const outside = text.replace(BLOCK, "").trim();
  if (outside !== "") {
    return { ok: false, problem: `${CA_CERTIFICATE_KEY} holds text outside its PEM certificates (not shown here): allowed is ${ALLOWED}` };
  }
  const pems: string[] = [];
  const certificates: CaFacts[] = [];
  for (const [index, block] of blocks.entries()) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block[0]);
    } catch {
      return { ok: false, problem: `${CA_CERTIFICATE_KEY}: certificate ${index + 1} of ${blocks.length} is not a valid X.509 certificate: allowed is ${ALLOWED}` };
    }
    pems.push(cert.toString().trim());
    certificates.push({ subject: cert.subject.replace(/\n/g, ", "), notAfter: new Date(cert.validTo), isCa: cert.ca });
  }
  return { ok: true, pem: pems.join("\n") + "\n", certificates };
}

/** The PEM blocks of a normalized bundle, one certificate each (NixOS's security.pki.certificates takes a list). */
export function certificateBlocks(pem: string): string[] {
  return [...pem.matchAll(BLOCK)].map((b) => b[0]);
}
