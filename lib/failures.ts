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

export type FailureKind = "unreachable" | "credentials" | "other";

export function failureKind(code: string | undefined): FailureKind {
  if (code && UNREACHABLE_CODES.includes(code)) return "unreachable";
  if (code && BAD_CREDENTIAL_CODES.includes(code)) return "credentials";
  return "other";
}

/** The sentence for a server that did not answer in time. */
export function timeoutMessage(endpoint: string, seconds: number): string {
  return `MinIO at ${endpoint} did not answer within ${seconds} s: is the server running, and is nix-cache:endpoint right?`;
}

/**
 * The sentence for a failed request: `what` is the operation (e.g. "read bucket nix-cache"), `code` and
 * `message` what the transport or MinIO said.
 */
export function failureMessage(what: string, endpoint: string, code: string | undefined, message: string): string {
  switch (failureKind(code)) {
    case "unreachable":
      return `cannot reach MinIO at ${endpoint} (${code}): is the server running, and is nix-cache:endpoint right?`;
    case "credentials":
      return (
        `MinIO at ${endpoint} rejected the admin credentials (${code}${CREDENTIAL_HINTS[code ?? ""] ?? ""}): ` +
        `check nix-cache:adminUser and nix-cache:adminPassword (pulumi config set --secret nix-cache:adminPassword)`
      );
    default:
      return `${what} at ${endpoint}: ${message}${code && !message.includes(code) ? ` (${code})` : ""}`;
  }
}
