// The read proxy of a private cache (issue 21): HTTP Basic with per-host tokens in front, a GET or HEAD of one
// object of the cache bucket signed as the reader user behind, the body streamed back as it arrives.
//
// Why our own and not nginx: Debian's nginx 1.22 is installable here, but its auth_basic checks an htpasswd file and
// it cannot sign SigV4, so it would need a second, Go-built signing proxy (awslabs' aws-sigv4-proxy) that the
// toolchain must pin and build, two services and a loopback hop per request, and nginx location rules to keep
// listing, queries and other buckets out (that proxy signs whatever it is sent). This is one process of plain node
// (nixpkgs' nodejs, as the GC's bundle runs), the project's own SigV4 code, the contract's sha256 tokens file
// re-read on SIGHUP, and its refusals in one pure, unit-tested module (route.ts). What nginx would do better is move
// bytes with less CPU: this proxy streams ~650 MiB per CPU-second (bench/proxyBench.ts), far above a homelab link.
//
// Node built-ins and lib/ modules only: lib/proxy/service.ts bundles this into the proxy host's script.
import * as http from "http";
import * as https from "https";
import { pipeline } from "stream";
import * as v8 from "v8";
import * as vm from "vm";
import { amzDate, authorization, EMPTY_SHA256, objectPath } from "../s3/sigv4";
import { keepAliveAgent, s3EndpointUrl } from "../s3/client";
import { parseErrorBody } from "../s3/xml";
import { decide, forwardedHeaders, ObjectMethod, passedHeaders, upstreamOutcome } from "./route";

export interface ProxyConfig {
  /** port 0 = any free port */
  listen: { host: string; port: number };
  upstream: { endpoint: string; region: string; bucket: string; accessKey: string; secretKey: string; ca?: string };
  /** host -> "sha256:HEX" (lib/proxy/tokens.ts parseTokenHashes) */
  tokenHashes: Map<string, string>;
  /** PEM texts: serve https */
  tls?: { cert: string; key: string };
  /** One line per request, never a token or secret. */
  log?: (line: string) => void;
}

export interface RunningProxy {
  /** http(s)://HOST:PORT, the port the server got. */
  url: string;
  /** Replaces the tokens (a reload): requests from then on are checked against these. */
  setTokenHashes(hashes: Map<string, string>): void;
  /** Stops accepting, lets requests in flight finish for up to `graceMs` (default 10 s), then closes the rest. */
  close(graceMs?: number): Promise<void>;
}

/** Request headers beyond this get node's own 431. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** MinIO must answer with headers within this... */
const UPSTREAM_HEADERS_MS = 30_000;
/** ... and then never stall for longer than this while sending the body (a slow client slows it down, too). */
const UPSTREAM_IDLE_MS = 120_000;
/** An error answer's body is read up to this size (it only names S3's code). */
const MAX_ERROR_BODY = 64 * 1024;
/** A kept-alive socket MinIO had just closed: one more try, before anything reached the client. */
const STALE_SOCKET = new Set(["ECONNRESET", "EPIPE"]);

/** Every this many bytes streamed, the proxy looks at its ArrayBuffer memory... */
const GC_CHECK_BYTES = 4 * 1024 * 1024;
/** ... and collects the garbage when it holds more than this. */
const GC_ABOVE_BYTES = 16 * 1024 * 1024;

/**
 * Every chunk streamed through is a Buffer node allocates twice (the socket's read and the HTTP parser's copy),
 * freed only when V8 collects; V8 goes by its own measure of external memory and let 100 MiB and more of them pile
 * up (the proxy's RSS reached 230 MiB with 16 clients, 190 MiB with 4). So whenever the ArrayBuffers pass
 * GC_ABOVE_BYTES: a minor collection (the chunks die young; it cost no measurable CPU), and a full one only when
 * that was not enough (chunks in flight promoted). Measured: RSS flat at ~90 MiB with 16 clients, the same CPU
 * time. node offers gc() only under --expose-gc: without it, it is exposed at start (as jest does).
 */
function garbagePacer(): (bytes: number) => void {
  let exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed !== "function") {
    v8.setFlagsFromString("--expose-gc");
    exposed = vm.runInNewContext("gc");
  }
  const gc = exposed as (options?: { type: "minor" | "major" }) => void;
  let streamed = 0;
  return (bytes) => {
    streamed += bytes;
    if (streamed < GC_CHECK_BYTES) return;
    streamed = 0;
    if (process.memoryUsage().arrayBuffers <= GC_ABOVE_BYTES) return;
    gc({ type: "minor" });
    if (process.memoryUsage().arrayBuffers > GC_ABOVE_BYTES) gc({ type: "major" });
  };
}

/** `HOST:PORT` (IPv6 in brackets: `[::1]:8480`) of --listen. Throws a one-line message. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`--listen wants HOST:PORT (e.g. 0.0.0.0:8480 or [::]:8480), not '${text}'`);
  return { host: m[1] ?? m[2], port };
}

/** The path for the log: no query (it could hold anything), non-printable characters as '?', at most 200 chars. */
function loggedPath(target: string): string {
  const q = target.indexOf("?");
  const path = (q < 0 ? target : target.slice(0, q)).replace(/[^\x21-\x7e]/g, "?");
  return `${path.length > 200 ? `${path.slice(0, 200)}…` : path}${q < 0 ? "" : "?…"}`;
}

