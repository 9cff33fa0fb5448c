// The builder host's NixOS module: sign what Nix builds, queue it from a post-build hook that can never
// slow or break a build, and push the queue to the cache from a systemd service that retries; after each push
// the service refreshes the pushed closure's older cached paths in place, so the GC keeps what is still used.
// Secrets are referenced by path only: everything in a .nix file ends up world-readable in /nix/store.
import { keyFileSuffix, keyList, keyNameOf, nixIndentedBody, nixString, pkiCertificatesLines } from "./hostConfig";
import { gcAssertionLines, gcConfigLines, gcOptionLines, gcScriptLetLines, GcTimerInput } from "./gcTimerModule";
import { builderShellText, spliceInto } from "./builderShell";

export { nixIndentedBody };

/** File names of the secrets `host-config --secrets-dir` writes; the module's defaults use the same names.
 *  SIGNING_KEY_FILE_NAME holds the active key (the secretKey output); previous keys: previousSigningKeyFileName. */
export const SIGNING_KEY_FILE_NAME = "nix-cache-signing-key";
export const AWS_CREDENTIALS_FILE_NAME = "nix-cache-aws-credentials";

/** Where NixOS secret managers (agenix, sops-nix) decrypt secrets to; the module's defaults point there. */
export const SECRETS_MOUNT = "/run/secrets";

/**
 * The file name of a previous key's secret (a key of nix-cache:previousKeyNames, still signing during a
 * rotation): `nix-cache-signing-key-NAME`, named by the key's name (see keyFileSuffix for names with odd
 * characters), so a file never changes meaning: the key of a name is the same until it is retired.
 */
export function previousSigningKeyFileName(keyName: string): string {
  return `${SIGNING_KEY_FILE_NAME}-${keyFileSuffix(keyName)}`;
}

/** The default of previousSigningKeyFiles for the previous keys (`NAME:…` or bare names), in their order. */
export function defaultPreviousSigningKeyFiles(previousKeys: readonly string[]): string[] {
  return previousKeys.map((key) => `${SECRETS_MOUNT}/${previousSigningKeyFileName(keyNameOf(key))}`);
}

/** Where the module's options point by default: NixOS secret managers (agenix, sops-nix) decrypt to /run/secrets... */
export const BUILDER_DEFAULTS = {
  signingKeyFile: `${SECRETS_MOUNT}/${SIGNING_KEY_FILE_NAME}`,
  awsCredentialsFile: `${SECRETS_MOUNT}/${AWS_CREDENTIALS_FILE_NAME}`,
  spoolDir: "/var/spool/nix-cache",
  pushAttempts: 4,
  retryDelaySec: 5,
  retryInterval: "5min",
  /** The drain refreshes a cached path of a pushed closure once its narinfo is this old (0: on every push). */
  refreshAfterSec: 86400,
  /** NixOS's system CA bundle: it holds what security.pki.certificates adds. */
  sslCertFile: "/etc/ssl/certs/ca-certificates.crt",
} as const;

/** The NixOS option set the module declares (services.nix-cache-builder). */
export const BUILDER_OPTION_PATH = "services.nix-cache-builder";

/** Set to a shell command to replace `nix copy --to <pushUrl>` in the drain (tests; other uploaders).
 *  It gets the store paths as arguments and NIX_CACHE_PUSH_URL in its environment. lib/hosts/sh/drain.sh spells
 *  out this name and PUSH_NIX_OPTION, PUSH_NIX_CONFIG (builderModule.test.ts holds them together). */
export const PUSH_COMMAND_ENV = "NIX_CACHE_PUSH_CMD";

/** The setting every push runs with (the facts' section 2): Nix's default 30-day narinfo-cache-positive-ttl would
 *  let it trust its own record of an upload and skip re-uploading a path the GC collected since. */
export const PUSH_NIX_OPTION = { name: "narinfo-cache-positive-ttl", value: "0" } as const;
/** The same as a nix.conf line, appended to NIX_CONFIG for PUSH_COMMAND_ENV (Nix reads NIX_CONFIG since 2.4). */
export const PUSH_NIX_CONFIG = `${PUSH_NIX_OPTION.name} = ${PUSH_NIX_OPTION.value}`;

