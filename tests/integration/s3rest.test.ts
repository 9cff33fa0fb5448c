// lib/s3/client.ts against a real MinIO (harness/minio.ts, root credentials), over http and over https with the
// server's own CA: listing across pages, missing keys, conditional PUTs, deletes, touch (same ETag, later
// LastModified, the Content-Type kept), the server's clock, keys with spaces, '+' and unicode, a wrong secret,
// and a server that stops answering.
import * as crypto from "crypto";
import { MinioServer, startMinio } from "../../harness/minio";
import { ListedObject, S3Location, S3Rest } from "../../lib/s3/client";
import { continueProcess, stopProcess } from "../support/processState";
import { s3ErrorOf } from "../support/s3ErrorOf";

const BUCKET = "s3rest-it";
let minio: MinioServer;
let s3: S3Rest;

const locationOf = (m: MinioServer, over: Partial<S3Location> = {}): S3Location => ({
  endpoint: m.endpoint,
  region: "us-east-1",
  bucket: BUCKET,
  accessKey: m.rootUser,
  secretKey: m.rootPassword,
  ...(m.tls ? { ca: m.tls.ca.certPem } : {}),
  ...over,
});

const md5 = (b: Buffer | string) => crypto.createHash("md5").update(b).digest("hex");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function listAll(client: S3Rest, prefix?: string): Promise<ListedObject[]> {
  const out: ListedObject[] = [];
  for await (const o of client.list(prefix)) out.push(o);
  return out;
}

/** Runs `work` on every item, `width` at a time. */
async function pool<T>(items: T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++]);
    }),
  );
}


beforeAll(async () => {
  minio = await startMinio();
  s3 = new S3Rest(locationOf(minio));
  expect(await s3.makeBucket()).toBe("created");
  expect(await s3.makeBucket()).toBe("exists");
});

afterAll(async () => {
  s3?.close();
  await minio?.destroy();
});

