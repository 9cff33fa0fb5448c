// The read proxy's host script: lib/proxy/bundle.ts's bundle of lib/proxy/service.ts requires node built-ins only
// and runs with plain node from a directory without node_modules (--help, a bad command line); the service reads
// its command line and files with one clear line per mistake, never a secret; it serves until SIGTERM and swaps
// its tokens on SIGHUP (a broken tokens file keeps the old ones). Requests against MinIO: tests/integration/proxy.test.ts.
import { spawnSync } from "child_process";
import { EventEmitter } from "events";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { bundleProxy, proxyScriptText } from "../../lib/proxy/bundle";
import { parseListen } from "../../lib/proxy/server";
import { listenOption, parseProxyServiceCommand, PROXY_SERVICE_USAGE, ProxyServiceArgs, readTlsFiles, serveUntilStopped, serviceConfig } from "../../lib/proxy/service";
import { tokenHash, tokenHashesText } from "../../lib/proxy/tokens";

let dir: string;
let script: string;

beforeAll(() => {
  // Outside the project: node finds no node_modules there.
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-proxy-bundle-"));
  script = path.join(dir, "nix-cache-proxy.js");
  fs.writeFileSync(script, proxyScriptText());
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const runNode = (args: string[]) => spawnSync(process.execPath, [script, ...args], { cwd: dir, env: { PATH: process.env.PATH }, encoding: "utf8", timeout: 30_000 });

describe("the bundle", () => {
  test("node built-ins and lib/ modules only, the service first; a header saying what it is", () => {
    const bundle = bundleProxy();
    expect(bundle.modules[0]).toBe("proxy/service");
    expect(bundle.modules).toEqual(expect.arrayContaining(["proxy/server", "proxy/route", "proxy/tokens", "s3/sigv4", "s3/pushTarget", "cli/command"]));
    // Only the proxy's own modules, the S3 signing and parsing, the command convention and the host-name rule.
    expect(bundle.modules.filter((m) => !/^(proxy|s3|cli)\//.test(m) && m !== "config/hostName")).toEqual([]);
    expect(bundle.builtins.filter((b) => !["crypto", "fs", "http", "https", "stream", "url", "util", "v8", "vm"].includes(b))).toEqual([]);
    expect(bundle.text).toBe(proxyScriptText());
    expect(bundle.text.split("\n")[0]).toBe("// nix-cache-proxy.js: the nix-cache read proxy (nix-cache-proxy.service runs `node nix-cache-proxy.js ARGS`;");
    const ancestors = dir.split(path.sep).map((_, i, parts) => parts.slice(0, i + 1).join(path.sep) || path.sep);
    expect(ancestors.filter((d) => fs.existsSync(path.join(d, "node_modules")))).toEqual([]);
  });

  test("`node nix-cache-proxy.js --help` prints the usage, exit 0; a bad command line: exit 2, the message, the usage", () => {
    const help = runNode(["--help"]);
    expect([help.status, help.stdout, help.stderr]).toEqual([0, `${PROXY_SERVICE_USAGE}\n`, ""]);
    const none = runNode([]);
    expect([none.status, none.stdout]).toEqual([2, ""]);
    expect(none.stderr).toBe(`nix-cache-proxy: --listen HOST:PORT is required\n${PROXY_SERVICE_USAGE}\n`);
    const unknown = runNode(["--listen", "127.0.0.1:0", "--stack", "s"]);
    expect([unknown.status, unknown.stderr.split("\n")[0]]).toEqual([2, expect.stringContaining("nix-cache-proxy: unknown argument '--stack' (allowed: --listen HOST:PORT, --endpoint URL")]);
    const missingFile = runNode(["--listen", "127.0.0.1:0", "--endpoint", "http://127.0.0.1:9000", "--bucket", "b", "--credentials-file", path.join(dir, "nope"), "--profile", "p", "--tokens-file", "t"]);
    expect([missingFile.status, missingFile.stderr]).toEqual([2, `nix-cache-proxy: --credentials-file names ${path.join(dir, "nope")}, which cannot be read (ENOENT)\n`]);
  });
});

describe("the command line and its files", () => {
  const files: Record<string, string> = {
    "/s/creds": "[nixbuilder]\naws_access_key_id = nixbuilder\naws_secret_access_key = builder-secret\n[nixreader]\naws_access_key_id = nixreader\naws_secret_access_key = reader-secret\n",
    "/s/tokens": tokenHashesText({ desk: "t1", laptop: "t2" }),
    "/s/ca.pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    "/s/key.pem": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
    "/s/empty": "",
  };
  const readFile = (f: string) => {
    if (!(f in files)) throw Object.assign(new Error(`ENOENT: ${f}`), { code: "ENOENT" });
    return files[f];
  };
  const base = ["--listen", "0.0.0.0:8480", "--endpoint", "https://minio.lan:9000", "--region", "eu-1", "--bucket", "nix-cache", "--credentials-file", "/s/creds", "--profile", "nixreader", "--tokens-file", "/s/tokens"];
  const parsed = (args: string[]) => parseProxyServiceCommand(args) as ProxyServiceArgs;
  const problem = (args: string[]) => {
    try {
      serviceConfig(parsed(args), readFile);
    } catch (err) {
      return (err as Error).message;
    }
    return "no error";
  };

  test("reads the reader's keys from its profile, the tokens' hashes, the CA and the TLS files", () => {
    const { config, tokensFile } = serviceConfig(parsed([...base, "--ca-file", "/s/ca.pem", "--tls-cert", "/s/ca.pem", "--tls-key", "/s/key.pem"]), readFile);
    expect(tokensFile).toBe("/s/tokens");
    expect(config).toEqual({
      listen: { host: "0.0.0.0", port: 8480 },
      upstream: { endpoint: "https://minio.lan:9000", region: "eu-1", bucket: "nix-cache", accessKey: "nixreader", secretKey: "reader-secret", ca: files["/s/ca.pem"] },
      tokenHashes: new Map([["desk", tokenHash("t1")], ["laptop", tokenHash("t2")]]),
      tls: { cert: files["/s/ca.pem"], key: files["/s/key.pem"] },
    });
    expect(parseProxyServiceCommand(["--help"])).toBe("help");
  });

  test("each mistake: one line naming it, never a secret", () => {
    const without = (flag: string) => base.filter((_, i) => base[i] !== flag && base[i - 1] !== flag);
    const cases: [string[], string][] = [
      [without("--endpoint"), "--endpoint is required"],
      [without("--tokens-file"), "--tokens-file is required"],
      [[...without("--listen"), "--listen", "8480"], "--listen wants HOST:PORT (e.g. 0.0.0.0:8480 or [::]:8480), not '8480'"],
      [[...without("--profile"), "--profile", "nixgc"], "--profile names [nixgc], which /s/creds has no aws_access_key_id and aws_secret_access_key for"],
      [[...without("--tokens-file"), "--tokens-file", "/s/missing"], "--tokens-file names /s/missing, which cannot be read (ENOENT)"],
      [[...without("--tokens-file"), "--tokens-file", "/s/creds"], "/s/creds: tokens file line 1: want 'HOST sha256:HEX', found 1 field(s)"],
      [[...base, "--ca-file", "/s/empty"], "--ca-file names /s/empty, which holds no PEM certificate"],
      [[...base, "--tls-cert", "/s/ca.pem"], "--tls-cert and --tls-key go together (only --tls-cert given)"],
      [[...base, "--tls-key", "/s/key.pem"], "--tls-cert and --tls-key go together (only --tls-key given)"],
      [[...base, "--tls-cert", "/s/key.pem", "--tls-key", "/s/key.pem"], "--tls-cert names /s/key.pem, which holds no PEM certificate"],
      [[...base, "--tls-cert", "/s/ca.pem", "--tls-key", "/s/ca.pem"], "--tls-key names /s/ca.pem, which holds no PEM private key"],
    ];
    for (const [args, message] of cases) {
      const got = problem(args);
      expect(got).toBe(message);
      for (const secret of ["reader-secret", "builder-secret"]) expect(got).not.toContain(secret);
    }
    expect(readTlsFiles(undefined, undefined, readFile)).toBeUndefined();
    expect(() => listenOption(undefined)).toThrow("--listen HOST:PORT is required");
  });

  test("--listen: host and port, IPv6 in brackets", () => {
    expect(parseListen("127.0.0.1:0")).toEqual({ host: "127.0.0.1", port: 0 });
    expect(parseListen("[::]:8480")).toEqual({ host: "::", port: 8480 });
    expect(parseListen("[::1]:1")).toEqual({ host: "::1", port: 1 });
    expect(parseListen("proxy.lan:8480")).toEqual({ host: "proxy.lan", port: 8480 });
    for (const bad of ["8480", ":8480", "::1:8480", "h:", "h:65536", "h:-1", "h :1", "[::1]", "h:1:2"]) expect(() => parseListen(bad)).toThrow(`not '${bad}'`);
  });
});

describe("serveUntilStopped", () => {
  test("says what it serves, swaps tokens on SIGHUP (a failed reload keeps them), closes on SIGTERM with exit 0", async () => {
    const lines: string[] = [];
    const signals = new EventEmitter();
    let next: () => Map<string, string> = () => new Map([["laptop", tokenHash("t2")]]);
    const served = serveUntilStopped(
      "nix-cache-proxy",
      {
        listen: { host: "127.0.0.1", port: 0 },
        // Nothing listens there: these requests stop at the credentials.
        upstream: { endpoint: "http://127.0.0.1:9", region: "", bucket: "nix-cache", accessKey: "nixreader", secretKey: "reader-secret" },
        tokenHashes: new Map([["desk", tokenHash("t1")], ["laptop", tokenHash("t2")]]),
      },
      { log: (l) => lines.push(l), signals },
      () => next(),
    );
    while (lines.length === 0) await new Promise((r) => setTimeout(r, 10));
    const m = /^nix-cache-proxy: serving nix-cache at (http:\/\/127\.0\.0\.1:\d+) for 2 hosts$/.exec(lines[0]);
    expect(m).not.toBeNull();
    const url = new URL(m?.[1] ?? "");
    const status = (user: string, token: string) =>
      new Promise<number>((resolve, reject) => {
        http
          .get({ host: url.hostname, port: url.port, path: "/", headers: { authorization: `Basic ${Buffer.from(`${user}:${token}`).toString("base64")}` }, agent: false }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
          .on("error", reject);
      });
    // "/" is 404 for a host with a token, 401 for one without.
    expect([await status("desk", "t1"), await status("laptop", "t2")]).toEqual([404, 404]);
    signals.emit("SIGHUP", "SIGHUP");
    expect(lines[lines.length - 1]).toBe("nix-cache-proxy: SIGHUP: tokens reloaded, 1 host (was 2)");
    expect([await status("desk", "t1"), await status("laptop", "t2")]).toEqual([401, 404]);
    next = () => {
      throw new Error("tokens file line 3: bad");
    };
    signals.emit("SIGHUP", "SIGHUP");
    expect(lines[lines.length - 1]).toBe("nix-cache-proxy: SIGHUP: tokens NOT reloaded, still serving the 1 host(s) of before: tokens file line 3: bad");
    expect(await status("laptop", "t2")).toBe(404);
    signals.emit("SIGTERM", "SIGTERM");
    expect(await served).toBe(0);
    expect(lines.slice(-2)).toEqual(["nix-cache-proxy: SIGTERM: closing (requests in flight may finish)", "nix-cache-proxy: stopped"]);
    expect(signals.listenerCount("SIGHUP") + signals.listenerCount("SIGTERM") + signals.listenerCount("SIGINT")).toBe(0);
    expect(lines.join("\n")).not.toContain("reader-secret");
  });
});
