// The `gc` command's arguments, pins, and report: shared by `npm run gc` (scripts/gc.ts, which reads the stack)
// and the builder's daily GC service (lib/gc/service.ts, which reads its environment). Imports only lib/ modules
// without dependencies, so the builder's GC script can bundle it.
import * as fs from "fs";
import { allowedOptions, EXIT, ExitCode, OptionSpecs, parseCommandLine, UsageError } from "../cli/command";
import { progressLine, ProgressStream } from "../cli/progress";
import { checkPinName, formatBytes, formatDuration, narinfoKey, parseDuration, PIN_PREFIX, storePathHash } from "./plan";
import { GcOptions, GcReport, GcStore, LeaseHeld, readPins, runGc } from "./run";

export const DEFAULT_GRACE = "6h";

export const GC_USAGE = `usage: npm run gc [-- --stack NAME] [--dry-run] [--retain-days N] [--grace DURATION] [--keep-broken] [--verbose]
       npm run gc -- pin NAME STOREPATH [--stack NAME]
       npm run gc -- unpin NAME [--stack NAME]
       npm run gc -- pins [--stack NAME]

Collects what no recent or pinned closure needs, and never leaves a narinfo without its NAR or the narinfos of
its references. Roots: paths pushed or refreshed (by the builder's drain) within the retention, paths younger
than the grace period, and pins. Everything their References reach stays; the rest, once older than the grace
period, is deleted, dependents first, NARs last. Narinfos whose closure is already broken (left by an expiry rule)
are removed too, so hosts are never served an incomplete closure. One GC runs at a time.
  --stack NAME, -s NAME  the stack (default: the selected stack)
  --dry-run              delete nothing; report what would go
  --retain-days N        keep closures of paths pushed or refreshed in the last N days (default: the stack's
                         nix-cache:retainDays, 7); 0 with --grace 0s keeps only pinned closures
  --retain-since TIME    instead: keep closures of paths pushed or refreshed at or after TIME (ISO 8601 with a
                         time zone, e.g. 2026-12-01T00:00:00Z)
  --grace DURATION       never delete what is younger than this, e.g. 6h, 30m, 0s (default ${DEFAULT_GRACE}; longer than any push)
  --keep-broken          report broken closures but do not remove them
  --verbose              one line per deleted key
  --help, -h             this text
Pins keep a closure forever (e.g. each host's current system):
  pin NAME STOREPATH     pin the closure of STOREPATH (already in the cache) under NAME
  unpin NAME             remove the pin NAME (its paths then age like any other)
  pins                   list the pins
Exit status: 0 done, 1 something refused or failed (another GC running, a delete failed, a pin refused), 2 could not run.`;

export const GC_OPTIONS = {
  stack: { type: "string", short: "s", valueName: "NAME" },
  "dry-run": { type: "boolean" },
  "retain-days": { type: "string", valueName: "N" },
  "retain-since": { type: "string", valueName: "TIME" },
  grace: { type: "string", valueName: "DURATION" },
  "keep-broken": { type: "boolean" },
  verbose: { type: "boolean" },
} as const satisfies OptionSpecs;

export type GcAction =
  | { kind: "gc"; dryRun: boolean; retainMs?: number; retainSince?: Date; graceMs: number; repairBroken: boolean; verbose: boolean }
  | { kind: "pin"; name: string; storePath: string }
  | { kind: "unpin"; name: string }
  | { kind: "pins" };

export interface ParsedGcCommand {
  action: GcAction;
  stack?: string;
}

/** Days as a number ≥ 0 (fractions allowed: tests and careful users keep hours). */
export function retainDaysMs(flag: string, value: string): number {
  if (!/^\d+(\.\d+)?$/.test(value)) throw new UsageError(`${flag} needs a number of days ≥ 0 (e.g. 7, 0.5, 0), not '${value}'`);
  return Math.round(Number(value) * 86_400_000);
}

