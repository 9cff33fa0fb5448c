// The read proxy's decisions (lib/proxy/route.ts): which methods pass, credentials before paths, every path trick
// refused with its status, the headers passed on either way, and what MinIO's answers become for the client.
import { decide, forwardedHeaders, MAX_KEY_BYTES, objectKeyOf, passedHeaders, ProxyRequest, UNAUTHORIZED, upstreamOutcome } from "../../lib/proxy/route";
import { parseTokenHashes, tokenHashesText } from "../../lib/proxy/tokens";

const TOKEN = "0123456789abcdefghij0123456789ABCDEFGHIJ";
const hashes = parseTokenHashes(tokenHashesText({ desk: TOKEN }));
const auth = `Basic ${Buffer.from(`desk:${TOKEN}`).toString("base64")}`;
const req = (method: string, url: string, headers: ProxyRequest["headers"] = { authorization: auth }): ProxyRequest => ({ method, url, headers });

describe("objectKeyOf", () => {
  test("a plain path is its key, percent-decoded per segment ('+' stays '+')", () => {
    expect(objectKeyOf("/nix-cache-info")).toEqual({ key: "nix-cache-info" });
    expect(objectKeyOf("/0123abcd.narinfo")).toEqual({ key: "0123abcd.narinfo" });
    expect(objectKeyOf("/nar/1abc.nar.xz")).toEqual({ key: "nar/1abc.nar.xz" });
    expect(objectKeyOf("/dir/a%20b+c%C3%A9%E2%9C%93.txt")).toEqual({ key: "dir/a b+cé✓.txt" });
    expect(objectKeyOf("/.hidden/a..b/...")).toEqual({ key: ".hidden/a..b/..." });
    // Another bucket's name in the path is only a key prefix in the configured bucket.
    expect(objectKeyOf("/other-bucket/nix-cache-info")).toEqual({ key: "other-bucket/nix-cache-info" });
  });

  test("each trick gets its status", () => {
    const cases: [string, number][] = [
      ["/", 404],
      ["", 400],
      ["*", 400],
      ["http://127.0.0.1:9000/other/nix-cache-info", 400],
      ["/?list-type=2", 400],
      ["/?acl", 400],
      ["/?uploads", 400],
      ["/nix-cache-info?versionId=1", 400],
      ["/nix-cache-info?", 400],
      ["/nix-cache-info#x", 400],
      ["/..", 400],
      ["/../other/nix-cache-info", 400],
      ["/nar/../nix-cache-info", 400],
      ["/./nix-cache-info", 400],
      ["/%2e%2e/other/x", 400],
      ["/%2E/x", 400],
      ["/nar//x", 400],
      ["//x", 400],
      ["/nar/", 400],
      ["/other%2Fnix-cache-info", 400],
      ["/other%2fnix-cache-info", 400],
      ["/a%5Cb", 400],
      ["/a\\b", 400],
      ["/a%00b", 400],
      ["/a%0Ab", 400],
      ["/a%7Fb", 400],
      ["/a%zzb", 400],
      ["/a%4", 400],
      ["/a%C3", 400],
      ["/a b", 400],
      ["/é", 400],
      [`/${"a".repeat(MAX_KEY_BYTES)}`, 200],
      [`/${"a".repeat(MAX_KEY_BYTES + 1)}`, 414],
      [`/${"%C3%A9".repeat(MAX_KEY_BYTES / 2)}`, 200],
      [`/${"%C3%A9".repeat(MAX_KEY_BYTES / 2)}a`, 414],
    ];
    for (const [target, status] of cases) {
      const r = objectKeyOf(target);
      expect([target, "kind" in r ? r.status : 200]).toEqual([target, status]);
    }
  });
});

