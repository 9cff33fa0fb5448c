// The read proxy's NixOS module (issue 21; host-config writes it as nix-cache-proxy.nix): the proxy's one-file
// script (lib/proxy/service.ts bundled, like the GC's) embedded with pkgs.writeText, run by nix-cache-proxy.service
// as a dynamic user with systemd's hardening, its secrets handed over by systemd, never put in the Nix store.
//   - the reader's credentials and the TLS files: LoadCredential= (root-only files, read into the service's private
//     credentials directory at start; a restart picks up new ones);
//   - the tokens file: copied by a privileged ExecStartPre=/ExecReload= step into the service's runtime directory,
//     then SIGHUP: systemd's credentials are immutable while a service runs (systemd/systemd#21099), so a reload
//     through LoadCredential= would re-read the old tokens and a revoked host would keep its access.
import { nixString } from "./hostConfig";
import { nixIndentedLines } from "./gcTimerModule";
import { PROXY_TOKENS_FILE_NAME, READER_CREDENTIALS_FILE_NAME } from "./privateModules";

/** The option set (services.nix-cache-proxy) and the unit's name. */
export const PROXY_OPTION_PATH = "services.nix-cache-proxy";
export const PROXY_UNIT = "nix-cache-proxy";

export const PROXY_DEFAULTS = {
  credentialsFile: `/run/secrets/${READER_CREDENTIALS_FILE_NAME}`,
  tokensFile: `/run/secrets/${PROXY_TOKENS_FILE_NAME}`,
  /** The service's runtime directory (RuntimeDirectory=), where the tokens file is copied to. */
  runtimeDir: `/run/${PROXY_UNIT}`,
} as const;

export interface ProxyServiceInput {
  /** MinIO's S3 endpoint, http(s)://host[:port], as the proxy's host reaches it. */
  endpoint: string;
  region: string;
  bucket: string;
  /** The reader's section in the credentials file (the reader user's name: readerAccessKey). */
  profile: string;
  /** The listen option's default, HOST:PORT ([::]:PORT for IPv6). */
  listen: string;
  /** The proxy script (lib/proxy/service.ts bundled into one file). */
  script?: string;
  /** The CA that signed MinIO's certificate (caCertificate output): the proxy trusts it toward an https endpoint. */
  caCertificate?: string;
}

/** A command-line word systemd and Nix take as it is: no quoting, `%` specifier or `$` expansion needed. */
const PLAIN_WORD = /^[A-Za-z0-9._:/@+=,[\]-]+$/;

function plainWord(what: string, value: string): string {
  if (!PLAIN_WORD.test(value)) {
    throw new Error(`proxyServiceModule: the ${what} '${value}' has a character the service's command line would need to quote`);
  }
  return value;
}

/**
 * `HOST:PORT` as the proxy takes it (lib/proxy/server.ts parseListen), restricted to characters ExecStart= takes
 * unquoted; group 2 is the port, leading zeros apart (fromJSON refuses them).
 */
const LISTEN_REGEX = "(\\[[0-9A-Fa-f:.]+]|[A-Za-z0-9.-]+):0*([0-9]{1,5})";
/** Paths the unit's lines take unquoted (LoadCredential=, ExecStartPre=, --ca-file). */
const PLAIN_PATH_REGEX = "/[A-Za-z0-9._/@+=,-]+";

/** The proxy's script: the input's, else (once the proxy's bundle is merged) lib/proxy's proxyScriptText(). */
function scriptOf(input: ProxyServiceInput): string {
  if (input.script !== undefined) return input.script;
  // Until lib/proxy/bundle.ts is merged there is no bundle to embed: saying so beats a module without a proxy.
  throw new Error("proxyServiceModule: no proxy script given (lib/proxy's bundle, proxyScriptText(), is not wired in yet)");
}

const option = (name: string, type: string, dflt: string, description: string) => [
  `    ${name} = lib.mkOption {`,
  `      type = ${type};`,
  `      default = ${dflt};`,
  `      description = ${nixString(description)};`,
  "    };",
];

/**
 * The proxy's NixOS module: options services.nix-cache-proxy.{enable, listen, credentialsFile, tokensFile,
 * tlsCertFile, tlsKeyFile, caFile, openFirewall} and nix-cache-proxy.service. The command line is the proxy's
 * (lib/proxy/service.ts): `node nix-cache-proxy.js --listen … --endpoint … --region … --bucket … --profile …
 * --credentials-file … --tokens-file … [--tls-cert … --tls-key …] [--ca-file …]`. Nothing secret goes in.
 */