describe("over http", () => {
  test("list: 2,300 keys over 3 pages (and 1,100 under nar/ over 2) come back each once, in order, with sizes and ETags", async () => {
    const objects = new Map<string, Buffer>();
    for (let i = 0; i < 1200; i++) objects.set(`${crypto.randomBytes(16).toString("hex")}.narinfo`, crypto.randomBytes(i % 97));
    for (let i = 0; i < 1100; i++) objects.set(`nar/${crypto.randomBytes(16).toString("hex")}.nar.zst`, crypto.randomBytes(i % 89));
    const startedAt = await s3.serverTime();
    await pool([...objects], 32, async ([key, body]) => {
      expect((await s3.put(key, body)).etag).toBe(md5(body));
    });
    const doneAt = Date.now();

    const all = await listAll(s3);
    expect(all.length).toBe(objects.size);
    expect(new Set(all.map((o) => o.key)).size).toBe(objects.size);
    // S3 lists in UTF-8 byte order; for these ASCII keys that is plain string order.
    expect(all.map((o) => o.key)).toEqual([...objects.keys()].sort());
    for (const o of all) {
      const body = objects.get(o.key);
      expect(body).toBeDefined();
      expect(o.size).toBe(body?.length);
      expect(o.etag).toBe(md5(body ?? ""));
      // LastModified is server time with milliseconds; the server clock ticks in whole seconds in serverTime().
      expect(o.lastModified.getTime()).toBeGreaterThanOrEqual(startedAt.getTime());
      expect(o.lastModified.getTime()).toBeLessThanOrEqual(doneAt + 5_000);
    }

    const nars = await listAll(s3, "nar/");
    expect(nars.map((o) => o.key)).toEqual([...objects.keys()].filter((k) => k.startsWith("nar/")).sort());
    expect(await listAll(s3, "nothing-here/")).toEqual([]);

    await pool([...objects.keys()], 32, (key) => s3.delete(key));
    expect(await listAll(s3)).toEqual([]);
  });

  test("get and head of a missing key: undefined", async () => {
    expect(await s3.get("0000000000000000000000000000000a.narinfo")).toBeUndefined();
    expect(await s3.head("0000000000000000000000000000000a.narinfo")).toBeUndefined();
    expect(await s3.get("nar/missing/deeper")).toBeUndefined();
  });

  test("a missing bucket is an error, not a missing key", async () => {
    const other = new S3Rest(locationOf(minio, { bucket: "no-such-bucket" }));
    for (const call of [() => other.get("k"), () => other.head("k"), () => other.serverTime(), () => other.delete("k")]) {
      expect(await s3ErrorOf(call())).toMatchObject({ status: 404, code: "NoSuchBucket" });
    }
    other.close();
  });

  test("get and head: body, ETag, size, Content-Type, Last-Modified", async () => {
    const body = "StorePath: /nix/store/0000000000000000000000000000000b-x\n";
    const put = await s3.put("0000000000000000000000000000000b.narinfo", body, { contentType: "text/x-nix-narinfo" });
    expect(put).toEqual({ outcome: "written", etag: md5(body) });
    const got = await s3.get("0000000000000000000000000000000b.narinfo");
    expect(got?.body.toString()).toBe(body);
    expect(got).toMatchObject({ etag: md5(body), size: Buffer.byteLength(body), contentType: "text/x-nix-narinfo" });
    const head = await s3.head("0000000000000000000000000000000b.narinfo");
    expect(head).toEqual({
      etag: md5(body),
      size: Buffer.byteLength(body),
      contentType: "text/x-nix-narinfo",
      lastModified: got?.lastModified,
      metadata: { "content-type": "text/x-nix-narinfo" },
    });
    expect(Math.abs((head?.lastModified.getTime() ?? 0) - Date.now())).toBeLessThan(10_000);
  });

  test("put ifAbsent twice: written, then exists (the first body stays)", async () => {
    expect((await s3.put("gc/lease", "first", { ifAbsent: true })).outcome).toBe("written");
    expect(await s3.put("gc/lease", "second", { ifAbsent: true })).toEqual({ outcome: "exists" });
    expect((await s3.get("gc/lease"))?.body.toString()).toBe("first");
  });

  test("put ifMatch: a stale ETag is 'changed', the current one writes, a missing key is 'gone'", async () => {
    const v1 = await s3.put("gc/pins.json", "{}", { contentType: "application/json" });
    const v2 = await s3.put("gc/pins.json", '{"a":1}', { contentType: "application/json" });
    expect(v1.etag).not.toBe(v2.etag);
    expect(await s3.put("gc/pins.json", '{"b":2}', { ifMatch: v1.etag })).toEqual({ outcome: "changed" });
    expect((await s3.get("gc/pins.json"))?.body.toString()).toBe('{"a":1}');
    const v3 = await s3.put("gc/pins.json", '{"c":3}', { ifMatch: v2.etag });
    expect(v3).toEqual({ outcome: "written", etag: md5('{"c":3}') });
    // Quoted as the server sends it, the same.
    expect((await s3.put("gc/pins.json", "{}", { ifMatch: `"${v3.etag}"` })).outcome).toBe("written");
    expect(await s3.put("gc/never-written.json", "{}", { ifMatch: v1.etag })).toEqual({ outcome: "gone" });
    expect(await s3.head("gc/never-written.json")).toBeUndefined();
  });

  test("delete twice: both resolve, the key is gone", async () => {
    await s3.put("to-delete", "x");
    await s3.delete("to-delete");
    await s3.delete("to-delete");
    expect(await s3.head("to-delete")).toBeUndefined();
  });

  test("touch: same ETag and body, later LastModified (HEAD and listing), the Content-Type kept; stale ETag 'changed'; missing 'gone'", async () => {
    const key = "0000000000000000000000000000000c.narinfo";
    const body = "StorePath: /nix/store/0000000000000000000000000000000c-y\n";
    await s3.put(key, body, { contentType: "text/x-nix-narinfo" });
    const before = await s3.head(key);
    const listedBefore = (await listAll(s3, key))[0];
    await sleep(1_500);
    expect(await s3.touch(key, "text/x-nix-narinfo", before?.etag)).toBe("touched");
    const after = await s3.head(key);
    expect(after?.etag).toBe(before?.etag);
    expect(after?.contentType).toBe("text/x-nix-narinfo");
    expect(after?.lastModified.getTime()).toBeGreaterThan(before?.lastModified.getTime() ?? Infinity);
    const listedAfter = (await listAll(s3, key))[0];
    expect(listedAfter.etag).toBe(listedBefore.etag);
    expect(listedAfter.lastModified.getTime()).toBeGreaterThanOrEqual(listedBefore.lastModified.getTime() + 1_000);
    expect((await s3.get(key))?.body.toString()).toBe(body);

    expect(await s3.touch(key, "text/x-nix-narinfo", "0123456789abcdef0123456789abcdef")).toBe("changed");
    expect(await s3.touch("0000000000000000000000000000000d.narinfo", "text/x-nix-narinfo")).toBe("gone");
    expect(await s3.touch("0000000000000000000000000000000d.narinfo", "text/x-nix-narinfo", before?.etag)).toBe("gone");
    expect(await s3.head("0000000000000000000000000000000d.narinfo")).toBeUndefined();

    // REPLACE sets exactly what is sent: a Content-Encoding given is kept, a new Content-Type replaces the old.
    await s3.put("listing.ls", "{}", { contentType: "application/json" });
    expect(await s3.touch("listing.ls", "application/json", undefined, { contentEncoding: "br" })).toBe("touched");
    expect(await s3.head("listing.ls")).toMatchObject({ contentType: "application/json", contentEncoding: "br", etag: md5("{}") });
    expect(await s3.touch("listing.ls", "text/plain")).toBe("touched");
    const replaced = await s3.head("listing.ls");
    expect(replaced?.contentType).toBe("text/plain");
    expect(replaced?.contentEncoding).toBeUndefined();
  });

  test("metadata: a PUT sets it, get and head give it back, a touch with it keeps it (what resign relies on)", async () => {
    const key = "0000000000000000000000000000000e.narinfo";
    const metadata = { "content-type": "text/x-nix-narinfo", "cache-control": "public, max-age=3600", "x-amz-meta-origin": "it-s3rest" };
    expect((await s3.put(key, "x\n", { metadata })).outcome).toBe("written");
    expect((await s3.get(key))?.metadata).toEqual(metadata);
    const head = await s3.head(key);
    expect(head?.metadata).toEqual(metadata);
    expect(await s3.touch(key, "text/x-nix-narinfo", head?.etag, { metadata: head?.metadata })).toBe("touched");
    expect((await s3.head(key))?.metadata).toEqual(metadata);
    // Without it, REPLACE drops what is not sent.
    expect(await s3.touch(key, "text/x-nix-narinfo")).toBe("touched");
    expect((await s3.head(key))?.metadata).toEqual({ "content-type": "text/x-nix-narinfo" });
  });

  test("serverTime is the server's clock (this machine's, within a few seconds)", async () => {
    const t = await s3.serverTime();
    expect(Math.abs(t.getTime() - Date.now())).toBeLessThan(3_000);
  });

  test("keys with spaces, '+', unicode and reserved characters: put, get, head, list (also as prefix), touch, delete", async () => {
    const keys = ["with space.narinfo", "a+b.narinfo", "ünï/cødé €😀.ls", "odd/!'()*~=&?#%;:@$,[].x", "nar/x y+z ü.nar"];
    for (const key of keys) expect((await s3.put(key, `body of ${key}`, { contentType: "text/plain" })).outcome).toBe("written");
    for (const key of keys) {
      expect((await s3.get(key))?.body.toString()).toBe(`body of ${key}`);
      expect((await s3.head(key))?.size).toBe(Buffer.byteLength(`body of ${key}`));
      expect(await s3.put(key, "again", { ifAbsent: true })).toEqual({ outcome: "exists" });
      expect(await s3.touch(key, "text/plain")).toBe("touched");
    }
    const listed = await listAll(s3);
    for (const key of keys) expect(listed.filter((o) => o.key === key)).toHaveLength(1);
    expect((await listAll(s3, "ünï/cødé €")).map((o) => o.key)).toEqual(["ünï/cødé €😀.ls"]);
    expect((await listAll(s3, "a+")).map((o) => o.key)).toEqual(["a+b.narinfo"]);
    expect((await listAll(s3, "with ")).map((o) => o.key)).toEqual(["with space.narinfo"]);
    for (const key of keys) await s3.delete(key);
    for (const key of keys) expect(await s3.head(key)).toBeUndefined();
    // 'a+b' was never read as 'a b'.
    expect(await s3.get("a b.narinfo")).toBeUndefined();
  });

  test("a wrong secret: SignatureDoesNotMatch, and the message holds neither secret", async () => {
    const wrong = new S3Rest(locationOf(minio, { secretKey: "not-the-password" }));
    for (const call of [() => wrong.get("k"), () => wrong.head("k"), () => wrong.put("k", "x")]) {
      const err = await s3ErrorOf(call());
      expect(err).toMatchObject({ status: 403, code: "SignatureDoesNotMatch" });
      expect(err.message).toMatch(new RegExp(`^S3 (GET|HEAD|PUT) of ${BUCKET}/k at ${minio.endpoint}: SignatureDoesNotMatch \\(HTTP 403\\)`));
      expect(err.message).not.toContain("not-the-password");
      expect(err.message).not.toContain(minio.rootPassword);
    }
    const list = await s3ErrorOf(listAll(wrong));
    expect(list.code).toBe("SignatureDoesNotMatch");
    wrong.close();
  });

  test("a MinIO that stops answering: Timeout after timeoutMs; a stopped one: Network", async () => {
    const quick = new S3Rest(locationOf(minio, { timeoutMs: 1_000 }));
    await quick.put("probe", "x");
    const pid = minio.nodes[0].pid();
    expect(pid).toBeDefined();
    await stopProcess(pid ?? 0);
    try {
      const started = Date.now();
      const err = await s3ErrorOf(quick.get("probe"));
      expect(err).toMatchObject({ status: 0, code: "Timeout", key: "probe" });
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(await s3ErrorOf(listAll(quick))).toMatchObject({ code: "Timeout" });
    } finally {
      await continueProcess(pid ?? 0);
    }
    expect((await quick.get("probe"))?.body.toString()).toBe("x");
    await minio.stop();
    try {
      const err = await s3ErrorOf(quick.head("probe"));
      expect(err).toMatchObject({ status: 0, code: "Network" });
      expect(err.message).toMatch(/ECONNREFUSED/);
    } finally {
      await minio.restart();
    }
    expect((await quick.get("probe"))?.body.toString()).toBe("x");
    quick.close();
  });
});

