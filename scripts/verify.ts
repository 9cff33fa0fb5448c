// `npm run verify [-- --stack NAME]`: checks a deployed cache over the network, as a Nix client and as the
// builder meet it (a private cache: anonymous reads refused, read as the reader, and through the read proxy when
// given --proxy URL). Reads the stack's outputs and config with the pulumi CLI (whatever backend you are logged
// in to, or PULUMI_BACKEND_URL), prints one PASS/FAIL line per check and a summary, and exits 1 when a check
// fails, 2 when it cannot run (bad arguments, stack unreadable); --help prints the usage.
import * as crypto from "crypto";
import { commandMain, EXIT, ExitCode, OptionSpecs, parseCommandLine, ParsedCommandLine, SetupError } from "../lib/cli/command";
import { parseS3StoreUrl } from "../lib/s3/pushTarget";
import { SettingsError } from "../lib/config/settings";
import { formatReport, NARINFO_SAMPLE, runChecks } from "../lib/verify/checks";
import { privateOutputs, proxyArgs, proxyTarget } from "../lib/verify/privateOutputs";
import { readStack } from "./stackReader";
import { networkProbe, readerProbe, trustedCa } from "./verifyProbe";

const USAGE = `usage: npm run verify [-- --stack NAME] [--full] [--proxy URL [--proxy-host NAME]]

Checks a deployed cache over the network, as a Nix client and as the builder meet it, with the stack's
outputs and config (read with the pulumi CLI); prints one PASS/FAIL line per check and a summary. A private
cache (nix-cache:access private) must refuse anonymous reads and is read as the reader user.
  --stack NAME, -s NAME  the stack to check (default: the selected stack)
  --full                 narinfo-signatures and closures read every narinfo (default: ${NARINFO_SAMPLE} chosen at
                         random)
  --proxy URL            private cache: also check the read proxy at URL (its root, e.g. the stack's proxyUrl)
                         answers a host's token and refuses a request without one (default: no proxy check,
                         as the proxy may not run where verify runs)
  --proxy-host NAME      whose token of readerTokens the proxy check sends (default: the first host by name)
  --help, -h             this text
Exit status: 0 every check passed, 1 a check failed, 2 could not run (bad arguments, stack unreadable).`;

const OPTIONS = {
  stack: { type: "string", short: "s", valueName: "NAME" },
  full: { type: "boolean" },
  proxy: { type: "string", valueName: "URL" },
  "proxy-host": { type: "string", valueName: "NAME" },
} as const satisfies OptionSpecs;

async function verify({ values: args }: ParsedCommandLine<typeof OPTIONS>): Promise<ExitCode> {
  // A bad --proxy / --proxy-host is refused before the stack is read.
  const proxyGiven = proxyArgs(args.proxy, args["proxy-host"]);
  const { stackName, outputs, output, settings, admin } = readStack("verify", args.stack);

  const pushUrl = output("pushUrl");
  const push = parseS3StoreUrl(pushUrl);
  const substituterUrl = output("substituterUrl");
  const builderAccessKey = output("builderAccessKey");
  const trusted = trustedCa(process.env, settings.caCertificate);
  const probe = networkProbe({
    bucket: push.bucket,
    region: push.region,
    builderEndpoint: push.endpoint,
    builder: { accessKey: builderAccessKey, secretKey: output("builderSecretKey") },
    adminEndpoint: settings.endpoint,
    admin,
  }, trusted);
  const input = {
    outputs: { substituterUrl, publicKey: output("publicKey"), secretKey: output("secretKey"), pushUrl },
    settings,
    builderAccessKey,
    random: crypto.randomBytes(6).toString("hex"),
    full: args.full ?? false,
  };

  if (settings.access !== "private") {
    if (proxyGiven) throw new SetupError(`stack ${stackName} is a public cache (nix-cache:access public): it has no read proxy; leave out --proxy`);
    console.log(`verify: stack ${stackName}, cache ${substituterUrl}, builder pushes to ${push.endpoint}/${push.bucket}`);
    return report(await runChecks(input, probe));
  }

  const priv = privateOutputs(outputs, stackName);
  const proxy = proxyGiven && proxyTarget(proxyGiven, priv.readerTokens);
  console.log(
    `verify: stack ${stackName}, private cache ${substituterUrl} read as ${priv.readerAccessKey}, builder pushes to ${push.endpoint}/${push.bucket}; ` +
      (proxy ? `read proxy ${proxy.url} with ${proxy.host}'s token` : `read proxy not checked (give --proxy URL; hosts use ${priv.proxyUrl})`),
  );
  // The reader signs toward the endpoint hosts read from: readerSubstituterUrl's, which is pushUrl's.
  const reader = readerProbe(
    { bucket: push.bucket, region: push.region, endpoint: push.endpoint, reader: { accessKey: priv.readerAccessKey, secretKey: priv.readerSecretKey } },
    trusted,
  );
  return report(await runChecks({ ...input, readerAccessKey: priv.readerAccessKey, ...(proxy ? { proxy } : {}) }, { ...probe, ...reader }));
}

function report(results: Awaited<ReturnType<typeof runChecks>>): ExitCode {
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
