// The cache the "Host Your Own Nix Binary Cache Server" chapter builds by hand, built the same way on a harness
// MinIO: the chapter's command lines, verbatim, through bash, in its order (../shared/facts/chapter-by-hand.md),
// with MinIO's own client and Nix. What the user has afterwards (~/.mc, ~/.config/nix/secret.key and
// public.key, the builder's ~/.aws/credentials) lives in a temp home, so takeover tests start from exactly that.
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Mc, mcFor } from "./mc";
import { MinioServer } from "./minio";
import { nixEnv } from "./nix";
import { PROJECT_DIR } from "./stack";

export const CHAPTER_BUCKET = "nix-cache";
export const CHAPTER_BUILDER = "nixbuilder";
export const CHAPTER_POLICY = "nix-cache-write";
export const CHAPTER_KEY_NAME = "s3.homelab.local-1";
export const CHAPTER_EXPIRE_DAYS = 7;
export const CHAPTER_CACHE_INFO = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n";

/** The chapter's nix-cache-write.json, as the chapter writes it (MinIO accepts, and drops, the Principal). */
export const CHAPTER_POLICY_DOCUMENT = {
  Id: "AuthenticatedWrite",
  Version: "2012-10-17",
  Statement: [
    {
      Sid: "AuthenticatedWrite",
      Effect: "Allow",
      Principal: CHAPTER_BUILDER,
      Resource: [`arn:aws:s3:::${CHAPTER_BUCKET}`, `arn:aws:s3:::${CHAPTER_BUCKET}/*`],
      Action: [
        "s3:AbortMultipartUpload",
        "s3:GetBucketLocation",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
        "s3:ListMultipartUploadParts",
        "s3:PutObject",
      ],
    },
  ],
};

/** The chapter's set-up, line by line as it prints them; the builder's password is the one place that varies. */
export function chapterCommands(password: string): string[] {
  return [
    "mc mb s3/nix-cache",
    `mc admin user add s3 nixbuilder ${password}`,
    "mc admin policy create s3 nix-cache-write nix-cache-write.json",
    "mc admin policy attach s3 nix-cache-write -user nixbuilder",
    "mc anonymous set download s3/nix-cache",
    "mc cp ./nix-cache-info s3/nix-cache/nix-cache-info",
    "nix key generate-secret --key-name s3.homelab.local-1 > ~/.config/nix/secret.key",
    "nix key convert-secret-to-public < ~/.config/nix/secret.key > ~/.config/nix/public.key",
    'mc ilm rule add s3/nix-cache --expire-days "7"',
  ];
}

/** The chapter's signing line; it names /run/current-system, the tests name their own store paths. */
export const chapterSignCommand = (paths: string[]) => `nix store sign --recursive --key-file ~/.config/nix/secret.key ${paths.join(" ")}`;

/** A password as pwgen makes one: letters and digits only, so it needs no quoting on the chapter's command line. */
export function pwgenPassword(length = 32): string {
  const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  return Array.from({ length }, () => chars[crypto.randomInt(chars.length)]).join("");
}

export interface ChapterCache {
  /** The user's home: .mc/ (mc's config), .config/nix/{secret,public}.key, .aws/credentials. */
  home: string;
  secretKeyFile: string;
  publicKeyFile: string;
  /** The builder's credentials: section [nixbuilder], as the chapter writes it. */
  awsCredentialsFile: string;
  /** nixbuilder's secret key (the pwgen password). */
  password: string;
  /** The content of public.key (what hosts put in extra-trusted-public-keys). */
  publicKey: string;
  /** mc with the chapter's alias `s3` (MinIO's root user), config in home/.mc as the chapter has it. */
  mc: Mc;
  /** What the chapter's hosts put in extra-substituters: the bucket's URL, with the chapter's trailing slash. */
  substituterUrl: string;
  /** The chapter's `nix copy --to` URL for this MinIO: endpoint=HOST:PORT, plus scheme=http on plain http. */
  pushUrl: string;
  /** The MinIO's CA (PEM file) for Nix's NIX_SSL_CERT_FILE when it speaks https; undefined on http. */
  caFile: string | undefined;
  /** The command lines that ran, in order. */
  commands: string[];
}

export interface ChapterOptions {
  /** Where the home (and the CA file) go; default a new temp dir. */
  root?: string;
  /** The builder's password; default a new pwgen-like one. */
  password?: string;
}

