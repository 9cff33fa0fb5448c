// The builder module's daily GC (issue 12): the pieces lib/hosts/builderModule.ts splices into its module text,
// under services.nix-cache-builder.gc:
//   - gcScriptLetLines: `gcScript = pkgs.writeText "nix-cache-gc.js" ''…'';` (lib/gc/bundle.ts's one-file script,
//     escaped for a Nix indented string), for the module's `let`;
//   - gcOptionLines: the `gc = { enable; credentialsFile; schedule; retainDays; extraArgs; };` option declarations;
//   - gcAssertionLines: the credentials file must not be in the Nix store (uses the module's isSecretPath);
//   - gcConfigLines: systemd.services.nix-cache-gc (oneshot, idle priority, the GC identity's credentials by
//     path, the module's sslCertFile) and systemd.timers.nix-cache-gc (OnCalendar = gc.schedule, Persistent).
// Each returns lines at the indentation the module uses there. Nothing secret goes in: keys are read from
// gc.credentialsFile at run time.
import { gcScriptText } from "../gc/bundle";
import { GC_ENV, GC_SERVICE_NAME } from "../gc/service";
import { escapeNixIndented, nixString } from "./hostConfig";

/** The file `host-config --secrets-dir` writes the GC identity's AWS credentials to (the gcCredentials output). */
export const GC_CREDENTIALS_FILE_NAME = "nix-cache-gc-credentials";

export const GC_DEFAULTS = {
  /** Where secret managers (agenix, sops-nix) decrypt to, as the module's other secrets. */
  credentialsFile: `/run/secrets/${GC_CREDENTIALS_FILE_NAME}`,
  /** systemd OnCalendar. */
  schedule: "daily",
  /** Spreads the GCs of many caches (and the builders' reboots) over an hour. */
  randomizedDelaySec: "1h",
} as const;

/** What the GC service needs from the stack; nothing secret. */
export interface GcTimerInput {
  /** scheme://host[:port] of the S3 API as the builder reaches it (the push URL's endpoint). */
  endpoint: string;
  region: string;
  bucket: string;
  /** The GC identity's section in the credentials file: the GC user's name (the gcAccessKey output). */
  profile: string;
  /** The stack's retainDays: gc.retainDays's default. */
  retainDays: number;
  /** The cache's store directory (nix-cache:storeDir). */
  storeDir: string;
  /** The GC script; default lib/gc/bundle.ts gcScriptText(). */
  script?: string;
}

/**
 * `text` as the lines of a Nix indented string (''…''), each non-empty line behind `indent`, so that Nix reads
 * back exactly `text` (which must end with one newline, and have a line that starts with no space: Nix strips
 * the indentation all lines share). Escapes: `''` -> `'''`, `${` -> `''${`, and a `'` right before `${` ->
 * `''\'` (else it would join the escape into `'''` followed by a live `${`).
 */
export function nixIndentedLines(text: string, indent: string): string[] {
  if (!text.endsWith("\n") || text.endsWith("\n\n")) throw new Error("nixIndentedLines: the text must end with exactly one newline");
  const lines = text.slice(0, -1).split("\n");
  if (!lines.some((l) => l.length > 0 && !l.startsWith(" "))) {
    throw new Error("nixIndentedLines: every line of the text starts with a space: Nix would strip it");
  }
  if (text.includes("\r")) throw new Error("nixIndentedLines: the text has a carriage return, which a Nix indented string would not keep as is");
  return ["''", ...lines.map((l) => (l.length > 0 ? indent + escapeNixIndented(l) : l)), `${indent.slice(2)}''`];
}

/** `gcScript = pkgs.writeText "nix-cache-gc.js" ''…'';` for the module's `let` (indent: the binding's). */
export function gcScriptLetLines(input: Pick<GcTimerInput, "script">, indent = "  "): string[] {
  const body = nixIndentedLines(input.script ?? gcScriptText(), `${indent}  `);
  return [
    `${indent}# The GC (lib/gc/service.ts and the lib/ modules it imports, bundled by lib/gc/bundle.ts): plain node runs it.`,
    `${indent}gcScript = pkgs.writeText "nix-cache-gc.js" ${body[0]}`,
    ...body.slice(1, -1),
    `${body[body.length - 1]};`,
  ];
}

const option = (indent: string, name: string, type: string, dflt: string, description: string) => [
  `${indent}${name} = lib.mkOption {`,
  `${indent}  type = ${type};`,
  `${indent}  default = ${dflt};`,
  `${indent}  description = ${nixString(description)};`,
  `${indent}};`,
];

