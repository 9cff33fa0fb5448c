// The texts host configs consume: substituter URL, push URL, NixOS module, AWS credentials, commands.
import { certificateBlocks } from "../config/caCertificate";

/** How builders compress NARs. zstd: far faster than Nix's default xz at a small size cost, and every
 *  Nix since 2.4 reads it. */
export const PUSH_COMPRESSION = "zstd";

/**
 * zstd's level for pushes (the `compression-level` store setting; zstd's own default is 3). `npm run bench`'s
 * sweep on a 200 MiB closure: level 9 makes NARs 9 % smaller than level 3 (1.27× xz's instead of 1.40×) and still
 * pushes 14× faster than xz; 12 saves 0.7 % more for twice the time, 15 and above lose the speed. Nix honours it
 * from 2.5 on (binary-cache-store.hh `compression-level`, passed to libarchive's or, from 2.35, libzstd's
 * encoder); 2.4 and older warn "unknown setting" and use level 3. Readers never need it: decompression does not
 * depend on the level.
 */
export const PUSH_COMPRESSION_LEVEL = 9;

/** Where the builder keeps the (active) signing key, in the commands we print (the chapter's location). */
export const DEFAULT_SECRET_KEY_FILE = "~/.config/nix/secret.key";

/** The HTTP(S) URL Nix clients substitute from: MinIO's path-style bucket URL. */
export function substituterUrl(publicUrl: string, bucket: string): string {
  return `${publicUrl.replace(/\/+$/, "")}/${bucket}`;
}

export interface PushTarget {
  bucket: string;
  /** scheme://host[:port] of the S3 API as the builder reaches it. */
  endpoint: string;
  region: string;
  /** The AWS profile name holding the builder's credentials. */
  profile: string;
}

/** A query value as Nix reads it back (Nix percent-decodes values): ':' and '/' stay readable. */
const queryValue = (v: string) => encodeURIComponent(v).replace(/%3A/gi, ":").replace(/%2F/gi, "/");

/**
 * The `s3://` store URL for `nix copy --to`: profile, endpoint, region, compression and its level. The endpoint
 * is a full URL (scheme://host[:port]), which every Nix ≥ 2.8 reads: 2.8–2.32 hand it to the AWS SDK, which takes
 * the scheme from it, and 2.33+ parse it themselves (Nix's development manual now asks for this form). The bare
 * `endpoint=host:port&scheme=…` form is misread by Nix 2.33–2.35 as a URL whose scheme is the host name.
 */
export function pushUrl(t: PushTarget): string {
  return s3StoreUrl(t, [
    ["compression", PUSH_COMPRESSION],
    ["compression-level", String(PUSH_COMPRESSION_LEVEL)],
  ]);
}

/** `s3://BUCKET?profile=…&endpoint=…&region=…`, then `extra` parameters: the store URL pushUrl and the reader's share. */
export function s3StoreUrl(t: PushTarget, extra: readonly [string, string][] = []): string {
  const params: [string, string][] = [["profile", t.profile], ["endpoint", new URL(t.endpoint).origin], ["region", t.region], ...extra];
  return `s3://${t.bucket}?${params.map(([k, v]) => `${k}=${queryValue(v)}`).join("&")}`;
}

/** A Nix string literal. */
export function nixString(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\$\{/g, "\\${")}"`;
}

/** Text inside a Nix indented string (''…''): escapes `''` and `${`, and indents every non-empty line. */
export function nixIndentedBody(text: string, indent: string): string {
  return text
    .replace(/\n+$/, "")
    .split("\n")
    .map((line) => (line.length > 0 ? indent + escapeNixIndented(line) : line))
    .join("\n");
}

/**
 * Text as it must stand inside a Nix indented string to be read back as itself: two quotes become three,
 * `${` becomes `''${`, and a quote right before `${` becomes `''\'` (else it would join the escape into three
 * quotes followed by a live `${`).
 */