/** An ISO 8601 date-time with a time zone (Z or ±hh:mm): a local time would mean another instant on each host. */
export function retainSinceDate(flag: string, value: string): Date {
  const date = new Date(value);
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/.test(value) || Number.isNaN(date.getTime())) {
    throw new UsageError(`${flag} needs an ISO 8601 time with a time zone (e.g. 2026-12-01T00:00:00Z), not '${value}'`);
  }
  return date;
}

export function graceMs(flag: string, value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new UsageError(`${flag} needs a duration like 6h, 30m, 90s, 1h30m or 0s, not '${value}'`);
  return ms;
}

/** Parses the command line: "help", or what to do. */
export function parseGcCommand(argv: readonly string[]): ParsedGcCommand | "help" {
  const parsed = parseCommandLine(argv, { options: GC_OPTIONS, usage: GC_USAGE, allowPositionals: true });
  if (parsed === "help") return "help";
  const v = parsed.values;
  const [verb, ...rest] = parsed.positionals;
  const onlyFor = (flags: (keyof typeof v)[]) => {
    const stray = (Object.keys(v) as (keyof typeof v)[]).filter((k) => k !== "stack" && !flags.includes(k));
    if (stray.length > 0) throw new UsageError(`--${String(stray[0])} does not go with '${verb}' (allowed: --stack NAME)`, GC_USAGE);
  };
  const arity = (n: number, shape: string) => {
    if (rest.length !== n) throw new UsageError(`'${verb}' takes ${shape}, got ${rest.length === 0 ? "nothing" : `'${rest.join(" ")}'`}`, GC_USAGE);
  };
  if (verb === undefined) {
    if (v["retain-days"] !== undefined && v["retain-since"] !== undefined) {
      throw new UsageError("--retain-days and --retain-since do not go together (give one)", GC_USAGE);
    }
    return {
      stack: v.stack,
      action: {
        kind: "gc",
        dryRun: v["dry-run"] ?? false,
        retainMs: v["retain-days"] === undefined ? undefined : retainDaysMs("--retain-days", v["retain-days"]),
        retainSince: v["retain-since"] === undefined ? undefined : retainSinceDate("--retain-since", v["retain-since"]),
        graceMs: graceMs("--grace", v.grace ?? DEFAULT_GRACE),
        repairBroken: !(v["keep-broken"] ?? false),
        verbose: v.verbose ?? false,
      },
    };
  }
  if (verb === "pin") {
    onlyFor([]);
    arity(2, "NAME STOREPATH");
    const [name, storePath] = rest;
    const nameProblem = checkPinName(name);
    if (nameProblem) throw new UsageError(`pin name '${name}' is not allowed: ${nameProblem}`, GC_USAGE);
    if (!storePathHash(storePath)) throw new UsageError(`'${storePath}' is not a store path (/nix/store/HASH-NAME)`, GC_USAGE);
    return { stack: v.stack, action: { kind: "pin", name, storePath } };
  }
  if (verb === "unpin") {
    onlyFor([]);
    arity(1, "NAME");
    return { stack: v.stack, action: { kind: "unpin", name: rest[0] } };
  }
  if (verb === "pins") {
    onlyFor([]);
    arity(0, "no arguments");
    return { stack: v.stack, action: { kind: "pins" } };
  }
  throw new UsageError(`unknown command '${verb}' (allowed: pin, unpin, pins, or none to collect; options: ${allowedOptions(GC_OPTIONS)})`, GC_USAGE);
}

export interface GcCommandIo {
  log(line: string): void;
  /** A progress line (only on a terminal); undefined: none. `final`: the phase's last count, always shown. */
  progress?(line: string, final: boolean): void;
}

/**
 * Whether a process of this host still runs (a lease it left is stale once it does not). A zombie (killed, not
 * yet reaped by its parent; in a container whose init reaps late, for a while) runs no more: kill(pid, 0) still
 * succeeds on it, so Linux's /proc/PID/stat state decides.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return true; // no /proc (not Linux): kill's answer stands
  }
  // `PID (COMM) STATE …`: COMM may hold spaces and parentheses, the state follows the last ')'.
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}

/**
 * The io of a process: lines on stdout; a progress line on stderr (lib/cli/progress.ts: only when it is a
 * terminal, so systemd's journal and CI logs get none), cleared before each line. `endLine` clears a progress
 * line left shown (before an error).
 */