/**
 * The post-build hook body (lib/hosts/sh/queue-hook.sh). Expects `spool` to be set. Nix runs the hook
 * synchronously after every build and stops building when it fails, so it only queues and always exits 0.
 */
export function queueHookBody(): string {
  return builderShellText("queue-hook.sh");
}

/**
 * The drain's keep-alive functions (lib/hosts/sh/keep-alive.sh; issue 12): `refresh_closure PATH...` refreshes
 * the cached closure of pushed paths. Expects `spool`, `push_url` and `refresh_after` (seconds) to be set, and
 * AWS_SHARED_CREDENTIALS_FILE (the push URL's profile) and NIX_SSL_CERT_FILE (https) in the environment.
 */
export function keepAliveBody(): string {
  return builderShellText("keep-alive.sh");
}

/**
 * The drain body (lib/hosts/sh/drain.sh, with keepAliveBody spliced in). Expects `spool`, `push_url`,
 * `attempts`, `delay` (seconds, doubled after each failed attempt) and `refresh_after` (see keepAliveBody) to
 * be set. Pushes the queue, keeps it (exit 1) when every attempt failed, then refreshes the pushed closure's
 * older cached paths. Pushes run with PUSH_NIX_OPTION, and PUSH_COMMAND_ENV replaces `nix copy`.
 */
export function drainBody(): string {
  return spliceInto(builderShellText("drain.sh"), "keep-alive.sh", keepAliveBody());
}

export interface BuilderModuleInput {
  /** The `s3://` URL the drain pushes to (the stack's pushUrl output). */
  pushUrl: string;
  /** The active key's public half (the stack's publicKey output), named in signingKeyFile's description. */
  publicKey: string;
  /**
   * Every key of the stack, public halves, the active first (the stack's trustedPublicKeys output); the keys
   * after the first are the previous keys: previousSigningKeyFiles gets one default path per key, named by
   * its key name. Leave it out (or give [publicKey]) for a stack with one key: previousSigningKeyFiles is then
   * empty by default. Its first key must be `publicKey`, and its names distinct.
   */
  trustedPublicKeys?: readonly string[];
  /** The CA of MinIO's certificate (the stack's caCertificate output); undefined or "" when none. */
  caCertificate?: string;
  /**
   * The daily closure-safe GC run by this host (lib/hosts/gcTimerModule.ts), from the stack's outputs
   * (lib/hosts/hostFiles.ts gcTimerInputOf); undefined for a stack without a GC identity: no GC options or units.
   */
  gc?: GcTimerInput;
}

/**
 * The NixOS module for the builder host (nix-cache-builder.nix). Takes no secret: it cannot leak one.
 * Its options (services.nix-cache-builder.*): enable; pushUrl; signingKeyFile, the active key's secret file;
 * previousSigningKeyFiles, the previous keys' secret files (Nix signs with all of these through
 * secret-key-files); awsCredentialsFile; spoolDir; pushAttempts; retryDelaySec; sslCertFile; retryInterval;
 * refreshAfterSec (the drain's keep-alive of cached paths for the GC, see keepAliveBody).
 *
 * Why the active key keeps its single-file option and the previous keys get a list option of their own,
 * rather than one list option replacing signingKeyFile: every builder configured before key sets (the default
 * path, or signingKeyFile set to an agenix/sops-nix path) keeps evaluating and signing exactly as before when
 * the module is regenerated, with no option renamed or deprecated; signingKeyFile always holds the key that
 * the secretKey and publicKey outputs name, as a NixOS user reading the option expects; and a rotation only
 * adds entries to previousSigningKeyFiles (retiring removes them), each a file named by its key's name.
 */
