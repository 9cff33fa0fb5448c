// What a failed MinIO request tells the user (lib/minio/failures.ts).
import {
  failureKind,
  failureMessage,
  httpStatusMessage,
  isQuorumLoss,
  PeerCertificate,
  QUORUM_FIX,
  quorumLoss,
  quorumMessage,
  sdkRetryStatus,
  timeoutMessage,
  tlsFailureMessage,
  WRITE_QUORUM_LOST,
} from "../../lib/minio/failures";
import { judgeBuilderUpload } from "../../lib/verify/checks";

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

describe("a distributed MinIO below its quorum: one sentence that says so, not a raw 503", () => {
  test.each(["SlowDownWrite", "XMinioAdminConfigNoQuorum"])("%s: lost its write quorum, the same for every request, with the fix", (code) => {
    expect(failureKind(code)).toBe("quorum");
    const a = failureMessage("upload nix-cache/nix-cache-info", ENDPOINT, code, "Resource requested is unwritable, please reduce your request rate");
    expect(a).toBe(failureMessage("MinIO admin PUT add-user", ENDPOINT, code, "Configuration update failed because server quorum was not met"));
    expect(a).toBe(
      `MinIO at ${ENDPOINT} lost its write quorum: too few of its nodes (drives) are online to write (an erasure set of 4 needs 3), ` +
        `so it refuses every change; reads still work (${code}): bring the offline MinIO nodes back (\`mc admin info\` lists them), then run this again`,
    );
    expect(a).not.toMatch(/reduce your request rate|503/);
  });

  test("SlowDownRead: the read quorum; XMinioServerNotInitialized: waiting for its nodes", () => {
    expect(failureMessage("read bucket b", ENDPOINT, "SlowDownRead", "unreadable")).toMatch(/^MinIO at \S+ lost its read quorum: .*\(SlowDownRead\): bring the offline MinIO nodes back/);
    expect(failureMessage("read bucket b", ENDPOINT, "XMinioServerNotInitialized", "x")).toMatch(/^MinIO at \S+ is not initialized: it waits for enough of its nodes .*\(XMinioServerNotInitialized\)/);
  });

  test("our code for a write refused while /minio/health/cluster answers 503 reads as the write quorum, with what was seen", () => {
    expect(isQuorumLoss(WRITE_QUORUM_LOST)).toBe(true);
    expect(failureKind(WRITE_QUORUM_LOST)).toBe("quorum");
    expect(quorumMessage(ENDPOINT, WRITE_QUORUM_LOST, "no answer within 20 s; /minio/health/cluster answers 503")).toMatch(
      /^MinIO at \S+ lost its write quorum: .* \(no answer within 20 s; \/minio\/health\/cluster answers 503\): bring/,
    );
  });

  test("the SDK's 'Retryable HTTP status' message gives the status; elsewhere a plain sentence, not the SDK's words", () => {
    expect(sdkRetryStatus("Request failed after 0 retries: Error: Retryable HTTP status: 503")).toBe(503);
    expect(sdkRetryStatus("Access Denied.")).toBeUndefined();
    expect(httpStatusMessage("upload nix-cache/x", ENDPOINT, 503)).toBe(
      `upload nix-cache/x at ${ENDPOINT}: MinIO answered HTTP 503 (Service Unavailable: it is starting or overloaded); run this again, and see MinIO's log if it persists`,
    );
  });

  test("verify's builder-upload check says the same, with the fix instead of `pulumi up --refresh`", () => {
    const r = judgeBuilderUpload({ ok: false, code: "SlowDownWrite", message: "Resource requested is unwritable, please reduce your request rate" }, "nixbuilder");
    expect(r.ok).toBe(false);
    expect(r.detail).toBe(`upload as the builder failed: MinIO ${quorumLoss("SlowDownWrite")} (SlowDownWrite)`);
    expect(r.fix).toBe(QUORUM_FIX);
    const seen = judgeBuilderUpload({ ok: false, code: WRITE_QUORUM_LOST, message: "HTTP 503; /minio/health/cluster answers 503" }, "nixbuilder");
    expect(seen.detail).toBe(`upload as the builder failed: MinIO ${quorumLoss("SlowDownWrite")} (HTTP 503; /minio/health/cluster answers 503)`);
  });
});
