// The real network side of `npm run verify`: anonymous HTTP requests as a Nix client makes them, S3 calls as
// the builder and the admin, a TLS handshake; for a private cache SigV4-signed requests as the reader (the GC's
// S3 client) and requests to the read proxy with a host's Basic credentials. Every https request trusts the same CA bundle that Nix
// would use on this machine, so a certificate Nix rejects fails here too.
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as tls from "tls";
import { S3Error, S3Rest } from "../lib/s3/client";
import { CacheProbe, HttpAnswer, ObjectStore, ReaderProbe, S3Answer, S3Outcome, TlsAnswer } from "../lib/verify/checks";
import { sdkRetryStatus, WRITE_QUORUM_LOST } from "../lib/minio/failures";
import { tlsHandshake } from "../providers/minioClients";

const TIMEOUT_MS = 20_000;
/** Errors that mean "the server cannot be reached", not "the server said no". */
const UNREACHABLE = new Set(["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ECONNRESET", "ETIMEDOUT", "EAI_AGAIN", "EPIPE"]);

export interface Credentials {
  accessKey: string;
  secretKey: string;
}

export interface ProbeTargets {
  bucket: string;
  region: string;
  /** scheme://host[:port] the builder pushes to (from pushUrl). */
  builderEndpoint: string;
  builder: Credentials;
  /** scheme://host[:port] the deployment talks to (nix-cache:endpoint). */
  adminEndpoint: string;
  admin: Credentials;
}

export interface TrustedCa {
  /** PEM text, or undefined for Node's built-in roots. */
  ca: string | undefined;
  source: string;
}

/**
 * The CA bundle Nix uses: $NIX_SSL_CERT_FILE, then $SSL_CERT_FILE, then the system bundle; plus the stack's
 * nix-cache:caCertificate, which the generated NixOS modules add to every host's bundle.
 */
export function trustedCa(env: NodeJS.ProcessEnv = process.env, stackCa?: string): TrustedCa {
  let base: TrustedCa = { ca: undefined, source: "Node's built-in CA list" };
  for (const candidate of [env.NIX_SSL_CERT_FILE, env.SSL_CERT_FILE, "/etc/ssl/certs/ca-certificates.crt"]) {
    if (candidate && fs.existsSync(candidate)) {
      base = { ca: fs.readFileSync(candidate, "utf8"), source: candidate };
      break;
    }
  }
  if (!stackCa) return base;
  return { ca: `${base.ca ?? tls.rootCertificates.join("\n")}\n${stackCa}`, source: `${base.source} + nix-cache:caCertificate` };
}

/** One TLS handshake with `url`'s host, verifying the chain and the host name. */
export async function tlsCheck(url: string, trusted: TrustedCa): Promise<TlsAnswer> {
  try {
    const shake = await tlsHandshake(url, trusted.ca, TIMEOUT_MS);
    return { authorized: shake.authorized, error: shake.error, issuer: shake.issuer, subject: shake.subject, caSource: trusted.source };
  } catch (err) {
    throw new Error(`cannot reach ${new URL(url).host}: ${(err as Error).message}`);
  }
}

function agentFor(endpoint: string, trusted: TrustedCa): http.Agent {
  return endpoint.startsWith("https:") ? new https.Agent({ ca: trusted.ca, keepAlive: false }) : new http.Agent({ keepAlive: false });
}

/** One unauthenticated request; resolves with the status and (at most 64 KiB of) the body. */
export function anonymousRequest(method: string, url: string, trusted: TrustedCa, body?: string): Promise<HttpAnswer> {
  return httpRequest(method, url, trusted, body === undefined ? {} : { body });
}

