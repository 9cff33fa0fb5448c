// A zero-dependency S3 client for the garbage collector (issue 12) and `npm run resign`: the few calls they make
// (ListObjectsV2, GET, HEAD, conditional PUT, DELETE, CopyObject onto itself, the server's clock), SigV4-signed
// (lib/s3/sigv4.ts) with node's crypto, answers read by lib/s3/xml.ts. It runs from `npm run gc` and from the
// script bundled into the builder's NixOS module, which `node` runs with no node_modules: so these three files
// import node built-ins and each other only. Path-style URLs (endpoint/bucket/key), one keep-alive agent per
// client, every request bounded by timeoutMs (a MinIO that stops answering fails the run instead of hanging it).
// Errors are S3Error: the operation, bucket, key and endpoint, S3's <Code> and <Message>, never a credential.
import * as http from "http";
import * as https from "https";
import { URL } from "url";
import { amzDate, authorization, canonicalQuery, EMPTY_SHA256, objectPath, sha256Hex } from "./sigv4";
import { ListedObject, ListPage, parseErrorBody, parseListPage, stripQuotes } from "./xml";

export type { ListedObject } from "./xml";

export interface S3Location {
  /** http(s)://host[:port] */
  endpoint: string;
  region: string;
  bucket: string;
  accessKey: string;
  secretKey: string;
  /** PEM CA bundle to trust for https (else system trust) */
  ca?: string;
  /** per request; default 30000 */
  timeoutMs?: number;
}

export interface ObjectHead {
  /** quotes stripped */
  etag: string;
  /** Server time, whole seconds (the Last-Modified header). */
  lastModified: Date;
  size: number;
  contentType?: string;
  /** Nix sets it on compressed narinfos, listings and logs; a touch must send it again (REPLACE drops it). */
  contentEncoding?: string;
  /** All of the object's metadata, names in lower case (METADATA_HEADERS and x-amz-meta-*): what a PUT that
   *  replaces the object, or a touch, sends again to keep it. */
  metadata: Record<string, string>;
}

/** The standard headers that are an object's metadata (besides the user's x-amz-meta-*): a PUT sets them, a
 *  CopyObject with REPLACE drops what it does not send again. */
export const METADATA_HEADERS: readonly string[] = ["content-type", "content-encoding", "cache-control", "content-disposition", "content-language", "expires"];

const isMetadataHeader = (name: string): boolean => METADATA_HEADERS.includes(name) || name.startsWith("x-amz-meta-");

/** `metadata` with names in lower case; throws on a name that is not metadata (it would be signed and sent as is). */
function metadataHeaders(metadata: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(metadata ?? {})) {
    const lower = name.toLowerCase();
    if (!isMetadataHeader(lower)) throw new Error(`S3Rest: '${name}' is not object metadata (allowed: ${METADATA_HEADERS.join(", ")}, x-amz-meta-*)`);
    out[lower] = value;
  }
  return out;
}

