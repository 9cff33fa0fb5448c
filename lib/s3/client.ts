// A zero-dependency S3 client for the garbage collector (issue 12): the few calls it makes (ListObjectsV2, GET,
// HEAD, conditional PUT, DELETE, CopyObject onto itself, the server's clock), SigV4-signed with node's crypto.
// It runs from `npm run gc` and from the script bundled into the builder's NixOS module, which `node` runs with
// no node_modules: so it imports node built-ins only, and nothing of this repo. Path-style URLs
// (endpoint/bucket/key), one keep-alive agent per client, every request bounded by timeoutMs (a MinIO that stops
// answering fails the run instead of hanging it). Errors are S3Error: the operation, bucket, key and endpoint,
// S3's <Code> and <Message>, never a credential.
import * as crypto from "crypto";
import * as http from "http";
import * as https from "https";
import { URL } from "url";

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

export interface ListedObject {
  key: string;
  /** Server time, millisecond precision in listings (HEAD/GET give whole seconds). */
  lastModified: Date;
  size: number;
  /** quotes stripped */
  etag: string;
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

// ---------------------------------------------------------------------------------------------------------------
// Signature V4 (pure; tests compare it with the aws4 package)

/** sha256 of the empty body: GET, HEAD, DELETE and CopyObject. */
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

export const sha256Hex = (data: Buffer | string): string => crypto.createHash("sha256").update(data).digest("hex");

/** RFC 3986 encoding as SigV4 wants it: unreserved characters (A-Z a-z 0-9 - _ . ~) kept, every other UTF-8 byte %XX. */
export function uriEncode(s: string): string {
  // encodeURIComponent also keeps ! ' ( ) *, which S3 encodes; it throws on lone surrogates (not valid keys).
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The path-style path of a bucket or an object: each key segment encoded, '/' kept (S3 does not normalize keys). */
export function objectPath(bucket: string, key?: string): string {
  const base = `/${uriEncode(bucket)}`;
  return key === undefined ? base : `${base}/${key.split("/").map(uriEncode).join("/")}`;
}

/** The canonical query string, which is also what goes on the wire: names and values encoded, sorted by name. */
export function canonicalQuery(query: Record<string, string>): string {
  return Object.entries(query)
    .map(([k, v]) => [uriEncode(k), uriEncode(v)])
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
}

/** 20261127T194356Z */
export const amzDate = (d: Date): string => d.toISOString().replace(/[-:]|\.\d{3}/g, "");

export interface SigningInput {
  method: string;
  /** Already encoded (objectPath). */
  path: string;
  query: Record<string, string>;
  /** Every header to sign, names in lower case; must hold host, x-amz-date and x-amz-content-sha256. */
  headers: Record<string, string>;
  region: string;
  accessKey: string;
  secretKey: string;
}

/** The Authorization header of a request (service s3). */
export function authorization(input: SigningInput): string {
  const date = input.headers["x-amz-date"];
  const payloadHash = input.headers["x-amz-content-sha256"];
  if (!date || !/^\d{8}T\d{6}Z$/.test(date)) throw new Error("authorization: x-amz-date header missing or malformed");
  if (!payloadHash) throw new Error("authorization: x-amz-content-sha256 header missing");
  if (input.headers.host === undefined) throw new Error("authorization: host header missing");
  const names = Object.keys(input.headers).sort();
  for (const n of names) if (n !== n.toLowerCase()) throw new Error(`authorization: header name '${n}' is not lower case`);
  const canonicalHeaders = names.map((n) => `${n}:${input.headers[n].trim().replace(/\s+/g, " ")}\n`).join("");
  const signedHeaders = names.join(";");
  const canonicalRequest = [input.method, input.path, canonicalQuery(input.query), canonicalHeaders, signedHeaders, payloadHash].join("\n");
  const scope = `${date.slice(0, 8)}/${input.region}/s3/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", date, scope, sha256Hex(canonicalRequest)].join("\n");
  const hmac = (key: Buffer | string, data: string) => crypto.createHmac("sha256", key).update(data, "utf8").digest();
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${input.secretKey}`, date.slice(0, 8)), input.region), "s3"), "aws4_request");
  const signature = crypto.createHmac("sha256", signingKey).update(stringToSign, "utf8").digest("hex");
  return `AWS4-HMAC-SHA256 Credential=${input.accessKey}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
}

// ---------------------------------------------------------------------------------------------------------------
// XML (pure): a small well-formedness-checking parser for S3's answers; no DTDs, no external entities.

export interface XmlElement {
  /** Local name (a namespace prefix is dropped). */
  name: string;
  children: XmlElement[];
  /** The element's own text (CDATA included), entities decoded. */
  text: string;
}

const NAMED_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** Decodes the five XML entities and character references; anything else after '&' is malformed XML. */
export function decodeXmlEntities(s: string): string {
  return s.replace(/&([^;&\s]*);?/g, (all, ref: string) => {
    if (!all.endsWith(";")) throw new Error(`XML: '&' not starting an entity near '${all.slice(0, 20)}'`);
    if (ref in NAMED_ENTITIES) return NAMED_ENTITIES[ref];
    const m = /^#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}))$/.exec(ref);
    if (!m) throw new Error(`XML: unknown entity ${all}`);
    const cp = m[1] !== undefined ? parseInt(m[1], 16) : parseInt(m[2], 10);
    if (cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw new Error(`XML: invalid character reference ${all}`);
    return String.fromCodePoint(cp);
  });
}

const localName = (qname: string): string => qname.slice(qname.indexOf(":") + 1);

/** Parses one XML document into its root element. Throws on anything that is not well-formed. */
export function parseXml(xml: string): XmlElement {
  let i = xml.charCodeAt(0) === 0xfeff ? 1 : 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  const fail = (what: string): never => {
    throw new Error(`XML: ${what} at offset ${i}`);
  };
  const skipPast = (end: string) => {
    const j = xml.indexOf(end, i);
    if (j < 0) fail(`unterminated '${xml.slice(i, i + 9)}'`);
    i = j + end.length;
  };
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    const text = xml.slice(i, lt < 0 ? xml.length : lt);
    if (text !== "") {
      const top = stack[stack.length - 1];
      if (top) top.text += decodeXmlEntities(text);
      else if (text.trim() !== "") fail("text outside the root element");
    }
    if (lt < 0) break;
    i = lt;
    if (xml.startsWith("<?", i)) skipPast("?>");
    else if (xml.startsWith("<!--", i)) skipPast("-->");
    else if (xml.startsWith("<![CDATA[", i)) {
      const start = i + 9;
      skipPast("]]>");
      const top = stack[stack.length - 1];
      if (!top) fail("CDATA outside the root element");
      else top.text += xml.slice(start, i - 3);
    } else if (xml.startsWith("<!", i)) fail("DTDs are not accepted");
    else if (xml.startsWith("</", i)) {
      const m = /^<\/([^\s>]+)\s*>/.exec(xml.slice(i, i + 300));
      if (!m) fail("malformed end tag");
      const open = stack.pop();
      const name = localName(m![1]);
      if (!open || open.name !== name) fail(`end tag </${name}> does not match <${open?.name ?? "nothing"}>`);
      i += m![0].length;
    } else {
      // A start tag: name, then attributes whose quoted values may hold '>' and '/'.
      const m = /^<([A-Za-z_][\w.:-]*)((?:\s+[\w.:-]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/.exec(xml.slice(i, i + 4096));
      if (!m) fail("malformed start tag");
      const el: XmlElement = { name: localName(m![1]), children: [], text: "" };
      const parent = stack[stack.length - 1];
      if (parent) parent.children.push(el);
      else if (root) fail("a second root element");
      else root = el;
      if (m![3] !== "/") stack.push(el);
      i += m![0].length;
    }
  }
  if (stack.length > 0) throw new Error(`XML: <${stack[stack.length - 1].name}> is not closed`);
  if (!root) throw new Error("XML: no root element");
  return root;
}

const child = (el: XmlElement, name: string): XmlElement | undefined => el.children.find((c) => c.name === name);
const childText = (el: XmlElement, name: string): string | undefined => child(el, name)?.text;
const stripQuotes = (etag: string): string => etag.trim().replace(/^"(.*)"$/, "$1");

export interface ListPage {
  objects: ListedObject[];
  isTruncated: boolean;
  nextContinuationToken?: string;
}

/** A string that holds its own characters (not a slice that pins a bigger string in memory). */
export const ownCopy = (s: string): string => Buffer.from(s, "utf8").toString("utf8");

/** One ListObjectsV2 answer. Throws on a document that is not one, or on a <Contents> missing a field. */
export function parseListPage(xml: string): ListPage {
  const root = parseXml(xml);
  if (root.name !== "ListBucketResult") throw new Error(`ListObjectsV2: expected <ListBucketResult>, got <${root.name}>`);
  const objects = root.children
    .filter((c) => c.name === "Contents")
    .map((c): ListedObject => {
      const key = childText(c, "Key");
      if (key === undefined || key === "") throw new Error("ListObjectsV2: <Contents> without a <Key>");
      const lastModified = new Date(childText(c, "LastModified") ?? "");
      if (Number.isNaN(lastModified.getTime())) throw new Error(`ListObjectsV2: ${key}: no valid <LastModified>`);
      const sizeText = childText(c, "Size") ?? "";
      if (!/^\d+$/.test(sizeText.trim())) throw new Error(`ListObjectsV2: ${key}: no valid <Size>`);
      const etag = childText(c, "ETag");
      if (etag === undefined) throw new Error(`ListObjectsV2: ${key}: no <ETag>`);
      // Copies: V8 keeps a sliced string's whole source alive, and a caller keeping a million keys would keep
      // every listing page (the GC's inventory of 100,000 narinfos: 68 MiB of XML) with them.
      return { key: ownCopy(key), lastModified, size: Number(sizeText.trim()), etag: ownCopy(stripQuotes(etag)) };
    });
  const truncated = (childText(root, "IsTruncated") ?? "false").trim();
  if (truncated !== "true" && truncated !== "false") throw new Error(`ListObjectsV2: <IsTruncated> is '${truncated}'`);
  const token = childText(root, "NextContinuationToken");
  return { objects, isTruncated: truncated === "true", ...(token ? { nextContinuationToken: token } : {}) };
}

/** <Code> and <Message> of an S3 error body; empty when the body is not an S3 <Error> document. */
export function parseErrorBody(body: string): { code?: string; message?: string } {
  if (body.trim() === "") return {};
  try {
    const root = parseXml(body);
    if (root.name !== "Error") return {};
    const code = childText(root, "Code")?.trim();
    const message = childText(root, "Message")?.trim();
    return { ...(code ? { code } : {}), ...(message ? { message } : {}) };
  } catch {
    return {};
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The client

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
    const url = new URL(loc.endpoint);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`S3 endpoint must be http(s)://host[:port], not ${url.protocol}`);
    if (url.username || url.password) throw new Error("S3 endpoint must not hold credentials");
    if (url.pathname !== "/" || url.search || url.hash) throw new Error(`S3 endpoint must be http(s)://host[:port] without a path: ${url.origin}`);
    if (!loc.bucket) throw new Error("S3Rest: bucket is empty");
    this.url = url;
    this.endpoint = url.origin;
    this.bucket = loc.bucket;
    this.region = loc.region || "us-east-1";
    this.accessKey = loc.accessKey;
    this.#secretKey = loc.secretKey;
    this.timeoutMs = loc.timeoutMs ?? 30_000;
    if (!(this.timeoutMs > 0) || !Number.isFinite(this.timeoutMs)) throw new Error(`S3Rest: timeoutMs must be a positive number, not ${loc.timeoutMs}`);
    // Idle sockets close after 4 s, before a server's idle timeout would close them under a new request.
    const agentOptions = { keepAlive: true, timeout: 4_000 };
    this.agent = url.protocol === "https:" ? new https.Agent({ ...agentOptions, ...(loc.ca ? { ca: loc.ca } : {}) }) : new http.Agent(agentOptions);
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
   *  with ifMatch, "gone" = 404 with ifMatch. */
  async put(
    key: string,
    body: Buffer | string,
    opts: { contentType?: string; ifAbsent?: boolean; ifMatch?: string } = {},
  ): Promise<{ outcome: "written" | "exists" | "changed" | "gone"; etag?: string }> {
    if (opts.ifAbsent && opts.ifMatch !== undefined) throw new Error("S3Rest.put: ifAbsent and ifMatch exclude each other");
    const headers: Record<string, string> = {};
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
   *  metadata, so pass its Content-Encoding (ObjectHead.contentEncoding) when it has one. */
  async touch(key: string, contentType: string, ifMatch?: string, opts: { contentEncoding?: string } = {}): Promise<"touched" | "gone" | "changed"> {
    const headers: Record<string, string> = {
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
    return { etag: stripQuotes(etag), lastModified, size, ...(contentType ? { contentType } : {}), ...(contentEncoding ? { contentEncoding } : {}) };
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
