// The read proxy on its own host: `node nix-cache-proxy.js --listen HOST:PORT --endpoint URL ...` (see USAGE), run by
// the proxy's NixOS module (nix-cache-proxy.service). The host has no node_modules and no checkout:
// lib/proxy/bundle.ts bundles this file and the lib/ modules it imports (node built-ins only) into that one script.
// It reads the reader's keys from an AWS credentials file and the tokens from the tokens file (host-config writes
// both into --secrets-dir), re-reads the tokens file on SIGHUP (revoking a host = a new file and
// `systemctl reload`), and on SIGTERM or SIGINT stops accepting, lets requests in flight finish, and exits 0.
// Exit codes as lib/cli/command.ts: 2 when it cannot start (an argument, a file, the port).
import * as fs from "fs";
import { commandMain, EXIT, ExitCode, OptionSpecs, parseCommandLine, ParsedCommandLine, SetupError, UsageError } from "../cli/command";
import { parseAwsCredentials } from "../s3/pushTarget";
import { parseListen, ProxyConfig, RunningProxy, startProxy } from "./server";
import { parseTokenHashes } from "./tokens";

export const PROXY_SERVICE_NAME = "nix-cache-proxy";

export const PROXY_SERVICE_USAGE = `usage: node ${PROXY_SERVICE_NAME}.js --listen HOST:PORT --endpoint URL --region R --bucket B
         --credentials-file F --profile P --tokens-file F [--ca-file F] [--tls-cert F --tls-key F]

Serves the private cache bucket B of the MinIO at URL to the hosts in the tokens file, over HTTP Basic
(each host's netrc line: login HOST, password its token), signing each GET or HEAD as the reader user.
  --listen HOST:PORT        where to listen (0.0.0.0:8480, [::]:8480)
  --endpoint URL            MinIO's S3 endpoint, http(s)://host[:port]
  --region R                the S3 region (us-east-1 when empty)
  --bucket B                the cache bucket (the only one served)
  --credentials-file F      an AWS credentials file with the reader's keys (nix-cache-reader-credentials) ...
  --profile P               ... in this profile's section (the reader user's name)
  --tokens-file F           the tokens file (nix-cache-proxy-tokens: 'HOST sha256:HEX' per line); re-read on SIGHUP
  --ca-file F               a CA bundle to trust for an https endpoint (default: the system's)
  --tls-cert F, --tls-key F serve https with this certificate (chain) and key, PEM
  --help, -h                this text
One log line per request: method, path, status, host, bytes, time. Exit status: 0 stopped by SIGTERM or SIGINT,
2 could not start (an argument, a file, the port).`;

const OPTIONS = {
  listen: { type: "string", valueName: "HOST:PORT" },
  endpoint: { type: "string", valueName: "URL" },
  region: { type: "string", valueName: "R" },
  bucket: { type: "string", valueName: "B" },
  "credentials-file": { type: "string", valueName: "F" },
  profile: { type: "string", valueName: "P" },
  "tokens-file": { type: "string", valueName: "F" },
  "ca-file": { type: "string", valueName: "F" },
  "tls-cert": { type: "string", valueName: "F" },
  "tls-key": { type: "string", valueName: "F" },
} as const satisfies OptionSpecs;

export type ProxyServiceArgs = ParsedCommandLine<typeof OPTIONS>;

export function parseProxyServiceCommand(argv: readonly string[]): ProxyServiceArgs | "help" {
  return parseCommandLine(argv, { options: OPTIONS, usage: PROXY_SERVICE_USAGE });
}

type ReadFile = (file: string) => string;
const readUtf8: ReadFile = (f) => fs.readFileSync(f, "utf8");

