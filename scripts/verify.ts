// `npm run verify [-- --stack NAME]`: checks a deployed cache over the network, as a Nix client and as the
// builder meet it. Reads the stack's outputs and config with the pulumi CLI (whatever backend you are logged
// in to, or PULUMI_BACKEND_URL), prints one PASS/FAIL line per check and a summary, and exits 1 when a check
// fails, 2 when it cannot run (bad arguments, stack unreadable); --help prints the usage.
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as path from "path";
import { EXIT, ExitCode, OptionSpecs, parseCommandLine, runCommand, SetupError } from "../lib/cli";
import { parseS3StoreUrl } from "../lib/pushTarget";
import { CONFIG_NAMESPACE, parseSettings, RawSettings, SETTING_KEYS, SettingsError } from "../lib/settings";
import { formatReport, runChecks } from "../lib/verify";
import { adminCredentialsFrom } from "../providers/minioClients";
import { networkProbe, trustedCa } from "./verifyProbe";

const PROJECT_DIR = path.resolve(__dirname, "..");
const USAGE = `usage: npm run verify [-- --stack NAME]

Checks a deployed cache over the network, as a Nix client and as the builder meet it, with the stack's
outputs and config (read with the pulumi CLI); prints one PASS/FAIL line per check and a summary.
  --stack NAME, -s NAME  the stack to check (default: the selected stack)
  --help, -h             this text
Exit status: 0 every check passed, 1 a check failed, 2 could not run (bad arguments, stack unreadable).`;

const OPTIONS = { stack: { type: "string", short: "s", valueName: "NAME" } } as const satisfies OptionSpecs;

function pulumi(args: string[], stack: string | undefined): string {
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
        "Run verify where `pulumi stack output` works: logged in to the stack's backend (or PULUMI_BACKEND_URL set), " +
        "PULUMI_CONFIG_PASSPHRASE set for a passphrase stack, and the stack selected or named with -- --stack NAME.",
    );
  }
}

type ConfigJson = Record<string, { value?: unknown; secret?: boolean }>;

async function main(): Promise<ExitCode> {
  const parsed = parseCommandLine(process.argv.slice(2), { options: OPTIONS, usage: USAGE });
  if (parsed === "help") {
    console.log(USAGE);
    return EXIT.ok;
  }
  const args = parsed.values;
  const stackName = args.stack ?? pulumi(["stack", "--show-name"], undefined).trim();
  const outputs = JSON.parse(pulumi(["stack", "output", "--json", "--show-secrets"], args.stack)) as Record<string, unknown>;
  const config = JSON.parse(pulumi(["config", "--json", "--show-secrets"], args.stack)) as ConfigJson;

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
  const admin = adminCredentialsFrom({ get: configValue });

  const pushUrl = output("pushUrl");
  const push = parseS3StoreUrl(pushUrl);
  const substituterUrl = output("substituterUrl");
  const builderAccessKey = output("builderAccessKey");
  console.log(`verify: stack ${stackName}, cache ${substituterUrl}, builder pushes to ${push.endpoint}/${push.bucket}`);

  const probe = networkProbe({
    bucket: push.bucket,
    region: push.region,
    builderEndpoint: push.endpoint,
    builder: { accessKey: builderAccessKey, secretKey: output("builderSecretKey") },
    adminEndpoint: settings.endpoint,
    admin,
  }, trustedCa(process.env, settings.caCertificate));
  const results = await runChecks(
    {
      outputs: { substituterUrl, publicKey: output("publicKey"), secretKey: output("secretKey"), pushUrl },
      settings,
      builderAccessKey,
      random: crypto.randomBytes(6).toString("hex"),
    },
    probe,
  );
  console.log(formatReport(results));
  return results.every((r) => r.ok) ? EXIT.ok : EXIT.failed;
}

// Settings errors name every bad setting and how to fix it: no stack trace.
void runCommand("verify", main, { usage: USAGE, known: [SettingsError] });
