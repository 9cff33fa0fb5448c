// `npm run resign [-- --stack NAME --dry-run --concurrency N --verbose]`: adds a Sig line of each of the stack's
// keys to every narinfo in the cache that one of them already signs (the key-rotation step "re-sign the cache").
// Reads the keys (output secretKeys, active first; secretKey for a stack from before key sets) and the MinIO
// endpoint, bucket and admin credentials (stack config) with the pulumi CLI, as `npm run verify` does, and works
// on the bucket through the GC's own S3 client (lib/s3/client.ts, lib/signing/resign.ts s3ResignStore). Each
// narinfo is written back with If-Match on the ETag it was read with: a narinfo uploaded again meanwhile is
// never overwritten. Exit 0 all done, 1 something refused or failed, 2 could not run.
//
// Test only: NIX_CACHE_RESIGN_TEST_DELAY_MS=N waits N ms between reading a narinfo and writing it back, so the
// integration test can upload a narinfo again in between (it has no other use).
import { commandMain, EXIT, ExitCode, OptionSpecs, parseCommandLine, ParsedCommandLine, positiveInteger, SetupError } from "../lib/cli/command";
import { progressLine } from "../lib/cli/progress";
import { SigningKey } from "../lib/signing/narinfo";
import { formatResignReport, resignCache, ResignSummary, s3ResignStore } from "../lib/signing/resign";
import { SettingsError } from "../lib/config/settings";
import { publicKeyOf } from "../lib/signing/signingKey";
import { S3Rest } from "../lib/s3/client";
import { readStack, StackView } from "./stackReader";

const USAGE = `usage: npm run resign [-- --stack NAME] [--dry-run] [--concurrency N] [--verbose]

Adds a signature of each of the stack's keys (output secretKeys, active first) to every narinfo in the cache
that one of them already signs, keeping every existing byte. A narinfo that none of them signs (foreign,
tampered, corrupt) is never written: it is reported by name. Safe to run again, and to stop at any time.
  --stack NAME, -s NAME  the stack (default: the selected stack)
  --dry-run              change nothing; say what would be signed
  --concurrency N        narinfos handled at the same time (default 8)
  --verbose              one line per narinfo signed (refused ones are always listed)
  --help, -h             this text
Exit status: 0 done, 1 some narinfo refused or failed, 2 could not run (bad arguments, stack unreadable).`;

const OPTIONS = {
  stack: { type: "string", short: "s", valueName: "NAME" },
  "dry-run": { type: "boolean" },
  concurrency: { type: "string", valueName: "N" },
  verbose: { type: "boolean" },
} as const satisfies OptionSpecs;

/** Our keys from the stack: secretKeys (active first), else the single secretKey; checked against publicKey. */
export function stackKeys(stack: Pick<StackView, "outputs" | "stackName">): SigningKey[] {
  const list = stack.outputs.secretKeys;
  const secrets: unknown[] = Array.isArray(list) && list.length > 0 ? list : [stack.outputs.secretKey];
  const keys = secrets.map((secret, i) => {
    if (typeof secret !== "string" || secret === "") {
      throw new SetupError(`stack ${stack.stackName} has no output 'secretKeys' or 'secretKey': run \`pulumi up\` first`);
    }
    try {
      return { secretKey: secret, publicKey: publicKeyOf(secret) };
    } catch (err) {
      // The message names the problem, never the key.
      throw new SetupError(`key ${i + 1} of the stack's secretKeys is not a Nix secret key (${(err as Error).message})`);
    }
  });
  const active = stack.outputs.publicKey;
  if (typeof active === "string" && active !== "" && keys[0].publicKey !== active) {
    throw new SetupError(`the stack's first secret key is not the active key (publicKey ${active}): run \`pulumi up\` first`);
  }
  return keys;
}

/** The progress line's text: how far, and what came of it so far. */
function progressText(done: number, total: number, s: ResignSummary, dryRun: boolean): string {
  const signed = dryRun ? `${s.wouldSign} would be signed` : `${s.signed} signed`;
  return `resign: ${done}/${total} narinfos (${signed}, ${s.alreadySigned} already signed, ${s.refused.length} refused)`;
}

async function resign({ values: args }: ParsedCommandLine<typeof OPTIONS>): Promise<ExitCode> {
  const concurrency = args.concurrency === undefined ? 8 : positiveInteger("--concurrency", args.concurrency);
  const dryRun = args["dry-run"] ?? false;
  const delayEnv = process.env.NIX_CACHE_RESIGN_TEST_DELAY_MS;
  const delayBeforeWriteMs = delayEnv ? Number(delayEnv) : undefined;

  const stack = readStack("resign", args.stack);
  const keys = stackKeys(stack);
  const { settings } = stack;
  // The GC's client, as the admin; each request within 20 s (as the providers' calls): a hung MinIO fails the run.
  const bucket = new S3Rest({
    endpoint: settings.endpoint,
    region: settings.region,
    bucket: settings.bucket,
    accessKey: stack.admin.accessKey,
    secretKey: stack.admin.secretKey,
    ca: settings.caCertificate || undefined,
    timeoutMs: 20_000,
  });
  const store = s3ResignStore(bucket);
  const names = keys.map((k) => k.publicKey.split(":")[0]);
  console.log(
    `resign: stack ${stack.stackName}, bucket ${settings.bucket} at ${settings.endpoint}, keys ${names.join(", ")} (active first)` +
      (dryRun ? ", dry run: nothing is written" : ""),
  );

  const progress = progressLine();
  // A line on stdout takes the progress line's place on the terminal; the next count draws it again below.
  const say = (line: string) => {
    progress.clear();
    console.log(line);
  };
  let summary: ResignSummary;
  try {
    summary = await resignCache(store, {
      keys,
      dryRun,
      concurrency,
      delayBeforeWriteMs,
      onListed: (n, r) => say(`resign: ${n} narinfos to check${r > 0 ? `, ${r} realisations (not handled)` : ""}`),
      onProgress: (done, total, s) => progress.show(progressText(done, total, s, dryRun), done === total),
      onResult: (key, r) => {
        if (r.kind === "signed" && args.verbose) say(`signed ${key}: added ${r.added.join(", ")}`);
        if (r.kind === "would-sign" && (args.verbose || dryRun)) say(`would sign ${key}: add ${r.added.join(", ")}`);
      },
    });
  } catch (err) {
    // The listing failed (MinIO unreachable, credentials refused, no bucket): nothing was decided.
    throw new SetupError(`cannot list bucket ${settings.bucket} at ${settings.endpoint}: ${(err as Error).message}`);
  } finally {
    progress.clear();
    bucket.close();
  }
  console.log(formatResignReport(summary, dryRun));
  return summary.refused.length > 0 || summary.failed.length > 0 ? EXIT.failed : EXIT.ok;
}

commandMain(module, {
  name: "resign",
  usage: USAGE,
  parse: (argv) => parseCommandLine(argv, { options: OPTIONS, usage: USAGE }),
  run: resign,
  known: [SettingsError],
});