/** A file an option names, or a SetupError naming the option, the file and why (never its content). */
function readNamed(option: string, file: string, readFile: ReadFile): string {
  try {
    return readFile(file);
  } catch (err) {
    throw new SetupError(`--${option} names ${file}, which cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** The tokens file, parsed; a SetupError naming the file and the bad line. */
export function readTokensFile(file: string, readFile: ReadFile = readUtf8): Map<string, string> {
  const text = readNamed("tokens-file", file, readFile);
  try {
    return parseTokenHashes(text);
  } catch (err) {
    throw new SetupError(`${file}: ${(err as Error).message}`);
  }
}

/** TLS files for --tls-cert/--tls-key (both or neither); shared with `npm run proxy`. */
export function readTlsFiles(cert: string | undefined, key: string | undefined, readFile: ReadFile = readUtf8): { cert: string; key: string } | undefined {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) throw new UsageError(`--tls-cert and --tls-key go together (only ${cert === undefined ? "--tls-key" : "--tls-cert"} given)`);
  const certPem = readNamed("tls-cert", cert, readFile);
  const keyPem = readNamed("tls-key", key, readFile);
  if (!certPem.includes("-----BEGIN CERTIFICATE-----")) throw new SetupError(`--tls-cert names ${cert}, which holds no PEM certificate`);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyPem)) throw new SetupError(`--tls-key names ${key}, which holds no PEM private key`);
  return { cert: certPem, key: keyPem };
}

/** --listen's value as a UsageError when malformed. */
export function listenOption(value: string | undefined): { host: string; port: number } {
  if (value === undefined) throw new UsageError("--listen HOST:PORT is required");
  try {
    return parseListen(value);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The proxy's config from the command line and the files it names; the tokens file's path for reloads. */
export function serviceConfig(args: ProxyServiceArgs, readFile: ReadFile = readUtf8): { config: ProxyConfig; tokensFile: string } {
  const v = args.values;
  const required = (name: keyof typeof OPTIONS): string => {
    const value = v[name];
    if (value === undefined) throw new UsageError(`--${name} is required`);
    return value;
  };
  const listen = listenOption(v.listen);
  const endpoint = required("endpoint");
  const bucket = required("bucket");
  const credentialsFile = required("credentials-file");
  const profile = required("profile");
  const tokensFile = required("tokens-file");
  const keys = parseAwsCredentials(readNamed("credentials-file", credentialsFile, readFile)).get(profile);
  if (!keys) throw new SetupError(`--profile names [${profile}], which ${credentialsFile} has no aws_access_key_id and aws_secret_access_key for`);
  const ca = v["ca-file"] === undefined ? undefined : readNamed("ca-file", v["ca-file"], readFile);
  if (ca !== undefined && !ca.includes("-----BEGIN CERTIFICATE-----")) throw new SetupError(`--ca-file names ${v["ca-file"]}, which holds no PEM certificate`);
  const tls = readTlsFiles(v["tls-cert"], v["tls-key"], readFile);
  return {
    config: {
      listen,
      upstream: { endpoint, region: v.region ?? "", bucket, accessKey: keys.accessKey, secretKey: keys.secretKey, ...(ca ? { ca } : {}) },
      tokenHashes: readTokensFile(tokensFile, readFile),
      ...(tls ? { tls } : {}),
    },
    tokensFile,
  };
}

export interface ServeIo {
  log(line: string): void;
  /** Where SIGHUP, SIGTERM and SIGINT come from (the process). */
  signals: NodeJS.EventEmitter;
}

/**
 * Starts the proxy, says `NAME: serving BUCKET at URL for N hosts`, and runs until SIGTERM or SIGINT (then closes
 * gracefully: EXIT.ok). On SIGHUP `reload` (when given) supplies new tokens; a reload that fails keeps the old ones
 * and says why. A port that cannot be had is a SetupError.
 */
export async function serveUntilStopped(name: string, config: ProxyConfig, io: ServeIo, reload?: () => Map<string, string>): Promise<ExitCode> {
  let proxy: RunningProxy;
  try {
    proxy = await startProxy({ ...config, log: config.log ?? io.log });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.syscall === "listen") throw new SetupError(`cannot listen on ${config.listen.host}:${config.listen.port} (${e.code ?? e.message})`);
    throw err;
  }
  let hosts = config.tokenHashes.size;
  io.log(`${name}: serving ${config.upstream.bucket} at ${proxy.url} for ${hosts} host${hosts === 1 ? "" : "s"}`);
  const onHup = () => {
    if (!reload) return io.log(`${name}: SIGHUP: nothing to reload (restart to serve new tokens)`);
    try {
      const next = reload();
      proxy.setTokenHashes(next);
      io.log(`${name}: SIGHUP: tokens reloaded, ${next.size} host${next.size === 1 ? "" : "s"} (was ${hosts})`);
      hosts = next.size;
    } catch (err) {
      io.log(`${name}: SIGHUP: tokens NOT reloaded, still serving the ${hosts} host(s) of before: ${(err as Error).message}`);
    }
  };
  io.signals.on("SIGHUP", onHup);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      io.signals.off("SIGTERM", stop);
      io.signals.off("SIGINT", stop);
      io.log(`${name}: ${signal}: closing (requests in flight may finish)`);
      resolve();
    };
    io.signals.on("SIGTERM", stop);
    io.signals.on("SIGINT", stop);
  });
  io.signals.off("SIGHUP", onHup);
  await proxy.close();
  io.log(`${name}: stopped`);
  return EXIT.ok;
}

commandMain(module, {
  name: PROXY_SERVICE_NAME,
  usage: PROXY_SERVICE_USAGE,
  parse: parseProxyServiceCommand,
  run: (args) => {
    const { config, tokensFile } = serviceConfig(args);
    return serveUntilStopped(PROXY_SERVICE_NAME, config, { log: (line) => console.log(line), signals: process }, () => readTokensFile(tokensFile));
  },
});
