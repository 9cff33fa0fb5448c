// The resign engine on an in-memory bucket with S3's conditional-write rules: exactly the right narinfos are
// signed, every byte kept, a concurrent upload is never overwritten (412 → read again), bounded concurrency,
// dry run, realisations counted, the summary line. The real MinIO side is tests/integration/resign.test.ts.
import * as crypto from "crypto";
import { fingerprint, parseNarinfo, verifySignatures } from "../../lib/signing/narinfo";
import { narKeyOf } from "../../lib/gc/plan";
import {
  formatResignReport,
  headersToKeep,
  ResignBucket,
  resignCache,
  ResignStore,
  s3ResignStore,
  StoredObject,
  summaryLine,
  WriteOutcome,
} from "../../lib/signing/resign";
import { generateKeypair, signDetached } from "../../lib/signing/signingKey";
import { stackKeys } from "../../scripts/resign";

const active = generateKeypair("homelab-2");
const previous = generateKeypair("homelab-1");
const stranger = generateKeypair("stranger-1");
const KEYS = [active, previous];

function narinfo(n: number, ...signers: { secretKey: string }[]): string {
  const hash = crypto.createHash("sha256").update(String(n)).digest();
  const name = crypto.createHash("sha1").update(String(n)).digest("hex").slice(0, 32).replace(/[eotu]/g, "0");
  const base =
    `StorePath: /nix/store/${name}-p${n}\nURL: nar/${n}.nar.zst\nCompression: zstd\n` +
    `NarHash: sha256:${hash.toString("hex")}\nNarSize: ${100 + n}\nReferences: \n`;
  const fp = fingerprint(parseNarinfo(base));
  return base + signers.map((k) => `Sig: ${signDetached(k.secretKey, fp)}\n`).join("");
}

class MemoryBucket implements ResignStore {
  objects = new Map<string, { body: Buffer; etag: string; headers: Record<string, string> }>();
  inFlight = 0;
  maxInFlight = 0;
  writes: string[] = [];
  /** touch and write calls, in order. */
  events: string[] = [];
  /** Called between a read and the write that follows it (to race an upload). */
  beforeWrite?: (key: string) => void;

  put(key: string, body: string | Buffer, headers: Record<string, string> = { "content-type": "text/x-nix-narinfo" }) {
    const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
    this.objects.set(key, { body: b, etag: `"${crypto.createHash("md5").update(b).digest("hex")}"`, headers });
  }
  text(key: string) {
    return this.objects.get(key)?.body.toString("utf8");
  }
  async *list() {
    for (const k of [...this.objects.keys()].sort()) yield k;
  }
  async read(key: string): Promise<StoredObject | undefined> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise((r) => setTimeout(r, 1));
    this.inFlight--;
    const o = this.objects.get(key);
    return o && { body: o.body, etag: o.etag, headers: { ...o.headers, etag: o.etag } };
  }
  async touch(key: string, dryRun: boolean): Promise<"touched" | "gone"> {
    if (!this.objects.has(key)) return "gone";
    if (!dryRun) this.events.push(`touch ${key}`);
    return "touched";
  }
  /** Puts a NAR for each narinfo number (their URL is nar/<n>.nar.zst). */
  nars(...numbers: number[]) {
    for (const n of numbers) this.put(`nar/${n}.nar.zst`, `nar ${n}`, { "content-type": "application/x-nix-nar" });
  }
  async write(key: string, body: Buffer, ifMatch: string, headers: Record<string, string>): Promise<WriteOutcome> {
    this.beforeWrite?.(key);
    const o = this.objects.get(key);
    if (!o) return "gone";
    if (o.etag !== ifMatch) return "changed";
    const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
    this.put(key, body, lower);
    this.writes.push(key);
    this.events.push(`write ${key}`);
    return "written";
  }
}

const names = (text: string | undefined) => verifySignatures(parseNarinfo(text ?? ""), KEYS.map((k) => k.publicKey)).verified.sort();

