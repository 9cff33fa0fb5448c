// What a failed MinIO request tells the user (lib/failures.ts).
import { failureKind, failureMessage, timeoutMessage } from "../../lib/failures";

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
