// What `npm run host-config` writes, decided from the stack outputs: the client and builder modules, the
// non-secret outputs as JSON, and (only when asked, into a separate directory) the secret files: one per
// signing key, the builder's AWS credentials and the GC identity's (for the builder's daily GC). A private cache
// (access=private) adds the read proxy's module and its clients' module, and the reader's credentials, the
// proxy's tokens file and one netrc file per host as secret files.
import * as path from "path";
import { AWS_CREDENTIALS_FILE_NAME, builderModule, previousSigningKeyFileName, SIGNING_KEY_FILE_NAME } from "./builderModule";
import { OptionSpecs, parseCommandLine, SetupError, UsageError } from "../cli/command";
import { GC_CREDENTIALS_FILE_NAME, GcTimerInput } from "./gcTimerModule";
import { keyNameOf, nixosModule } from "./hostConfig";
import { parseS3StoreUrl } from "../s3/pushTarget";
import { netrcFileName, PROXY_TOKENS_FILE_NAME, proxyClientModule, READER_CREDENTIALS_FILE_NAME, readerNixosModule } from "./privateModules";
import { proxyServiceModule } from "./proxyModule";

/** What `pulumi stack output --json` prints in place of a secret value when --show-secrets is not given. */
export const SECRET_MARKER = "[secret]";

/** Outputs that are secret whatever the state says: never written outside --secrets-dir. */
export const SECRET_OUTPUTS: readonly string[] = [
  "secretKey",
  "secretKeys",
  "builderSecretKey",
  "awsCredentials",
  "gcSecretKey",
  "gcCredentials",
  "readerSecretKey",
  "readerCredentials",
  "readerTokens",
  "netrc",
];

export const CLIENT_MODULE_FILE = "nix-cache.nix";
export const BUILDER_MODULE_FILE = "nix-cache-builder.nix";
export const OUTPUTS_JSON_FILE = "nix-cache.json";
/** Private cache only: the read proxy's host module, and the module of hosts that read through the proxy. */
export const PROXY_MODULE_FILE = "nix-cache-proxy.nix";
export const PROXY_CLIENT_MODULE_FILE = "nix-cache-proxy-client.nix";

export const USAGE = `usage: npm run host-config -- [--stack NAME] --out DIR [--secrets-dir DIR]

Writes the files NixOS hosts use, from a deployed stack's outputs (read with \`pulumi stack output\`):
  --stack NAME       the stack to read (default: the selected stack)
  --out DIR          where to write ${CLIENT_MODULE_FILE}, ${BUILDER_MODULE_FILE} and ${OUTPUTS_JSON_FILE}; for a
                     private cache (access=private) also ${PROXY_MODULE_FILE} (the read proxy's host)
                     and ${PROXY_CLIENT_MODULE_FILE} (hosts that read through the proxy)
  --secrets-dir DIR  also write the secret files there (mode 0600): the signing key (one file per key
                     while a key is rotated), the builder's AWS credentials and the GC identity's
                     (${GC_CREDENTIALS_FILE_NAME}, for the builder's daily GC); for a private cache also
                     the reader's credentials (${READER_CREDENTIALS_FILE_NAME}), the proxy's tokens file
                     (${PROXY_TOKENS_FILE_NAME}) and one netrc file per host (${netrcFileName("HOST")});
                     not --out or inside it
  --help, -h         this text
Relative directories are taken from where you run npm. Exit status: 0 files written, 2 could not run
(bad arguments, stack unreadable, outputs missing, a directory not writable).`;

/** The command line of `npm run host-config`. */
export const HOST_CONFIG_OPTIONS = {
  stack: { type: "string", valueName: "NAME" },
  out: { type: "string", valueName: "DIR" },
  "secrets-dir": { type: "string", valueName: "DIR" },
} as const satisfies OptionSpecs;

export interface HostConfigArgs {
  /** The stack to read; undefined means the currently selected stack. */
  stack?: string;
  /** Absolute directory for the .nix and .json files. */
  out: string;
  /** Absolute directory for the secret files; undefined means none are written. */
  secretsDir?: string;
}