describe("resignCache", () => {
  test("signs exactly the narinfos one of our keys signs, keeps every byte and headers, reports the rest", async () => {
    const b = new MemoryBucket();
    b.put("a0.narinfo", narinfo(0, previous), { "content-type": "text/x-nix-narinfo", "cache-control": "max-age=60", "x-amz-meta-who": "builder" });
    b.put("a1.narinfo", narinfo(1, active));
    b.put("a2.narinfo", narinfo(2, active, previous));
    b.put("a3.narinfo", narinfo(3, stranger));
    b.put("a4.narinfo", narinfo(4, previous).replace("NarSize: 104", "NarSize: 105"));
    b.put("a5.narinfo", Buffer.concat([Buffer.from(narinfo(5, previous)), Buffer.from([0xff])]));
    b.put("a6.narinfo", narinfo(6, previous), { "content-type": "text/x-nix-narinfo", "content-encoding": "xz" });
    b.put("a7.narinfo", narinfo(7, previous)); // its NAR expired
    b.nars(0, 1, 2, 3, 4, 5, 6);
    b.put("realisations/sha256:abc!out.doi", "{}");
    b.put("nix-cache-info", "StoreDir: /nix/store\n");
    const before = new Map([...b.objects].map(([k, v]) => [k, v.body]));

    const s = await resignCache(b, { keys: KEYS });
    expect(s).toMatchObject({ total: 8, signed: 2, alreadySigned: 1, gone: 0, realisations: 1, failed: [] });
    expect(s.refused.map((r) => r.key)).toEqual(["a3.narinfo", "a4.narinfo", "a5.narinfo", "a6.narinfo", "a7.narinfo"]);
    expect(s.refused.map((r) => r.reason)).toEqual([
      expect.stringMatching(/signed only by stranger-1/),
      expect.stringMatching(/does not verify/),
      expect.stringMatching(/not UTF-8/),
      expect.stringMatching(/Content-Encoding: xz/),
      "its NAR nar/7.nar.zst is missing (expired or deleted): not rewritten, so it expires as it would have",
    ]);
    // Each NAR is touched (its expiry clock restarted) before its narinfo is rewritten; no other NAR is.
    expect(b.events.filter((e) => e.endsWith("0.nar.zst") || e.startsWith("write a0"))).toEqual(["touch nar/0.nar.zst", "write a0.narinfo"]);
    expect(b.events.filter((e) => e.startsWith("touch")).sort()).toEqual(["touch nar/0.nar.zst", "touch nar/1.nar.zst"]);
    expect(b.writes.sort()).toEqual(["a0.narinfo", "a1.narinfo"]);
    for (const k of ["a0.narinfo", "a1.narinfo"]) {
      expect(b.objects.get(k)?.body.subarray(0, before.get(k)?.length).equals(before.get(k) as Buffer)).toBe(true);
      expect(names(b.text(k))).toEqual(["homelab-1", "homelab-2"]);
    }
    expect(b.objects.get("a0.narinfo")?.headers).toEqual({ "content-type": "text/x-nix-narinfo", "cache-control": "max-age=60", "x-amz-meta-who": "builder" });
    for (const k of ["a2.narinfo", "a3.narinfo", "a4.narinfo", "a5.narinfo", "a6.narinfo", "a7.narinfo", "nar/0.nar.zst"]) {
      expect(b.objects.get(k)?.body.equals(before.get(k) as Buffer)).toBe(true);
    }
    expect(summaryLine(s)).toBe("resign: 2 signed, 1 already signed, 5 refused, 1 realisations not handled");
    expect(formatResignReport(s)).toMatch(/^refused a3\.narinfo: not signed by any of our keys/m);

    // Second run: nothing to do.
    const again = await resignCache(b, { keys: KEYS });
    expect(summaryLine(again)).toBe("resign: 0 signed, 3 already signed, 5 refused, 1 realisations not handled");
  });

  test("dry run writes nothing and says what it would sign", async () => {
    const b = new MemoryBucket();
    b.put("a.narinfo", narinfo(0, previous));
    b.put("b.narinfo", narinfo(1, active, previous));
    b.nars(0, 1);
    const s = await resignCache(b, { keys: KEYS, dryRun: true });
    expect(b.writes).toEqual([]);
    expect(b.events).toEqual([]);
    expect(summaryLine(s, true)).toBe("resign: 1 would be signed (dry run: nothing written), 1 already signed, 0 refused");
  });

  test("an upload between our read and our write is kept; the new content is decided again", async () => {
    const b = new MemoryBucket();
    b.put("a.narinfo", narinfo(0, previous));
    b.put("b.narinfo", narinfo(1, previous));
    b.nars(0, 1);
    const foreign = narinfo(1, stranger);
    let raced = false;
    b.beforeWrite = (key) => {
      if (key === "a.narinfo" && !raced) {
        raced = true;
        b.put("a.narinfo", narinfo(0, active)); // the builder pushed it again, signed by the active key
      }
      if (key === "b.narinfo") b.put("b.narinfo", foreign); // someone else's upload: must survive untouched
    };
    const s = await resignCache(b, { keys: KEYS });
    expect(s.signed).toBe(1);
    expect(s.retried).toBe(2);
    expect(summaryLine(s)).toBe("resign: 1 signed, 0 already signed, 1 refused, 2 uploaded again meanwhile (read again, not overwritten)");
    expect(b.text("a.narinfo")?.startsWith(narinfo(0, active))).toBe(true);
    expect(names(b.text("a.narinfo"))).toEqual(["homelab-1", "homelab-2"]);
    expect(b.text("b.narinfo")).toBe(foreign);
    expect(s.refused.map((r) => r.key)).toEqual(["b.narinfo"]);
  });

  test("an object that keeps changing fails after the attempts; a deleted one counts as gone", async () => {
    const b = new MemoryBucket();
    b.put("a.narinfo", narinfo(0, previous));
    b.put("b.narinfo", narinfo(1, previous));
    b.nars(0, 1);
    let n = 0;
    b.beforeWrite = (key) => {
      if (key === "a.narinfo") b.put("a.narinfo", narinfo(0, previous) + `X-Upload: ${n++}\n`);
      if (key === "b.narinfo") b.objects.delete("b.narinfo");
    };
    const s = await resignCache(b, { keys: KEYS, maxAttempts: 3 });
    expect(s.failed).toEqual([{ key: "a.narinfo", error: expect.stringMatching(/changed by someone else on each of 3 attempts/) }]);
    expect(s.gone).toBe(1);
    expect(summaryLine(s)).toBe("resign: 0 signed, 0 already signed, 0 refused, 1 failed, 1 deleted meanwhile, 2 uploaded again meanwhile (read again, not overwritten)");
  });

  test("concurrency is bounded", async () => {
    const b = new MemoryBucket();
    for (let i = 0; i < 40; i++) {
      b.put(`n${i}.narinfo`, narinfo(i, previous));
      b.nars(i);
    }
    const progress: number[] = [];
    const s = await resignCache(b, { keys: KEYS, concurrency: 3, onProgress: (done) => progress.push(done) });
    expect(s.signed).toBe(40);
    expect(b.maxInFlight).toBe(3);
    expect(progress).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  });

  test("the PUT keeps Cache-Control, x-amz-meta-* and sets text/x-nix-narinfo", () => {
    expect(headersToKeep({ "content-type": "application/octet-stream", "cache-control": "no-cache", "x-amz-meta-a": "1", etag: "x", "content-length": "3" })).toEqual({
      "Content-Type": "text/x-nix-narinfo",
      "cache-control": "no-cache",
      "x-amz-meta-a": "1",
    });
  });

  test("narKeyOf: the NAR key of a relative URL; none for an absolute URL or one leaving the cache root", () => {
    expect(narKeyOf("nar/0i5biw0g01514llhfswxy6xfav8lxxdq1xg6ik7hgsqbpw0f06yi.nar.xz")).toBe("nar/0i5biw0g01514llhfswxy6xfav8lxxdq1xg6ik7hgsqbpw0f06yi.nar.xz");
    expect(narKeyOf("https://mirror.example/nar/x.nar.xz")).toBeUndefined();
    expect(narKeyOf("/nar/x.nar")).toBeUndefined();
    expect(narKeyOf("nar/../../x.nar")).toBeUndefined();
  });
});

