// The two ways the providers talk to MinIO: the official JS SDK for S3 calls, and a small client for
// MinIO's admin REST API (/minio/admin/v3), SigV4-signed with aws4. Both are created inside provider
// methods from the stack configuration, so no client and no credential is captured into the state.
import * as http from "http";
import * as https from "https";
import * as crypto from "crypto";
import * as tls from "tls";
import { encryptAdminBody } from "../lib/minio/adminCrypto";
import { failureKind, failureMessage, httpStatusMessage, PeerCertificate, quorumMessage, sdkRetryStatus, timeoutMessage, tlsFailureMessage, WRITE_QUORUM_LOST } from "../lib/minio/failures";

/** Admin credentials read from the stack config (`nix-cache:adminUser`, `nix-cache:adminPassword`). */
export interface AdminCredentials {
  accessKey: string;
  secretKey: string;
}

/** Where and how to reach a MinIO server. */
export interface MinioTarget {
  /** scheme://host[:port] of the S3 API. */
  endpoint: string;
  region: string;
  /**
   * PEM of the CA(s) trusted for this endpoint's certificate (nix-cache:caCertificate), in place of the
   * system's roots; undefined for the system's roots. Used only by the agents of this endpoint's clients.
   */
  ca?: string;
}

/** How long one request may take before the operation fails with a clear error instead of hanging. */
export const REQUEST_TIMEOUT_MS = 20_000;

/** The minimal view of the stack config the providers need (the dynamic provider's configure request). */
export interface ConfigSource {
  get(key: string): string | undefined;
}

/** Reads the admin credentials from the stack config, with one clear error naming what is missing. */
export function adminCredentialsFrom(config: ConfigSource): AdminCredentials {
  const accessKey = config.get("nix-cache:adminUser");
  const secretKey = config.get("nix-cache:adminPassword");
  const missing = [
    accessKey ? undefined : "nix-cache:adminUser",
    secretKey ? undefined : "nix-cache:adminPassword",
  ].filter((k): k is string => k !== undefined);
  if (missing.length > 0 || !accessKey || !secretKey) {
    throw new Error(
      `MinIO admin credentials are not configured: set ${missing.join(" and ")} ` +
        `(pulumi config set nix-cache:adminUser USER; pulumi config set --secret nix-cache:adminPassword)`,
    );
  }
  return { accessKey, secretKey };
}

/**
 * An expected failure whose message says it all. Pulumi's provider server (as its dynamic-provider host did)
 * prints failed checks, reads, diffs and deletes as `${err}: ${err.stack}`; this error prints there as "nix-cache: <message>", not as a stack
 * trace. `described` marks it as final, so callers up the chain do not wrap it again.
 */
export function providerError(message: string, code?: string): Error & { code?: string; described: true } {
  const err = Object.assign(new Error(message), { code, described: true as const });
  err.stack = message;
  Object.defineProperty(err, "toString", { value: () => "nix-cache", enumerable: false });
  return err;
}

/** Rejects after `ms` with a message that names the endpoint, so a stopped or hung server never hangs `up`. */
export async function withTimeout<T>(endpoint: string, work: Promise<T>, ms = REQUEST_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(providerError(timeoutMessage(endpoint, ms / 1000), "ETIMEDOUT")), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** Turns transport and credential failures into one readable sentence naming the endpoint (lib/minio/failures.ts). */
export function describeFailure(what: string, endpoint: string, err: unknown): Error & { code?: string } {
  const e = err as { code?: string; message?: string; described?: boolean } | undefined;
  if (e?.described) return err as Error & { code?: string };
  return providerError(failureMessage(what, endpoint, e?.code, e?.message ?? String(err)), e?.code);
}

/** One TLS handshake's outcome: Node's verdict on the chain and the name, and what the certificate says. */
export interface TlsHandshake extends PeerCertificate {
  /** The chain verified against the trusted CAs and the certificate names the host. */
  authorized: boolean;
  /** Node's verification error code when not authorized (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE). */
  error?: string;
}

/**
 * Shakes hands with `url`'s host trusting `ca` (undefined: Node's roots) without refusing the certificate, so
 * that a caller can say what is wrong with it. Rejects when no TLS session comes about (nothing listens, the
 * server does not speak TLS, no answer within `timeoutMs`).
 */
export function tlsHandshake(url: string, ca: string | undefined, timeoutMs: number): Promise<TlsHandshake> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port: Number(u.port || 443),
      servername: /^[\d.]+$|:/.test(host) ? undefined : host,
      ca,
      rejectUnauthorized: false,
      timeout: timeoutMs,
    });
    socket.once("secureConnect", () => {
      const c = socket.getPeerCertificate();
      const dn = (d: Record<string, unknown> | undefined) =>
        d ? Object.entries(d).map(([k, v]) => `${k}=${String(v)}`).join(", ") : "?";
      resolve({
        authorized: socket.authorized,
        error: socket.authorized ? undefined : String(socket.authorizationError ?? "unknown"),
        subject: dn(c?.subject as unknown as Record<string, unknown> | undefined),
        issuer: dn(c?.issuer as unknown as Record<string, unknown> | undefined),
        validTo: c?.valid_to ? new Date(c.valid_to).toISOString() : "?",
        names: c?.subjectaltname ?? "",
      });
      socket.end();
    });
    socket.once("timeout", () => socket.destroy(Object.assign(new Error(`TLS handshake with ${u.host} timed out`), { code: "ETIMEDOUT" })));
    socket.once("error", reject);
  });
}