export class S3Error extends Error {
  /** The HTTP status; 0 when no answer came ("Timeout", "Network"). */
  readonly status: number;
  /** S3's <Code>, or "Timeout"/"Network". */
  readonly code: string;
  readonly key?: string;
  constructor(message: string, status: number, code: string, key?: string) {
    super(message);
    this.name = "S3Error";
    this.status = status;
    this.code = code;
    if (key !== undefined) this.key = key;
  }
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

interface RequestSpec {
  /** What the error messages call it: "GET", "PUT", "list", "touch"... */
  op: string;
  method: "GET" | "HEAD" | "PUT" | "DELETE";
  key?: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Buffer;
}

const header = (res: RawResponse, name: string): string | undefined => {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/** Socket errors worth one more try on a kept-alive socket the server had just closed. */
const STALE_SOCKET = new Set(["ECONNRESET", "EPIPE"]);

class NoAnswer extends Error {}

/** An S3 endpoint as the clients take it (S3Rest, the read proxy): http(s)://host[:port], nothing else. */
export function s3EndpointUrl(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new Error(`S3 endpoint is not a URL: '${endpoint}'`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`S3 endpoint must be http(s)://host[:port], not ${url.protocol}`);
  if (url.username || url.password) throw new Error("S3 endpoint must not hold credentials");
  if (url.pathname !== "/" || url.search || url.hash) throw new Error(`S3 endpoint must be http(s)://host[:port] without a path: ${url.origin}`);
  return url;
}

/**
 * The kept-alive agent for requests to `url` (trusting `ca` for https). Idle sockets close after 4 s, before a
 * server's idle timeout would close them under a new request.
 */
export function keepAliveAgent(url: URL, ca?: string): http.Agent {
  const agentOptions = { keepAlive: true, timeout: 4_000 };
  return url.protocol === "https:" ? new https.Agent({ ...agentOptions, ...(ca ? { ca } : {}) }) : new http.Agent(agentOptions);
}

export class S3Rest {
  readonly bucket: string;
  /** scheme://host[:port], for messages (never holds credentials: the constructor refuses URLs with them). */
  readonly endpoint: string;
  private readonly url: URL;
  private readonly region: string;
  private readonly accessKey: string;
  /** ES-private: not shown by console.log/util.inspect or JSON.stringify of the client. */
  readonly #secretKey: string;
  private readonly timeoutMs: number;
  private readonly agent: http.Agent;

  constructor(loc: S3Location) {
    const url = s3EndpointUrl(loc.endpoint);
    if (!loc.bucket) throw new Error("S3Rest: bucket is empty");
    this.url = url;
    this.endpoint = url.origin;
    this.bucket = loc.bucket;
    this.region = loc.region || "us-east-1";
    this.accessKey = loc.accessKey;
    this.#secretKey = loc.secretKey;
    this.timeoutMs = loc.timeoutMs ?? 30_000;
    if (!(this.timeoutMs > 0) || !Number.isFinite(this.timeoutMs)) throw new Error(`S3Rest: timeoutMs must be a positive number, not ${loc.timeoutMs}`);
    this.agent = keepAliveAgent(url, loc.ca);
  }

  /** Closes the kept-alive sockets (they do not keep the process alive; this frees them at once). */
  close(): void {
    this.agent.destroy();
  }

  /** ListObjectsV2, 1000 per page, following continuation tokens; yields as pages arrive (the next page is
   *  requested while the current one is consumed; never more than two pages in memory). */
  async *list(prefix = ""): AsyncGenerator<ListedObject, void, undefined> {
    const seen = new Set<string>();
    let next = this.listPage(prefix, undefined);
    for (;;) {
      const page = await next;
      if (page.isTruncated) {
        const token = page.nextContinuationToken;
        if (token === undefined) throw this.error("list", 200, "InvalidResponse", "a truncated page without a NextContinuationToken", prefix || undefined);
        if (seen.has(token)) throw this.error("list", 200, "InvalidResponse", "the same continuation token twice", prefix || undefined);
        seen.add(token);
        next = this.listPage(prefix, token);
        // Handled later by the await above; this keeps a consumer that stops early from an unhandled rejection.
        next.catch(() => undefined);
      }
      for (const o of page.objects) yield o;
      if (!page.isTruncated) return;
    }
  }

  private async listPage(prefix: string, token: string | undefined): Promise<ListPage> {
    const query: Record<string, string> = { "list-type": "2", "max-keys": "1000" };
    if (prefix !== "") query.prefix = prefix;
    if (token !== undefined) query["continuation-token"] = token;
    const res = await this.request({ op: "list", method: "GET", query });
    if (res.status !== 200) throw this.failure("list", res, prefix === "" ? undefined : prefix);
    try {
      return parseListPage(res.body.toString("utf8"));
    } catch (err) {
      throw this.error("list", res.status, "InvalidResponse", (err as Error).message, prefix === "" ? undefined : prefix);
    }
  }

  /** GET; undefined when the key does not exist (404 NoSuchKey). */
  async get(key: string): Promise<(ObjectHead & { body: Buffer }) | undefined> {
    const res = await this.request({ op: "GET", method: "GET", key });
    if (res.status === 404 && this.errorCode(res) === "NoSuchKey") return undefined;
    if (res.status !== 200) throw this.failure("GET", res, key);
    return { ...this.headOf("GET", res, key, res.body.length), body: res.body };
  }

  /** HEAD; undefined when the key does not exist. */
  async head(key: string): Promise<ObjectHead | undefined> {
    const res = await this.request({ op: "HEAD", method: "HEAD", key });
    // A HEAD answer has no body: MinIO names the error in a header; a missing bucket must not read as a missing key.
    if (res.status === 404 && (this.errorCode(res) ?? "NoSuchKey") === "NoSuchKey") return undefined;
    if (res.status !== 200) throw this.failure("HEAD", res, key);
    const size = Number(header(res, "content-length") ?? NaN);
    if (!Number.isSafeInteger(size)) throw this.error("HEAD", res.status, "InvalidResponse", "no Content-Length", key);
    return this.headOf("HEAD", res, key, size);
  }

  /** PUT with optional If-None-Match: * (ifAbsent) or If-Match: etag. "exists" = 412 with ifAbsent, "changed" = 412
   *  with ifMatch, "gone" = 404 with ifMatch. `metadata` (ObjectHead.metadata) is sent as it is, contentType over it. */
  async put(
    key: string,
    body: Buffer | string,
    opts: { contentType?: string; ifAbsent?: boolean; ifMatch?: string; metadata?: Record<string, string> } = {},
  ): Promise<{ outcome: "written" | "exists" | "changed" | "gone"; etag?: string }> {
    if (opts.ifAbsent && opts.ifMatch !== undefined) throw new Error("S3Rest.put: ifAbsent and ifMatch exclude each other");
    const headers = metadataHeaders(opts.metadata);
    if (opts.contentType !== undefined) headers["content-type"] = opts.contentType;
    if (opts.ifAbsent) headers["if-none-match"] = "*";
    if (opts.ifMatch !== undefined) headers["if-match"] = `"${stripQuotes(opts.ifMatch)}"`;
    const res = await this.request({ op: "PUT", method: "PUT", key, headers, body: typeof body === "string" ? Buffer.from(body, "utf8") : body });
    if (res.status === 200) {
      const etag = header(res, "etag");
      return { outcome: "written", ...(etag ? { etag: stripQuotes(etag) } : {}) };
    }
    if (res.status === 412 && opts.ifAbsent) return { outcome: "exists" };
    if (res.status === 412 && opts.ifMatch !== undefined) return { outcome: "changed" };
    if (res.status === 404 && opts.ifMatch !== undefined && this.errorCode(res) === "NoSuchKey") return { outcome: "gone" };
    throw this.failure("PUT", res, key);
  }

  /** DELETE; resolves also when the key was already absent. */
  async delete(key: string): Promise<void> {
    const res = await this.request({ op: "DELETE", method: "DELETE", key });
    if (res.status === 204 || res.status === 200) return;
    if (res.status === 404 && this.errorCode(res) === "NoSuchKey") return;
    throw this.failure("DELETE", res, key);
  }

  /** CopyObject of key onto itself with x-amz-metadata-directive: REPLACE and the given Content-Type (metadata-only
   *  on MinIO: same ETag, new LastModified); optional x-amz-copy-source-if-match. REPLACE drops the object's other
   *  metadata, so pass its Content-Encoding (ObjectHead.contentEncoding) when it has one, or all of it
   *  (ObjectHead.metadata; contentType and contentEncoding go over it). */
  async touch(
    key: string,
    contentType: string,
    ifMatch?: string,
    opts: { contentEncoding?: string; metadata?: Record<string, string> } = {},
  ): Promise<"touched" | "gone" | "changed"> {
    const headers: Record<string, string> = {
      ...metadataHeaders(opts.metadata),
      "x-amz-copy-source": objectPath(this.bucket, key),
      "x-amz-metadata-directive": "REPLACE",
      "content-type": contentType,
    };
    if (opts.contentEncoding !== undefined) headers["content-encoding"] = opts.contentEncoding;
    if (ifMatch !== undefined) headers["x-amz-copy-source-if-match"] = `"${stripQuotes(ifMatch)}"`;
    const res = await this.request({ op: "touch", method: "PUT", key, headers });
    if (res.status === 200) {
      // S3 may answer a copy with 200 and an <Error> body.
      const { code, message } = parseErrorBody(res.body.toString("utf8"));
      if (code !== undefined) throw this.error("touch", res.status, code, message ?? "", key);
      return "touched";
    }
    if (res.status === 404 && this.errorCode(res) === "NoSuchKey") return "gone";
    if (res.status === 412 && ifMatch !== undefined) return "changed";
    throw this.failure("touch", res, key);
  }

  /** The server's clock: the Date header of a HEAD on the bucket (LastModified values are server time). Whole seconds. */
  async serverTime(): Promise<Date> {
    const res = await this.request({ op: "HEAD bucket", method: "HEAD" });
    if (res.status !== 200) throw this.failure("HEAD bucket", res);
    const date = new Date(header(res, "date") ?? "");
    if (Number.isNaN(date.getTime())) throw this.error("HEAD bucket", res.status, "InvalidResponse", "no valid Date header");
    return date;
  }

  /** Creates the bucket (tests and tools; the stack makes the cache's). */
  async makeBucket(): Promise<"created" | "exists"> {
    const body =
      this.region === "us-east-1"
        ? undefined
        : Buffer.from(`<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>${this.region}</LocationConstraint></CreateBucketConfiguration>`);
    const res = await this.request({ op: "make bucket", method: "PUT", ...(body ? { body } : {}) });
    if (res.status === 200) return "created";
    if (res.status === 409 && this.errorCode(res) === "BucketAlreadyOwnedByYou") return "exists";
    throw this.failure("make bucket", res);
  }

  private headOf(op: string, res: RawResponse, key: string, size: number): ObjectHead {
    const etag = header(res, "etag");
    const lastModified = new Date(header(res, "last-modified") ?? "");
    if (etag === undefined || Number.isNaN(lastModified.getTime())) throw this.error(op, res.status, "InvalidResponse", "no ETag or Last-Modified", key);
    const contentType = header(res, "content-type");
    const contentEncoding = header(res, "content-encoding");
    const metadata: Record<string, string> = {};
    for (const name of Object.keys(res.headers)) {
      const value = header(res, name);
      if (isMetadataHeader(name) && value !== undefined) metadata[name] = value;
    }
    return {
      etag: stripQuotes(etag),
      lastModified,
      size,
      ...(contentType ? { contentType } : {}),
      ...(contentEncoding ? { contentEncoding } : {}),
      metadata,
    };
  }

  /** S3's <Code> of an error answer (MinIO puts it in a header for HEAD, which has no body). */
  private errorCode(res: RawResponse): string | undefined {
    return parseErrorBody(res.body.toString("utf8")).code ?? header(res, "x-minio-error-code");
  }

  private error(op: string, status: number, code: string, detail: string, key?: string): S3Error {
    const where = key === undefined ? this.bucket : `${this.bucket}/${key}`;
    return new S3Error(`S3 ${op} of ${where} at ${this.endpoint}: ${code}${status ? ` (HTTP ${status})` : ""}${detail ? `: ${detail}` : ""}`, status, code, key);
  }

  private failure(op: string, res: RawResponse, key?: string): S3Error {
    const parsed = parseErrorBody(res.body.toString("utf8"));
    const code = parsed.code ?? header(res, "x-minio-error-code") ?? (http.STATUS_CODES[res.status] ?? "Unknown").replace(/\W/g, "");
    const message = parsed.message ?? header(res, "x-minio-error-desc")?.replace(/^"(.*)"$/, "$1") ?? "";
    return this.error(op, res.status, code, message, key);
  }

  /** Signs and sends; any HTTP answer resolves, no answer rejects with S3Error "Timeout" or "Network". */
  private async request(spec: RequestSpec): Promise<RawResponse> {
    const body = spec.body ?? Buffer.alloc(0);
    const path = objectPath(this.bucket, spec.key);
    const query = spec.query ?? {};
    const signed: Record<string, string> = {
      ...spec.headers,
      host: this.url.host,
      "x-amz-date": amzDate(new Date()),
      "x-amz-content-sha256": body.length === 0 ? EMPTY_SHA256 : sha256Hex(body),
    };
    const headers: Record<string, string> = {
      ...signed,
      authorization: authorization({ method: spec.method, path, query, headers: signed, region: this.region, accessKey: this.accessKey, secretKey: this.#secretKey }),
    };
    if (spec.method === "PUT" || body.length > 0) headers["content-length"] = String(body.length);
    const qs = canonicalQuery(query);
    const fullPath = qs === "" ? path : `${path}?${qs}`;
    const idempotent = spec.method !== "PUT";
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.send(spec.method, fullPath, headers, body);
      } catch (err) {
        if (err instanceof NoAnswer) throw this.error(spec.op, 0, "Timeout", `no answer within ${this.timeoutMs} ms`, spec.key);
        const e = err as NodeJS.ErrnoException & { reusedSocket?: boolean };
        if (idempotent && attempt === 1 && e.reusedSocket && STALE_SOCKET.has(e.code ?? "")) continue;
        throw this.error(spec.op, 0, "Network", `${e.code ? `${e.code}: ` : ""}${e.message}`, spec.key);
      }
    }
  }

  private send(method: string, path: string, headers: Record<string, string>, body: Buffer): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err: Error | undefined, res?: RawResponse) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(res!);
      };
      const mod = this.url.protocol === "https:" ? https : http;
      const req = mod.request(
        {
          protocol: this.url.protocol,
          hostname: this.url.hostname.replace(/^\[(.*)\]$/, "$1"),
          port: this.url.port || undefined,
          method,
          path,
          headers,
          agent: this.agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => settle(undefined, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on("error", (e) => settle(e));
          res.on("close", () => {
            if (!res.complete) settle(Object.assign(new Error("connection closed before the answer was complete"), { code: "ECONNRESET" }));
          });
        },
      );
      // The whole exchange, connect to last byte, within timeoutMs: a server that stops answering never hangs us.
      const timer = setTimeout(() => {
        settle(new NoAnswer());
        req.destroy();
      }, this.timeoutMs);
      req.on("error", (e: NodeJS.ErrnoException) => settle(Object.assign(e, { reusedSocket: req.reusedSocket })));
      req.end(body.length > 0 ? body : undefined);
    });
  }
}