/** lib/s3/client.ts's answers over a Map, recording every conditional call; `answer` overrides a put's or touch's. */
class FakeS3 implements ResignBucket {
  objects = new Map<string, { body: Buffer; etag: string; metadata: Record<string, string> }>();
  calls: string[] = [];
  answer?: "changed" | "gone" | "exists";

  add(key: string, body: string, metadata: Record<string, string>) {
    this.objects.set(key, { body: Buffer.from(body), etag: crypto.createHash("md5").update(body).digest("hex"), metadata });
  }
  async *list() {
    for (const [key, o] of this.objects) yield { key, lastModified: new Date(0), size: o.body.length, etag: o.etag };
  }
  async head(key: string) {
    const o = this.objects.get(key);
    return o && { etag: o.etag, lastModified: new Date(0), size: o.body.length, metadata: { ...o.metadata } };
  }
  async get(key: string) {
    const o = this.objects.get(key);
    return o && { etag: o.etag, lastModified: new Date(0), size: o.body.length, metadata: { ...o.metadata }, body: o.body };
  }
  async put(key: string, body: Buffer | string, opts: { ifMatch?: string; metadata?: Record<string, string> } = {}) {
    this.calls.push(`put ${key} if-match ${opts.ifMatch} ${JSON.stringify(opts.metadata)}`);
    if (this.answer) return { outcome: this.answer };
    this.add(key, body.toString(), opts.metadata ?? {});
    return { outcome: "written" as const };
  }
  async touch(key: string, contentType: string, ifMatch?: string, opts: { metadata?: Record<string, string> } = {}) {
    this.calls.push(`touch ${key} ${contentType} if-match ${ifMatch} ${JSON.stringify(opts.metadata)}`);
    return this.answer === "changed" || this.answer === "gone" ? this.answer : "touched";
  }
}

