// What the read proxy does with a request (pure; node built-ins only, bundled into the proxy's host script): which
// object of the cache bucket it fetches, or the refusal. The bucket is fixed by the proxy's config and requests go
// to MinIO path-style, so nothing a client sends (path, query, Host header) can name another bucket, list one, or
// ask S3 for anything but one object: only GET and HEAD, a path that is one key (no '.'/'..' or empty segments,
// no encoded '/', '\' or NUL, no query at all), and only the conditional and range headers pass on to MinIO.
// Order: the method (405 says nothing), then the credentials (401 before anything about the path), then the path.
import { checkBasicAuth } from "./tokens";

export const ALLOWED_METHODS = ["GET", "HEAD"] as const;
export type ObjectMethod = (typeof ALLOWED_METHODS)[number];

/** S3's limit on a key's UTF-8 length. */
export const MAX_KEY_BYTES = 1024;

/** The realm of the 401's WWW-Authenticate header. */
export const REALM = "nix-cache";

/** The request headers the proxy passes on to MinIO (everything else stays behind, Authorization first). */
export const FORWARDED_REQUEST_HEADERS = ["range", "if-none-match", "if-modified-since"] as const;

/** The response headers the proxy passes back from MinIO (none of MinIO's x-amz-* or its server name). */
export const PASSED_RESPONSE_HEADERS = ["content-type", "content-length", "content-encoding", "etag", "last-modified", "content-range", "accept-ranges"] as const;

export type Headers = Readonly<Record<string, string | string[] | undefined>>;

export interface ProxyRequest {
  method: string;
  /** The request target as received (node's req.url). */
  url: string;
  /** Names in lower case (node's req.headers). */
  headers: Headers;
}

/** A refusal: the status, a short reason (the body's text and the log's), extra response headers. */
export interface Refusal {
  kind: "refused";
  status: number;
  reason: string;
  headers?: Record<string, string>;
  /** The host whose token came with it (a refusal after the credentials passed), for the log. */
  host?: string;
}

export type Decision = { kind: "fetch"; method: ObjectMethod; key: string; host: string } | Refusal;

const refuse = (status: number, reason: string, headers?: Record<string, string>): Refusal => ({ kind: "refused", status, reason, ...(headers ? { headers } : {}) });

/** 401: what to send, and nothing about the bucket or why (no host, no token, wrong token look the same). */
export const UNAUTHORIZED: Refusal = refuse(401, "authentication required", { "www-authenticate": `Basic realm="${REALM}"` });

const single = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/**
 * The object key a request target names, or a refusal: 404 for `/` (no listing), 400 for anything that is not
 * one plain key (a query, a fragment, characters outside printable ASCII, empty or '.'/'..' segments, bad
 * percent-encoding, an encoded '/', '\' or NUL, control characters), 414 for a key over MAX_KEY_BYTES.
 */
export function objectKeyOf(target: string): { key: string } | Refusal {
  if (!target.startsWith("/")) return refuse(400, "the request target must be a path");
  // Raw bytes outside printable ASCII (spaces, UTF-8, control characters) must be percent-encoded.
  if (!/^[\x21-\x7e]*$/.test(target)) return refuse(400, "the path must be percent-encoded ASCII");
  if (target.includes("?")) return refuse(400, "no query parameters: the proxy serves objects only");
  if (target.includes("#")) return refuse(400, "no fragment");
  if (target === "/") return refuse(404, "not found");
  if (target.includes("\\")) return refuse(400, "no '\\' in the path");
  const segments: string[] = [];
  for (const raw of target.slice(1).split("/")) {
    if (raw === "") return refuse(400, "empty path segment");
    if (/%(?![0-9A-Fa-f]{2})/.test(raw)) return refuse(400, "bad percent-encoding");
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return refuse(400, "the path is not UTF-8");
    }
    if (/[/\\]/.test(segment)) return refuse(400, "no encoded '/' or '\\' in the path");
    if (/[\x00-\x1f\x7f]/.test(segment)) return refuse(400, "no control characters (or NUL) in the path");
    if (segment === "." || segment === "..") return refuse(400, "no '.' or '..' segments");
    segments.push(segment);
  }
  const key = segments.join("/");
  if (Buffer.byteLength(key, "utf8") > MAX_KEY_BYTES) return refuse(414, `the key is longer than ${MAX_KEY_BYTES} bytes`);
  return { key };
}

/** The method, the credentials, then the path: what to fetch and for which host, or the refusal. */
export function decide(req: ProxyRequest, hashes: ReadonlyMap<string, string>): Decision {
  const method = req.method.toUpperCase();
  if (method !== "GET" && method !== "HEAD") return refuse(405, "only GET and HEAD", { allow: ALLOWED_METHODS.join(", ") });
  const auth = checkBasicAuth(single(req.headers.authorization), hashes);
  if (auth === undefined) return UNAUTHORIZED;
  // A body on GET/HEAD would be left unread on a kept-alive connection (and is a smuggling vector): refuse it.
  const length = single(req.headers["content-length"]);
  if ((length !== undefined && length !== "0") || req.headers["transfer-encoding"] !== undefined) {
    return { ...refuse(400, "a GET or HEAD has no body"), host: auth.host };
  }
  const target = objectKeyOf(req.url);
  if ("kind" in target) return { ...target, host: auth.host };
  return { kind: "fetch", method, key: target.key, host: auth.host };
}

/** The request headers to pass on to MinIO (Range and the conditional GET ones), names in lower case. */
export function forwardedHeaders(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const v = single(headers[name]);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** The response headers to pass back from MinIO. */
export function passedHeaders(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of PASSED_RESPONSE_HEADERS) {
    const v = single(headers[name]);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/**
 * What the client gets for MinIO's answer: "pass" streams it through (200, 206, 304); otherwise a status of the
 * proxy's own with a body saying nothing of the bucket: 404 for a missing key (NoSuchKey, or AccessDenied, which
 * a reader without s3:ListBucket gets for one: Nix needs the 404 to say "not in this cache"), 416 for a range
 * outside the object, 502 for anything else (a missing bucket, refused credentials, a server error). The
 * `upstream` part is for the proxy's log only.
 */
export function upstreamOutcome(status: number, errorCode: string | undefined): "pass" | { status: number; reason: string; upstream?: string } {
  if (status === 200 || status === 206 || status === 304) return "pass";
  if (status === 416) return { status: 416, reason: "range not satisfiable" };
  if (status === 404 && (errorCode === undefined || errorCode === "NoSuchKey")) return { status: 404, reason: "not found" };
  // Logged: a reader whose policy went missing gets AccessDenied for every key, which a 404 alone would hide.
  if (status === 403 && errorCode === "AccessDenied") return { status: 404, reason: "not found", upstream: "403 AccessDenied" };
  return { status: 502, reason: "bad gateway", upstream: `${status}${errorCode ? ` ${errorCode}` : ""}` };
}