export function proxyServiceModule(input: ProxyServiceInput): string {
  const endpoint = new URL(input.endpoint);
  if (endpoint.protocol !== "http:" && endpoint.protocol !== "https:") {
    throw new Error(`proxyServiceModule: the endpoint must be http(s)://host[:port], not ${input.endpoint}`);
  }
  const fixed: [string, string][] = [
    ["--endpoint", plainWord("endpoint", endpoint.origin)],
    ["--region", plainWord("region", input.region)],
    ["--bucket", plainWord("bucket", input.bucket)],
    ["--profile", plainWord("profile", input.profile)],
  ];
  const script = nixIndentedLines(scriptOf(input), "    ");
  // The CA matters only toward an https endpoint; it is public, so the store may hold it.
  const ca = endpoint.protocol === "https:" && input.caCertificate ? input.caCertificate.replace(/\s*$/, "\n") : undefined;
  const caLines = ca ? nixIndentedLines(ca, "    ") : [];
  const cred = (id: string) => nixString(`\${CREDENTIALS_DIRECTORY}/${id}`);
  const tokensCopy = `${PROXY_DEFAULTS.runtimeDir}/tokens`;
  return [
    "# Generated by the nix-cache Pulumi project: the read proxy of the private binary cache. Hosts send their token",
    "# (their netrc line) over HTTP Basic; the proxy checks it against the tokens file (hashes only) and fetches from",
    "# MinIO as the reader user. Secrets are read at run time from the option's paths, never from this file.",
    "{ config, lib, pkgs, ... }:",
    "let",
    `  cfg = config.${PROXY_OPTION_PATH};`,
    "  # The proxy (lib/proxy/service.ts and the lib/ modules it imports, bundled into one file): plain node runs it.",
    `  proxyScript = pkgs.writeText "nix-cache-proxy.js" ${script[0]}`,
    ...script.slice(1, -1),
    `${script[script.length - 1]};`,
    ...(ca
      ? [
          "  # The CA that signed MinIO's certificate (nix-cache:caCertificate): the proxy trusts it toward the endpoint.",
          `  caCertificate = pkgs.writeText "nix-cache-ca.pem" ${caLines[0]}`,
          ...caLines.slice(1, -1),
          `${caLines[caLines.length - 1]};`,
        ]
      : []),
    `  listenParts = builtins.match ${nixString(LISTEN_REGEX)} cfg.listen;`,
    "  port = if listenParts == null then 0 else builtins.fromJSON (builtins.elemAt listenParts 1);",
    "  # Below 1024 the service needs CAP_NET_BIND_SERVICE, and no private user namespace (the capability would not count).",
    "  lowPort = port < 1024;",
    "  tls = cfg.tlsCertFile != null && cfg.tlsKeyFile != null;",
    `  isPlainPath = p: builtins.match ${nixString(PLAIN_PATH_REGEX)} p != null;`,
    "  isSecretPath = p: isPlainPath p && !(lib.hasPrefix builtins.storeDir p);",
    "in",
    "{",
    `  options.${PROXY_OPTION_PATH} = {`,
    ...option("enable", "lib.types.bool", "true",
      "Whether this host runs the private cache's read proxy (nix-cache-proxy.service). On by default: importing this module makes the host the proxy."),
    ...option("listen", "lib.types.str", nixString(input.listen),
      "Where the proxy listens, HOST:PORT ([::]:PORT for IPv6). Hosts reach it at the stack's proxyUrl, so keep the port the same; " +
        "a port below 1024 gives the service CAP_NET_BIND_SERVICE and nothing else."),
    ...option("credentialsFile", "lib.types.str", nixString(PROXY_DEFAULTS.credentialsFile),
      "Path of the AWS shared credentials file with the reader's profile (the readerCredentials output; `npm run host-config -- " +
        `--secrets-dir\` writes it as ${READER_CREDENTIALS_FILE_NAME}), handed to the service by systemd (LoadCredential=) when it starts. ` +
        "A string path outside the Nix store: a ./path literal would copy the secret into the world-readable store."),
    ...option("tokensFile", "lib.types.str", nixString(PROXY_DEFAULTS.tokensFile),
      "Path of the proxy's tokens file (the proxyTokenHashes output: one `HOST sha256:HEX` line per host, hashes only; host-config " +
        `writes it as ${PROXY_TOKENS_FILE_NAME}). Copied for the service when it starts and on \`systemctl reload ${PROXY_UNIT}\`, ` +
        "which then re-reads it: revoking a host is a new file and a reload."),
    ...option("tlsCertFile", "lib.types.nullOr lib.types.str", "null",
      "Path of the PEM certificate (chain) the proxy serves https with; null: plain http. Give tlsKeyFile with it. Read when the " +
        `service starts: after renewing, \`systemctl restart ${PROXY_UNIT}\`.`),
    ...option("tlsKeyFile", "lib.types.nullOr lib.types.str", "null",
      "Path of the certificate's PEM private key, outside the Nix store; handed to the service by systemd (LoadCredential=)."),
    ...option("caFile", "lib.types.nullOr lib.types.str", ca ? '"${caCertificate}"' : "null",
      "A PEM CA bundle the proxy trusts toward an https endpoint" +
        (ca ? " (default: the stack's CA, nix-cache:caCertificate)." : "; null: the system's."),
    ),
    ...option("openFirewall", "lib.types.bool", "false", "Whether to open the listen port in the firewall."),
    "  };",
    "",
    "  config = lib.mkIf cfg.enable {",
    "    assertions = [",
    "      {",
    "        assertion = listenParts != null && port >= 1 && port <= 65535;",
    `        message = ${nixString(`${PROXY_OPTION_PATH}.listen must be HOST:PORT (e.g. 0.0.0.0:8480 or [::]:8480), the port 1 to 65535.`)};`,
    "      }",
    "      {",
    "        assertion = isSecretPath cfg.credentialsFile && isSecretPath cfg.tokensFile && (cfg.tlsKeyFile == null || isSecretPath cfg.tlsKeyFile);",
    `        message = ${nixString(`${PROXY_OPTION_PATH}: credentialsFile, tokensFile and tlsKeyFile must be absolute paths outside the Nix store (a path in a .nix file is copied to the world-readable store), of letters, digits and ._/@+=,-.`)};`,
    "      }",
    "      {",
    "        assertion = (cfg.tlsCertFile == null) == (cfg.tlsKeyFile == null) && (cfg.tlsCertFile == null || isPlainPath cfg.tlsCertFile) && (cfg.caFile == null || isPlainPath cfg.caFile);",
    `        message = ${nixString(`${PROXY_OPTION_PATH}: tlsCertFile and tlsKeyFile go together (both or neither); tlsCertFile and caFile are absolute paths of letters, digits and ._/@+=,-.`)};`,
    "      }",
    "    ];",
    "    networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall port;",
    `    systemd.services.${PROXY_UNIT} = {`,
    '      description = "Read proxy of the nix-cache private binary cache";',
    '      wantedBy = [ "multi-user.target" ];',
    '      wants = [ "network-online.target" ];',
    '      after = [ "network-online.target" ];',
    "      serviceConfig = {",
    "        ExecStart = lib.concatStringsSep \" \" ([",
    '          "${pkgs.nodejs}/bin/node" "${proxyScript}"',
    "          \"--listen\" cfg.listen",
    ...fixed.map(([flag, value]) => `          ${nixString(flag)} ${nixString(value)}`),
    `          "--credentials-file" ${cred("reader")}`,
    `          "--tokens-file" ${nixString(tokensCopy)}`,
    `        ] ++ lib.optionals tls [ "--tls-cert" ${cred("tls-cert")} "--tls-key" ${cred("tls-key")} ]`,
    '          ++ lib.optionals (cfg.caFile != null) [ "--ca-file" cfg.caFile ]);',
    "        # Root-only secret files, read by systemd into the service's private credentials directory.",
    '        LoadCredential = [ "reader:${cfg.credentialsFile}" ]',
    '          ++ lib.optionals tls [ "tls-cert:${cfg.tlsCertFile}" "tls-key:${cfg.tlsKeyFile}" ];',
    "        # The tokens file, copied by a privileged step (+) on start and reload; then the proxy re-reads it (SIGHUP).",
    "        # Not LoadCredential=: systemd's credentials stay as they were at start while the service runs.",
    `        RuntimeDirectory = ${nixString(PROXY_UNIT)};`,
    '        RuntimeDirectoryMode = "0700";',
    `        ExecStartPre = "+\${pkgs.coreutils}/bin/install -m 0444 -T \${cfg.tokensFile} ${tokensCopy}";`,
    "        ExecReload = [",
    `          "+\${pkgs.coreutils}/bin/install -m 0444 -T \${cfg.tokensFile} ${tokensCopy}"`,
    '          "${pkgs.coreutils}/bin/kill -HUP $MAINPID"',
    "        ];",
    '        Restart = "on-failure";',
    '        RestartSec = "5s";',
    "        # No root: a user that exists while the service runs, owning nothing on disk.",
    "        DynamicUser = true;",
    '        UMask = "0077";',
    "        NoNewPrivileges = true;",
    '        ProtectSystem = "strict";',
    "        ProtectHome = true;",
    "        PrivateTmp = true;",
    "        PrivateDevices = true;",
    "        PrivateUsers = !lowPort;",
    "        ProtectKernelTunables = true;",
    "        ProtectKernelModules = true;",
    "        ProtectKernelLogs = true;",
    "        ProtectControlGroups = true;",
    "        ProtectClock = true;",
    "        ProtectHostname = true;",
    '        ProtectProc = "invisible";',
    '        ProcSubset = "pid";',
    "        # AF_UNIX too: NixOS resolves host names through nscd's socket (an endpoint like s3.homelab.local).",
    '        RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];',
    "        RestrictNamespaces = true;",
    "        RestrictRealtime = true;",
    "        RestrictSUIDSGID = true;",
    "        LockPersonality = true;",
    "        RemoveIPC = true;",
    "        # node's JIT writes code it then runs.",
    "        MemoryDenyWriteExecute = false;",
    '        SystemCallArchitectures = "native";',
    '        SystemCallFilter = [ "@system-service" "~@privileged" ];',
    '        SystemCallErrorNumber = "EPERM";',
    '        CapabilityBoundingSet = if lowPort then "CAP_NET_BIND_SERVICE" else "";',
    "      } // lib.optionalAttrs lowPort {",
    '        AmbientCapabilities = "CAP_NET_BIND_SERVICE";',
    "      };",
    "    };",
    "  };",
    "}",
    "",
  ].join("\n");
}
