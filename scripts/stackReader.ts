// Reading a deployed stack the way the operator's commands do (npm run verify, npm run resign): its outputs and
// config through the pulumi CLI (whatever backend you are logged in to, or PULUMI_BACKEND_URL; the
// passphrase from PULUMI_CONFIG_PASSPHRASE(_FILE)), secrets shown. Every failure is a SetupError (exit 2) that
// says what to do.
import { execFileSync } from "child_process";
import * as path from "path";
import { SetupError } from "../lib/cli/command";
import { CacheSettings, CONFIG_NAMESPACE, parseSettings, RawSettings, SETTING_KEYS } from "../lib/config/settings";
import { AdminCredentials, adminCredentialsFrom } from "../providers/minioClients";

const PROJECT_DIR = path.resolve(__dirname, "..");

/** Runs the pulumi CLI in the project directory; `command` names the caller in the error. */
export function pulumiCli(command: string, args: string[], stack: string | undefined): string {
  const full = stack ? [...args, "--stack", stack] : args;
  try {
    return execFileSync("pulumi", full, {
      cwd: PROJECT_DIR,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PULUMI_SKIP_UPDATE_CHECK: "1" },
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? "").trim();
    throw new SetupError(
      `cannot read the stack (pulumi ${args.slice(0, 2).join(" ")}): ${stderr || (err as Error).message}\n` +
        `Run ${command} where \`pulumi stack output\` works: logged in to the stack's backend (or PULUMI_BACKEND_URL set), ` +
        "PULUMI_CONFIG_PASSPHRASE set for a passphrase stack, and the stack selected or named with -- --stack NAME.",
    );
  }
}

type ConfigJson = Record<string, { value?: unknown; secret?: boolean }>;

export interface StackView {
  stackName: string;
  /** Every output, secrets shown. */
  outputs: Record<string, unknown>;
  /** A non-empty string output, else a SetupError saying to run `pulumi up`. */
  output(name: string): string;
  /** A config value (`nix-cache:NAME`) as text, undefined when unset. */
  configValue(key: string): string | undefined;
  settings: CacheSettings;
  admin: AdminCredentials;
}

/** Reads the stack `stack` (default: the selected one) with the pulumi CLI. */
export function readStack(command: string, stack: string | undefined): StackView {
  const stackName = stack ?? pulumiCli(command, ["stack", "--show-name"], undefined).trim();
  const outputs = JSON.parse(pulumiCli(command, ["stack", "output", "--json", "--show-secrets"], stack)) as Record<string, unknown>;
  const config = JSON.parse(pulumiCli(command, ["config", "--json", "--show-secrets"], stack)) as ConfigJson;
  const output = (name: string): string => {
    const v = outputs[name];
    if (typeof v !== "string" || v === "") throw new SetupError(`stack ${stackName} has no output '${name}': run \`pulumi up\` first`);
    return v;
  };
  const configValue = (key: string): string | undefined => {
    const v = config[key]?.value;
    return v === undefined || v === null ? undefined : String(v);
  };
  const raw: RawSettings = Object.fromEntries(SETTING_KEYS.map((k) => [k, configValue(`${CONFIG_NAMESPACE}:${k}`)]));
  const settings = parseSettings(raw);
  let admin: AdminCredentials;
  try {
    admin = adminCredentialsFrom({ get: configValue });
  } catch (err) {
    throw new SetupError((err as Error).message);
  }
  return { stackName, outputs, output, configValue, settings, admin };
}