export function builderModule({ pushUrl, publicKey, trustedPublicKeys, caCertificate, gc }: BuilderModuleInput): string {
  const d = BUILDER_DEFAULTS;
  const keys = keyList(trustedPublicKeys ?? [publicKey]);
  if (keys[0] !== publicKey) {
    throw new Error(`the first of trustedPublicKeys must be the active publicKey ${publicKey}, not ${keys[0]}`);
  }
  const previous = keys.slice(1);
  const nixList = (items: readonly string[]) => (items.length === 0 ? "[ ]" : `[ ${items.map(nixString).join(" ")} ]`);
  const previousDescription =
    "Paths of the secret key files of the cache's previous keys (nix-cache:previousKeyNames; the secretKeys output " +
    "after its first entry), one per key, in that order. Nix signs every path it builds with each of them as well as " +
    "with signingKeyFile (nix.settings.secret-key-files), so hosts that still trust only an older key keep accepting " +
    "new builds while a key is rotated. " +
    (previous.length === 0
      ? "This stack has no previous key: empty. "
      : `This stack's previous keys: ${previous.map((k) => `${keyNameOf(k)} (public key ${k})`).join(", ")}. `) +
    "The defaults are the files `npm run host-config -- --secrets-dir` writes (nix-cache-signing-key-NAME) under " +
    `${SECRETS_MOUNT}. Paths as strings outside the Nix store, like signingKeyFile; each file must exist on the ` +
    "builder, or Nix fails the build when it signs.";
  const option = (type: string, dflt: string, description: string) =>
    [
      "lib.mkOption {",
      `      type = ${type};`,
      `      default = ${dflt};`,
      `      description = ${nixString(description)};`,
      "    };",
    ].join("\n");
  return [
    "# Generated by the nix-cache Pulumi project (`npm run host-config`): the builder host signs what it builds",
    "# and pushes it to the cache in the background. Secrets are read from files at run time; none is in here.",
    "{ config, lib, pkgs, ... }:",
    "let",
    `  cfg = config.${BUILDER_OPTION_PATH};`,
    "  # Nix runs post-build-hook synchronously and stops building when it fails: the hook only queues.",
    '  queueHook = pkgs.writeShellScript "nix-cache-queue" \'\'',
    "    export PATH=${pkgs.coreutils}/bin:$PATH",
    "    spool=${lib.escapeShellArg cfg.spoolDir}",
    nixIndentedBody(queueHookBody(), "    "),
    "  '';",
    '  drain = pkgs.writeShellScript "nix-cache-drain" \'\'',
    "    export PATH=${pkgs.coreutils}/bin:${pkgs.util-linux}/bin:${pkgs.gnused}/bin:${pkgs.gnugrep}/bin:${pkgs.curl}/bin:${config.nix.package}/bin:$PATH",
    "    export AWS_SHARED_CREDENTIALS_FILE=${lib.escapeShellArg cfg.awsCredentialsFile}",
    "    # Nix's S3 client takes its CA file from Nix's ssl-cert-file, which NIX_SSL_CERT_FILE sets.",
    "    export NIX_SSL_CERT_FILE=${lib.escapeShellArg cfg.sslCertFile}",
    "    spool=${lib.escapeShellArg cfg.spoolDir}",
    "    push_url=${lib.escapeShellArg cfg.pushUrl}",
    "    attempts=${toString cfg.pushAttempts}",
    "    delay=${toString cfg.retryDelaySec}",
    "    refresh_after=${toString cfg.refreshAfterSec}",
    nixIndentedBody(drainBody(), "    "),
    "  '';",
    ...(gc ? gcScriptLetLines(gc, "  ") : []),
    "  isSecretPath = p: lib.hasPrefix \"/\" p && !(lib.hasPrefix builtins.storeDir p);",
    "in",
    "{",
    `  options.${BUILDER_OPTION_PATH} = {`,
    `    enable = ${option("lib.types.bool", "true", "Whether this host signs its builds and pushes them to the nix-cache binary cache. On by default: importing this module makes the host the builder.")}`,
    `    pushUrl = ${option("lib.types.str", nixString(pushUrl), "The store URL the queue is pushed to with `nix copy --to` (the stack's pushUrl output; its profile names the section of the credentials file).")}`,
    `    signingKeyFile = ${option("lib.types.str", nixString(d.signingKeyFile), `Path of the file holding the cache's active secret signing key (the secretKey output, whose public half is ${publicKey}). Used as the first of nix.settings.secret-key-files, so Nix signs every path it builds. Give a path as a string, never a ./path literal: that would copy the secret into the world-readable Nix store.`)}`,
    `    previousSigningKeyFiles = ${option("lib.types.listOf lib.types.str", nixList(defaultPreviousSigningKeyFiles(previous)), previousDescription)}`,
    `    awsCredentialsFile = ${option("lib.types.str", nixString(d.awsCredentialsFile), "Path of the AWS shared credentials file with the builder's profile (the awsCredentials output); the drain reads it through AWS_SHARED_CREDENTIALS_FILE. A string path outside the Nix store, like signingKeyFile.")}`,
    `    spoolDir = ${option("lib.types.str", nixString(d.spoolDir), "Directory of the push queue: the post-build hook writes one entry per build to its queue/ subdirectory, and the drain deletes an entry only after its paths were pushed.")}`,
    `    pushAttempts = ${option("lib.types.ints.positive", String(d.pushAttempts), "How many times one drain run tries the push before it gives up and leaves the queue for the next run.")}`,
    `    retryDelaySec = ${option("lib.types.ints.positive", String(d.retryDelaySec), "Seconds to wait after the first failed push attempt; the wait doubles after each further failure.")}`,
    `    sslCertFile = ${option("lib.types.str", nixString(d.sslCertFile), "The CA bundle the drain's `nix copy` trusts for the cache's https endpoint, exported as NIX_SSL_CERT_FILE (Nix hands it to its S3 client as the CA file, so AWS_CA_BUNDLE is not read). The default, NixOS's system bundle, holds the cache's CA through security.pki.certificates; elsewhere point it at a bundle that holds the CA.")}`,
    `    retryInterval = ${option("lib.types.str", nixString(d.retryInterval), "How often (a systemd time span) the timer runs the drain, pushing whatever earlier runs could not.")}`,
    `    refreshAfterSec = ${option("lib.types.ints.unsigned", String(d.refreshAfterSec), "Keep-alive for the cache's garbage collector, which keeps what was pushed or refreshed within its retainDays: after each push, the drain refreshes every path of the pushed closure that the cache already holds and whose narinfo is at least this many seconds old (0: every one, on every push), NAR first, dependencies before dependents, with a server-side copy onto itself (new LastModified, same content; the builder's PutObject suffices). Keep it well below the GC's retainDays. A failed refresh is reported and never fails the push.")}`,
    ...(gc ? gcOptionLines(gc, "    ") : []),
    "  };",
    "",
    "  config = lib.mkIf cfg.enable {",
    "    assertions = [",
    "      {",
    "        assertion = isSecretPath cfg.signingKeyFile && lib.all isSecretPath cfg.previousSigningKeyFiles && isSecretPath cfg.awsCredentialsFile;",
    `        message = "${BUILDER_OPTION_PATH}: signingKeyFile, previousSigningKeyFiles and awsCredentialsFile must be absolute paths outside the Nix store (a path in a .nix file is copied to the world-readable store).";`,
    "      }",
    ...(gc ? gcAssertionLines("      ") : []),
    "    ];",
    ...pkiCertificatesLines(caCertificate, "    "),
    "    # The active key first, then the previous keys: Nix signs what it builds with every one of them.",
    "    nix.settings.secret-key-files = [ cfg.signingKeyFile ] ++ cfg.previousSigningKeyFiles;",
    "    nix.settings.post-build-hook = queueHook;",
    '    systemd.tmpfiles.rules = [ "d ${cfg.spoolDir} 0700 root root -" "d ${cfg.spoolDir}/queue 0700 root root -" ];',
    "    systemd.services.nix-cache-push = {",
    '      description = "Push queued Nix build results to the nix-cache binary cache";',
    '      wants = [ "network-online.target" ];',
    '      after = [ "network-online.target" ];',
    "      serviceConfig = {",
    '        Type = "oneshot";',
    "        ExecStart = drain;",
    "        Nice = 10;",
    '        IOSchedulingClass = "idle";',
    "      };",
    "    };",
    "    # Push right after a build queues something ...",
    "    systemd.paths.nix-cache-push = {",
    '      wantedBy = [ "paths.target" ];',
    '      pathConfig.PathChanged = "${cfg.spoolDir}/queue";',
    "    };",
    "    # ... and again every retryInterval, for what a failed run left in the queue.",
    "    systemd.timers.nix-cache-push = {",
    '      wantedBy = [ "timers.target" ];',
    "      timerConfig = {",
    '        OnBootSec = "1min";',
    "        OnUnitActiveSec = cfg.retryInterval;",
    "      };",
    "    };",
    ...(gc ? gcConfigLines(gc, "    ") : []),
    "  };",
    "}",
    "",
  ].join("\n");
}