/** The status of MinIO's cluster health endpoint (503: below the write quorum); undefined when it does not answer. */
export function clusterHealth(target: MinioTarget, timeoutMs: number): Promise<number | undefined> {
  const url = new URL("/minio/health/cluster", target.endpoint);
  return new Promise((resolve) => {
    const req = (url.protocol === "https:" ? https : http).get(
      url,
      { timeout: timeoutMs, ...(url.protocol === "https:" && target.ca ? { agent: httpsAgentFor(target.ca) } : {}) },
      (res) => {
        res.resume();
        resolve(res.statusCode);
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(undefined));
  });
}

/**
 * Fails with the quorum sentence when a distributed MinIO has lost its write quorum (its cluster health answers
 * 503). Reads still work then, so a refresh alone would call such a cache fine while no builder can push to it.
 * Any other answer (200, a proxy's 404, no answer) passes: this only adds what the health endpoint knows.
 */
export async function requireWriteQuorum(target: MinioTarget): Promise<void> {
  if ((await clusterHealth(target, 3_000)) === 503) {
    throw providerError(quorumMessage(target.endpoint, WRITE_QUORUM_LOST, "/minio/health/cluster answers 503"), WRITE_QUORUM_LOST);
  }
}

/** Runs one MinIO operation with a time bound and readable errors. */
export async function minioCall<T>(what: string, target: MinioTarget, work: () => Promise<T>): Promise<T> {
  try {
    return await withTimeout(target.endpoint, work());
  } catch (err) {
    const e = err as { code?: string; message?: string; described?: boolean } | undefined;
    if (!e?.described && failureKind(e?.code, e?.message) === "tls") {
      // A certificate problem: say which and name the setting or file that fixes it.
      const peer = await tlsHandshake(target.endpoint, target.ca, 5_000).catch(() => undefined);
      throw providerError(tlsFailureMessage(target.endpoint, e?.code ?? "", e?.message ?? "", target.ca !== undefined, peer), e?.code);
    }
    // A distributed MinIO below its write quorum answers writes 503 (the SDK drops MinIO's SlowDownWrite and
    // keeps only the status) or, for some (bucket create, DELETE), never: its cluster health says why, where
    // "503" or "did not answer" would send the user looking elsewhere.
    const status = e?.described ? undefined : sdkRetryStatus(e?.message ?? "");
    if ((e?.code === "ETIMEDOUT" || status === 503) && (await clusterHealth(target, 3_000)) === 503) {
      const seen = status ? `HTTP ${status}` : `no answer within ${REQUEST_TIMEOUT_MS / 1000} s`;
      throw providerError(quorumMessage(target.endpoint, WRITE_QUORUM_LOST, `${seen}; /minio/health/cluster answers 503`), WRITE_QUORUM_LOST);
    }
    if (status !== undefined) throw providerError(httpStatusMessage(what, target.endpoint, status), `HTTP${status}`);
    throw describeFailure(what, target.endpoint, err);
  }
}

/**
 * One agent per CA bundle: clients of the same endpoint share connections, and no other client trusts it.
 * A plain object, not a Map: Pulumi's closure serialization of the providers does not carry Maps.
 */
const caAgents: Record<string, https.Agent> = {};
export function httpsAgentFor(ca: string): https.Agent {
  caAgents[ca] ??= new https.Agent({ ca, keepAlive: true });
  return caAgents[ca];
}

/** The MinIO JS SDK client for S3 calls. */
export function s3Client(target: MinioTarget, creds: AdminCredentials) {
  // Required here, not imported at the top: the commands that import this file only for its config readers
  // (scripts/stackReader.ts) never load the SDK.
  const Minio: typeof import("minio") = require("minio");
  const url = new URL(target.endpoint);
  const useSSL = url.protocol === "https:";
  return new Minio.Client({
    endPoint: url.hostname,
    port: url.port ? Number(url.port) : useSSL ? 443 : 80,
    useSSL,
    region: target.region,
    accessKey: creds.accessKey,
    secretKey: creds.secretKey,
    pathStyle: true,
    // No SDK retries: they would not bring back what a cluster below its write quorum refuses, and the SDK
    // prints a line for each ("Retrying request ... Retryable HTTP status: 503") into Pulumi's diagnostics.
    retryOptions: { disableRetry: true },
    // The stack's CA is trusted by this client's agent only: no process-wide trust change.
    ...(useSSL && target.ca ? { transportAgent: httpsAgentFor(target.ca) } : {}),
  });
}

type S3 = ReturnType<typeof s3Client>;
/** The error code MinIO (or node) gave a failure, e.g. NoSuchKey, AccessDenied, ECONNREFUSED; "" when none. */
export const errorCode = (err: unknown): string => (err as { code?: string } | undefined)?.code ?? "";

// The S3 reads below use GET, not HEAD: an answer to HEAD has no body, so a refusal reads as a bare
// "AccessDenied" whatever the reason, where GET says "SignatureDoesNotMatch" for a wrong admin password.

/** Does the bucket exist? */
export async function bucketExists(client: S3, bucket: string): Promise<boolean> {
  try {
    await client.listObjectsV2Query(bucket, "", "", "", 1, "");
    return true;
  } catch (err) {
    if (errorCode(err) === "NoSuchBucket") return false;
    throw err;
  }
}

/** An object's text and content type, or undefined when it (or its bucket) does not exist. */
export async function readTextObject(client: S3, bucket: string, key: string): Promise<{ content: string; contentType: string } | undefined> {
  try {
    const stream = (await client.getObject(bucket, key)) as import("stream").Readable & { headers?: Record<string, string | string[] | undefined> };
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const type = stream.headers?.["content-type"];
    return { content: Buffer.concat(chunks).toString("utf8"), contentType: typeof type === "string" ? type : "" };
  } catch (err) {
    if (["NoSuchKey", "NoSuchBucket", "NotFound"].includes(errorCode(err))) return undefined;
    throw err;
  }
}

interface AdminResponse {
  status: number;
  body: Buffer;
}

/** One signed request to /minio/admin/v3/<path>. */
export async function adminRequest(
  target: MinioTarget,
  creds: AdminCredentials,
  method: "GET" | "PUT" | "POST" | "DELETE",
  path: string,
  query: Record<string, string>,
  body?: Buffer,
  contentType?: string,
): Promise<AdminResponse> {
  const aws4: typeof import("aws4") = require("aws4");
  const url = new URL(target.endpoint);
  const qs = new URLSearchParams(query).toString();
  const payload = body ?? Buffer.alloc(0);
  const headers: Record<string, string> = {
    "x-amz-content-sha256": crypto.createHash("sha256").update(payload).digest("hex"),
  };
  if (contentType) headers["Content-Type"] = contentType;
  const request = {
    host: url.host,
    path: `/minio/admin/v3/${path}${qs ? `?${qs}` : ""}`,
    method,
    headers,
    body: payload,
    service: "s3",
    region: target.region,
  };
  aws4.sign(request, { accessKeyId: creds.accessKey, secretAccessKey: creds.secretKey });
  const transport = url.protocol === "https:" ? https : http;
  const what = `MinIO admin ${method} ${path}`;
  const response = await minioCall(what, target, () =>
    new Promise<AdminResponse>((resolve, reject) => {
      const req = transport.request(
        {
          protocol: url.protocol,
          hostname: url.hostname,
          port: url.port || undefined,
          method,
          path: request.path,
          headers: request.headers as http.OutgoingHttpHeaders,
          timeout: REQUEST_TIMEOUT_MS,
          ...(url.protocol === "https:" && target.ca ? { agent: httpsAgentFor(target.ca) } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(providerError(timeoutMessage(target.endpoint, REQUEST_TIMEOUT_MS / 1000), "ETIMEDOUT")));
      req.on("error", reject);
      req.end(payload);
    }),
  );
  if (response.status >= 300) {
    let code = `HTTP${response.status}`;
    let message = response.body.toString("utf8");
    try {
      const parsed = JSON.parse(message) as { Code?: string; Message?: string };
      code = parsed.Code ?? code;
      message = parsed.Message ?? message;
    } catch {
      // not JSON: keep the raw text
    }
    const err = Object.assign(new Error(message), { code, status: response.status });
    if (response.status !== 404) throw describeFailure(what, target.endpoint, err);
    // "No such user/policy": callers turn it into "gone"; if one does not, it still reads well.
    throw Object.assign(providerError(`${what} at ${target.endpoint}: ${message} (${code})`, code), { status: 404 });
  }
  return response;
}

/** What MinIO tells about a user. */
export interface UserInfo {
  status: "enabled" | "disabled";
  policies: string[];
}

const isNotFound = (err: unknown, code: string) => errorCode(err) === code;

/** The admin operations the providers use; `undefined` means "does not exist". */
export const minioAdmin = {
  async addUser(t: MinioTarget, c: AdminCredentials, user: string, secretKey: string): Promise<void> {
    const body = encryptAdminBody(c.secretKey, JSON.stringify({ secretKey, status: "enabled" }));
    await adminRequest(t, c, "PUT", "add-user", { accessKey: user }, body, "application/octet-stream");
  },
  async setUserStatus(t: MinioTarget, c: AdminCredentials, user: string, status: "enabled" | "disabled"): Promise<void> {
    await adminRequest(t, c, "PUT", "set-user-status", { accessKey: user, status });
  },
  async userInfo(t: MinioTarget, c: AdminCredentials, user: string): Promise<UserInfo | undefined> {
    try {
      const res = await adminRequest(t, c, "GET", "user-info", { accessKey: user });
      const info = JSON.parse(res.body.toString("utf8")) as { status?: string; policyName?: string };
      return {
        status: info.status === "enabled" ? "enabled" : "disabled",
        policies: (info.policyName ?? "").split(",").map((p) => p.trim()).filter((p) => p.length > 0),
      };
    } catch (err) {
      if (isNotFound(err, "XMinioAdminNoSuchUser")) return undefined;
      throw err;
    }
  },
  async removeUser(t: MinioTarget, c: AdminCredentials, user: string): Promise<void> {
    try {
      await adminRequest(t, c, "DELETE", "remove-user", { accessKey: user });
    } catch (err) {
      if (!isNotFound(err, "XMinioAdminNoSuchUser")) throw err;
    }
  },
  async putPolicy(t: MinioTarget, c: AdminCredentials, name: string, document: string): Promise<void> {
    await adminRequest(t, c, "PUT", "add-canned-policy", { name }, Buffer.from(document, "utf8"));
  },
  async policyDocument(t: MinioTarget, c: AdminCredentials, name: string): Promise<unknown | undefined> {
    try {
      const res = await adminRequest(t, c, "GET", "info-canned-policy", { name, v: "2" });
      return (JSON.parse(res.body.toString("utf8")) as { Policy?: unknown }).Policy;
    } catch (err) {
      if (isNotFound(err, "XMinioAdminNoSuchPolicy")) return undefined;
      throw err;
    }
  },
  async removePolicy(t: MinioTarget, c: AdminCredentials, name: string): Promise<void> {
    try {
      await adminRequest(t, c, "DELETE", "remove-canned-policy", { name });
    } catch (err) {
      if (!isNotFound(err, "XMinioAdminNoSuchPolicy")) throw err;
    }
  },
  async attachPolicy(t: MinioTarget, c: AdminCredentials, user: string, policy: string, detach = false): Promise<void> {
    const body = encryptAdminBody(c.secretKey, JSON.stringify({ policies: [policy], user }));
    const path = `idp/builtin/policy/${detach ? "detach" : "attach"}`;
    try {
      await adminRequest(t, c, "POST", path, {}, body, "application/octet-stream");
    } catch (err) {
      // Attaching what is attached, or detaching what is not, is already the wanted state.
      const code = errorCode(err);
      if (code === "XMinioAdminPolicyChangeAlreadyApplied") return;
      if (detach && (code === "XMinioAdminNoSuchUser" || code === "XMinioAdminNoSuchPolicy")) return;
      throw err;
    }
  },
};
