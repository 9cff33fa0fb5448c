// `npm run verify [-- --stack NAME]`: checks a deployed cache over the network, as a Nix client and as the
// builder meet it. Reads the stack's outputs and config with the pulumi CLI (whatever backend you are logged
// in to, or PULUMI_BACKEND_URL), prints one PASS/FAIL line per check and a summary, and exits 1 when a check
// fails (2 when the stack cannot be read).
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as path from "path";
import { parseS3StoreUrl } from "../lib/pushTarget";
import { CONFIG_NAMESPACE, parseSettings, RawSettings, SettingsError } from "../lib/settings";
import { formatReport, runChecks } from "../lib/verify";
import { adminCredentialsFrom } from "../providers/minioClients";
import { networkProbe, trustedCa } from "./verifyProbe";

const PROJECT_DIR = path.resolve(__dirname, "..");
const USAGE = "usage: npm run verify [-- --stack NAME]";

class SetupError extends Error {}

function parseArgs(argv: string[]): { stack?: string } {
  const args: { stack?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--stack" || a === "-s") {
      const v = argv[++i];
      if (!v) throw new SetupError(`--stack needs a stack name\n${USAGE}`);
      args.stack = v;
    } else if (a.startsWith("--stack=")) {
      args.stack = a.slice("--stack=".length);
    } else if (a === "--help" || a === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else {
      throw new SetupError(`unknown argument '${a}'\n${USAGE}`);
    }
  }
  return args;
}

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

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
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
  const keys: (keyof RawSettings)[] = [
    "endpoint", "publicUrl", "region", "bucket", "builderUser", "keyName", "storeDir",
    "wantMassQuery", "priority", "expireDays", "anonymousList", "forceDestroy", "caCertificate",
  ];
  const raw: RawSettings = Object.fromEntries(keys.map((k) => [k, configValue(`${CONFIG_NAMESPACE}:${k}`)]));
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
  return results.every((r) => r.ok) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const known = err instanceof SetupError || err instanceof SettingsError || !(err instanceof Error);
    // Unexpected errors keep their stack trace, for a bug report.
    console.error(`verify: ${known ? String((err as Error).message ?? err) : ((err as Error).stack ?? (err as Error).message)}`);
    process.exit(2);
  },
);
