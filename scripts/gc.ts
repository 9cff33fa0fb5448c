// `npm run gc [-- …]`: the closure-safe garbage collector, and its pins (lib/gc/command.ts has the usage). Reads
// the stack (outputs gcAccessKey/gcSecretKey: it runs as the least-privilege GC identity, which can list, read
// and delete in the bucket but write only gc/; config: endpoint, bucket, region, retainDays, CA) with the pulumi
// CLI, as `npm run verify` does. Exit 0 done, 1 refused or failed, 2 could not run.
//
// Test only: NIX_CACHE_GC_TEST_DELETE_DELAY_MS=N waits N ms after each delete, so the integration tests can
// race pushes against the sweep or kill it half-way (it has no other use).
import * as os from "os";
import { commandMain, ExitCode, SetupError } from "../lib/cli/command";
import { GC_USAGE, parseGcCommand, ParsedGcCommand, processAlive, processIo, runGcAction } from "../lib/gc/command";
import { SettingsError } from "../lib/config/settings";
import { S3Rest } from "../lib/s3/client";
import { readStack } from "./stackReader";

async function gc(parsed: ParsedGcCommand): Promise<ExitCode> {
  const stack = readStack("gc", parsed.stack);
  const { settings } = stack;
  const accessKey = stack.output("gcAccessKey");
  const secretKey = stack.output("gcSecretKey");
  const store = new S3Rest({
    endpoint: settings.endpoint,
    region: settings.region,
    bucket: settings.bucket,
    accessKey,
    secretKey,
    ca: settings.caCertificate || undefined,
  });
  if (parsed.action.kind === "gc") console.log(`gc: stack ${stack.stackName}, bucket ${settings.bucket} at ${settings.endpoint}, as ${accessKey}`);
  const delay = Number(process.env.NIX_CACHE_GC_TEST_DELETE_DELAY_MS ?? "0");
  const io = processIo();
  try {
    const code = await runGcAction(
      parsed.action,
      {
        store,
        retainDays: settings.retainDays,
        storeDir: settings.storeDir,
        holder: { host: os.hostname(), pid: process.pid, command: "npm run gc" },
        isLocalProcessAlive: processAlive,
        deleteDelayMs: delay > 0 ? delay : undefined,
      },
      io,
    );
    return code;
  } catch (err) {
    io.endLine();
    throw new SetupError(`cannot work on bucket ${settings.bucket} at ${settings.endpoint}: ${(err as Error).message}`);
  }
}

commandMain(module, { name: "gc", usage: GC_USAGE, parse: parseGcCommand, run: gc, known: [SettingsError] });