/** The `gc = { … };` option declarations, inside `options.services.nix-cache-builder = { … };` (indent: its entries'). */
export function gcOptionLines(input: Pick<GcTimerInput, "retainDays">, indent = "    "): string[] {
  if (!Number.isSafeInteger(input.retainDays) || input.retainDays < 1) {
    throw new Error(`gc retainDays must be a whole number of days ≥ 1 (nix-cache:retainDays), not ${input.retainDays}`);
  }
  const i = `${indent}  `;
  return [
    `${indent}# The daily closure-safe GC of the cache, run by this host as the least-privilege GC identity.`,
    `${indent}gc = {`,
    ...option(i, "enable", "lib.types.bool", "true",
      "Whether this host runs the cache's closure-safe garbage collector on gc.schedule (nix-cache-gc.service and its timer): it deletes " +
        "what no closure pushed or refreshed within gc.retainDays, and no pin, needs, and never leaves a narinfo without its NAR or its " +
        "references. Run it on one host per cache (a lease keeps two from running at once). `systemctl start nix-cache-gc` runs it now."),
    ...option(i, "credentialsFile", "lib.types.str", nixString(GC_DEFAULTS.credentialsFile),
      "Path of the AWS shared credentials file with the GC identity's profile (the gcCredentials output; `npm run host-config -- " +
        `--secrets-dir\` writes it as ${GC_CREDENTIALS_FILE_NAME}). A string path outside the Nix store, like signingKeyFile.`),
    ...option(i, "schedule", "lib.types.str", nixString(GC_DEFAULTS.schedule),
      "When the GC runs: a systemd calendar event (OnCalendar), e.g. \"daily\" or \"Sun 03:00\". A run missed while the host was off " +
        `runs at the next boot (Persistent), and each run starts up to ${GC_DEFAULTS.randomizedDelaySec} late (RandomizedDelaySec).`),
    ...option(i, "retainDays", "lib.types.ints.positive", String(input.retainDays),
      "Closures of paths pushed or refreshed (by the drain) within this many days are kept, with everything they reference. The default " +
        "is the stack's nix-cache:retainDays."),
    ...option(i, "extraArgs", "lib.types.listOf lib.types.str", "[ ]",
      "More arguments for each run, as `npm run gc` takes them, e.g. [ \"--grace\" \"12h\" ] or [ \"--dry-run\" ] to see what a run " +
        "would delete (in the journal: journalctl -u nix-cache-gc) before letting it."),
    `${indent}};`,
  ];
}

/** An entry of the module's `assertions = [ … ];` (indent: the entries'); needs the module's isSecretPath. */
export function gcAssertionLines(indent = "      "): string[] {
  return [
    `${indent}{`,
    `${indent}  assertion = !cfg.gc.enable || isSecretPath cfg.gc.credentialsFile;`,
    `${indent}  message = "services.nix-cache-builder: gc.credentialsFile must be an absolute path outside the Nix store (a path in a .nix file is copied to the world-readable store).";`,
    `${indent}}`,
  ];
}

/**
 * systemd.services.nix-cache-gc and systemd.timers.nix-cache-gc, inside the module's `config = lib.mkIf
 * cfg.enable { … };` (indent: its entries'); need gcScript (gcScriptLetLines) and the option cfg.sslCertFile.
 */
export function gcConfigLines(input: Omit<GcTimerInput, "retainDays" | "script">, indent = "    "): string[] {
  const env: [string, string][] = [
    [GC_ENV.endpoint, nixString(new URL(input.endpoint).origin)],
    [GC_ENV.region, nixString(input.region)],
    [GC_ENV.bucket, nixString(input.bucket)],
    [GC_ENV.retainDays, "toString cfg.gc.retainDays"],
    [GC_ENV.storeDir, nixString(input.storeDir)],
    [GC_ENV.credentialsFile, "cfg.gc.credentialsFile"],
    [GC_ENV.profile, nixString(input.profile)],
    // Read only for an https endpoint; NixOS's bundle holds the cache's CA through security.pki.certificates.
    [GC_ENV.caFile, "cfg.sslCertFile"],
  ];
  const i = indent;
  return [
    `${i}# The closure-safe GC, daily: deletes what no recent or pinned closure needs, never part of a closure.`,
    `${i}systemd.services.${GC_SERVICE_NAME} = lib.mkIf cfg.gc.enable {`,
    `${i}  description = "Closure-safe garbage collection of the nix-cache binary cache";`,
    `${i}  wants = [ "network-online.target" ];`,
    `${i}  after = [ "network-online.target" ];`,
    `${i}  environment = {`,
    ...env.map(([name, value]) => `${i}    ${name} = ${value};`),
    `${i}  };`,
    `${i}  serviceConfig = {`,
    `${i}    Type = "oneshot";`,
    `${i}    ExecStart = "\${pkgs.nodejs}/bin/node \${gcScript} \${lib.escapeShellArgs cfg.gc.extraArgs}";`,
    `${i}    Nice = 19;`,
    `${i}    IOSchedulingClass = "idle";`,
    `${i}    # It only talks to the cache: nothing on this host to write.`,
    `${i}    ProtectSystem = "strict";`,
    `${i}    PrivateTmp = true;`,
    `${i}    NoNewPrivileges = true;`,
    `${i}  };`,
    `${i}};`,
    `${i}systemd.timers.${GC_SERVICE_NAME} = lib.mkIf cfg.gc.enable {`,
    `${i}  wantedBy = [ "timers.target" ];`,
    `${i}  timerConfig = {`,
    `${i}    OnCalendar = cfg.gc.schedule;`,
    `${i}    Persistent = true;`,
    `${i}    RandomizedDelaySec = ${nixString(GC_DEFAULTS.randomizedDelaySec)};`,
    `${i}  };`,
    `${i}};`,
  ];
}