describe("s3ResignStore (the bucket through lib/s3/client.ts)", () => {
  test("a narinfo is read with its ETag and metadata, its NAR touched with its own, then written back If-Match with the kept headers", async () => {
    const s3 = new FakeS3();
    const text = narinfo(0, previous);
    s3.add("a0.narinfo", text, { "content-type": "text/x-nix-narinfo", "cache-control": "max-age=60", "x-amz-meta-who": "builder" });
    s3.add("nar/0.nar.zst", "nar", { "content-type": "application/x-nix-nar", "x-amz-meta-n": "0" });
    const s = await resignCache(s3ResignStore(s3), { keys: KEYS });
    expect(s).toMatchObject({ total: 1, signed: 1, refused: [], failed: [] });
    const etag = crypto.createHash("md5").update(text).digest("hex");
    expect(s3.calls).toEqual([
      `touch nar/0.nar.zst application/x-nix-nar if-match ${crypto.createHash("md5").update("nar").digest("hex")} {"content-type":"application/x-nix-nar","x-amz-meta-n":"0"}`,
      `put a0.narinfo if-match ${etag} {"Content-Type":"text/x-nix-narinfo","cache-control":"max-age=60","x-amz-meta-who":"builder"}`,
    ]);
    expect(names(s3.objects.get("a0.narinfo")?.body.toString())).toEqual(names(narinfo(0, active, previous)));
  });

  test("outcomes: a write 'changed' or 'gone' as the client says; a touch of a changed NAR is as fresh, of a missing one 'gone'; a dry run only looks", async () => {
    const s3 = new FakeS3();
    s3.add("nar/1.nar", "nar", {});
    const store = s3ResignStore(s3);
    expect(await store.read("missing.narinfo")).toBeUndefined();
    expect(await store.read("nar/1.nar")).toEqual({ body: Buffer.from("nar"), etag: crypto.createHash("md5").update("nar").digest("hex"), headers: {} });
    expect(await store.touch("nar/none.nar", false)).toBe("gone");
    expect(await store.touch("nar/1.nar", true)).toBe("touched");
    expect(s3.calls).toEqual([]);
    expect(await store.touch("nar/1.nar", false)).toBe("touched");
    expect(s3.calls[0]).toMatch(/^touch nar\/1\.nar application\/octet-stream if-match /);
    s3.answer = "changed";
    expect(await store.touch("nar/1.nar", false)).toBe("touched");
    expect(await store.write("a.narinfo", Buffer.from("x"), "e", {})).toBe("changed");
    s3.answer = "gone";
    expect(await store.touch("nar/1.nar", false)).toBe("gone");
    expect(await store.write("a.narinfo", Buffer.from("x"), "e", {})).toBe("gone");
    s3.answer = "exists";
    await expect(store.write("a.narinfo", Buffer.from("x"), "e", {})).rejects.toThrow(/answered as an If-None-Match/);
    const calls = s3.calls.length;
    await expect(store.write("a.narinfo", Buffer.from("x"), "", {})).rejects.toThrow(/refusing an unconditional write/);
    expect(s3.calls.length).toBe(calls);
  });
});

describe("stackKeys (the command's keys from the stack outputs)", () => {
  const stack = (outputs: Record<string, unknown>) => ({ stackName: "homelab", outputs });

  test("secretKeys, active first, with their public halves", () => {
    const keys = stackKeys(stack({ secretKeys: [active.secretKey, previous.secretKey], secretKey: active.secretKey, publicKey: active.publicKey }));
    expect(keys).toEqual([active, previous]);
  });

  test("a stack from before key sets: the one secretKey", () => {
    expect(stackKeys(stack({ secretKey: previous.secretKey, publicKey: previous.publicKey }))).toEqual([previous]);
  });

  test("no key, a key that is not one, or a first key that is not publicKey: a SetupError that shows no secret", () => {
    expect(() => stackKeys(stack({}))).toThrow(/has no output 'secretKeys' or 'secretKey': run `pulumi up` first/);
    const bad = `${active.secretKey.slice(0, -8)}AAAA`;
    let message = "";
    try {
      stackKeys(stack({ secretKeys: [active.secretKey, bad.slice(0, 30)] }));
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^key 2 of the stack's secretKeys is not a Nix secret key/);
    expect(message).not.toContain(bad.slice(20, 30));
    expect(() => stackKeys(stack({ secretKeys: [previous.secretKey, active.secretKey], publicKey: active.publicKey }))).toThrow(
      /first secret key is not the active key/,
    );
  });
});
