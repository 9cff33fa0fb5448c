// The command-line convention of the project's commands (npm run gc, resign, verify, host-config, demo, bench, the
// builder's GC service; new commands follow it). Pure: no Pulumi runtime, no I/O except in runCommand and runMain.
// A script's bottom is one call, commandMain(module, { name, usage, parse, run }):
//   - arguments parsed with node's util.parseArgs, strict (parseCommandLine);
//   - --help / -h prints the usage to stdout and exits 0 (runMain);
//   - exit 0 ok, 1 a check failed or something was refused, 2 could not run (bad arguments, stack unreadable,
//     missing tool);
//   - a usage error prints one line naming the bad argument and the allowed ones, then the usage, on stderr,
//     and exits 2 (runCommand).
import { parseArgs } from "util";

export const EXIT = { ok: 0, failed: 1, cannotRun: 2 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A bad command line. The message is one line naming the argument (and the allowed ones); runCommand adds the usage. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The usage text to print after the message; runCommand's own usage when not given. */
    readonly usage?: string,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

/** The command cannot run (stack unreadable, output missing, tool missing): its message says what to do; exit 2. */
export class SetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SetupError";
  }
}

export interface OptionSpec {
  type: "string" | "boolean";
  /** One letter: -x as well as --name. */
  short?: string;
  /** What a string option's value is, for the allowed list and the usage: "NAME" gives `--stack NAME`. */
  valueName?: string;
}
export type OptionSpecs = Record<string, OptionSpec>;

/** The values parseCommandLine found: strings for string options, true for boolean ones, absent when not given. */
export type OptionValues<O extends OptionSpecs> = { [K in keyof O]?: O[K]["type"] extends "boolean" ? boolean : string };

export interface ParsedCommandLine<O extends OptionSpecs> {
  values: OptionValues<O>;
  positionals: string[];
}

/** `--stack NAME, --out DIR, -s` style list of the options, in their declared order (--help is not listed). */
export function allowedOptions(options: OptionSpecs): string {
  return Object.entries(options)
    .map(([name, spec]) => (spec.type === "string" ? `--${name} ${spec.valueName ?? "VALUE"}` : `--${name}`))
    .join(", ");
}

const HELP: OptionSpec = { type: "boolean", short: "h" };

/**
 * util.parseArgs, strict, plus --help/-h: returns "help" when --help or -h is given (whatever else is), else the
 * values. Every command-line mistake becomes one UsageError naming the argument and the allowed options:
 * an unknown option, a missing or empty value (`--out` last, `--out --stack s`, `--out=`), a value given to a
 * flag (`--help=yes`), and a positional argument unless `allowPositionals`.
 */
export function parseCommandLine<O extends OptionSpecs>(
  argv: readonly string[],
  config: { options: O; usage: string; allowPositionals?: boolean },
): ParsedCommandLine<O> | "help" {
  const options: OptionSpecs = { ...config.options, help: HELP };
  const allowPositionals = config.allowPositionals ?? false;
  const allowed = `(allowed: ${allowedOptions(config.options)})`;
  const usageError = (message: string) => new UsageError(`${message} ${allowed}`, config.usage);
  // parseArgs' errors name the argument only in their English text: the tokens of a lenient parse say which one
  // it was. `--out --stack s` gives the token --out with the value "--stack" (strict mode calls that ambiguous).
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  if (tokens.some((t) => t.kind === "option" && t.name === "help" && t.value === undefined)) return "help";

  for (const t of tokens) {
    if (t.kind === "positional" && !allowPositionals) throw usageError(`unknown argument '${t.value}'`);
    if (t.kind !== "option") continue;
    const spec = Object.hasOwn(options, t.name) ? options[t.name] : undefined;
    if (!spec) throw usageError(`unknown argument '${t.rawName}'`);
    if (spec.type === "boolean" && t.value !== undefined) throw usageError(`${t.rawName} takes no value`);
    if (spec.type === "string" && (t.value === undefined || t.value === "" || (!t.inlineValue && t.value.startsWith("-")))) {
      throw usageError(`${t.rawName} needs a value`);
    }
  }
  try {
    const parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals });
    const { help: _, ...values } = parsed.values;
    return { values: values as OptionValues<O>, positionals: parsed.positionals };
  } catch (err) {
    // The checks above catch what parseArgs refuses; this keeps a case they miss a usage error all the same.
    const code = (err as { code?: string }).code;
    if (code?.startsWith("ERR_PARSE_ARGS_")) throw usageError(String((err as Error).message).split("\n")[0]);
    throw err;
  }
}