/**
 * Parses the command line (lib/cli/command.ts's convention); relative directories are taken from `cwd` (the directory
 * the user ran npm in). Throws a UsageError for a bad command line.
 */
export function parseHostConfigArgs(argv: readonly string[], cwd: string): HostConfigArgs | "help" {
  const parsed = parseCommandLine(argv, { options: HOST_CONFIG_OPTIONS, usage: USAGE });
  if (parsed === "help") return "help";
  const { stack, out: outArg, "secrets-dir": secretsArg } = parsed.values;
  if (!outArg) throw new UsageError("--out DIR is required: the directory to write the host files to", USAGE);
  const out = path.resolve(cwd, outArg);
  const secretsDir = secretsArg ? path.resolve(cwd, secretsArg) : undefined;
  // The .nix files go into a flake or /etc/nixos; a flake copies its whole directory into the
  // world-readable /nix/store, so secrets next to (or below) them would end up there.
  if (secretsDir && (secretsDir === out || secretsDir.startsWith(out + path.sep))) {
    throw new UsageError(
      `--secrets-dir (${secretsDir}) must not be --out or inside it: the .nix files go into a flake or /etc/nixos, ` +
        "and a flake copies its whole directory into the world-readable Nix store",
      USAGE,
    );
  }
  return { stack, out, secretsDir };
}

/** A stack output value as `pulumi stack output --json` prints it. */
export type OutputValue = string | number | boolean | null | OutputValue[] | { [key: string]: OutputValue };
export type Outputs = Record<string, OutputValue>;

/** The outputs that are safe to write anywhere: not marked secret by Pulumi and not a known secret. */
export function nonSecretOutputs(plain: Outputs): Outputs {
  return Object.fromEntries(
    Object.entries(plain)
      .filter(([name, value]) => value !== SECRET_MARKER && !SECRET_OUTPUTS.includes(name))
      .sort(([a], [b]) => a.localeCompare(b)),
  );
}

const missingOutput = (name: string) =>
  new SetupError(`the stack has no '${name}' output: run \`pulumi up\` on it first (or pick another with --stack)`);

function requireString(outputs: Outputs, name: string): string {
  const value = outputs[name];
  if (typeof value !== "string" || value === "" || value === SECRET_MARKER) throw missingOutput(name);
  return value;
}

/**
 * A list-of-keys output (`trustedPublicKeys`, `secretKeys`): `fallback` (the single key) when the stack
 * lacks it, as stacks deployed before key sets do. A list that is not non-empty strings with distinct key
 * names is refused, naming names only, never a value.
 */
function keyListOutput(outputs: Outputs, name: string, fallback: string): string[] {
  const value = outputs[name];
  if (value === undefined || value === null) return [fallback];
  if (value === SECRET_MARKER) {
    throw new SetupError(`the stack's '${name}' output is secret where it should not be: check the program that sets it`);
  }
  if (!Array.isArray(value) || value.length === 0 || !value.every((k): k is string => typeof k === "string" && k.includes(":"))) {
    throw new SetupError(`the stack's '${name}' output is not a list of Nix keys (NAME:base64): run \`pulumi up\` on it again`);
  }
  const names = value.map(keyNameOf);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) {
    throw new SetupError(`the stack's '${name}' output has two keys named '${twice}': Nix would trust only one of them`);
  }
  return value;
}

/**
 * Every public key of the stack, the active first: the trustedPublicKeys output, or [publicKey] for a stack
 * deployed before key sets. Refused when its first key is not the publicKey output.
 */
export function trustedPublicKeysOf(plain: Outputs): string[] {
  const publicKey = requireString(plain, "publicKey");
  const keys = keyListOutput(plain, "trustedPublicKeys", publicKey);
  if (keys[0] !== publicKey) {
    throw new SetupError("the stack's 'trustedPublicKeys' output does not start with its 'publicKey' (the active key): run `pulumi up` on it again");
  }
  return keys;
}