/** One plain HTTP(S) request with the given headers; resolves with the status and (at most 64 KiB of) the body. */
export function httpRequest(method: string, url: string, trusted: TrustedCa, opts: { body?: string; headers?: Record<string, string> }): Promise<HttpAnswer> {
  const u = new URL(url);
  const transport = u.protocol === "https:" ? https : http;
  const body = opts.body;
  return new Promise((resolve, reject) => {
    const req = transport.request(
      u,
      {
        method,
        agent: agentFor(u.origin, trusted),
        timeout: TIMEOUT_MS,
        headers: { ...opts.headers, ...(body === undefined ? {} : { "Content-Length": Buffer.byteLength(body) }) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size <= 65536) chunks.push(c);
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(Object.assign(new Error(`${method} ${url} timed out`), { code: "ETIMEDOUT" })));
    req.on("error", (err) => reject(new Error(`cannot reach ${u.host} (${method} ${url}): ${err.message}`)));
    req.end(body);
  });
}

function s3(endpoint: string, region: string, creds: Credentials, trusted: TrustedCa) {
  // Loaded here so the pure check module and its tests never load the SDK.
  const Minio: typeof import("minio") = require("minio");
  const url = new URL(endpoint);
  const useSSL = url.protocol === "https:";
  return new Minio.Client({
    endPoint: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port ? Number(url.port) : useSSL ? 443 : 80,
    useSSL,
    region,
    accessKey: creds.accessKey,
    secretKey: creds.secretKey,
    pathStyle: true,
    // No SDK retries: a retried 503 loses MinIO's error code (SlowDownWrite: a cluster below its write quorum).
    retryOptions: { disableRetry: true },
    transportAgent: agentFor(endpoint, trusted),
  });
}

/** Runs an S3 call: MinIO's "no" becomes an outcome, an unreachable server an exception. A 503 (the SDK keeps
 *  only the status) while `endpoint`'s /minio/health/cluster answers 503 is a cluster below its write quorum. */
async function outcome(what: string, work: Promise<unknown>, endpoint?: string, trusted?: TrustedCa): Promise<S3Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`${what} timed out`), { code: "ETIMEDOUT" })), TIMEOUT_MS);
  });
  try {
    await Promise.race([work, timeout]);
    return { ok: true };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (e.code && UNREACHABLE.has(e.code)) throw new Error(`${what}: cannot reach MinIO (${e.code})`);
    const status = sdkRetryStatus(e.message ?? "");
    if (status === 503 && endpoint && trusted) {
      const health = await anonymousRequest("GET", `${endpoint}/minio/health/cluster`, trusted).catch(() => undefined);
      if (health?.status === 503) return { ok: false, code: WRITE_QUORUM_LOST, message: "HTTP 503; /minio/health/cluster answers 503" };
    }
    if (status !== undefined) return { ok: false, code: `HTTP${status}`, message: `MinIO answered HTTP ${status}` };
    return { ok: false, code: e.code ?? "Error", message: e.message ?? String(err) };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

export function networkProbe(t: ProbeTargets, trusted: TrustedCa = trustedCa()): CacheProbe {
  const builder = () => s3(t.builderEndpoint, t.region, t.builder, trusted);
  const admin = () => s3(t.adminEndpoint, t.region, t.admin, trusted);
  let adminRest: ObjectStore | undefined;
  return {
    anonymous: (method, url, body) => anonymousRequest(method, url, trusted, body),
    builderPut: (key, body) => outcome(`upload as the builder`, builder().putObject(t.bucket, key, Buffer.from(body)), t.builderEndpoint, trusted),
    builderDelete: (key) => outcome(`delete as the builder`, builder().removeObject(t.bucket, key)),
    adminPut: (key, body) => outcome(`upload as the admin`, admin().putObject(t.bucket, key, Buffer.from(body))),
    adminDelete: (key) => outcome(`delete as the admin`, admin().removeObject(t.bucket, key)),
    adminLifecycle: async () => {
      try {
        return await admin().getBucketLifecycle(t.bucket);
      } catch (err) {
        const code = (err as { code?: string }).code ?? "";
        if (code === "NoSuchLifecycleConfiguration") return undefined;
        if (UNREACHABLE.has(code)) throw new Error(`read the lifecycle as the admin: cannot reach MinIO (${code})`);
        throw new Error(`read the lifecycle as the admin: ${(err as Error).message}${code ? ` (${code})` : ""}`);
      }
    },
    adminList: async () => {
      const keys: string[] = [];
      try {
        for await (const o of admin().listObjectsV2(t.bucket, "", true)) if (o.name) keys.push(o.name);
      } catch (err) {
        const code = (err as { code?: string }).code ?? "";
        if (UNREACHABLE.has(code)) throw new Error(`list the bucket as the admin: cannot reach MinIO (${code})`);
        throw new Error(`list the bucket as the admin: ${(err as Error).message}${code ? ` (${code})` : ""}`);
      }
      return keys;
    },
    // The GC's own S3 client, so the closure check reads the bucket exactly as the GC does.
    adminStore: () =>
      (adminRest ??= new S3Rest({
        endpoint: t.adminEndpoint,
        region: t.region,
        bucket: t.bucket,
        accessKey: t.admin.accessKey,
        secretKey: t.admin.secretKey,
        ca: trusted.ca,
        timeoutMs: TIMEOUT_MS,
      })),
    tls: (url) => tlsCheck(url, trusted),
  };
}

export interface ReaderTargets {
  bucket: string;
  region: string;
  /** scheme://host[:port] hosts read from (readerSubstituterUrl's endpoint, which is pushUrl's). */
  endpoint: string;
  reader: Credentials;
}

/** An S3Rest failure as the reader: S3's refusal becomes an answer, no answer at all an exception. */
function refusal(what: string, err: unknown): { status: number; code: string; message: string } {
  if (err instanceof S3Error && err.status > 0) return { status: err.status, code: err.code, message: err.message };
  throw new Error(`${what}: cannot reach MinIO (${(err as Error).message})`);
}

/**
 * The private cache's side: SigV4-signed requests as the reader with the GC's S3 client (what an S3-capable Nix
 * sends, and the proxy), and GETs at the read proxy with or without a host's Basic credentials.
 */
export function readerProbe(t: ReaderTargets, trusted: TrustedCa = trustedCa()): ReaderProbe {
  const client = new S3Rest({
    endpoint: t.endpoint,
    region: t.region,
    bucket: t.bucket,
    accessKey: t.reader.accessKey,
    secretKey: t.reader.secretKey,
    ca: trusted.ca,
    timeoutMs: TIMEOUT_MS,
  });
  const change = async (what: string, work: () => Promise<unknown>): Promise<S3Outcome> => {
    try {
      await work();
      return { ok: true };
    } catch (err) {
      const { code, message } = refusal(what, err);
      return { ok: false, code, message };
    }
  };
  return {
    readerGet: async (key): Promise<S3Answer> => {
      try {
        const got = await client.get(key);
        return got ? { status: 200, body: got.body.toString("utf8") } : { status: 404, body: "", code: "NoSuchKey" };
      } catch (err) {
        const { status, code, message } = refusal(`GET ${key} as the reader`, err);
        return { status, body: message, code };
      }
    },
    readerPut: (key, body) => change(`upload as the reader`, () => client.put(key, body)),
    readerDelete: (key) => change(`delete as the reader`, () => client.delete(key)),
    proxyGet: (url, basic) =>
      httpRequest("GET", url, trusted, {
        headers: basic ? { Authorization: `Basic ${Buffer.from(`${basic.user}:${basic.password}`, "utf8").toString("base64")}` } : {},
      }),
  };
}
