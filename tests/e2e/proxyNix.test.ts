// A private cache read by Debian's Nix 2.8 (no S3 support) through the read proxy over https: MinIO serves https
// with a homelab CA (harness/localCa.ts), the proxy (the bundle under plain node, as its NixOS module runs it)
// trusts that CA toward MinIO and serves https with a certificate of the same CA, and each Nix host trusts it
// through NIX_SSL_CERT_FILE. A signed path is pushed with MinIO's root keys (Nix's own files, as `nix copy --to
// file://` writes them). With its netrc line a host substitutes the path and checks its signature; without netrc,
// with a wrong token, or after its host is revoked (SIGHUP), it is refused. Every Nix run has a fresh HOME and
// XDG_CACHE_HOME: Nix caches nix-cache-info and narinfos, and a refused run must not pass on cached answers.
import * as crypto from "crypto";
import * as fs from "fs";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import { makeServerCert } from "../../harness/localCa";
import { MinioServer, startMinio, TLS_NAMES } from "../../harness/minio";
import { makePrivateBucket, newToken, ProxyProcess, ReaderKeys, rootClient, startProxyProcess } from "../../harness/proxy";
import { binaryCacheContentType } from "../../lib/s3/pushTarget";
import { NixClient, payloadExpression, requireNix } from "./nixEnv";

const BUCKET = "nix-cache";
const KEY_NAME = "cache.homelab.test-1";
const nonce = crypto.randomBytes(8).toString("hex");
const tokens = { desk: newToken(), laptop: newToken() };

let minio: MinioServer;
let reader: ReaderKeys;
let proxy: ProxyProcess;
/** The proxy's URL by the name its certificate holds. */
let proxyUrl = "";
let root: string;
let caFile: string;
let publicKey = "";
let storePath = "";
/** Client runs so far: each gets a new name, so a fresh HOME and XDG_CACHE_HOME. */
let runs = 0;

function listFiles(dir: string, prefix = ""): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(path.join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`]));
}

/** A netrc file holding `lines` (mode 0600, as host-config writes it). */
function netrcFile(lines: string[]): string {
  const file = path.join(root, `netrc-${++runs}`);
  fs.writeFileSync(file, lines.map((l) => `${l}\n`).join(""), { mode: 0o600 });
  return file;
}

const netrcLine = (host: string, token: string) => `machine localhost login ${host} password ${token}`;

/** A fresh host realises storePath from the proxy by substitution, trusting `trustedKey`; netrc-file when given. */
function substitute(name: string, netrc: string | undefined, trustedKey = publicKey) {
  const client = new NixClient(root, `${name}-${++runs}`, { NIX_SSL_CERT_FILE: caFile });
  const store = path.join(root, `store-${name}-${runs}`);
  const result = client.run("nix-store", [
    "--store", store, "-r", storePath,
    "--option", "substituters", proxyUrl,
    "--option", "trusted-public-keys", trustedKey,
    ...(netrc ? ["--option", "netrc-file", netrc] : []),
  ]);
  return { result, file: path.join(store, storePath) };
}

beforeAll(async () => {
  requireNix();
  root = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-proxy-e2e-"));
  minio = await startMinio({ tls: true });
  const ca = minio.tls?.ca;
  if (!ca) throw new Error("MinIO started without TLS");
  caFile = path.join(root, "homelab-ca.crt");
  fs.writeFileSync(caFile, ca.certPem);
  reader = await makePrivateBucket(minio, BUCKET, "nixreader");
  const s3 = rootClient(minio, BUCKET);
  await s3.put("nix-cache-info", "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n", { contentType: binaryCacheContentType("nix-cache-info") });

  // The builder: a tiny input-addressed path, signed, written as Nix's binary cache files, uploaded NARs first.
  const builder = new NixClient(root, "builder");
  const work = path.join(root, "work");
  fs.mkdirSync(work);
  fs.writeFileSync(path.join(work, "payload.nix"), payloadExpression(nonce));
  const store = path.join(root, "store-builder");
  storePath = builder.ok("nix-build", ["--store", store, "--no-out-link", "payload.nix"], work).trim();
  const secret = builder.ok("nix", ["key", "generate-secret", "--key-name", KEY_NAME]);
  publicKey = builder.ok("nix", ["key", "convert-secret-to-public"], undefined, secret).trim();
  const keyFile = path.join(root, "signing.key");
  fs.writeFileSync(keyFile, secret, { mode: 0o600 });
  builder.ok("nix", ["store", "sign", "--store", store, "--key-file", keyFile, storePath]);
  const dir = path.join(root, "push");
  builder.ok("nix", ["copy", "--store", store, "--to", `file://${dir}?compression=zstd`, storePath]);
  const files = listFiles(dir).filter((k) => k !== "nix-cache-info");
  for (const key of [...files.filter((k) => !k.endsWith(".narinfo")), ...files.filter((k) => k.endsWith(".narinfo"))]) {
    await s3.put(key, fs.readFileSync(path.join(dir, key)), { contentType: binaryCacheContentType(key) });
  }
  s3.close();

  // The proxy: https with a certificate of the homelab CA for the name the hosts use.
  proxy = await startProxyProcess({
    dir: path.join(root, "proxy-host"),
    minio,
    bucket: BUCKET,
    reader,
    tokens,
    tls: await makeServerCert(ca, TLS_NAMES),
    listen: "127.0.0.1:0",
  });
  // Hosts reach it by the name in its certificate.
  proxyUrl = proxy.url.replace("://127.0.0.1:", "://localhost:");
}, 180_000);

