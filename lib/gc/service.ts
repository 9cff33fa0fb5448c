// The builder's daily GC: `node nix-cache-gc.js [gc args]`, run by the builder module's nix-cache-gc.service.
// The builder has no node_modules and no checkout: lib/gc/bundle.ts bundles this file and the lib/ modules it
// imports (node built-ins only) into that one script, and the module puts it in the Nix store. So this file
// imports node built-ins and dependency-free lib/ modules only, and reads its settings from the environment
// (the module sets them from the stack's outputs), not from a stack:
//   NIX_CACHE_GC_ENDPOINT, NIX_CACHE_GC_REGION, NIX_CACHE_GC_BUCKET, NIX_CACHE_GC_RETAIN_DAYS, NIX_CACHE_GC_STORE_DIR,
//   AWS_SHARED_CREDENTIALS_FILE + NIX_CACHE_GC_PROFILE (the GC identity's keys), NIX_SSL_CERT_FILE (CA bundle, optional).
// The arguments are `npm run gc`'s (lib/gc/command.ts): --dry-run, --retain-days, pins, … work here too.
// Exit codes as lib/cli/command.ts runCommand: 0 done, 1 refused or failed, 2 could not run (a variable missing or
// invalid: one line naming it).
import * as fs from "fs";
import * as os from "os";
import { commandMain, ExitCode, SetupError, UsageError } from "../cli/command";
import { GC_USAGE, GcCommandIo, parseGcCommand, ParsedGcCommand, processAlive, processIo, retainDaysMs, runGcAction } from "./command";
import { parseAwsCredentials } from "../s3/pushTarget";
import { S3Rest } from "../s3/client";

export const GC_SERVICE_NAME = "nix-cache-gc";

/** The environment variables the service reads. */
export const GC_ENV = {
  endpoint: "NIX_CACHE_GC_ENDPOINT",
  region: "NIX_CACHE_GC_REGION",
  bucket: "NIX_CACHE_GC_BUCKET",
  retainDays: "NIX_CACHE_GC_RETAIN_DAYS",
  storeDir: "NIX_CACHE_GC_STORE_DIR",
  credentialsFile: "AWS_SHARED_CREDENTIALS_FILE",
  profile: "NIX_CACHE_GC_PROFILE",
  caFile: "NIX_SSL_CERT_FILE",
} as const;

const ENV_HELP: [string, string][] = [
  [GC_ENV.endpoint, "the S3 endpoint, http(s)://host[:port]"],
  [GC_ENV.region, "the S3 region (default us-east-1)"],
  [GC_ENV.bucket, "the cache bucket"],
  [GC_ENV.retainDays, "the stack's retainDays (--retain-days overrides it)"],
  [GC_ENV.storeDir, "the cache's store directory (default /nix/store)"],
  [GC_ENV.credentialsFile, "the AWS credentials file with the GC identity's keys (nix-cache-gc-credentials) ..."],
  [GC_ENV.profile, "... in this profile's section"],
  [GC_ENV.caFile, "a CA bundle to trust for an https endpoint (optional; default the system's)"],
];
const ENV_WIDTH = Math.max(...ENV_HELP.map(([name]) => name.length));

export const GC_SERVICE_USAGE = `${GC_USAGE}

On the builder (${GC_SERVICE_NAME}.service runs \`node nix-cache-gc.js [ARGS]\`) no stack is read: --stack does not
apply, and the settings come from the environment:
${ENV_HELP.map(([name, what]) => `  ${name.padEnd(ENV_WIDTH)}  ${what}`).join("\n")}`;

/** The service's settings, read from the environment; never printed (secretKey). */
export interface GcServiceConfig {
  endpoint: string;
  region: string;
  bucket: string;
  retainDays: number;
  storeDir: string;
  profile: string;
  accessKey: string;
  secretKey: string;
  /** PEM bundle for https; undefined: the system's trust. */
  ca?: string;
}

/**
 * Reads and checks the environment. A missing or invalid variable throws a SetupError whose one line names it
 * (never a secret). `readFile` reads the credentials and CA files (tests pass their own).
 */
