// Signature V4 for S3 (pure; tests compare it with AWS's published examples and the aws4 package): the header
// lib/s3/client.ts signs each request with. Node built-ins only, as the client (it is bundled into the builder's
// GC script).
import * as crypto from "crypto";

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
