// What a failed MinIO request tells the user (lib/failures.ts).
import { failureKind, failureMessage, PeerCertificate, timeoutMessage, tlsFailureMessage } from "../../lib/failures";

const ENDPOINT = "http://127.0.0.1:9000";

test.each(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EHOSTUNREACH", "ETIMEDOUT", "EAI_AGAIN", "EPIPE"])(
  "%s: the server is unreachable, whatever the request; the message names the endpoint and the setting",
  (code) => {
    expect(failureKind(code)).toBe("unreachable");
    const a = failureMessage("read bucket nix-cache", ENDPOINT, code, "connect failed");
    const b = failureMessage("MinIO admin GET user-info", ENDPOINT, code, "other words");
    expect(a).toBe(b);
    expect(a).toBe(`cannot reach MinIO at ${ENDPOINT} (${code}): is the server running, and is nix-cache:endpoint right?`);
  },
);

test.each([
  ["SignatureDoesNotMatch", "wrong password"],
  ["XMinioAdminConfigBadJSON", "wrong password"],
  ["InvalidAccessKeyId", "no such user"],
  ["XMinioInvalidAccessKeyId", "no such user"],
])("%s: the admin credentials were rejected (%s), one sentence for every request", (code, hint) => {
  expect(failureKind(code)).toBe("credentials");
  const a = failureMessage("create bucket nix-cache", ENDPOINT, code, "The request signature we calculated does not match");
  expect(a).toBe(failureMessage("MinIO admin PUT add-user", ENDPOINT, code, "anything"));
  expect(a).toMatch(new RegExp(`^MinIO at ${ENDPOINT.replace(/\./g, "\\.")} rejected the admin credentials \\(${code}: ${hint}\\): `));
  expect(a).toContain("check nix-cache:adminUser and nix-cache:adminPassword");
});

test("other failures keep the request, the endpoint and MinIO's words, with the code once", () => {
  expect(failureKind("AccessDenied")).toBe("other");
  expect(failureKind(undefined)).toBe("other");
  expect(failureMessage("read the policy of bucket b", ENDPOINT, "AccessDenied", "Access Denied.")).toBe(
    `read the policy of bucket b at ${ENDPOINT}: Access Denied. (AccessDenied)`,
  );
  expect(failureMessage("x", ENDPOINT, "NoSuchKey", "NoSuchKey: gone")).toBe(`x at ${ENDPOINT}: NoSuchKey: gone`);
  expect(failureMessage("x", ENDPOINT, undefined, "boom")).toBe(`x at ${ENDPOINT}: boom`);
});

test("a hung server: the bound and the endpoint", () => {
  expect(timeoutMessage(ENDPOINT, 20)).toBe(`MinIO at ${ENDPOINT} did not answer within 20 s: is the server running, and is nix-cache:endpoint right?`);
});

describe("TLS failures: which problem, what the certificate says, and the setting or file that fixes it", () => {
  const HTTPS = "https://s3.homelab.local";
  const peer: PeerCertificate = {
    subject: "CN=s3.homelab.local",
    issuer: "CN=Homelab Root CA",
    validTo: "2026-01-01T00:00:00.000Z",
    names: "DNS:s3.homelab.local",
  };

  test.each(["UNABLE_TO_VERIFY_LEAF_SIGNATURE", "SELF_SIGNED_CERT_IN_CHAIN", "DEPTH_ZERO_SELF_SIGNED_CERT", "CERT_HAS_EXPIRED", "ERR_TLS_CERT_ALTNAME_INVALID"])(
    "%s is a TLS failure, not an unreachable server or bad credentials",
    (code) => expect(failureKind(code)).toBe("tls"),
  );

  test("an http server behind an https URL is a TLS failure too (OpenSSL's 'wrong version number')", () => {
    expect(failureKind("EPROTO", "write EPROTO 40E8:error:0A00010B:SSL routines:ssl3_get_record:wrong version number")).toBe("tls");
    expect(tlsFailureMessage(HTTPS, "EPROTO", "wrong version number", false)).toMatch(/^MinIO at https:\/\/s3\.homelab\.local does not speak TLS \(EPROTO\): .*http:\/\/s3\.homelab\.local/);
  });

  test("unknown CA without caCertificate: names the issuer and says to set nix-cache:caCertificate", () => {
    const m = tlsFailureMessage(HTTPS, "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "", false, peer);
    expect(m).toContain("is signed by a CA this machine does not trust (UNABLE_TO_VERIFY_LEAF_SIGNATURE; it is CN=s3.homelab.local, issued by CN=Homelab Root CA");
    expect(m).toContain('set nix-cache:caCertificate to the PEM of that CA (CN=Homelab Root CA): pulumi config set nix-cache:caCertificate -- "$(cat ca.pem)"');
  });

  test("unknown CA with caCertificate set: the configured CA is the wrong one", () => {
    const m = tlsFailureMessage(HTTPS, "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "", true, peer);
    expect(m).toContain("is not signed by the CA in nix-cache:caCertificate");
    expect(m).toContain("the CA that issued it (CN=Homelab Root CA)");
  });

  test("expired: the certificate's end and the files to replace", () => {
    const m = tlsFailureMessage(HTTPS, "CERT_HAS_EXPIRED", "", true, peer);
    expect(m).toContain("has expired (CERT_HAS_EXPIRED; it is CN=s3.homelab.local, issued by CN=Homelab Root CA, valid until 2026-01-01");
    expect(m).toContain("replace public.crt and private.key in MinIO's certs directory (its --certs-dir, by default ~/.minio/certs)");
  });

  test("name mismatch: the host asked for, the names the certificate holds, the two ways out", () => {
    const m = tlsFailureMessage("https://minio.lan:9000", "ERR_TLS_CERT_ALTNAME_INVALID", "", true, peer);
    expect(m).toContain("does not name minio.lan (ERR_TLS_CERT_ALTNAME_INVALID; ");
    expect(m).toContain("names DNS:s3.homelab.local");
    expect(m).toContain("set nix-cache:endpoint to a name the certificate holds, or reissue public.crt");
  });

  test("without the certificate's details (it could not be read) the message still says what to do", () => {
    expect(tlsFailureMessage(HTTPS, "CERT_HAS_EXPIRED", "", false)).toBe(
      "MinIO's certificate at https://s3.homelab.local has expired (CERT_HAS_EXPIRED): renew it: replace public.crt and private.key in " +
        "MinIO's certs directory (its --certs-dir, by default ~/.minio/certs) with a current certificate for s3.homelab.local, then restart MinIO",
    );
  });
});