export function processIo(stderr: ProgressStream = process.stderr): GcCommandIo & { endLine(): void } {
  const progress = progressLine(stderr);
  return {
    log: (line) => {
      progress.clear();
      console.log(line);
    },
    progress: progress.active ? (line, final) => progress.show(line, final) : undefined,
    endLine: () => progress.clear(),
  };
}

/** What the command runs against: the bucket, the stack's settings, who runs it. */
export interface GcContext {
  store: GcStore;
  /** The stack's nix-cache:retainDays. */
  retainDays: number;
  storeDir: string;
  holder: GcOptions["holder"];
  isLocalProcessAlive?(pid: number): boolean;
  /** Test only (NIX_CACHE_GC_TEST_DELETE_DELAY_MS): wait after each delete, so a test can race or kill the sweep. */
  deleteDelayMs?: number;
  settleMs?: number;
}

/** Runs one action; returns the exit code. Throws only when it cannot run (exit 2). */
export async function runGcAction(action: GcAction, ctx: GcContext, io: GcCommandIo): Promise<ExitCode> {
  switch (action.kind) {
    case "pins": {
      const pins = await readPins(ctx.store);
      for (const p of pins) {
        const hash = storePathHash(p.storePath);
        const present = hash !== undefined && (await ctx.store.head(narinfoKey(hash))) !== undefined;
        io.log(`${p.name}\t${p.storePath}${present ? "" : "\t(not in the cache: pins nothing)"}`);
      }
      io.log(`gc: ${pins.length} pin${pins.length === 1 ? "" : "s"}`);
      return EXIT.ok;
    }
    case "pin": {
      if (!action.storePath.startsWith(`${ctx.storeDir}/`)) {
        io.log(`gc: refused: ${action.storePath} is not in the cache's store ${ctx.storeDir}`);
        return EXIT.failed;
      }
      const hash = storePathHash(action.storePath) as string;
      const info = await ctx.store.get(narinfoKey(hash));
      if (!info || !info.body.toString("utf8").includes(`StorePath: ${action.storePath}\n`)) {
        io.log(`gc: refused: ${action.storePath} is not in the cache (no ${narinfoKey(hash)}); push it first, then pin it`);
        return EXIT.failed;
      }
      const r = await ctx.store.put(`${PIN_PREFIX}${action.name}`, `${action.storePath}\n`, { contentType: "text/plain" });
      if (r.outcome !== "written") throw new Error(`writing ${PIN_PREFIX}${action.name}: ${r.outcome}`);
      io.log(`gc: pinned ${action.storePath} as ${action.name}: its closure is kept until \`npm run gc -- unpin ${action.name}\``);
      return EXIT.ok;
    }
    case "unpin": {
      const key = `${PIN_PREFIX}${action.name}`;
      if (!(await ctx.store.head(key))) {
        io.log(`gc: refused: there is no pin '${action.name}' (see \`npm run gc -- pins\`)`);
        return EXIT.failed;
      }
      await ctx.store.delete(key);
      io.log(`gc: unpinned ${action.name}: its paths now age like any other`);
      return EXIT.ok;
    }
    case "gc": {
      const retainMs = action.retainMs ?? ctx.retainDays * 86_400_000;
      const retained = action.retainSince ? `since ${action.retainSince.toISOString()}` : `in the last ${formatDuration(retainMs)}`;
      io.log(
        `gc: keeping closures pushed or refreshed ${retained}, pinned ones, and anything younger than ` +
          `${formatDuration(action.graceMs)}${action.dryRun ? "; dry run: nothing is deleted" : ""}`,
      );
      let report: GcReport;
      try {
        report = await runGc(ctx.store, {
          retainMs,
          retainSince: action.retainSince,
          graceMs: action.graceMs,
          dryRun: action.dryRun,
          repairBroken: action.repairBroken,
          holder: ctx.holder,
          isLocalProcessAlive: ctx.isLocalProcessAlive,
          deleteDelayMs: ctx.deleteDelayMs,
          settleMs: ctx.settleMs,
          onPhase: (text) => io.log(`gc: ${text}`),
          onDeleted: action.verbose ? (step) => io.log(`deleted ${step.key} (${step.reason})`) : undefined,
          onProgress: io.progress
            ? (phase, done, total) => io.progress?.(`gc: ${phase} ${done}${total ? `/${total}` : ""}`, total > 0 && done === total)
            : undefined,
        });
      } catch (err) {
        if (err instanceof LeaseHeld) {
          io.log(`gc: refused: ${err.message}`);
          return EXIT.failed;
        }
        throw err;
      }
      for (const line of formatGcReport(report, action.verbose)) io.log(line);
      return report.failed.length > 0 ? EXIT.failed : EXIT.ok;
    }
  }
}