afterAll(async () => {
  await proxy?.stop();
  await minio?.destroy();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

/**
 * The proxy's log lines from index `from` on, once `until` holds for them: the Nix runs are spawnSync, which blocks
 * this process's event loop, so the proxy's lines arrive only after.
 */
async function logSince(from: number, until: (lines: string[]) => boolean): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  while (!until(proxy.lines.slice(from)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return proxy.lines.slice(from);
}

/** The number of log lines once none arrived for 300 ms: where the next test's lines start. */
async function settled(): Promise<number> {
  let n = -1;
  while (n !== proxy.lines.length) {
    n = proxy.lines.length;
    await new Promise((r) => setTimeout(r, 300));
  }
  return n;
}

/** The status of an anonymous GET over https, trusting the homelab CA only. */
function anonymousStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    https.get(url, { ca: fs.readFileSync(caFile, "utf8"), agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on("error", reject);
  });
}

test("the cache is private: MinIO refuses anonymous reads, and so does the proxy (https, the homelab CA)", async () => {
  expect(storePath).toMatch(/^\/nix\/store\/[0-9a-z]{32}-payload$/);
  const hash = path.basename(storePath).slice(0, 32);
  for (const key of ["nix-cache-info", `${hash}.narinfo`]) {
    expect(await anonymousStatus(`${minio.endpoint}/${BUCKET}/${key}`)).toBe(403);
    expect(await anonymousStatus(`${proxyUrl}/${key}`)).toBe(401);
  }
  expect(proxyUrl).toMatch(/^https:\/\/localhost:\d+$/);
});

test("with its netrc line a host substitutes the path over https, checking the signature; every GET carried its token", async () => {
  const from = await settled();
  const { result, file } = substitute("desk", netrcFile([netrcLine("desk", tokens.desk)]));
  expect([result.status, result.stderr]).toEqual([0, expect.not.stringContaining("error")]);
  expect(result.stdout.trim()).toBe(storePath);
  expect(fs.readFileSync(file, "utf8")).toBe(`hello ${nonce}\n`);
  // nix-cache-info, the narinfo and the NAR, each read as desk.
  const narLine = (l: string) => /^GET \/nar\/\S+\.nar\.zst 200 desk /.test(l);
  const lines = await logSince(from, (ls) => ls.some(narLine));
  const served = lines.filter((l) => / 200 desk /.test(l));
  const hash = path.basename(storePath).slice(0, 32);
  expect(served.some((l) => l.startsWith("GET /nix-cache-info 200 desk "))).toBe(true);
  expect(served.some((l) => l.startsWith(`GET /${hash}.narinfo 200 desk `))).toBe(true);
  expect(served.some(narLine)).toBe(true);
  expect(lines.filter((l) => / 401 /.test(l))).toEqual([]);

  // nix copy --from the proxy's URL, as a second host does.
  const client = new NixClient(root, `laptop-copy-${++runs}`, { NIX_SSL_CERT_FILE: caFile });
  const store = path.join(root, `store-laptop-copy-${runs}`);
  const copied = client.run("nix", [
    "copy", "--from", proxyUrl, "--to", store, "--option", "trusted-public-keys", publicKey,
    "--option", "netrc-file", netrcFile([netrcLine("laptop", tokens.laptop)]), storePath,
  ]);
  expect(copied.status).toBe(0);
  expect(fs.readFileSync(path.join(store, storePath), "utf8")).toBe(`hello ${nonce}\n`);
});

test("the signature is checked: trusting another key of the same name, the path is refused", () => {
  const keygen = new NixClient(root, `keygen-${++runs}`);
  const other = keygen.ok("nix", ["key", "convert-secret-to-public"], undefined, keygen.ok("nix", ["key", "generate-secret", "--key-name", KEY_NAME])).trim();
  const { result, file } = substitute("desk-other-key", netrcFile([netrcLine("desk", tokens.desk)]), other);
  expect(result.status).not.toBe(0);
  expect(fs.existsSync(file)).toBe(false);
  expect(result.stderr).toContain(`is not signed by any of the keys in 'trusted-public-keys'`);
});

test("no netrc, a wrong token, another host's token: refused (401), nothing substituted", async () => {
  const from = await settled();
  const cases: [string, string | undefined][] = [
    ["no-netrc", undefined],
    ["wrong-token", netrcFile([netrcLine("desk", newToken())])],
    ["other-hosts-token", netrcFile([netrcLine("desk", tokens.laptop)])],
  ];
  for (const [name, netrc] of cases) {
    const { result, file } = substitute(name, netrc);
    expect([name, result.status === 0, fs.existsSync(file)]).toEqual([name, false, false]);
    expect(result.stderr).toContain("does not appear to be a binary cache");
  }
  // Each run stops at nix-cache-info's 401; Nix 2.8 then tries to create the cache with a PUT, which is 405.
  const refusal = /^GET \/nix-cache-info 401 - /;
  const refused = await logSince(from, (ls) => ls.filter((l) => refusal.test(l)).length >= 3);
  expect(refused.filter((l) => refusal.test(l)).length).toBeGreaterThanOrEqual(3);
  expect(refused.filter((l) => !refusal.test(l) && !/^PUT \/nix-cache-info 405 - /.test(l))).toEqual([]);
});

test("a revoked host (new tokens file, SIGHUP) is refused at once; the other host still substitutes", async () => {
  expect(await proxy.reload({ desk: tokens.desk })).toBe("nix-cache-proxy: SIGHUP: tokens reloaded, 1 host (was 2)");
  const revoked = substitute("laptop-revoked", netrcFile([netrcLine("laptop", tokens.laptop)]));
  expect([revoked.result.status === 0, fs.existsSync(revoked.file)]).toEqual([false, false]);
  expect(revoked.result.stderr).toContain("does not appear to be a binary cache");
  const kept = substitute("desk-after-revoke", netrcFile([netrcLine("desk", tokens.desk)]));
  expect(kept.result.status).toBe(0);
  expect(fs.readFileSync(kept.file, "utf8")).toBe(`hello ${nonce}\n`);
  // No token or secret in anything the proxy printed.
  const printed = proxy.lines.join("\n");
  for (const secret of [...Object.values(tokens), reader.secretKey, minio.rootPassword]) expect(printed.includes(secret)).toBe(false);
});