describe("over https with the server's CA", () => {
  let tlsMinio: MinioServer;
  let secure: S3Rest;

  beforeAll(async () => {
    tlsMinio = await startMinio({ tls: true });
    secure = new S3Rest(locationOf(tlsMinio));
  });

  afterAll(async () => {
    secure?.close();
    await tlsMinio?.destroy();
  });

  test("list across pages and get, trusting only the given CA", async () => {
    expect(tlsMinio.endpoint).toMatch(/^https:\/\/localhost:\d+$/);
    expect(await secure.makeBucket()).toBe("created");
    const keys = Array.from({ length: 1005 }, (_, i) => `k/${String(i).padStart(4, "0")} ü+`);
    await pool(keys, 32, async (key) => {
      expect((await secure.put(key, key)).outcome).toBe("written");
    });
    const listed = await listAll(secure);
    expect(listed.map((o) => o.key)).toEqual(keys);
    expect(listed.map((o) => o.etag)).toEqual(keys.map((k) => md5(k)));
    expect((await secure.get(keys[1004]))?.body.toString()).toBe(keys[1004]);
    expect(Math.abs((await secure.serverTime()).getTime() - Date.now())).toBeLessThan(3_000);

    // Without the CA the system's roots do not know this server: a Network error naming the certificate problem.
    const { ca: _ca, ...noCa } = locationOf(tlsMinio);
    const untrusting = new S3Rest(noCa);
    const err = await s3ErrorOf(untrusting.get(keys[0]));
    expect(err).toMatchObject({ status: 0, code: "Network" });
    expect(err.message).toMatch(/certificate/i);
    untrusting.close();
  });
});
