// The read proxy (lib/proxy) in front of a real MinIO whose cache bucket is private (no anonymous policy) and read
// by a reader user with the stack's policy (harness/proxy.ts). In-process (startProxy): with a host's token, GET,
// HEAD, Range and conditional GETs give MinIO's bytes and headers (a 64 MiB NAR, a key with spaces, '+' and
// unicode); every refusal has its status and says nothing of the bucket; another bucket is out of reach through
// the path, the Host header, and even a proxy configured for it. As its host runs it (the bundle under plain node):
// 16 concurrent clients pulling the NAR with flat memory, a host revoked by SIGHUP, a graceful SIGTERM.
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { freePort, MinioServer, startMinio } from "../../harness/minio";
import { makePrivateBucket, newToken, ProxyProcess, ReaderKeys, rootClient, startProxyProcess } from "../../harness/proxy";
import { MAX_HEADER_BYTES, RunningProxy, startProxy } from "../../lib/proxy/server";
import { parseTokenHashes, tokenHashesText } from "../../lib/proxy/tokens";
import { S3Rest } from "../../lib/s3/client";

// Not "nix-cache": that is the 401's realm, and the leak checks look for the bucket's name.
const BUCKET = "homelab-cache";
const OTHER = "other-bucket";
const MiB = 1024 * 1024;
const NAR_KEY = "nar/1w4k0p8mhd6wz5bygbmdx3hk1hgx4nwpkivndk4yz8rhyjymn4f0.nar.zst";
const ODD_KEY = "dir/a b+c é✓.txt";
const ODD_PATH = "/dir/a%20b+c%20%C3%A9%E2%9C%93.txt";
const NARINFO_KEY = "1w4k0p8mhd6wz5bygbmdx3hk1hgx4nw0.narinfo";
const CACHE_INFO = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n";

let minio: MinioServer;
let root: S3Rest;
let reader: ReaderKeys;
let work: string;
let proxy: RunningProxy;
const logLines: string[] = [];
const tokens = { desk: newToken(), laptop: newToken(), loader: newToken() };
/** Every object the cache bucket holds, by key. */
const objects = new Map<string, Buffer>();