/** Runs one shell line as the chapter's user; a failure throws with the line and what it printed. */
function runLine(line: string, cwd: string, env: NodeJS.ProcessEnv): { stdout: string; stderr: string } {
  const r = spawnSync("bash", ["-c", line], { cwd, env, encoding: "utf8", timeout: 120_000 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`\`${line}\` exited ${r.status}: ${(r.stderr + r.stdout).trim()}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

/** Builds the chapter's cache on `minio` (which must not hold a nix-cache bucket yet). */
export function buildChapterCache(minio: MinioServer, opts: ChapterOptions = {}): ChapterCache {
  const root = opts.root ?? fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-chapter-"));
  const home = path.join(root, "home");
  const password = opts.password ?? pwgenPassword();
  // ~/.mc is where mc keeps the chapter's alias when MC_CONFIG_DIR is unset; naming it keeps ~ out of the question.
  const mc = mcFor(minio, path.join(home, ".mc"));
  const nixDir = path.join(home, ".config", "nix");
  // The chapter's redirections need the directory; a user's ~/.config/nix usually exists already.
  fs.mkdirSync(nixDir, { recursive: true });
  // The files the chapter has the user write with an editor, in the directory the commands run in.
  fs.writeFileSync(path.join(home, "nix-cache-write.json"), `${JSON.stringify(CHAPTER_POLICY_DOCUMENT, null, 2)}\n`);
  fs.writeFileSync(path.join(home, "nix-cache-info"), CHAPTER_CACHE_INFO);

  const env = { ...nixEnv(home), MC_CONFIG_DIR: mc.configDir };
  const commands = chapterCommands(password);
  for (const line of commands) runLine(line, home, env);

  const awsCredentialsFile = path.join(home, ".aws", "credentials");
  fs.mkdirSync(path.dirname(awsCredentialsFile), { recursive: true });
  fs.writeFileSync(awsCredentialsFile, `[${CHAPTER_BUILDER}]\naws_access_key_id=${CHAPTER_BUILDER}\naws_secret_access_key=${password}\n`, { mode: 0o600 });

  const url = new URL(minio.endpoint);
  let caFile: string | undefined;
  if (minio.tls) {
    caFile = path.join(root, "minio-ca.crt");
    fs.writeFileSync(caFile, minio.tls.ca.certPem);
  }
  const publicKeyFile = path.join(nixDir, "public.key");
  return {
    home,
    secretKeyFile: path.join(nixDir, "secret.key"),
    publicKeyFile,
    awsCredentialsFile,
    password,
    publicKey: fs.readFileSync(publicKeyFile, "utf8").trim(),
    mc,
    substituterUrl: `${minio.endpoint}/${CHAPTER_BUCKET}/`,
    // The chapter's form (endpoint without a scheme, so https); the query parameter Nix's S3 store reads for http.
    pushUrl: `s3://${CHAPTER_BUCKET}?profile=${CHAPTER_BUILDER}&endpoint=${url.host}${url.protocol === "http:" ? "&scheme=http" : ""}`,
    caFile,
    commands,
  };
}

/** Debian's Nix 2.8 has no S3 store: this stand-in does `nix copy --to file://` and uploads like Nix's S3 store. */
const PUSH_STAND_IN = path.join(PROJECT_DIR, "tests", "support", "pushViaFile.ts");

/**
 * Uploads `paths` (with their closures) of the store named in `env`'s NIX_CONFIG as `nix copy --to pushUrl`
 * would, with the keys of pushUrl's profile in `credentialsFile`, through the stand-in. Returns what it printed
 * ("uploaded N files …"); a failure throws.
 */
export function pushWithStandIn(env: NodeJS.ProcessEnv, pushUrl: string, credentialsFile: string, paths: string[]): string {
  const push = spawnSync("node", ["-r", "ts-node/register/transpile-only", PUSH_STAND_IN, ...paths], {
    cwd: PROJECT_DIR,
    env: { ...env, NIX_CACHE_PUSH_URL: pushUrl, AWS_SHARED_CREDENTIALS_FILE: credentialsFile },
    encoding: "utf8",
    timeout: 120_000,
  });
  if (push.error) throw push.error;
  if (push.status !== 0) throw new Error(`push of ${paths.join(" ")} exited ${push.status}: ${push.stderr.trim()}`);
  return push.stdout;
}

/**
 * Pushes `paths` of the local store `store` as the chapter's builder does: its signing line verbatim (the
 * closure, with ~/.config/nix/secret.key), then `nix copy --to pushUrl` with the profile's keys from the
 * builder's ~/.aws/credentials, through the stand-in. Returns what it printed; a failure throws.
 */
export function pushAsChapter(cache: ChapterCache, store: string, paths: string[]): { sign: string; push: string } {
  const env = {
    ...nixEnv(cache.home, [`store = ${store}`]),
    ...(cache.caFile ? { NIX_SSL_CERT_FILE: cache.caFile } : {}),
  };
  const sign = runLine(chapterSignCommand(paths), cache.home, env);
  return { sign: sign.stderr, push: pushWithStandIn(env, cache.pushUrl, cache.awsCredentialsFile, paths) };
}