/**
 * The secret files of the signing keys, for `trusted` (the public keys, the active first): the active key in
 * SIGNING_KEY_FILE_NAME (as before key sets: the secretKey output), each previous key in
 * previousSigningKeyFileName(its name). Read from the secretKeys output, or [secretKey] for an older stack;
 * each secret key must carry the name of the public key at the same place. Messages name keys, never secrets.
 */
function signingKeyFiles(revealed: Outputs, trusted: readonly string[]): HostFile[] {
  const secretKey = requireString(revealed, "secretKey");
  const secrets = keyListOutput(revealed, "secretKeys", secretKey);
  const names = trusted.map(keyNameOf);
  if (secrets.length !== trusted.length || secrets.some((k, i) => keyNameOf(k) !== names[i]) || secrets[0].trim() !== secretKey.trim()) {
    throw new SetupError(
      `the stack's 'secretKeys' output does not match its keys (${names.join(", ")}, the active first, as trustedPublicKeys and ` +
        "secretKey say): run `pulumi up` on it again",
    );
  }
  // Nix reads a secret-key-files entry as NAME:BASE64, with no trailing newline (as `nix key generate-secret` writes).
  return secrets.map((k, i) => ({ name: i === 0 ? SIGNING_KEY_FILE_NAME : previousSigningKeyFileName(names[i]), content: k.trim() }));
}

/**
 * The files in a --secrets-dir that look like signing-key files of an earlier run but belong to no key of the
 * stack any more (a retired key): host-config leaves them alone and names them, so the user removes them
 * (and their copies in the secret manager) once no builder points at them.
 */
export function staleSigningKeyFiles(existing: readonly string[], written: readonly HostFile[]): string[] {
  const names = new Set(written.map((f) => f.name));
  return existing.filter((f) => f.startsWith(`${SIGNING_KEY_FILE_NAME}-`) && !names.has(f)).sort();
}

/**
 * The netrc files in a --secrets-dir of hosts no longer in readerHosts (a revoked host): host-config leaves them
 * and names them, so the user deletes them and their copies in the secret manager.
 */
export function staleNetrcFiles(existing: readonly string[], written: readonly HostFile[]): string[] {
  const names = new Set(written.map((f) => f.name));
  return existing.filter((f) => f.startsWith(netrcFileName("")) && !names.has(f)).sort();
}

export interface HostFile {
  /** File name inside its directory. */
  name: string;
  content: string;
}

export interface HostFiles {
  /** For --out: safe to commit, to put into a flake or /etc/nixos. */
  public: HostFile[];
  /** For --secrets-dir only (mode 0600); empty unless the revealed outputs were given. */
  secret: HostFile[];
  /** What the user should know about files not written (one line each; never a secret). */
  notes: string[];
}

/**
 * The GC identity's AWS credentials file (the gcCredentials output) for --secrets-dir; undefined, with a note,
 * for a stack deployed before the GC identity existed (it has no such output).
 */
export function gcCredentialsFile(revealed: Outputs): { file?: HostFile; note?: string } {
  if (revealed.gcCredentials === undefined || revealed.gcCredentials === null) {
    return {
      note:
        `no ${GC_CREDENTIALS_FILE_NAME} written: the stack has no 'gcCredentials' output (deployed before the GC identity); ` +
        "run `pulumi up` on it, then host-config again, so the builder's daily GC can run",
    };
  }
  return { file: { name: GC_CREDENTIALS_FILE_NAME, content: requireString(revealed, "gcCredentials") } };
}

/**
 * What the builder module's GC service needs from the (plain) outputs, for lib/hosts/gcTimerModule.ts: the push
 * URL's endpoint, region and bucket (the GC runs on the builder and reaches MinIO as its pushes do), the GC
 * user (gcAccessKey: its profile in the credentials file), retainDays, and storeDir (default /nix/store).
 * Undefined for a stack deployed before the GC identity (no gcAccessKey or retainDays output).
 */