const basic = (host: string, token: string) => `Basic ${Buffer.from(`${host}:${token}`).toString("base64")}`;
const DESK = basic("desk", tokens.desk);
const sha256 = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request with node's http client: the target is sent as written (no URL normalization of '..'). */
function send(base: string, method: string, target: string, headers: Record<string, string> = {}): Promise<Answer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method, path: target, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** A streamed GET: status, byte count and md5 of the body, never the body itself in memory. */
function pull(base: string, target: string, auth: string, agent: http.Agent): Promise<{ status: number; bytes: number; md5: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.get({ host: url.hostname, port: url.port, path: target, headers: { authorization: auth }, agent }, (res) => {
      const hash = crypto.createHash("md5");
      let bytes = 0;
      res.on("data", (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes, md5: hash.digest("hex") }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

/** What no refusal may show: the buckets, the user, MinIO's own words and XML. */
function expectNothingLeaked(a: Answer): void {
  const text = `${a.body.toString("utf8")}\n${JSON.stringify(a.headers)}`.toLowerCase();
  for (const word of [BUCKET, OTHER, reader.accessKey, "minio", "amz", "<?xml", "<error>", "accessdenied", "nosuch"]) {
    expect([word, text.includes(word)]).toEqual([word, false]);
  }
  expect(a.body.length).toBeLessThan(64);
}

beforeAll(async () => {
  minio = await startMinio();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-proxy-it-"));
  reader = await makePrivateBucket(minio, BUCKET, "nixreader");
  root = rootClient(minio, BUCKET);
  const other = rootClient(minio, OTHER);
  await other.makeBucket();
  await other.put("secret.txt", "the other bucket's secret\n", { contentType: "text/plain" });
  await other.put("nix-cache-info", "StoreDir: /other\n", { contentType: "text/x-nix-cache-info" });
  other.close();

  objects.set("nix-cache-info", Buffer.from(CACHE_INFO));
  objects.set(NARINFO_KEY, Buffer.from(`StorePath: /nix/store/1w4k0p8mhd6wz5bygbmdx3hk1hgx4nw0-x\nURL: ${NAR_KEY}\n`));
  objects.set(ODD_KEY, Buffer.from("a key with a space, a plus and unicode\n"));
  objects.set("x.ls", crypto.randomBytes(300));
  objects.set(NAR_KEY, crypto.randomBytes(64 * MiB));
  const types: Record<string, string> = { "nix-cache-info": "text/x-nix-cache-info", [NARINFO_KEY]: "text/x-nix-narinfo", [NAR_KEY]: "application/x-nix-nar" };
  for (const [key, body] of objects) {
    const metadata = key === "x.ls" ? { "content-encoding": "br" } : undefined;
    expect((await root.put(key, body, { contentType: types[key] ?? "application/octet-stream", ...(metadata ? { metadata } : {}) })).outcome).toBe("written");
  }

  proxy = await startProxy({
    listen: { host: "127.0.0.1", port: 0 },
    upstream: { endpoint: minio.endpoint, region: "us-east-1", bucket: BUCKET, ...reader },
    tokenHashes: parseTokenHashes(tokenHashesText(tokens)),
    log: (line) => logLines.push(line),
  });
}, 120_000);

afterAll(async () => {
  await proxy?.close(0);
  root?.close();
  await minio?.destroy();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe("a host with its token reads the cache through the proxy", () => {
  test("GET and HEAD: MinIO's bytes and headers, for small objects, the 64 MiB NAR and a key with spaces, '+' and unicode", async () => {
    const paths: Record<string, string> = { [ODD_KEY]: ODD_PATH };
    for (const [key, body] of objects) {
      const head = await root.head(key);
      const target = paths[key] ?? `/${key}`;
      const want = {
        "content-type": head?.contentType,
        "content-length": String(body.length),
        etag: `"${head?.etag}"`,
        "last-modified": head?.lastModified.toUTCString(),
        "accept-ranges": "bytes",
        ...(key === "x.ls" ? { "content-encoding": "br" } : {}),
      };
      for (const method of ["GET", "HEAD"]) {
        const a = await send(proxy.url, method, target, { authorization: DESK });
        expect([key, method, a.status]).toEqual([key, method, 200]);
        expect(a.headers).toMatchObject(want);
        // MinIO's own headers stay behind.
        expect(Object.keys(a.headers).filter((h) => h.startsWith("x-amz") || h.startsWith("x-minio") || h === "server")).toEqual([]);
        if (method === "GET") expect([key, sha256(a.body)]).toEqual([key, sha256(body)]);
        else expect(a.body.length).toBe(0);
      }
    }
  });

  test("Range (start, middle, suffix, past the end) and conditional GETs pass through as MinIO answers them", async () => {
    const nar = objects.get(NAR_KEY) ?? Buffer.alloc(0);
    const size = nar.length;
    const ranged = async (range: string) => send(proxy.url, "GET", `/${NAR_KEY}`, { authorization: DESK, range });
    const first = await ranged("bytes=0-99");
    expect([first.status, first.headers["content-range"], first.headers["content-length"]]).toEqual([206, `bytes 0-99/${size}`, "100"]);
    expect(first.body.equals(nar.subarray(0, 100))).toBe(true);
    const middle = await ranged(`bytes=${33 * MiB}-${34 * MiB - 1}`);
    expect([middle.status, middle.headers["content-range"]]).toEqual([206, `bytes ${33 * MiB}-${34 * MiB - 1}/${size}`]);
    expect(middle.body.equals(nar.subarray(33 * MiB, 34 * MiB))).toBe(true);
    const suffix = await ranged("bytes=-10");
    expect([suffix.status, suffix.body.equals(nar.subarray(size - 10))]).toEqual([206, true]);
    const past = await ranged(`bytes=${size}-`);
    expect([past.status, past.body.toString()]).toEqual([416, "range not satisfiable\n"]);
    expectNothingLeaked(past);

    const head = await root.head("nix-cache-info");
    const etag = await send(proxy.url, "GET", "/nix-cache-info", { authorization: DESK, "if-none-match": `"${head?.etag}"` });
    expect([etag.status, etag.body.length, etag.headers.etag]).toEqual([304, 0, `"${head?.etag}"`]);
    const since = await send(proxy.url, "GET", "/nix-cache-info", { authorization: DESK, "if-modified-since": head?.lastModified.toUTCString() ?? "" });
    expect(since.status).toBe(304);
    const stale = await send(proxy.url, "GET", "/nix-cache-info", { authorization: DESK, "if-none-match": '"0123"' });
    expect([stale.status, stale.body.toString()]).toEqual([200, CACHE_INFO]);
  });

  test("a missing key is 404 for GET and HEAD (Nix's 'not in this cache'), with nothing of MinIO's answer", async () => {
    for (const target of ["/0000000000000000000000000000000a.narinfo", "/nar/missing.nar.zst", "/nar", "/dir/a"]) {
      for (const method of ["GET", "HEAD"]) {
        const a = await send(proxy.url, method, target, { authorization: DESK });
        expect([target, method, a.status]).toEqual([target, method, 404]);
        expect(a.body.toString()).toBe(method === "GET" ? "not found\n" : "");
        expectNothingLeaked(a);
      }
    }
  });

  test("a client that goes away mid-NAR: the proxy stops reading from MinIO, logs it aborted, and serves on", async () => {
    const url = new URL(proxy.url);
    const received = await new Promise<number>((resolve, reject) => {
      const req = http.get({ host: url.hostname, port: url.port, path: `/${NAR_KEY}`, headers: { authorization: DESK }, agent: false }, (res) => {
        let bytes = 0;
        res.on("data", (c: Buffer) => {
          bytes += c.length;
          if (bytes >= MiB) {
            req.destroy();
            resolve(bytes);
          }
        });
      });
      req.on("error", (e) => (e.message === "socket hang up" ? undefined : reject(e)));
    });
    expect(received).toBeLessThan(64 * MiB);
    const deadline = Date.now() + 10_000;
    const aborted = () => logLines.find((l) => l.startsWith(`GET /${NAR_KEY} 200 desk `) && l.endsWith(" aborted"));
    while (!aborted() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const line = aborted() ?? "";
    expect(line).toMatch(/ aborted$/);
    expect(Number(line.split(" ")[4])).toBeLessThan(64 * MiB);
    expect((await send(proxy.url, "GET", "/nix-cache-info", { authorization: DESK })).body.toString()).toBe(CACHE_INFO);
  });
});

describe("refusals: each with its status, nothing about the bucket", () => {
  test("no, wrong, or another host's credentials: 401 with WWW-Authenticate, the same for a key that exists and one that does not", async () => {
    const cases: Record<string, string>[] = [
      {},
      { authorization: basic("desk", tokens.laptop) },
      { authorization: basic("desk", `${tokens.desk}x`) },
      { authorization: basic("printer", tokens.desk) },
      { authorization: `Bearer ${tokens.desk}` },
      { authorization: basic(reader.accessKey, reader.secretKey) },
    ];
    for (const headers of cases) {
      for (const target of ["/nix-cache-info", `/${NAR_KEY}`, "/missing.narinfo", "/", "/../other-bucket/secret.txt"]) {
        for (const method of ["GET", "HEAD"]) {
          const a = await send(proxy.url, method, target, headers);
          expect([target, method, a.status, a.headers["www-authenticate"]]).toEqual([target, method, 401, 'Basic realm="nix-cache"']);
          expectNothingLeaked(a);
        }
      }
    }
  });

  test("path tricks, listing and queries: 400 or 404; another bucket by path or Host header is never served", async () => {
    const refused: [string, number][] = [
      ["/", 404],
      ["/?list-type=2", 400],
      ["/?list-type=2&prefix=nar/", 400],
      ["/nix-cache-info?acl", 400],
      ["/nix-cache-info?versionId=null", 400],
      ["/?uploads", 400],
      ["/..", 400],
      ["/../other-bucket/secret.txt", 400],
      ["/nar/../../other-bucket/secret.txt", 400],
      ["/%2e%2e/other-bucket/secret.txt", 400],
      ["/..%2Fother-bucket%2Fsecret.txt", 400],
      ["/other-bucket%2Fsecret.txt", 400],
      ["/a%5C..%5Cother-bucket", 400],
      ["/nix-cache-info%00", 400],
      ["//other-bucket/secret.txt", 400],
      ["/other-bucket/secret.txt", 404],
      ["/other-bucket/", 400],
      [`/${"k".repeat(1025)}`, 414],
      ["http://127.0.0.1/other-bucket/secret.txt", 400],
    ];
    for (const [target, status] of refused) {
      const a = await send(proxy.url, "GET", target, { authorization: DESK });
      expect([target, a.status]).toEqual([target, status]);
      expectNothingLeaked(a);
    }
    // A virtual-host style Host header names nothing: the path is a key of the configured bucket.
    for (const host of [`${OTHER}.127.0.0.1:${minio.port}`, OTHER, `${OTHER}.s3.amazonaws.com`]) {
      const secret = await send(proxy.url, "GET", "/secret.txt", { authorization: DESK, host });
      expect([host, secret.status]).toEqual([host, 404]);
      expectNothingLeaked(secret);
      const info = await send(proxy.url, "GET", "/nix-cache-info", { authorization: DESK, host });
      expect([host, info.status, info.body.toString()]).toEqual([host, 200, CACHE_INFO]);
    }
  });

  test("PUT, DELETE, POST and the rest: 405 with Allow, with or without a token, and nothing changes", async () => {
    const before = await root.head("nix-cache-info");
    for (const method of ["PUT", "DELETE", "POST", "PATCH", "OPTIONS"]) {
      for (const headers of [{ authorization: DESK }, {}] as Record<string, string>[]) {
        const a = await send(proxy.url, method, "/nix-cache-info", headers);
        expect([method, a.status, a.headers.allow]).toEqual([method, 405, "GET, HEAD"]);
        expectNothingLeaked(a);
      }
    }
    const after = await root.head("nix-cache-info");
    expect([after?.etag, after?.lastModified]).toEqual([before?.etag, before?.lastModified]);
    expect((await root.get("nix-cache-info"))?.body.toString()).toBe(CACHE_INFO);
  });

  test("a GET with a body: 400; headers beyond 16 KiB: node's 431", async () => {
    const url = new URL(proxy.url);
    const withBody = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: url.hostname, port: url.port, method: "GET", path: "/nix-cache-info", headers: { authorization: DESK, "content-length": "5" }, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end("hello");
    });
    expect(withBody).toBe(400);
    expect(MAX_HEADER_BYTES).toBe(16 * 1024);
    const huge = await send(proxy.url, "GET", "/nix-cache-info", { authorization: DESK, "x-padding": "p".repeat(MAX_HEADER_BYTES) });
    expect(huge.status).toBe(431);
    expectNothingLeaked(huge);
    // Just under the limit passes.
    const fits = await send(proxy.url, "GET", "/nix-cache-info", { authorization: DESK, "x-padding": "p".repeat(MAX_HEADER_BYTES - 1024) });
    expect(fits.status).toBe(200);
  });

  test("the reader cannot read another bucket even through a proxy configured for it; MinIO unreachable is a bare 502", async () => {
    const lines: string[] = [];
    const misconfigured = await startProxy({
      listen: { host: "127.0.0.1", port: 0 },
      upstream: { endpoint: minio.endpoint, region: "us-east-1", bucket: OTHER, ...reader },
      tokenHashes: parseTokenHashes(tokenHashesText(tokens)),
      log: (l) => lines.push(l),
    });
    const down = await startProxy({
      listen: { host: "127.0.0.1", port: 0 },
      upstream: { endpoint: `http://127.0.0.1:${await freePort()}`, region: "us-east-1", bucket: BUCKET, ...reader },
      tokenHashes: parseTokenHashes(tokenHashesText(tokens)),
      log: (l) => lines.push(l),
    });
    try {
      for (const target of ["/secret.txt", "/nix-cache-info"]) {
        const a = await send(misconfigured.url, "GET", target, { authorization: DESK });
        expect([target, a.status]).toEqual([target, 404]);
        expectNothingLeaked(a);
      }
      // The operator sees why in the log.
      expect(lines.filter((l) => l.includes("upstream=403:AccessDenied"))).toHaveLength(2);
      const bad = await send(down.url, "GET", "/nix-cache-info", { authorization: DESK });
      expect([bad.status, bad.body.toString()]).toEqual([502, "bad gateway\n"]);
      expectNothingLeaked(bad);
      expect(lines[lines.length - 1]).toMatch(/^GET \/nix-cache-info 502 desk 12 \d+ms upstream=ECONNREFUSED$/);
    } finally {
      await misconfigured.close(0);
      await down.close(0);
    }
  });

  test("a new token set (a reload) revokes a host at once; the others read on", async () => {
    const laptop = basic("laptop", tokens.laptop);
    expect((await send(proxy.url, "GET", "/nix-cache-info", { authorization: laptop })).status).toBe(200);
    proxy.setTokenHashes(parseTokenHashes(tokenHashesText({ desk: tokens.desk, loader: tokens.loader })));
    expect((await send(proxy.url, "GET", "/nix-cache-info", { authorization: laptop })).status).toBe(401);
    expect((await send(proxy.url, "GET", "/nix-cache-info", { authorization: DESK })).status).toBe(200);
    proxy.setTokenHashes(parseTokenHashes(tokenHashesText(tokens)));
    expect((await send(proxy.url, "GET", "/nix-cache-info", { authorization: laptop })).status).toBe(200);
  });

  test("the log: one line per request (method, path, status, host, bytes, time), never a token or the reader's secret", () => {
    expect(logLines.length).toBeGreaterThan(100);
    expect(logLines.filter((l) => new RegExp(`^GET /nix-cache-info 200 desk ${CACHE_INFO.length} \\d+ms$`).test(l)).length).toBeGreaterThan(5);
    for (const l of logLines) expect(l).toMatch(/^[A-Z]+ \S+ \d{3} [a-z0-9.-]+ \d+ \d+ms( upstream=\S+)?( error=\S+)?( aborted)?$/);
    expect(logLines.filter((l) => / 401 - /.test(l)).length).toBeGreaterThan(50);
    expect(logLines.some((l) => l.startsWith("GET /?… 400 desk "))).toBe(true);
    const all = logLines.join("\n");
    for (const secret of [...Object.values(tokens), reader.secretKey, minio.rootPassword]) expect(all.includes(secret)).toBe(false);
  });
});

describe("the proxy host's script (the bundle under plain node)", () => {
  let child: ProxyProcess;

  beforeAll(async () => {
    child = await startProxyProcess({ dir: path.join(work, "proxy-host"), minio, bucket: BUCKET, reader, tokens });
  });

  afterAll(async () => {
    await child?.stop();
  });

  test("16 concurrent clients pull the 64 MiB NAR 3 times each: every byte right, no error, the proxy's memory flat", async () => {
    const want = crypto.createHash("md5").update(objects.get(NAR_KEY) ?? Buffer.alloc(0)).digest("hex");
    const auth = basic("loader", tokens.loader);
    // Warm up (code paths, one NAR), then take the baseline.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    expect(await pull(child.url, `/${NAR_KEY}`, auth, agent)).toEqual({ status: 200, bytes: 64 * MiB, md5: want });
    const before = child.memory();
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: 16 }, async () => {
        const mine = [];
        for (let i = 0; i < 3; i++) mine.push(await pull(child.url, `/${NAR_KEY}`, auth, agent));
        return mine;
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    agent.destroy();
    const after = child.memory();
    const flat = results.flat();
    expect(flat).toHaveLength(48);
    expect(flat.filter((r) => r.status !== 200 || r.bytes !== 64 * MiB || r.md5 !== want)).toEqual([]);
    const growthMiB = (after.peakKiB - before.rssKiB) / 1024;
    console.log(
      `proxy load: 48 × 64 MiB through the proxy by 16 clients in ${seconds.toFixed(1)} s (${((48 * 64) / seconds).toFixed(0)} MiB/s); ` +
        `proxy RSS ${(before.rssKiB / 1024).toFixed(0)} MiB before, peak ${(after.peakKiB / 1024).toFixed(0)} MiB (growth ${growthMiB.toFixed(1)} MiB)`,
    );
    // Buffering one NAR per client would be 1 GiB; streaming (and lib/proxy/server.ts's garbage pacer) keeps the
    // peak near the warm proxy's (measured: 77 MiB before, 93 MiB peak), under the issue's 150 MiB.
    expect(growthMiB).toBeLessThan(64);
    expect(after.peakKiB / 1024).toBeLessThan(150);
    // The warm-up and the 48, each logged once it is done (the last lines may still be in the pipe).
    const served = () => child.lines.filter((l) => l.startsWith(`GET /${NAR_KEY} 200 loader ${64 * MiB} `)).length;
    for (const until = Date.now() + 5_000; served() < 49 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 50));
    expect(served()).toBe(49);
  });

  test("SIGHUP re-reads the tokens file: a removed host is 401 at once, the others read on; a broken file keeps the old tokens", async () => {
    const laptop = basic("laptop", tokens.laptop);
    expect((await send(child.url, "GET", "/nix-cache-info", { authorization: laptop })).status).toBe(200);
    expect(await child.reload({ desk: tokens.desk, loader: tokens.loader })).toMatch(/^nix-cache-proxy: SIGHUP: tokens reloaded, 2 hosts \(was 3\)$/);
    const revoked = await send(child.url, "GET", "/nix-cache-info", { authorization: laptop });
    expect([revoked.status, revoked.headers["www-authenticate"]]).toEqual([401, 'Basic realm="nix-cache"']);
    expectNothingLeaked(revoked);
    expect((await send(child.url, "GET", "/nix-cache-info", { authorization: DESK })).body.toString()).toBe(CACHE_INFO);

    fs.writeFileSync(child.tokensFile, "desk not-a-hash\n");
    const from = child.lines.length;
    process.kill(child.pid, "SIGHUP");
    expect(await child.waitForLine(/SIGHUP: tokens NOT reloaded/, from)).toContain("still serving the 2 host(s) of before: ");
    expect((await send(child.url, "GET", "/nix-cache-info", { authorization: DESK })).status).toBe(200);
    expect((await send(child.url, "GET", "/nix-cache-info", { authorization: laptop })).status).toBe(401);
    expect(child.lines.join("\n")).not.toContain(tokens.desk);
  });

  test("SIGTERM: a download in flight finishes, new connections are refused, exit 0", async () => {
    const url = new URL(child.url);
    const want = crypto.createHash("md5").update(objects.get(NAR_KEY) ?? Buffer.alloc(0)).digest("hex");
    const inFlight = new Promise<{ bytes: number; md5: string }>((resolve, reject) => {
      const req = http.get({ host: url.hostname, port: url.port, path: `/${NAR_KEY}`, headers: { authorization: DESK }, agent: false }, (res) => {
        const hash = crypto.createHash("md5");
        let bytes = 0;
        let signalled = false;
        res.on("data", (c: Buffer) => {
          bytes += c.length;
          hash.update(c);
          if (!signalled) {
            signalled = true;
            // Slow down: the proxy gets SIGTERM with most of the NAR still to send.
            res.pause();
            process.kill(child.pid, "SIGTERM");
            setTimeout(() => res.resume(), 300);
          }
        });
        res.on("end", () => resolve({ bytes, md5: hash.digest("hex") }));
        res.on("error", reject);
      });
      req.on("error", reject);
    });
    expect(await inFlight).toEqual({ bytes: 64 * MiB, md5: want });
    expect(await child.exited).toBe(0);
    expect(child.lines).toContain("nix-cache-proxy: SIGTERM: closing (requests in flight may finish)");
    expect(child.lines[child.lines.length - 1]).toBe("nix-cache-proxy: stopped");
    await expect(send(child.url, "GET", "/nix-cache-info", { authorization: DESK })).rejects.toThrow(/ECONNREFUSED/);
  });
});
