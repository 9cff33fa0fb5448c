// What a failed MinIO request tells the user. A server that is down or a wrong admin password makes every
// resource fail the same way; the message then names only the endpoint and the fix (not the request), so
// Pulumi shows one sentence, the same for every resource, instead of one variant per operation.

/** Transport errors: the server is not there (or not answering). */
export const UNREACHABLE_CODES = ["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ECONNRESET", "ETIMEDOUT", "EAI_AGAIN", "EPIPE"];

/** MinIO's answers to a wrong access key or secret (S3 and admin API; a body encrypted with the wrong secret). */
export const BAD_CREDENTIAL_CODES = [
  "SignatureDoesNotMatch",
  "InvalidAccessKeyId",
  "XMinioAdminConfigBadJSON",
  "XMinioInvalidAccessKeyId",
];

const CREDENTIAL_HINTS: Record<string, string> = {
  SignatureDoesNotMatch: ": wrong password",
  XMinioAdminConfigBadJSON: ": wrong password",
  InvalidAccessKeyId: ": no such user",
  XMinioInvalidAccessKeyId: ": no such user",
};

/** Node's codes for a certificate chain that does not lead to a CA it trusts. */
export const UNKNOWN_CA_CODES = [
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
];
/** Node's codes for a certificate outside its validity period. */
export const VALIDITY_CODES = ["CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID"];
/** Node's code for a certificate that does not name the host asked for. */
export const NAME_MISMATCH_CODE = "ERR_TLS_CERT_ALTNAME_INVALID";
/** What OpenSSL says when an https client meets a server that answers in plain http. */
const NOT_TLS = /wrong version number|packet length too long|WRONG_VERSION_NUMBER/i;

/**
 * MinIO's answers when a distributed (erasure-coded) MinIO has too few drives online: SlowDownWrite /
 * SlowDownRead (503, "Resource requested is unwritable/unreadable": below the write or read quorum),
 * XMinioAdminConfigNoQuorum (503, an IAM or config change without quorum), XMinioServerNotInitialized (503, the
 * server waits for enough of its nodes). Measured on our pinned MinIO with 2 of 4 nodes down
 * (../shared/facts/minio-distributed.md); codes from its cmd/api-errors.go.
 */
export const QUORUM_CODES = ["SlowDownWrite", "SlowDownRead", "XMinioAdminConfigNoQuorum", "XMinioServerNotInitialized"];

export type FailureKind = "unreachable" | "credentials" | "tls" | "quorum" | "other";

export function failureKind(code: string | undefined, message = ""): FailureKind {
  if (code && (UNKNOWN_CA_CODES.includes(code) || VALIDITY_CODES.includes(code) || code === NAME_MISMATCH_CODE)) return "tls";
  if (NOT_TLS.test(message) || (code !== undefined && NOT_TLS.test(code))) return "tls";
  if (code && UNREACHABLE_CODES.includes(code)) return "unreachable";
  if (code && BAD_CREDENTIAL_CODES.includes(code)) return "credentials";
  if (isQuorumLoss(code)) return "quorum";
  return "other";
}

/** The sentence for a server that did not answer in time. */
export function timeoutMessage(endpoint: string, seconds: number): string {
  return `MinIO at ${endpoint} did not answer within ${seconds} s: is the server running, and is nix-cache:endpoint right?`;
}

/**
 * The status of an answer the MinIO JS SDK gave up on: for a status it would retry (500, 502, 503, 504, ...)
 * it throws "Request failed after N retries: Error: Retryable HTTP status: 503", without MinIO's error code
 * (so SlowDownWrite reads as a bare 503). Undefined for any other message.
 */
export function sdkRetryStatus(message: string): number | undefined {
  const m = /Retryable HTTP status: (\d{3})/.exec(message);
  return m ? Number(m[1]) : undefined;
}

/** Our code for a failed write while MinIO's /minio/health/cluster answered 503 (below its write quorum). */
export const WRITE_QUORUM_LOST = "WriteQuorumLost";

/** Is `code` one of MinIO's quorum answers, or ours for a write refused by a cluster below its quorum? */
export const isQuorumLoss = (code: string | undefined) => code !== undefined && (QUORUM_CODES.includes(code) || code === WRITE_QUORUM_LOST);

/** The sentence for an answer the SDK gave up on (sdkRetryStatus) from a MinIO whose cluster health is fine. */
export function httpStatusMessage(what: string, endpoint: string, status: number): string {
  const meaning = status === 503 ? "Service Unavailable: it is starting or overloaded" : "a server error";
  return `${what} at ${endpoint}: MinIO answered HTTP ${status} (${meaning}); run this again, and see MinIO's log if it persists`;
}