export function escapeNixIndented(text: string): string {
  return text.replace(/''|'(?=\$\{)|\$\{/g, (m) => (m === "''" ? "'''" : m === "'" ? "''\\'" : "''${"));
}

/**
 * `security.pki.certificates = [ … ];` for the CA that signed MinIO's certificate, one list entry per
 * certificate; no lines when there is none. NixOS adds these to the system bundle
 * (/etc/ssl/certs/ca-certificates.crt), which nix-daemon, `nix copy` and the builder's S3 client read.
 */
export function pkiCertificatesLines(caCertificate: string | undefined, indent: string): string[] {
  const blocks = caCertificate ? certificateBlocks(caCertificate) : [];
  if (blocks.length === 0) return [];
  return [
    `${indent}# The CA that signed the cache's TLS certificate (nix-cache:caCertificate): NixOS adds it to`,
    `${indent}# /etc/ssl/certs/ca-certificates.crt, the bundle nix-daemon and Nix's S3 client trust.`,
    `${indent}security.pki.certificates = [`,
    ...blocks.flatMap((pem) => [`${indent}  ''`, nixIndentedBody(pem, `${indent}    `), `${indent}  ''`]),
    `${indent}];`,
  ];
}

/** A key's name: the text before the first ':' of `NAME:base64`; a bare name is itself. */
export function keyNameOf(key: string): string {
  const colon = key.indexOf(":");
  return colon < 0 ? key : key.slice(0, colon);
}

/**
 * A set of keys (`NAME:…`, or bare names) as a list: a single key is a list of one. Throws on an empty list
 * and on a name given twice: Nix keys trusted keys by name and uses only the first of a name, so a second
 * key under the same name would be silently ignored.
 */
export function keyList(keys: string | readonly string[]): string[] {
  const list = typeof keys === "string" ? [keys] : [...keys];
  if (list.length === 0) throw new Error("no keys given: a key set holds at least the active key");
  const names = list.map(keyNameOf);
  const twice = names.find((name, i) => names.indexOf(name) !== i);
  if (twice !== undefined) {
    throw new Error(`two keys are named '${twice}': Nix trusts keys by name and would ignore the second`);
  }
  return list;
}

/**
 * The NixOS module every client host imports; with the CA of MinIO's certificate when there is one.
 * `publicKeys` is the active key alone (the publicKey output) or every trusted key, the active first (the
 * trustedPublicKeys output); all of them go into extra-trusted-public-keys, so hosts accept a path signed by
 * any of them while a key is being rotated. One key gives the same text as before key sets.
 */
export function nixosModule(substituter: string, publicKeys: string | readonly string[], caCertificate?: string): string {
  const keys = keyList(publicKeys);
  const trusted =
    keys.length === 1
      ? [`    extra-trusted-public-keys = [ ${nixString(keys[0])} ];`]
      : [
          "    # The active key first, then the previous keys (nix-cache:previousKeyNames), still trusted during a",
          "    # rotation: Nix accepts a path that carries a valid signature by any of them.",
          "    extra-trusted-public-keys = [",
          ...keys.map((k) => `      ${nixString(k)}`),
          "    ];",
        ];
  return [
    "# Generated by the nix-cache Pulumi project: use the self-hosted binary cache.",
    "{ ... }:",
    "{",
    "  nix.settings = {",
    `    extra-substituters = [ ${nixString(substituter)} ];`,
    ...trusted,
    "  };",
    ...pkiCertificatesLines(caCertificate, "  "),
    "}",
    "",
  ].join("\n");
}

/** The `~/.aws/credentials` text with the builder's profile. */
export function awsCredentials(profile: string, accessKey: string, secretKey: string): string {
  return `[${profile}]\naws_access_key_id = ${accessKey}\naws_secret_access_key = ${secretKey}\n`;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
/** A file path as one shell word: quoted when it needs it, with a leading `~/` left for the shell to expand. */
const shellPath = (p: string): string => {
  const word = (s: string) => (/^[A-Za-z0-9_@%+=:,.\/-]+$/.test(s) ? s : shellQuote(s));
  return p.startsWith("~/") ? `~/${word(p.slice(2))}` : word(p);
};

/**
 * A key name as part of a file name: letters, digits and `._+=@-` as they are, every other byte as `%XX`
 * (so `/` can never leave the directory, and two names never share a file).
 */
export function keyFileSuffix(name: string): string {
  return Array.from(Buffer.from(name, "utf8"))
    .map((b) => {
      const c = String.fromCharCode(b);
      return /[A-Za-z0-9._+=@-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
    })
    .join("");
}

/**
 * Where the builder keeps each key's secret, in the commands we print, for the keys `keys` (public keys
 * `NAME:…` or bare names, the active first, as the trustedPublicKeys output): the active key where it always
 * was (DEFAULT_SECRET_KEY_FILE, the secretKey output), each previous key beside it in
 * `~/.config/nix/secret-NAME.key`, named by its key name (which never changes meaning during a rotation).
 */
export function defaultSecretKeyFiles(keys: readonly string[]): string[] {
  const names = keyList(keys).map(keyNameOf);
  return [DEFAULT_SECRET_KEY_FILE, ...names.slice(1).map((name) => `~/.config/nix/secret-${keyFileSuffix(name)}.key`)];
}

/**
 * Signs a build result and everything it references with the cache's key, or with each of several keys
 * (`keyFiles`: one path, or several, the active key's first; see defaultSecretKeyFiles). Nix 2.8's
 * `nix store sign` takes one --key-file per run (a second one replaces the first), so several keys give one
 * command per key joined with `&&`: a missing key file stops the rest. `paths` are shell words.
 */
export function signCommand(keyFiles: string | readonly string[] = DEFAULT_SECRET_KEY_FILE, paths = "./result"): string {
  const files = typeof keyFiles === "string" ? [keyFiles] : [...keyFiles];
  if (files.length === 0) throw new Error("signCommand needs at least one key file");
  return files.map((file) => `nix store sign --key-file ${shellPath(file)} --recursive ${paths}`).join(" && ");
}

/** Uploads a build result and its closure to the cache. `paths` are shell words. */
export function pushCommand(url: string, paths = "./result"): string {
  return `nix copy --to ${shellQuote(url)} ${paths}`;
}
