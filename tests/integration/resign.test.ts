// `npm run resign` as an operator runs it (a child process reading the stack through the pulumi CLI) against a
// real MinIO and a real deployed stack with two keys (keyName K2 active, K1 in previousKeyNames): 2,000
// narinfos made here (signed by K1, by K2, by both, by a stranger's key, unsigned, real cache.nixos.org ones,
// corrupt ones, some whose NAR expired) with their NARs, plus realisations. One stack for every case: they run in order and each starts from what the
// previous one left. Dry run, killed half-way then finished, exactly the right ones signed with every earlier
// byte and the headers kept, a second run changing nothing, an upload during the run kept, no drift.
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import { OutputMap } from "@pulumi/pulumi/automation";
import { fingerprint, nix32, parseNarinfo, verifySignatures } from "../../lib/signing/narinfo";
import { generateKeypair, publicKeyOf, signDetached } from "../../lib/signing/signingKey";
import { MinioServer, startMinio } from "../../harness/minio";
import { createTestStack, minioConfig, PROJECT_DIR, removeDeployment, TestStack } from "../../harness/stack";
import { NIXOS_KEY, REAL } from "../unit/fixtures/realNarinfos";
import { BUCKET, driftPreview, rootS3, runVerifyCli } from "./helpers";
import { scriptCommand } from "../support/scriptCommand";

const K1 = "it-resign-1";
const K2 = "it-resign-2";
const COUNT = 2000;

let minio: MinioServer;
let t: TestStack;
let outputs: OutputMap;
/** Our keys as the stack has them: K2 (active) then K1. */
let ours: { secretKey: string; publicKey: string }[];
const stranger = generateKeypair("stranger-1");
/** When the first run that writes started. */
let startedAt = 0;

type Expect = "sign" | "already" | "refused";
interface Made {
  key: string;
  /** The NAR its URL names; undefined when the test leaves it out (an expired NAR). */
  nar?: string;
  body: Buffer;
  expect: Expect;
  /** The key names resign must add (sign). */
  adds: string[];
  headers: Record<string, string>;
}
const made = new Map<string, Made>();

const s3 = () => rootS3(minio);
const secretOf = (name: string) => ours.find((k) => k.publicKey.startsWith(`${name}:`))?.secretKey ?? "";

/** A narinfo for path number i: references, a deriver, NarHash in nix32 (or base16 when `hex`). */
function narinfoBase(i: number, hex = false): { hashPart: string; text: string } {
  const hashPart = nix32(crypto.createHash("sha1").update(`resign-${i}`).digest());
  const narHash = crypto.createHash("sha256").update(`nar-${i}`).digest();
  const ref = nix32(crypto.createHash("sha1").update(`ref-${i}`).digest());
  const text =
    `StorePath: /nix/store/${hashPart}-p-${i}\nURL: nar/${nix32(narHash)}.nar.zst\nCompression: zstd\n` +
    `FileHash: sha256:${nix32(narHash)}\nFileSize: ${50 + i}\n` +
    `NarHash: sha256:${hex ? narHash.toString("hex") : nix32(narHash)}\nNarSize: ${1000 + i}\n` +
    `References: ${ref}-dep-${i} ${hashPart}-p-${i}\nDeriver: ${ref}-p-${i}.drv\n`;
  return { hashPart, text };
}
const sig = (secretKey: string, text: string) => `Sig: ${signDetached(secretKey, fingerprint(parseNarinfo(text)))}\n`;