export function gcTimerInputOf(plain: Outputs): Omit<GcTimerInput, "script"> | undefined {
  const { gcAccessKey, retainDays, storeDir } = plain;
  if (gcAccessKey === undefined || gcAccessKey === null || retainDays === undefined || retainDays === null) return undefined;
  if (typeof gcAccessKey !== "string" || gcAccessKey === "" || gcAccessKey === SECRET_MARKER) {
    throw new SetupError("the stack's 'gcAccessKey' output is not the GC user's name: run `pulumi up` on it again");
  }
  if (typeof retainDays !== "number" || !Number.isSafeInteger(retainDays) || retainDays < 1) {
    throw new SetupError("the stack's 'retainDays' output is not a whole number of days ≥ 1: run `pulumi up` on it again");
  }
  const push = parseS3StoreUrl(requireString(plain, "pushUrl"));
  return {
    endpoint: push.endpoint,
    region: push.region,
    bucket: push.bucket,
    profile: gcAccessKey,
    retainDays,
    storeDir: typeof storeDir === "string" && storeDir !== "" && storeDir !== SECRET_MARKER ? storeDir : "/nix/store",
  };
}

/** A host name as readerHosts allows it (so a netrc file name never leaves --secrets-dir). */
const READER_HOST = /^[a-z0-9][a-z0-9.-]{0,62}$/;

/** True for a stack in private mode (the access output); a stack from before the setting is public. */
export function isPrivate(plain: Outputs): boolean {
  const access = plain.access;
  if (access === undefined || access === null || access === "public") return false;
  if (access === "private") return true;
  throw new SetupError(`the stack's 'access' output is neither "public" nor "private": run \`pulumi up\` on it again`);
}

/** The proxy's port from proxyUrl: its own, or the scheme's default. */
function proxyPort(proxyUrl: string): number {
  let url: URL;
  try {
    url = new URL(proxyUrl);
  } catch {
    throw new SetupError("the stack's 'proxyUrl' output is not a URL: run `pulumi up` on it again");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new SetupError("the stack's 'proxyUrl' output is not an http(s) URL: run `pulumi up` on it again");
  }
  return url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
}

export interface PrivateFilesOptions {
  /** The proxy's script for nix-cache-proxy.nix (default: lib/proxy/bundle.ts proxyScriptText()). */
  proxyScript?: string;
}

/**
 * A private cache's files for --out, from the plain outputs: the reader's S3 client module (instead of the public
 * one), the proxy's host module (listening on proxyUrl's port on every address, fetching from the endpoint of
 * readerSubstituterUrl as readerAccessKey) and the proxy's client module.
 */
export function privatePublicFiles(plain: Outputs, trustedPublicKeys: readonly string[], ca: string | undefined, options: PrivateFilesOptions = {}): HostFile[] {
  const readerUrl = requireString(plain, "readerSubstituterUrl");
  const reader = requireString(plain, "readerAccessKey");
  const proxyUrl = requireString(plain, "proxyUrl");
  let s3: ReturnType<typeof parseS3StoreUrl>;
  try {
    s3 = parseS3StoreUrl(readerUrl);
  } catch {
    throw new SetupError("the stack's 'readerSubstituterUrl' output is not an s3:// store URL: run `pulumi up` on it again");
  }
  return [
    { name: CLIENT_MODULE_FILE, content: readerNixosModule({ substituter: readerUrl, publicKeys: trustedPublicKeys, caCertificate: ca }) },
    {
      name: PROXY_MODULE_FILE,
      content: proxyServiceModule({
        endpoint: s3.endpoint,
        region: s3.region,
        bucket: s3.bucket,
        profile: reader,
        listen: `0.0.0.0:${proxyPort(proxyUrl)}`,
        script: options.proxyScript,
        caCertificate: ca,
      }),
    },
    { name: PROXY_CLIENT_MODULE_FILE, content: proxyClientModule({ proxyUrl, publicKeys: trustedPublicKeys, caCertificate: ca }) },
  ];
}

