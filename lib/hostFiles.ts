// What `npm run host-config` writes, decided from the stack outputs: the client and builder modules, the
// non-secret outputs as JSON, and (only when asked, into a separate directory) the two secret files.
import * as path from "path";
import { AWS_CREDENTIALS_FILE_NAME, builderModule, SIGNING_KEY_FILE_NAME } from "./builderModule";
import { OptionSpecs, parseCommandLine, SetupError, UsageError } from "./cli";
import { nixosModule } from "./hostConfig";

/** What `pulumi stack output --json` prints in place of a secret value when --show-secrets is not given. */
export const SECRET_MARKER = "[secret]";

/** Outputs that are secret whatever the state says: never written outside --secrets-dir. */
export const SECRET_OUTPUTS: readonly string[] = ["secretKey", "builderSecretKey", "awsCredentials"];

export const CLIENT_MODULE_FILE = "nix-cache.nix";
export const BUILDER_MODULE_FILE = "nix-cache-builder.nix";
export const OUTPUTS_JSON_FILE = "nix-cache.json";

export const USAGE = `usage: npm run host-config -- [--stack NAME] --out DIR [--secrets-dir DIR]

Writes the files NixOS hosts use, from a deployed stack's outputs (read with \`pulumi stack output\`):
  --stack NAME       the stack to read (default: the selected stack)
  --out DIR          where to write ${CLIENT_MODULE_FILE}, ${BUILDER_MODULE_FILE} and ${OUTPUTS_JSON_FILE}
  --secrets-dir DIR  also write the two secret files there (mode 0600); not --out or inside it
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
 * Parses the command line (lib/cli.ts's convention); relative directories are taken from `cwd` (the directory
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

function requireString(outputs: Outputs, name: string): string {
  const value = outputs[name];
  if (typeof value !== "string" || value === "" || value === SECRET_MARKER) {
    throw new SetupError(`the stack has no '${name}' output: run \`pulumi up\` on it first (or pick another with --stack)`);
  }
  return value;
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
}

/**
 * The files for a stack's outputs. `plain` is `pulumi stack output --json` (secrets masked); `revealed`, when
 * secrets are wanted, is the same with --show-secrets. The .nix and .json files are built from `plain` only,
 * so no secret can reach them.
 */
export function hostFiles(plain: Outputs, revealed?: Outputs): HostFiles {
  const substituter = requireString(plain, "substituterUrl");
  const publicKey = requireString(plain, "publicKey");
  const pushUrl = requireString(plain, "pushUrl");
  // Stacks deployed before HTTPS support have no caCertificate output; "" means none.
  const ca = typeof plain.caCertificate === "string" && plain.caCertificate !== "" ? plain.caCertificate : undefined;
  const files: HostFiles = {
    public: [
      { name: CLIENT_MODULE_FILE, content: nixosModule(substituter, publicKey, ca) },
      { name: BUILDER_MODULE_FILE, content: builderModule({ pushUrl, publicKey, caCertificate: ca }) },
      { name: OUTPUTS_JSON_FILE, content: JSON.stringify(nonSecretOutputs(plain), null, 2) + "\n" },
    ],
    secret: [],
  };
  if (revealed) {
    // Nix reads a secret-key-files entry as NAME:BASE64, with no trailing newline (as `nix key generate-secret` writes).
    files.secret.push({ name: SIGNING_KEY_FILE_NAME, content: requireString(revealed, "secretKey").trim() });
    files.secret.push({ name: AWS_CREDENTIALS_FILE_NAME, content: requireString(revealed, "awsCredentials") });
  }
  return files;
}
