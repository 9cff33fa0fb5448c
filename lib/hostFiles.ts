// What `npm run host-config` writes, decided from the stack outputs: the client and builder modules, the
// non-secret outputs as JSON, and (only when asked, into a separate directory) the two secret files.
import * as path from "path";
import { AWS_CREDENTIALS_FILE_NAME, builderModule, SIGNING_KEY_FILE_NAME } from "./builderModule";
import { nixosModule } from "./hostConfig";

/** What `pulumi stack output --json` prints in place of a secret value when --show-secrets is not given. */
export const SECRET_MARKER = "[secret]";

/** Outputs that are secret whatever the state says: never written outside --secrets-dir. */
export const SECRET_OUTPUTS: readonly string[] = ["secretKey", "builderSecretKey", "awsCredentials"];

export const CLIENT_MODULE_FILE = "nix-cache.nix";
export const BUILDER_MODULE_FILE = "nix-cache-builder.nix";
export const OUTPUTS_JSON_FILE = "nix-cache.json";

export const USAGE = "usage: npm run host-config -- [--stack NAME] --out DIR [--secrets-dir DIR]";

export interface HostConfigArgs {
  /** The stack to read; undefined means the currently selected stack. */
  stack?: string;
  /** Absolute directory for the .nix and .json files. */
  out: string;
  /** Absolute directory for the secret files; undefined means none are written. */
  secretsDir?: string;
}

/** Parses the command line; relative directories are taken from `cwd` (the directory the user ran npm in). */
export function parseHostConfigArgs(argv: readonly string[], cwd: string): HostConfigArgs | "help" {
  const values: Partial<Record<"--stack" | "--out" | "--secrets-dir", string>> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") return "help";
    const eq = arg.indexOf("=");
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (flag !== "--stack" && flag !== "--out" && flag !== "--secrets-dir") {
      throw new Error(`unknown argument '${arg}' (allowed: --stack NAME, --out DIR, --secrets-dir DIR)\n${USAGE}`);
    }
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === "" || (eq < 0 && value.startsWith("--"))) {
      throw new Error(`${flag} needs a value\n${USAGE}`);
    }
    values[flag] = value;
  }
  if (!values["--out"]) throw new Error(`--out DIR is required: the directory to write the host files to\n${USAGE}`);
  const out = path.resolve(cwd, values["--out"]);
  const secretsDir = values["--secrets-dir"] ? path.resolve(cwd, values["--secrets-dir"]) : undefined;
  // The .nix files go into a flake or /etc/nixos; a flake copies its whole directory into the
  // world-readable /nix/store, so secrets next to (or below) them would end up there.
  if (secretsDir && (secretsDir === out || secretsDir.startsWith(out + path.sep))) {
    throw new Error(
      `--secrets-dir (${secretsDir}) must not be --out or inside it: the .nix files go into a flake or /etc/nixos, ` +
        "and a flake copies its whole directory into the world-readable Nix store",
    );
  }
  return { stack: values["--stack"], out, secretsDir };
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
    throw new Error(`the stack has no '${name}' output: run \`pulumi up\` on it first (or pick another with --stack)`);
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