/** The 2,000 narinfos: what each is and what resign must do with it. */
function makeNarinfos(): Made[] {
  const list: Made[] = [];
  const plain = { "content-type": "text/x-nix-narinfo" };
  for (let i = 0; i < COUNT; i++) {
    const kind = i % 20;
    const { hashPart, text: base } = narinfoBase(i, kind === 19 && i % 40 === 19);
    const key = `${hashPart}.narinfo`;
    const nar = parseNarinfo(base).url;
    const add = (text: string | Buffer, expect: Expect, adds: string[] = [], headers: Record<string, string> = plain) =>
      list.push({ key, nar, body: Buffer.isBuffer(text) ? text : Buffer.from(text), expect, adds, headers });
    // Signed by K1, but its NAR has expired: rewriting it would keep a narinfo alive that points at nothing.
    if (i % 100 === 0) list.push({ key, body: Buffer.from(base + sig(secretOf(K1), base)), expect: "refused", adds: [], headers: plain });
    else if (kind <= 11) add(base + sig(secretOf(K1), base), "sign", [K2]);
    else if (kind <= 13) add(base + sig(secretOf(K2), base), "sign", [K1]);
    else if (kind <= 15) add(base + sig(secretOf(K2), base) + sig(secretOf(K1), base), "already");
    else if (kind === 16) add(base + sig(stranger.secretKey, base), "refused");
    else if (kind === 17) add(base, "refused"); // unsigned
    else if (kind === 18) {
      const signed = base + sig(secretOf(K1), base);
      const variant = Math.floor(i / 20) % 4;
      if (variant === 0) add(signed.replace(`NarSize: ${1000 + i}`, `NarSize: ${2000 + i}`), "refused"); // tampered
      else if (variant === 1) add(signed.slice(0, -1), "refused"); // no final newline
      else if (variant === 2) add(`${signed}Sig: ${K2}:AAAA\n`, "refused"); // corrupt Sig under our name
      else add(Buffer.concat([Buffer.from(signed), Buffer.from([0xc3, 0x28])]), "refused"); // not UTF-8
    } else {
      // Unknown field, base16 NarHash for half, and headers that must survive the rewrite.
      add(base.replace("Deriver:", "X-Builder: it-resign\nDeriver:") + sig(secretOf(K1), base), "sign", [K2], {
        "content-type": "text/x-nix-narinfo",
        "cache-control": "public, max-age=3600",
        "x-amz-meta-origin": "it-resign",
      });
    }
  }
  // Five real cache.nixos.org narinfos replace five unsigned ones: foreign, refused.
  const unsigned = list.filter((m) => m.expect === "refused" && !m.body.toString().includes("Sig:"));
  Object.values(REAL).forEach((text, n) => {
    const m = unsigned[n];
    list.splice(list.indexOf(m), 1, { key: `${text.slice(22, 54)}.narinfo`, body: Buffer.from(text), expect: "refused", adds: [], headers: m.headers });
  });
  return list;
}

/** Runs `work` on each item, `n` at a time. */
async function pool<T>(items: T[], n: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await work(items[next++]);
  }));
}

async function upload(m: { key: string; body: Buffer; headers: Record<string, string> }): Promise<void> {
  const meta = Object.fromEntries(Object.entries(m.headers).map(([k, v]) => [k === "content-type" ? "Content-Type" : k, v]));
  await s3().putObject(BUCKET, m.key, m.body, m.body.length, meta);
}

async function readObject(key: string): Promise<{ body: Buffer; headers: Record<string, string> }> {
  const stream = (await s3().getObject(BUCKET, key)) as import("stream").Readable & { headers: Record<string, string> };
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return { body: Buffer.concat(chunks), headers: stream.headers };
}

/** key → ETag and LastModified of every object in the bucket. */
async function etags(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const o of s3().listObjectsV2(BUCKET, "", true)) if (o.name) out.set(o.name, `${o.etag} ${o.lastModified.toISOString()}`);
  return out;
}
/** key → LastModified (ms) of every object. */
async function ages(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const o of s3().listObjectsV2(BUCKET, "", true)) if (o.name) out.set(o.name, o.lastModified.getTime());
  return out;
}

