// The client side of a private cache (nix-cache:access=private, issue 21): the two ways a host reads it.
//   - readerNixosModule: NixOS hosts, whose Nix has S3 (nixpkgs builds it withAWS), substitute from the bucket's
//     s3:// URL as the reader; nix-daemon does the fetching, so the credentials file must be in ITS environment
//     (NixOS/nix#5723), read from a secret path, never the Nix store.
//   - proxyClientModule: any host through the read proxy (lib/proxy), an https/http substituter Nix 2.8+ reads with
//     HTTP Basic credentials from its netrc-file (the host's line of the netrc output).
// Nothing secret goes into either text: the files they name are written by host-config --secrets-dir or a
// secret manager.
import { keyList, nixString, pkiCertificatesLines, PushTarget } from "./hostConfig";

/** The secret file with the reader's AWS credentials (readerCredentials): for nix-daemon and for the proxy. */
export const READER_CREDENTIALS_FILE_NAME = "nix-cache-reader-credentials";
/** The proxy's tokens file (proxyTokenHashes): hashes only, but read from a secret path like the others. */
export const PROXY_TOKENS_FILE_NAME = "nix-cache-proxy-tokens";
/** The secret file with one host's netrc line. */
export const netrcFileName = (host: string): string => `nix-cache-netrc-${host}`;

/** Where the modules expect the secret files by default: where sops-nix and agenix decrypt to. */
export const PRIVATE_DEFAULTS = {
  readerCredentialsFile: `/run/secrets/${READER_CREDENTIALS_FILE_NAME}`,
  netrcFile: "/run/secrets/nix-cache-netrc",
} as const;

export const READER_OPTION_PATH = "services.nix-cache-reader";
export const PROXY_CLIENT_OPTION_PATH = "services.nix-cache-proxy-client";

/** A query value as Nix reads it back (Nix percent-decodes values): ':' and '/' stay readable. */
const queryValue = (v: string) => encodeURIComponent(v).replace(/%3A/gi, ":").replace(/%2F/gi, "/");

/**
 * The s3:// substituter URL of the reader: profile, endpoint (a full URL, which every Nix ≥ 2.8 reads, as pushUrl
 * explains) and region; no compression (that is for writing).
 */
export function readerSubstituterUrl(t: PushTarget): string {
  const params: [string, string][] = [
    ["profile", t.profile],
    ["endpoint", new URL(t.endpoint).origin],
    ["region", t.region],
  ];
  return `s3://${t.bucket}?${params.map(([k, v]) => `${k}=${queryValue(v)}`).join("&")}`;
}

/** `machine PROXYHOST login HOST password TOKEN`: what Nix's netrc-file needs for the proxy (curl matches on the host name). */
export function netrcLine(proxyUrl: string, host: string, token: string): string {
  if (/\s/.test(host) || /\s/.test(token) || host === "" || token === "") throw new Error("netrcLine: host and token must be non-empty and without white space");
  return `machine ${new URL(proxyUrl).hostname.replace(/^\[|\]$/g, "")} login ${host} password ${token}`;
}

const trustedKeysLines = (publicKeys: readonly string[]): string[] => [
  `      extra-trusted-public-keys = [ ${keyList(publicKeys).map(nixString).join(" ")} ];`,
];

const option = (type: string, dflt: string, description: string) =>
  `lib.mkOption { type = ${type}; default = ${dflt}; description = ${nixString(description)}; };`;

/** The client module of a private cache for NixOS hosts: the reader's s3:// substituter, credentials by path. */
export function readerNixosModule(input: { substituter: string; publicKeys: readonly string[]; caCertificate?: string }): string {
  return [
    "# nix-cache: a private binary cache, read from MinIO as the reader (the readerSubstituterUrl output).",
    "{ config, lib, ... }:",
    "let",
    `  cfg = config.${READER_OPTION_PATH};`,
    "in",
    "{",
    `  options.${READER_OPTION_PATH} = {`,
    `    credentialsFile = ${option("lib.types.str", nixString(PRIVATE_DEFAULTS.readerCredentialsFile), "Path of the AWS shared credentials file with the reader's profile (the readerCredentials output). nix-daemon fetches substitutes, so it reads this file through AWS_SHARED_CREDENTIALS_FILE. A string path outside the Nix store: a ./path literal would copy the secret into the world-readable store.")}`,
    "  };",
    "  config = {",
    "    assertions = [",
    "      {",
    '        assertion = lib.hasPrefix "/" cfg.credentialsFile && !(lib.hasPrefix builtins.storeDir cfg.credentialsFile);',
    `        message = "${READER_OPTION_PATH}.credentialsFile must be an absolute path outside the Nix store.";`,
    "      }",
    "    ];",
    ...pkiCertificatesLines(input.caCertificate, "    "),
    "    systemd.services.nix-daemon.environment.AWS_SHARED_CREDENTIALS_FILE = cfg.credentialsFile;",
    "    nix.settings = {",
    `      extra-substituters = [ ${nixString(input.substituter)} ];`,
    ...trustedKeysLines(input.publicKeys),
    "    };",
    "  };",
    "}",
    "",
  ].join("\n");
}

/** The client module for hosts that read a private cache through the read proxy, with their netrc line by path. */
export function proxyClientModule(input: { proxyUrl: string; publicKeys: readonly string[]; caCertificate?: string }): string {
  return [
    "# nix-cache: a private binary cache, read through its read proxy with this host's token (the netrc output).",
    "{ config, lib, ... }:",
    "let",
    `  cfg = config.${PROXY_CLIENT_OPTION_PATH};`,
    "in",
    "{",
    `  options.${PROXY_CLIENT_OPTION_PATH} = {`,
    `    netrcFile = ${option("lib.types.str", nixString(PRIVATE_DEFAULTS.netrcFile), "Path of the netrc file holding this host's line of the netrc output (machine, login = host name, password = token). Nix sends it as HTTP Basic credentials. A string path outside the Nix store.")}`,
    "  };",
    "  config = {",
    "    assertions = [",
    "      {",
    '        assertion = lib.hasPrefix "/" cfg.netrcFile && !(lib.hasPrefix builtins.storeDir cfg.netrcFile);',
    `        message = "${PROXY_CLIENT_OPTION_PATH}.netrcFile must be an absolute path outside the Nix store.";`,
    "      }",
    "    ];",
    ...pkiCertificatesLines(input.caCertificate, "    "),
    "    nix.settings = {",
    `      extra-substituters = [ ${nixString(input.proxyUrl)} ];`,
    ...trustedKeysLines(input.publicKeys),
    "      netrc-file = cfg.netrcFile;",
    "    };",
    "  };",
    "}",
    "",
  ].join("\n");
}