describe("decide", () => {
  test("GET and HEAD with the right token: the key and the host", () => {
    expect(decide(req("GET", "/nix-cache-info"), hashes)).toEqual({ kind: "fetch", method: "GET", key: "nix-cache-info", host: "desk" });
    expect(decide(req("HEAD", "/nar/x.nar"), hashes)).toEqual({ kind: "fetch", method: "HEAD", key: "nar/x.nar", host: "desk" });
    expect(decide(req("GET", "/x", { authorization: auth, "content-length": "0" }), hashes)).toMatchObject({ kind: "fetch" });
  });

  test("other methods: 405 with Allow, whatever the credentials", () => {
    for (const method of ["PUT", "POST", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND"]) {
      for (const headers of [{ authorization: auth }, {}]) {
        expect(decide(req(method, "/nix-cache-info", headers), hashes)).toEqual({ kind: "refused", status: 405, reason: "only GET and HEAD", headers: { allow: "GET, HEAD" } });
      }
    }
  });

  test("no or wrong credentials: the same 401 for every path, before the path is looked at", () => {
    const wrong = `Basic ${Buffer.from("desk:nope").toString("base64")}`;
    for (const headers of [{}, { authorization: wrong }, { authorization: auth.replace("Basic", "Bearer") }]) {
      for (const url of ["/nix-cache-info", "/", "/../x", "/?list-type=2", "/other%2Fx"]) {
        expect(decide(req("GET", url, headers), hashes)).toEqual(UNAUTHORIZED);
      }
    }
    expect(UNAUTHORIZED).toEqual({ kind: "refused", status: 401, reason: "authentication required", headers: { "www-authenticate": 'Basic realm="nix-cache"' } });
  });

  test("a GET or HEAD with a body: 400; path refusals as objectKeyOf says", () => {
    expect(decide(req("GET", "/x", { authorization: auth, "content-length": "5" }), hashes)).toMatchObject({ status: 400, host: "desk" });
    expect(decide(req("GET", "/x", { authorization: auth, "transfer-encoding": "chunked" }), hashes)).toMatchObject({ status: 400 });
    expect(decide(req("GET", "/"), hashes)).toMatchObject({ status: 404 });
    expect(decide(req("GET", "/../x"), hashes)).toEqual({ kind: "refused", status: 400, reason: "no '.' or '..' segments", host: "desk" });
    expect(decide(req("get", "/x"), hashes)).toMatchObject({ kind: "fetch", method: "GET" });
  });
});

describe("headers and MinIO's answers", () => {
  test("only Range and the conditional GET headers go to MinIO; only the object's headers come back", () => {
    expect(
      forwardedHeaders({
        authorization: auth,
        host: "other-bucket.localhost",
        range: "bytes=0-9",
        "if-none-match": '"abc"',
        "if-modified-since": "Sat, 05 Dec 2026 10:00:00 GMT",
        "x-amz-copy-source": "/other/x",
        "x-forwarded-for": "10.0.0.1",
        cookie: "a=b",
      }),
    ).toEqual({ range: "bytes=0-9", "if-none-match": '"abc"', "if-modified-since": "Sat, 05 Dec 2026 10:00:00 GMT" });
    expect(
      passedHeaders({
        "content-type": "application/x-nix-nar",
        "content-length": "10",
        "content-encoding": "xz",
        etag: '"e"',
        "last-modified": "Sat, 05 Dec 2026 10:00:00 GMT",
        "content-range": "bytes 0-9/100",
        "accept-ranges": "bytes",
        server: "MinIO",
        "x-amz-request-id": "1",
        "x-amz-id-2": "2",
        "x-minio-error-code": "x",
        "set-cookie": "a=b",
      }),
    ).toEqual({
      "content-type": "application/x-nix-nar",
      "content-length": "10",
      "content-encoding": "xz",
      etag: '"e"',
      "last-modified": "Sat, 05 Dec 2026 10:00:00 GMT",
      "content-range": "bytes 0-9/100",
      "accept-ranges": "bytes",
    });
  });

  test("200/206/304 pass; a missing key is 404; a bad range 416; anything else 502 with the detail for the log only", () => {
    for (const s of [200, 206, 304]) expect(upstreamOutcome(s, undefined)).toBe("pass");
    expect(upstreamOutcome(404, "NoSuchKey")).toEqual({ status: 404, reason: "not found" });
    expect(upstreamOutcome(404, undefined)).toEqual({ status: 404, reason: "not found" });
    expect(upstreamOutcome(403, "AccessDenied")).toEqual({ status: 404, reason: "not found", upstream: "403 AccessDenied" });
    expect(upstreamOutcome(416, "InvalidRange")).toEqual({ status: 416, reason: "range not satisfiable" });
    expect(upstreamOutcome(404, "NoSuchBucket")).toEqual({ status: 502, reason: "bad gateway", upstream: "404 NoSuchBucket" });
    expect(upstreamOutcome(403, "SignatureDoesNotMatch")).toEqual({ status: 502, reason: "bad gateway", upstream: "403 SignatureDoesNotMatch" });
    expect(upstreamOutcome(403, "InvalidAccessKeyId")).toMatchObject({ status: 502 });
    expect(upstreamOutcome(500, undefined)).toEqual({ status: 502, reason: "bad gateway", upstream: "500" });
    expect(upstreamOutcome(301, undefined)).toMatchObject({ status: 502 });
    expect(upstreamOutcome(412, "PreconditionFailed")).toMatchObject({ status: 502 });
  });
});