export async function startProxy(config: ProxyConfig): Promise<RunningProxy> {
  const up = config.upstream;
  const url = s3EndpointUrl(up.endpoint);
  if (!up.bucket) throw new Error("proxy: the upstream bucket is empty");
  const transport = url.protocol === "https:" ? https : http;
  const agent = keepAliveAgent(url, up.ca);
  const region = up.region || "us-east-1";
  const log = config.log ?? (() => undefined);
  let hashes = config.tokenHashes;
  let closing = false;
  const streamed = garbagePacer();

  /** Signs and sends one GET/HEAD of `key`; the caller handles the answer. */
  const upstreamRequest = (method: ObjectMethod, key: string, clientHeaders: http.IncomingHttpHeaders): http.ClientRequest => {
    const path = objectPath(up.bucket, key);
    const signed: Record<string, string> = { host: url.host, "x-amz-date": amzDate(new Date()), "x-amz-content-sha256": EMPTY_SHA256 };
    const headers = {
      ...forwardedHeaders(clientHeaders),
      ...signed,
      authorization: authorization({ method, path, query: {}, headers: signed, region, accessKey: up.accessKey, secretKey: up.secretKey }),
    };
    return transport.request({ protocol: url.protocol, hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"), port: url.port || undefined, method, path, headers, agent });
  };

  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const started = Date.now();
    const method = req.method ?? "";
    const target = req.url ?? "";
    let host: string | undefined;
    let bytes = 0;
    let note = "";
    let current: http.ClientRequest | undefined;
    if (closing) res.setHeader("connection", "close");
    res.on("close", () => {
      // The client went away (or the answer failed) before the end: stop MinIO's side too.
      if (!res.writableFinished) current?.destroy();
      const aborted = res.writableFinished ? "" : " aborted";
      log(`${method.replace(/[^\x21-\x7e]/g, "?").slice(0, 16)} ${loggedPath(target)} ${res.statusCode} ${host ?? "-"} ${bytes} ${Date.now() - started}ms${note}${aborted}`);
      if (closing) server.closeIdleConnections();
    });

    const plain = (status: number, reason: string, headers: Record<string, string> = {}) => {
      const body = `${reason}\n`;
      bytes = method === "HEAD" ? 0 : Buffer.byteLength(body);
      res.writeHead(status, { ...headers, "content-type": "text/plain; charset=utf-8", "content-length": String(Buffer.byteLength(body)) });
      res.end(body);
    };

    const decision = decide({ method, url: target, headers: req.headers }, hashes);
    if (decision.kind === "refused") {
      host = decision.host;
      plain(decision.status, decision.reason, decision.headers);
      return;
    }
    host = decision.host;

    const attempt = (n: number) => {
      let answered = false;
      const ureq = upstreamRequest(decision.method, decision.key, req.headers);
      current = ureq;
      ureq.setTimeout(UPSTREAM_HEADERS_MS, () => ureq.destroy(Object.assign(new Error("MinIO did not answer in time"), { code: "ETIMEDOUT" })));
      ureq.on("error", (err: NodeJS.ErrnoException) => {
        if (answered) return; // the body's pipeline reports it
        if (n === 1 && ureq.reusedSocket && STALE_SOCKET.has(err.code ?? "") && !res.destroyed) return attempt(2);
        note = ` upstream=${err.code ?? "error"}`;
        if (!res.headersSent && !res.destroyed) plain(502, "bad gateway");
      });
      ureq.on("response", (ures) => {
        answered = true;
        ureq.setTimeout(UPSTREAM_IDLE_MS);
        const status = ures.statusCode ?? 0;
        const code = ures.headers["x-minio-error-code"];
        const quick = upstreamOutcome(status, typeof code === "string" ? code : undefined);
        if (quick === "pass") {
          res.writeHead(status, passedHeaders(ures.headers));
          ures.on("data", (chunk: Buffer) => {
            bytes += chunk.length;
            streamed(chunk.length);
          });
          // Backpressure: pipeline stops reading from MinIO while the client's socket is full; an error on
          // either side destroys both.
          pipeline(ures, res, (err) => {
            if (err && !note) note = ` error=${(err as NodeJS.ErrnoException).code ?? "stream"}`;
          });
          return;
        }
        // An error answer: its body (GET) names S3's code; read a bounded amount, then answer with our own body.
        const chunks: Buffer[] = [];
        let size = 0;
        ures.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size <= MAX_ERROR_BODY) chunks.push(chunk);
          else ures.destroy();
        });
        const finish = () => {
          if (res.headersSent || res.destroyed) return;
          let bodyCode = typeof code === "string" ? code : undefined;
          try {
            bodyCode = parseErrorBody(Buffer.concat(chunks).toString("utf8")).code ?? bodyCode;
          } catch {
            // not S3's XML: the status alone decides
          }
          const outcome = upstreamOutcome(status, bodyCode);
          if (outcome === "pass") return plain(502, "bad gateway");
          if (outcome.upstream) note = ` upstream=${outcome.upstream.replace(/\s/g, ":")}`;
          plain(outcome.status, outcome.reason);
        };
        ures.on("end", finish);
        ures.on("close", finish);
        ures.on("error", () => undefined);
      });
      ureq.end();
    };
    try {
      attempt(1);
    } catch {
      // e.g. a key node refuses to put in a request line: nothing reached MinIO
      note = " upstream=request";
      plain(502, "bad gateway");
    }
  };

  const serverOptions = { maxHeaderSize: MAX_HEADER_BYTES, headersTimeout: 20_000, requestTimeout: 30_000 };
  const server: http.Server | https.Server = config.tls
    ? https.createServer({ ...serverOptions, cert: config.tls.cert, key: config.tls.key }, handle)
    : http.createServer(serverOptions, handle);

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : config.listen.port;
  const urlHost = config.listen.host.includes(":") ? `[${config.listen.host}]` : config.listen.host;

  return {
    url: `${config.tls ? "https" : "http"}://${urlHost}:${port}`,
    setTokenHashes: (next) => {
      hashes = next;
    },
    close: async (graceMs = 10_000) => {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(force);
      agent.destroy();
    },
  };
}