export function readGcEnvironment(env: Readonly<Record<string, string | undefined>>, readFile: (file: string) => string = (f) => fs.readFileSync(f, "utf8")): GcServiceConfig {
  const bad = (name: string, problem: string) => new SetupError(`${name} ${problem}`);
  const required = (name: string): string => {
    const v = env[name];
    if (v === undefined || v.trim() === "") throw bad(name, "is not set: the builder module's nix-cache-gc.service sets it");
    return v.trim();
  };
  const endpoint = required(GC_ENV.endpoint);
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw bad(GC_ENV.endpoint, `is not a URL: '${endpoint}' (want http(s)://host[:port])`);
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.username || url.password || url.pathname !== "/" || url.search || url.hash) {
    throw bad(GC_ENV.endpoint, `must be http(s)://host[:port] with no path or credentials, not '${url.protocol}//${url.host}${url.pathname}'`);
  }
  const region = env[GC_ENV.region]?.trim() || "us-east-1";
  const bucket = required(GC_ENV.bucket);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw bad(GC_ENV.bucket, `is not a bucket name: '${bucket}'`);
  const daysText = required(GC_ENV.retainDays);
  let retainDays: number;
  try {
    retainDays = retainDaysMs(GC_ENV.retainDays, daysText) / 86_400_000;
  } catch {
    throw bad(GC_ENV.retainDays, `needs a number of days ≥ 0 (e.g. 7), not '${daysText}'`);
  }
  const storeDir = env[GC_ENV.storeDir]?.trim() || "/nix/store";
  if (!/^\/[^\s]*[^/\s]$/.test(storeDir)) throw bad(GC_ENV.storeDir, `must be an absolute path with no trailing '/', not '${storeDir}'`);

  const credentialsFile = required(GC_ENV.credentialsFile);
  const profile = required(GC_ENV.profile);
  let text: string;
  try {
    text = readFile(credentialsFile);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw bad(GC_ENV.credentialsFile, `names ${credentialsFile}, which cannot be read (${code}): host-config --secrets-dir writes it as nix-cache-gc-credentials`);
  }
  const keys = parseAwsCredentials(text).get(profile);
  if (!keys) {
    throw bad(GC_ENV.profile, `names the profile [${profile}], which ${credentialsFile} (${GC_ENV.credentialsFile}) has no aws_access_key_id and aws_secret_access_key for`);
  }

  let ca: string | undefined;
  const caFile = env[GC_ENV.caFile]?.trim();
  // Only an https endpoint needs it; the module sets it on every builder.
  if (caFile && url.protocol === "https:") {
    try {
      ca = readFile(caFile);
    } catch (err) {
      throw bad(GC_ENV.caFile, `names ${caFile}, which cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    if (!ca.includes("-----BEGIN CERTIFICATE-----")) throw bad(GC_ENV.caFile, `names ${caFile}, which holds no PEM certificate`);
  }
  return { endpoint: url.origin, region, bucket, retainDays, storeDir, profile, accessKey: keys.accessKey, secretKey: keys.secretKey, ca };
}

/** The command line: `npm run gc`'s, without --stack. */
export function parseGcServiceCommand(argv: readonly string[]): ParsedGcCommand | "help" {
  const parsed = parseGcCommand(argv);
  if (parsed !== "help" && parsed.stack !== undefined) {
    throw new UsageError(`--stack does not apply on the builder: ${GC_SERVICE_NAME} reads its bucket from the environment (see --help)`, GC_SERVICE_USAGE);
  }
  return parsed;
}

/** One run, after the command line: the environment (so --help needs none), then the action. */
export async function gcService(parsed: ParsedGcCommand, env: Readonly<Record<string, string | undefined>>, io: GcCommandIo): Promise<ExitCode> {
  const config = readGcEnvironment(env);
  const store = new S3Rest({
    endpoint: config.endpoint,
    region: config.region,
    bucket: config.bucket,
    accessKey: config.accessKey,
    secretKey: config.secretKey,
    ca: config.ca,
  });
  if (parsed.action.kind === "gc") io.log(`gc: bucket ${config.bucket} at ${config.endpoint}, as ${config.accessKey} (profile ${config.profile})`);
  try {
    return await runGcAction(
      parsed.action,
      {
        store,
        retainDays: config.retainDays,
        storeDir: config.storeDir,
        holder: { host: os.hostname(), pid: process.pid, command: `${GC_SERVICE_NAME}.service` },
        isLocalProcessAlive: processAlive,
      },
      io,
    );
  } catch (err) {
    throw new SetupError(`cannot work on bucket ${config.bucket} at ${config.endpoint}: ${(err as Error).message}`);
  } finally {
    store.close();
  }
}

// systemd's journal is no terminal: progress only when a person runs it by hand (processIo).
commandMain(module, {
  name: GC_SERVICE_NAME,
  usage: GC_SERVICE_USAGE,
  parse: parseGcServiceCommand,
  run: (parsed) => gcService(parsed, process.env, processIo()),
});