/** What a quorum code (QUORUM_CODES) says about the cluster, e.g. "lost its write quorum: …". */
export function quorumLoss(code: string): string {
  if (code === "SlowDownRead") return "lost its read quorum: too few of its nodes (drives) are online to read";
  if (code === "XMinioServerNotInitialized") return "is not initialized: it waits for enough of its nodes (drives) to come online to reach its write quorum";
  return "lost its write quorum: too few of its nodes (drives) are online to write (an erasure set of 4 needs 3), so it refuses every change; reads still work";
}

/** What brings a MinIO that lost its quorum back. */
export const QUORUM_FIX = "bring the offline MinIO nodes back (`mc admin info` lists them), then run this again";

/**
 * The sentence for a MinIO that lost its quorum: too few of its nodes (drives) are online to write, or, for
 * SlowDownRead, to read. The same for every request, naming the endpoint, the code (or what was seen) and the fix.
 */
export function quorumMessage(endpoint: string, code: string, seen = code): string {
  return `MinIO at ${endpoint} ${quorumLoss(code)} (${seen}): ${QUORUM_FIX}`;
}

/**
 * The sentence for a failed request: `what` is the operation (e.g. "read bucket nix-cache"), `code` and
 * `message` what the transport or MinIO said.
 */
export function failureMessage(what: string, endpoint: string, code: string | undefined, message: string): string {
  switch (failureKind(code)) {
    case "unreachable":
      return `cannot reach MinIO at ${endpoint} (${code}): is the server running, and is nix-cache:endpoint right?`;
    case "quorum":
      return quorumMessage(endpoint, code ?? "");
    case "credentials":
      return (
        `MinIO at ${endpoint} rejected the admin credentials (${code}${CREDENTIAL_HINTS[code ?? ""] ?? ""}): ` +
        `check nix-cache:adminUser and nix-cache:adminPassword (pulumi config set --secret nix-cache:adminPassword)`
      );
    default:
      return `${what} at ${endpoint}: ${message}${code && !message.includes(code) ? ` (${code})` : ""}`;
  }
}

/** What the server's certificate says, for the message (peerCertificate in providers/minioClients.ts). */
export interface PeerCertificate {
  subject: string;
  issuer: string;
  /** ISO date. */
  validTo: string;
  /** subjectAltName as node prints it, e.g. "DNS:localhost, IP Address:127.0.0.1". */
  names: string;
}

const CERTS_DIR = "MinIO's certs directory (its --certs-dir, by default ~/.minio/certs)";

/**
 * The sentence for a TLS failure: which of the four problems it is (unknown CA, name, validity, no TLS at
 * all), what the certificate says, and the setting or file that fixes it. `caConfigured` tells whether
 * nix-cache:caCertificate was set (the CA in it is then the wrong one).
 */
export function tlsFailureMessage(endpoint: string, code: string, message: string, caConfigured: boolean, peer?: PeerCertificate): string {
  const url = new URL(endpoint);
  const seen = peer ? `; it is ${peer.subject}, issued by ${peer.issuer}, valid until ${peer.validTo}, names ${peer.names || "nothing"}` : "";
  if (UNKNOWN_CA_CODES.includes(code)) {
    const issuer = peer ? ` (${peer.issuer})` : "";
    return caConfigured
      ? `MinIO's certificate at ${endpoint} is not signed by the CA in nix-cache:caCertificate (${code}${seen}): set ` +
          `nix-cache:caCertificate to the PEM of the CA that issued it${issuer}: pulumi config set nix-cache:caCertificate -- "$(cat ca.pem)"`
      : `MinIO's certificate at ${endpoint} is signed by a CA this machine does not trust (${code}${seen}): set ` +
          `nix-cache:caCertificate to the PEM of that CA${issuer}: pulumi config set nix-cache:caCertificate -- "$(cat ca.pem)"`;
  }
  if (code === "CERT_HAS_EXPIRED") {
    return (
      `MinIO's certificate at ${endpoint} has expired (${code}${seen}): renew it: replace public.crt and private.key in ` +
      `${CERTS_DIR} with a current certificate for ${url.hostname}, then restart MinIO`
    );
  }
  if (code === "CERT_NOT_YET_VALID") {
    return `MinIO's certificate at ${endpoint} is not valid yet (${code}${seen}): check the clocks of this machine and of the CA, or reissue public.crt in ${CERTS_DIR}`;
  }
  if (code === NAME_MISMATCH_CODE) {
    return (
      `MinIO's certificate at ${endpoint} does not name ${url.hostname} (${code}${seen}): set nix-cache:endpoint to a name ` +
      `the certificate holds, or reissue public.crt in ${CERTS_DIR} with ${url.hostname} in its subjectAltName`
    );
  }
  return (
    `MinIO at ${endpoint} does not speak TLS (${code || message}): nix-cache:endpoint says https, so give MinIO a ` +
    `certificate (public.crt and private.key in ${CERTS_DIR}), or set nix-cache:endpoint to http://${url.host} if it ` +
    `really serves plain http (anyone on the path can then read and alter the cache's traffic)`
  );
}
