// `npm run verify [-- --stack NAME]`: checks a deployed cache over the network, as a Nix client and as the
// builder meet it. Reads the stack's outputs and config with the pulumi CLI (whatever backend you are logged
// in to, or PULUMI_BACKEND_URL), prints one PASS/FAIL line per check and a summary, and exits 1 when a check
// fails, 2 when it cannot run (bad arguments, stack unreadable); --help prints the usage.
import * as crypto from "crypto";
import { commandMain, EXIT, ExitCode, OptionSpecs, parseCommandLine, ParsedCommandLine } from "../lib/cli/command";
import { parseS3StoreUrl } from "../lib/s3/pushTarget";
import { SettingsError } from "../lib/config/settings";
import { formatReport, NARINFO_SAMPLE, runChecks } from "../lib/verify/checks";
import { readStack } from "./stackReader";
import { networkProbe, trustedCa } from "./verifyProbe";

const USAGE = `usage: npm run verify [-- --stack NAME] [--full]

Checks a deployed cache over the network, as a Nix client and as the builder meet it, with the stack's
outputs and config (read with the pulumi CLI); prints one PASS/FAIL line per check and a summary.
  --stack NAME, -s NAME  the stack to check (default: the selected stack)
  --full                 narinfo-signatures and closures read every narinfo (default: ${NARINFO_SAMPLE} chosen at
                         random)
  --help, -h             this text
Exit status: 0 every check passed, 1 a check failed, 2 could not run (bad arguments, stack unreadable).`;

const OPTIONS = {
  stack: { type: "string", short: "s", valueName: "NAME" },
  full: { type: "boolean" },
} as const satisfies OptionSpecs;

async function verify({ values: args }: ParsedCommandLine<typeof OPTIONS>): Promise<ExitCode> {
  const { stackName, output, settings, admin } = readStack("verify", args.stack);

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
      full: args.full ?? false,
    },
    probe,
  );
  console.log(formatReport(results));
  return results.every((r) => r.ok) ? EXIT.ok : EXIT.failed;
}

// Settings errors name every bad setting and how to fix it: no stack trace.
commandMain(module, {
  name: "verify",
  usage: USAGE,
  parse: (argv) => parseCommandLine(argv, { options: OPTIONS, usage: USAGE }),
  run: verify,
  known: [SettingsError],
});