/** The report: what was found (broken closures, unknown keys, missing pins, races), then one summary line. */
export function formatGcReport(r: GcReport, verbose = false): string[] {
  const lines: string[] = [];
  const p = r.plan;
  const would = r.dryRun ? "would remove" : "removed";
  for (const b of p.broken) {
    const gaps = [
      ...b.missingReferences.map((h) => `reference ${narinfoKey(h)} missing`),
      ...(b.missingNar ? [`NAR ${b.missingNar} missing`] : []),
      ...b.brokenReferences.map((h) => `depends on broken ${narinfoKey(h)}`),
    ];
    const what = b.removed ? (b.live ? `${would} (push it again to restore it)` : `dead: ${would}`) : "kept (--keep-broken)";
    lines.push(`broken closure: ${b.storePath} (${gaps.join("; ")}): ${what}`);
  }
  for (const m of p.missingPins) lines.push(`pin ${m.name}: ${m.storePath} is not in the cache: it pins nothing`);
  for (const u of p.unreadable) lines.push(`unreadable narinfo ${narinfoKey(u.hash)}: ${u.problem}: kept`);
  for (const k of p.cycles) lines.push(`reference cycle: ${k} kept (Nix never writes one; look at it)`);
  if (p.unknownKeys.length > 0) {
    const shown = p.unknownKeys.slice(0, 10).join(", ");
    lines.push(`not the cache's layout, left alone: ${p.unknownKeys.length} keys (${shown}${p.unknownKeys.length > 10 ? ", …" : ""})`);
  }
  for (const x of r.raced) lines.push(`pushed during the GC: ${x.key} references collected ${x.missing.join(", ")}: removed; the builder pushes it again`);
  for (const f of r.failed) lines.push(`failed to delete ${f.key}: ${f.error}`);
  if (verbose) lines.push(`roots: ${p.roots.recent} recent, ${p.roots.young} younger than the grace period, ${p.roots.pinned} pinned (${r.pins.length} pins)`);
  const d = r.deleted;
  const brokenRemoved = p.broken.filter((b) => b.removed).length;
  const parts = [
    `${r.dryRun ? "would keep" : "kept"} ${r.kept.narinfos} paths and ${r.kept.nars} NARs (${formatBytes(r.kept.bytes)})`,
    `${r.dryRun ? "would delete" : "deleted"} ${d.narinfos} paths and ${d.nars} NARs (${formatBytes(d.bytes)})`,
  ];
  if (p.broken.length > 0) parts.push(`${p.broken.length} broken closures found (${brokenRemoved} ${r.dryRun ? "would be removed" : "removed"})`);
  if (r.raced.length > 0) parts.push(`${r.raced.length} racing pushes removed`);
  if (r.failed.length > 0) parts.push(`${r.failed.length} deletes failed (run gc again)`);
  lines.push(`gc${r.dryRun ? " (dry run)" : ""}: ${parts.join(", ")}`);
  return lines;
}