/** The value of a count option (--runs N): a whole number from 1 up, else a UsageError naming the option. */
export function positiveInteger(flag: string, value: string): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`${flag} needs a positive whole number, not '${value}'`);
  }
  return n;
}

/** The value of a list option (--only a,b): one or more of `allowed`, comma-separated, else a UsageError. */
export function subsetOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T[] {
  const parts = value.split(",").map((p) => p.trim());
  const bad = parts.find((p) => !(allowed as readonly string[]).includes(p));
  if (bad !== undefined) {
    throw new UsageError(`${flag} takes one or more of ${allowed.join(",")} (comma-separated), not '${bad}' in '${value}'`);
  }
  return [...new Set(parts as T[])];
}

export interface CommandIo {
  /** Writes a line to stdout. */
  log(line: string): void;
  /** Writes to stderr. */
  error(text: string): void;
  exit(code: number): void;
}

const processIo: CommandIo = {
  log: (line) => console.log(line),
  error: (text) => process.stderr.write(text),
  exit: (code) => process.exit(code),
};

/** A class of error whose message is enough (says what to do): printed without a stack trace. */
export type KnownError = abstract new (...args: never[]) => Error;

/** What a failure prints (after `name: `) and its exit code. */
export function failureReport(err: unknown, usage: string | undefined, known: readonly KnownError[] = []): { code: ExitCode; text: string } {
  if (err instanceof UsageError) {
    const u = err.usage ?? usage;
    return { code: EXIT.cannotRun, text: u ? `${err.message}\n${u}` : err.message };
  }
  if (!(err instanceof Error)) return { code: EXIT.cannotRun, text: String(err) };
  // Node's system errors (EACCES on the output directory, a full disk) name the path; a stack would not help.
  const system = typeof (err as { syscall?: unknown }).syscall === "string";
  if (err instanceof SetupError || system || known.some((k) => err instanceof k)) return { code: EXIT.cannotRun, text: err.message };
  // Unexpected errors keep their stack trace, for a bug report.
  return { code: EXIT.cannotRun, text: err.stack ?? err.message };
}

/**
 * Runs a command's main and exits with what it returns (EXIT.ok when nothing). A throw prints `name: message`
 * on stderr and exits 2: a UsageError with the usage after it, a SetupError or one of `known` as its message,
 * anything else with its stack.
 */
export async function runCommand(
  name: string,
  main: () => Promise<ExitCode | void>,
  opts: { usage?: string; known?: readonly KnownError[]; io?: CommandIo } = {},
): Promise<void> {
  const io = opts.io ?? processIo;
  let code: ExitCode;
  try {
    code = (await main()) ?? EXIT.ok;
  } catch (err) {
    const report = failureReport(err, opts.usage, opts.known);
    io.error(`${name}: ${report.text}\n`);
    code = report.code;
  }
  io.exit(code);
}

/** A command: what its errors are prefixed with, its usage, its parser and its work. */
export interface Command<A> {
  /** `name: message` on stderr when it fails. */
  name: string;
  usage: string;
  /** The arguments, or "help" for --help/-h: parseCommandLine, or the command's own parser on top of it. */
  parse(argv: readonly string[]): A | "help";
  /** The work; its exit code (EXIT.ok when nothing). */
  run(args: A): Promise<ExitCode | void>;
  /** Errors whose message says what to do (e.g. SettingsError): printed without a stack trace. */
  known?: readonly KnownError[];
}

/** parse, then --help (the usage on stdout, exit 0) or run, then exit with its code; a throw as runCommand says. */
export async function runMain<A>(command: Command<A>, argv: readonly string[], io: CommandIo = processIo): Promise<void> {
  const main = async () => {
    const args = command.parse(argv);
    if (args === "help") {
      io.log(command.usage);
      return EXIT.ok;
    }
    return command.run(args);
  };
  await runCommand(command.name, main, { usage: command.usage, known: command.known, io });
}

/**
 * The bottom of a command's script: runMain on the process's arguments when node runs the script (`mod`, the
 * script's `module`, is node's main module); nothing when a test or another module imports it.
 */
export function commandMain<A>(mod: NodeModule, command: Command<A>): void {
  if (require.main === mod) void runMain(command, process.argv.slice(2));
}