/**
 * A private cache's secret files: the reader's credentials (readerCredentials), the proxy's tokens file
 * (proxyTokenHashes: hashes only, from the plain outputs, but read at run time from a secret path like the rest)
 * and one netrc file per host of the netrc output. Messages name hosts, never a token.
 */
export function privateSecretFiles(plain: Outputs, revealed: Outputs): HostFile[] {
  const netrc = revealed.netrc;
  if (netrc === undefined || netrc === null || netrc === SECRET_MARKER) throw missingOutput("netrc");
  if (typeof netrc !== "object" || Array.isArray(netrc)) {
    throw new SetupError("the stack's 'netrc' output is not an object of host names: run `pulumi up` on it again");
  }
  const hosts = Object.keys(netrc).sort();
  for (const host of hosts) {
    const line = netrc[host];
    if (!READER_HOST.test(host) || typeof line !== "string" || !line.startsWith("machine ") || line.includes("\n")) {
      throw new SetupError(`the stack's 'netrc' output has no netrc line for host '${host}' that host-config can write: run \`pulumi up\` on it again`);
    }
  }
  // No readerHosts: an empty tokens file, which lets no one in.
  const tokens = plain.proxyTokenHashes;
  if (typeof tokens !== "string" || tokens === SECRET_MARKER) throw missingOutput("proxyTokenHashes");
  return [
    { name: READER_CREDENTIALS_FILE_NAME, content: requireString(revealed, "readerCredentials") },
    { name: PROXY_TOKENS_FILE_NAME, content: tokens },
    ...hosts.map((host) => ({ name: netrcFileName(host), content: `${String(netrc[host])}\n` })),
  ];
}

/**
 * The files for a stack's outputs. `plain` is `pulumi stack output --json` (secrets masked); `revealed`, when
 * secrets are wanted, is the same with --show-secrets. The .nix and .json files are built from `plain` only,
 * so no secret can reach them.
 */
export function hostFiles(plain: Outputs, revealed?: Outputs, options: PrivateFilesOptions = {}): HostFiles {
  const substituter = requireString(plain, "substituterUrl");
  const publicKey = requireString(plain, "publicKey");
  const trustedPublicKeys = trustedPublicKeysOf(plain);
  const pushUrl = requireString(plain, "pushUrl");
  // Stacks deployed before HTTPS support have no caCertificate output; "" means none.
  const ca = typeof plain.caCertificate === "string" && plain.caCertificate !== "" ? plain.caCertificate : undefined;
  const files: HostFiles = {
    public: [
      { name: CLIENT_MODULE_FILE, content: nixosModule(substituter, trustedPublicKeys, ca) },
      { name: BUILDER_MODULE_FILE, content: builderModule({ pushUrl, publicKey, trustedPublicKeys, caCertificate: ca, gc: gcTimerInputOf(plain) }) },
      // An older stack has no trustedPublicKeys output: the JSON has it all the same, for flakes to read one way.
      { name: OUTPUTS_JSON_FILE, content: JSON.stringify(nonSecretOutputs({ ...plain, trustedPublicKeys }), null, 2) + "\n" },
    ],
    secret: [],
    notes: [],
  };
  const isPrivateCache = isPrivate(plain);
  if (isPrivateCache) {
    // The reader's S3 module takes the public module's place (the bucket has no anonymous reads); the proxy's two follow.
    const [client, ...proxy] = privatePublicFiles(plain, trustedPublicKeys, ca, options);
    files.public[0] = client;
    files.public.push(...proxy);
  }
  if (revealed) {
    files.secret.push(...signingKeyFiles(revealed, trustedPublicKeys));
    files.secret.push({ name: AWS_CREDENTIALS_FILE_NAME, content: requireString(revealed, "awsCredentials") });
    const gc = gcCredentialsFile(revealed);
    if (gc.file) files.secret.push(gc.file);
    if (gc.note) files.notes.push(gc.note);
    if (isPrivateCache) files.secret.push(...privateSecretFiles(plain, revealed));
  }
  return files;
}