interface CliRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts `npm run resign -- --stack NAME ARGS` (node directly) in a process group of its own; `onLine` sees each stdout line. */
function startResign(args: string[], opts: { env?: Record<string, string>; onLine?: (line: string, child: ChildProcess) => void } = {}) {
  const command = scriptCommand("resign", ["--stack", t.stack.name, ...args]);
  const child = spawn(command.file, command.args, {
    cwd: command.cwd,
    env: { ...process.env, ...command.env, ...t.env, ...opts.env },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  let pending = "";
  child.stdout?.on("data", (c: Buffer) => {
    stdout += c.toString();
    pending += c.toString();
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) opts.onLine?.(line, child);
  });
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<CliRun>((resolve) => child.on("close", (status, signal) => resolve({ status, signal, stdout, stderr })));
  return { child, done };
}
const runResign = (args: string[] = [], env?: Record<string, string>) => startResign(args, { env }).done;
const killGroup = (child: ChildProcess) => {
  if (child.pid) process.kill(-child.pid, "SIGKILL");
};

/** The summary line of a run. */
const summary = (run: CliRun) => run.stdout.split("\n").find((l) => /^resign: \d+ (signed|would be signed)/.test(l)) ?? `(no summary)\n${run.stdout}\n${run.stderr}`;

/** Resign's output never holds a secret. */
function expectNoSecrets(run: CliRun) {
  for (const k of ours) expect(run.stdout + run.stderr).not.toContain(k.secretKey.split(":")[1]);
  expect(run.stdout + run.stderr).not.toContain(minio.rootPassword);
}

const sigNames = (body: Buffer) => verifySignatures(parseNarinfo(body.toString("utf8")), ours.map((k) => k.publicKey)).verified.sort();
const toSign = () => [...made.values()].filter((m) => m.expect === "sign");
const refused = () => [...made.values()].filter((m) => m.expect === "refused");

beforeAll(async () => {
  minio = await startMinio();
  // A stack in the middle of a rotation: K2 active, K1 kept (both trusted, both signing).
  t = await createTestStack("it-resign", minioConfig(minio, { keyName: K2 }));
  await t.stack.setConfig("nix-cache:previousKeyNames[0]", { value: K1 }, true);
  const up = await t.stack.up();
  if (up.summary.result !== "succeeded") throw new Error(`pulumi up ended ${up.summary.result}`);
  outputs = await t.stack.outputs();
  const secrets = outputs.secretKeys?.value as string[];
  ours = secrets.map((s) => ({ secretKey: s, publicKey: publicKeyOf(s) }));
  expect(ours.map((k) => k.publicKey.split(":")[0])).toEqual([K2, K1]);

  for (const m of makeNarinfos()) made.set(m.key, m);
  await pool([...made.values()], 16, upload);
  const nars = [...new Set([...made.values()].map((m) => m.nar).filter((n): n is string => n !== undefined))];
  await pool(nars, 16, (nar) => upload({ key: nar, body: Buffer.from(`nar ${nar}`), headers: { "content-type": "application/x-nix-nar" } }));
  for (const r of ["realisations/sha256:1111!out.doi", "realisations/sha256:2222!out.doi", "realisations/sha256:3333!dev.doi"]) {
    await s3().putObject(BUCKET, r, Buffer.from("{}"), 2, { "Content-Type": "text/plain" });
  }
});

afterAll(() => removeDeployment(t, minio));

describe("npm run resign over 2,000 narinfos", () => {
  test("the test data: 1,480 to sign, 200 already signed, 320 refused", () => {
    expect(made.size).toBe(COUNT);
    expect([toSign().length, [...made.values()].filter((m) => m.expect === "already").length, refused().length]).toEqual([1480, 200, 320]);
    // The real cache.nixos.org ones are there, and are foreign.
    expect(verifySignatures(parseNarinfo(REAL.curl), [NIXOS_KEY]).verified).toEqual(["cache.nixos.org-1"]);
    expect(made.get(`${REAL.curl.slice(22, 54)}.narinfo`)?.expect).toBe("refused");
  });

  test("--dry-run changes nothing and says what it would do", async () => {
    const before = await etags();
    const run = await runResign(["--dry-run"]);
    expect(summary(run)).toBe("resign: 1480 would be signed (dry run: nothing written), 200 already signed, 320 refused, 3 realisations not handled");
    expect(run.stdout).toContain(`keys ${K2}, ${K1} (active first), dry run: nothing is written`);
    expect(run.stdout.split("\n").filter((l) => l.startsWith("would sign ")).length).toBe(1480);
    expect(run.status).toBe(1); // refused narinfos
    expect(await etags()).toEqual(before);
    expectNoSecrets(run);
  });

  test("killed half-way, a second run finishes the rest; nothing is half-written", async () => {
    startedAt = Date.now();
    let signedLines = 0;
    const { done } = startResign(["--concurrency", "1", "--verbose"], {
      onLine: (line, child) => {
        if (line.startsWith("signed ") && ++signedLines === 100) killGroup(child);
      },
    });
    const killed = await done;
    expect(killed.signal ?? killed.status).toBeTruthy();
    expect(summary(killed)).toMatch(/no summary/);

    // Each narinfo is either as uploaded or completely re-signed.
    let resigned = 0;
    await pool(toSign(), 16, async (m) => {
      const { body } = await readObject(m.key);
      if (body.equals(m.body)) return;
      resigned++;
      expect(sigNames(body)).toEqual([K1, K2]);
    });
    expect(resigned).toBeGreaterThanOrEqual(100);
    expect(resigned).toBeLessThan(1480);

    const run = await runResign();
    expect(summary(run)).toBe(
      `resign: ${1480 - resigned} signed, ${200 + resigned} already signed, 320 refused, 3 realisations not handled`,
    );
    expect(run.status).toBe(1);
    // Refused ones are named, with the reason.
    for (const m of refused()) expect(run.stdout).toContain(`refused ${m.key}: `);
    expect(run.stdout).toMatch(/^refused \S+: not signed by any of our keys \(signed only by cache\.nixos\.org-1\)$/m);
    expect(run.stdout).toMatch(/^refused \S+: not signed by any of our keys \(signed only by stranger-1\)$/m);
    expect(run.stdout).toMatch(/^refused \S+: corrupt signature under our key it-resign-2/m);
    expect(run.stdout).toMatch(/^refused \S+: corrupt narinfo: not UTF-8 text$/m);
    expect(run.stdout).toMatch(/^refused \S+: its NAR nar\/\S+ is missing \(expired or deleted\)/m);
    expect(run.stdout).toMatch(/^note: 3 realisations\/\*\.doi/m);
    expectNoSecrets(run);
  });

  test("exactly the right narinfos are signed; every earlier byte, the Content-Type and the headers are kept", async () => {
    // The NAR of each re-signed narinfo was touched (its expiry clock restarted with the narinfo's); no other was.
    const age = await ages();
    for (const m of made.values()) {
      if (m.nar === undefined) continue;
      if (m.expect === "sign") expect(age.get(m.nar)).toBeGreaterThanOrEqual(startedAt - 1000);
      else expect(age.get(m.nar)).toBeLessThan(startedAt - 1000);
    }
    const nar = await readObject(toSign()[0].nar as string);
    expect(nar.headers["content-type"]).toBe("application/x-nix-nar");
    expect(nar.body.toString()).toBe(`nar ${toSign()[0].nar}`);
    await pool([...made.values()], 16, async (m) => {
      const { body, headers } = await readObject(m.key);
      if (m.expect !== "sign") {
        expect(body.equals(m.body)).toBe(true);
        return;
      }
      expect(body.subarray(0, m.body.length).equals(m.body)).toBe(true);
      const added = body.subarray(m.body.length).toString("utf8");
      expect(added).toMatch(/^Sig: [^\n]+\n$/);
      expect(added.startsWith(`Sig: ${m.adds[0]}:`)).toBe(true);
      expect(sigNames(body)).toEqual([K1, K2]);
      expect(headers["content-type"]).toBe("text/x-nix-narinfo");
      if (m.headers["cache-control"]) {
        expect(headers["cache-control"]).toBe(m.headers["cache-control"]);
        expect(headers["x-amz-meta-origin"]).toBe("it-resign");
      }
    });
  });

  test("verify --full now names exactly the refused narinfos as lacking the active key's signature", async () => {
    const run = await runVerifyCli(t, ["--stack", t.stack.name, "--full"]);
    expect(run.stdout).toMatch(/^FAIL +narinfo-signatures +all 2000 narinfos: 320 lack a valid signature by the active key it-resign-2: /m);
    expect(run.status).toBe(1);
  });

  test("a second run changes nothing: 0 signed", async () => {
    const before = await etags();
    const run = await runResign();
    expect(summary(run)).toBe("resign: 0 signed, 1680 already signed, 320 refused, 3 realisations not handled");
    expect(await etags()).toEqual(before);
  });

  test("a narinfo uploaded again while resign runs is not overwritten: the new upload is what ends up there", async () => {
    // 30 narinfos the builder pushes again, signed by K1 only: resign must sign them. They are the first of the
    // listing, so resign reads them at once; it then waits (test-only delay) before writing each back.
    const keys = [...made.keys()].sort();
    const reset = keys.filter((k) => made.get(k)?.expect === "sign").slice(0, 30);
    const version = (key: string, n: number, signer: string) => {
      const base = made.get(key)?.body.toString("utf8").replace(/^Sig: .*\n/gm, "").replace(/^X-Upload: .*\n/m, "") ?? "";
      const text = `${base}X-Upload: ${n}\n`;
      return Buffer.from(text + sig(signer, text));
    };
    const upload1 = new Map(reset.map((k) => [k, version(k, 1, secretOf(K1))]));
    await pool(reset, 8, (k) => upload({ key: k, body: upload1.get(k) as Buffer, headers: { "content-type": "text/x-nix-narinfo" } }));

    // While resign waits, 10 are pushed again (K1-signed, new content) and 10 replaced by a stranger's upload.
    const upload2 = new Map(reset.slice(0, 10).map((k) => [k, version(k, 2, secretOf(K1))]));
    const foreign = new Map(reset.slice(10, 20).map((k) => [k, version(k, 3, stranger.secretKey)]));
    let raced: Promise<void> | undefined;
    const { done } = startResign(["--concurrency", "40"], {
      env: { NIX_CACHE_RESIGN_TEST_DELAY_MS: "8000" },
      onLine: (line) => {
        if (!/narinfos to check/.test(line)) return;
        raced = (async () => {
          await new Promise((r) => setTimeout(r, 3000));
          for (const [k, body] of [...upload2, ...foreign]) await upload({ key: k, body, headers: { "content-type": "text/x-nix-narinfo" } });
        })();
      },
    });
    const run = await done;
    await raced;
    expect(summary(run)).toBe(
      "resign: 20 signed, 1650 already signed, 330 refused, 20 uploaded again meanwhile (read again, not overwritten), 3 realisations not handled",
    );
    for (const k of reset) {
      const { body } = await readObject(k);
      const uploaded = upload2.get(k) ?? foreign.get(k) ?? (upload1.get(k) as Buffer);
      // What was uploaded last survives, byte for byte; ours is only ever appended to it.
      expect(body.subarray(0, uploaded.length).equals(uploaded)).toBe(true);
      if (foreign.has(k)) expect(body.equals(uploaded)).toBe(true);
      else expect(sigNames(body)).toEqual([K1, K2]);
    }
    const again = await runResign();
    expect(summary(again)).toBe("resign: 0 signed, 1670 already signed, 330 refused, 3 realisations not handled");
  });

  test("on a terminal a progress line counts up on stderr; off a terminal stderr stays empty", async () => {
    // script(1) gives the command a pseudo-terminal, as an operator's shell does.
    const line = `npm run --silent resign -- --stack ${t.stack.name} --dry-run`;
    const run = await new Promise<CliRun>((resolve) => {
      const c = spawn("script", ["-qec", line, "/dev/null"], { cwd: PROJECT_DIR, env: { ...process.env, ...t.env } });
      let stdout = "";
      c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      c.on("close", (status, signal) => resolve({ status, signal, stdout, stderr: "" }));
    });
    expect(run.stdout).toMatch(/\rresign: 2000\/2000 narinfos \(0 would be signed, 1670 already signed, 330 refused\)/);
    const plain = await runResign(["--dry-run"]);
    expect(plain.stderr).toBe("");
  });

  test("the stack shows no drift: preview --refresh --expect-no-changes is clean", async () => {
    const preview = await driftPreview(t.stack);
    expect(preview.changes).toEqual({});
    expect(preview.failed).toBe(false);
  });

  test("bad arguments exit 2 with the usage; --help exits 0", async () => {
    const bad = await runResign(["--concurrency", "0"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("--concurrency needs a positive whole number");
    const help = await runResign(["--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("usage: npm run resign");
    const noStack = await new Promise<CliRun>((resolve) => {
      // Through npm, as documented: the one run of this file that goes through `npm run resign`.
      const npm = scriptCommand("resign", ["--stack", "no-such-stack-here"], "npm");
      const c = spawn(npm.file, npm.args, { cwd: npm.cwd, env: { ...process.env, ...t.env } });
      let stdout = "";
      let stderr = "";
      c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      c.on("close", (status, signal) => resolve({ status, signal, stdout, stderr }));
    });
    expect(noStack.status).toBe(2);
    expect(noStack.stderr).toContain("cannot read the stack");
  });

  test("MinIO stopped: exit 2 naming the bucket and endpoint, nothing decided", async () => {
    await minio.stop();
    try {
      const run = await runResign();
      expect(run.status).toBe(2);
      expect(run.stderr).toContain(`resign: cannot list bucket ${BUCKET} at ${minio.endpoint}`);
      expect(summary(run)).toMatch(/no summary/);
    } finally {
      await minio.restart();
    }
  });
});
