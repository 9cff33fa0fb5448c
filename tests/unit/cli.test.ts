// The command-line convention shared by the project's commands (lib/cli/command.ts).
import {
  allowedOptions,
  Command,
  CommandIo,
  commandMain,
  EXIT,
  failureReport,
  OptionSpecs,
  parseCommandLine,
  positiveInteger,
  runCommand,
  runMain,
  SetupError,
  subsetOf,
  UsageError,
} from "../../lib/cli/command";

const USAGE = "usage: thing [--stack NAME] [--out DIR] [--dry-run]";
const OPTIONS = {
  stack: { type: "string", short: "s", valueName: "NAME" },
  out: { type: "string", valueName: "DIR" },
  "dry-run": { type: "boolean" },
} as const satisfies OptionSpecs;
const ALLOWED = "(allowed: --stack NAME, --out DIR, --dry-run)";

const parse = (argv: string[], allowPositionals?: boolean) => parseCommandLine(argv, { options: OPTIONS, usage: USAGE, allowPositionals });

/** The UsageError `fn` throws (fails the test when it throws nothing or something else). */
function usageErrorOf(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return err as UsageError;
  }
  throw new Error("expected a UsageError, nothing was thrown");
}

describe("parseCommandLine", () => {
  test("reads string options in both forms, short options and flags", () => {
    expect(parse(["--stack", "homelab", "--out=hosts", "--dry-run"])).toEqual({
      values: { stack: "homelab", out: "hosts", "dry-run": true },
      positionals: [],
    });
    expect(parse(["-s", "homelab"])).toEqual({ values: { stack: "homelab" }, positionals: [] });
    expect(parse([])).toEqual({ values: {}, positionals: [] });
    // A value starting with a dash is given inline, as parseArgs asks.
    expect(parse(["--stack=-odd"])).toEqual({ values: { stack: "-odd" }, positionals: [] });
  });

  test("--help and -h answer 'help', whatever else is on the command line", () => {
    expect(parse(["--help"])).toBe("help");
    expect(parse(["-h"])).toBe("help");
    expect(parse(["--out", "x", "--help"])).toBe("help");
    expect(parse(["--bogus", "-h", "extra"])).toBe("help");
  });

  test("an unknown option: one line naming it and the allowed options, the usage kept for after it", () => {
    const err = usageErrorOf(() => parse(["--stack", "a", "--secret-dir", "y"]));
    expect(err.message).toBe(`unknown argument '--secret-dir' ${ALLOWED}`);
    expect(err.message).not.toContain("\n");
    expect(err.usage).toBe(USAGE);
    expect(usageErrorOf(() => parse(["--secret-dir=y"])).message).toBe(`unknown argument '--secret-dir' ${ALLOWED}`);
    expect(usageErrorOf(() => parse(["-x"])).message).toBe(`unknown argument '-x' ${ALLOWED}`);
  });

  test("a missing or empty value names the option", () => {
    expect(usageErrorOf(() => parse(["--out"])).message).toBe(`--out needs a value ${ALLOWED}`);
    expect(usageErrorOf(() => parse(["-s"])).message).toBe(`-s needs a value ${ALLOWED}`);
    expect(usageErrorOf(() => parse(["--out", "--stack", "s"])).message).toBe(`--out needs a value ${ALLOWED}`);
    expect(usageErrorOf(() => parse(["--out="])).message).toBe(`--out needs a value ${ALLOWED}`);
  });

  test("a value given to a flag is refused", () => {
    expect(usageErrorOf(() => parse(["--dry-run=yes"])).message).toBe(`--dry-run takes no value ${ALLOWED}`);
    expect(usageErrorOf(() => parse(["--help=yes"])).message).toBe(`--help takes no value ${ALLOWED}`);
  });

  test("an unexpected positional argument is refused unless the command takes them", () => {
    expect(usageErrorOf(() => parse(["--out", "x", "extra"])).message).toBe(`unknown argument 'extra' ${ALLOWED}`);
    expect(usageErrorOf(() => parse(["--", "--out"])).message).toBe(`unknown argument '--out' ${ALLOWED}`);
    expect(parse(["--out", "x", "a", "b"], true)).toEqual({ values: { out: "x" }, positionals: ["a", "b"] });
  });

  test("the allowed list follows the declared options", () => {
    expect(allowedOptions(OPTIONS)).toBe("--stack NAME, --out DIR, --dry-run");
    expect(allowedOptions({ x: { type: "string" } })).toBe("--x VALUE");
  });
});

describe("value checks", () => {
  test("positiveInteger takes whole numbers from 1 and names the option otherwise", () => {
    expect(positiveInteger("--runs", "5")).toBe(5);
    expect(positiveInteger("--runs", "10000")).toBe(10000);
    for (const bad of ["x", "0", "-1", "1.5", "1e3", " 3", "", "99999999999999999999"]) {
      expect(() => positiveInteger("--runs", bad)).toThrow(new UsageError(`--runs needs a positive whole number, not '${bad}'`));
    }
  });

  test("subsetOf takes one or more of the allowed parts, comma-separated", () => {
    const parts = ["deploy", "scale", "push", "pull"] as const;
    expect(subsetOf("--only", "push,pull", parts)).toEqual(["push", "pull"]);
    expect(subsetOf("--only", "scale, scale", parts)).toEqual(["scale"]);
    expect(() => subsetOf("--only", "push,nope", parts)).toThrow(
      new UsageError("--only takes one or more of deploy,scale,push,pull (comma-separated), not 'nope' in 'push,nope'"),
    );
    expect(() => subsetOf("--only", "push,", parts)).toThrow(UsageError);
  });
});

describe("failureReport and runCommand", () => {
  class KnownError extends Error {}

  test("exit codes: usage and setup errors 2 with their message, the usage after a usage error", () => {
    expect(failureReport(new UsageError("bad --x", "usage: own"), "usage: command")).toEqual({ code: EXIT.cannotRun, text: "bad --x\nusage: own" });
    expect(failureReport(new UsageError("bad --x"), "usage: command")).toEqual({ code: 2, text: "bad --x\nusage: command" });
    expect(failureReport(new SetupError("cannot read the stack"), "usage: command")).toEqual({ code: 2, text: "cannot read the stack" });
    expect(failureReport(new KnownError("bad settings"), undefined, [KnownError])).toEqual({ code: 2, text: "bad settings" });
    const eacces = Object.assign(new Error("EACCES: permission denied, mkdir '/x'"), { code: "EACCES", syscall: "mkdir" });
    expect(failureReport(eacces, undefined)).toEqual({ code: 2, text: "EACCES: permission denied, mkdir '/x'" });
    expect(failureReport("a string", undefined)).toEqual({ code: 2, text: "a string" });
  });

  test("unexpected errors keep their stack", () => {
    const bug = new TypeError("x is undefined");
    const report = failureReport(bug, "usage: command", [KnownError]);
    expect(report.code).toBe(EXIT.cannotRun);
    expect(report.text).toBe(bug.stack);
    expect(report.text).toContain("cli.test.ts");
  });

  async function run(main: () => Promise<0 | 1 | 2 | void>) {
    const io = { stderr: "", code: -1 };
    const fake: CommandIo = { log: () => undefined, error: (t) => void (io.stderr += t), exit: (c) => void (io.code = c) };
    await runCommand("thing", main, { usage: USAGE, known: [KnownError], io: fake });
    return io;
  }

  test("runCommand exits with what main returns, 0 when nothing, and prints `name: message` on a throw", async () => {
    expect(await run(async () => undefined)).toEqual({ stderr: "", code: 0 });
    expect(await run(async () => EXIT.failed)).toEqual({ stderr: "", code: 1 });
    expect(await run(async () => parse(["--bogus"]) && EXIT.ok)).toEqual({
      stderr: `thing: unknown argument '--bogus' ${ALLOWED}\n${USAGE}\n`,
      code: 2,
    });
    expect(await run(async () => { throw new KnownError("no such stack"); })).toEqual({ stderr: "thing: no such stack\n", code: 2 });
  });
});

describe("runMain and commandMain (a script's bottom)", () => {
  class KnownError extends Error {}
  const ran: unknown[] = [];
  const command: Command<{ stack?: string; dryRun: boolean }> = {
    name: "thing",
    usage: USAGE,
    parse: (argv) => {
      const parsed = parse([...argv]);
      return parsed === "help" ? "help" : { stack: parsed.values.stack, dryRun: parsed.values["dry-run"] ?? false };
    },
    run: async (args) => {
      ran.push(args);
      if (args.stack === "broken") throw new KnownError("stack broken cannot be read");
      return args.dryRun ? EXIT.ok : EXIT.failed;
    },
    known: [KnownError],
  };
  async function main(argv: string[]) {
    const io = { stdout: "", stderr: "", code: -1 };
    const fake: CommandIo = { log: (l) => void (io.stdout += `${l}\n`), error: (t) => void (io.stderr += t), exit: (c) => void (io.code = c) };
    await runMain(command, argv, fake);
    return io;
  }
  beforeEach(() => (ran.length = 0));

  test("--help prints the usage on stdout and exits 0 without running; otherwise run gets the parsed arguments and its code is the exit code", async () => {
    expect(await main(["--dry-run", "-h"])).toEqual({ stdout: `${USAGE}\n`, stderr: "", code: 0 });
    expect(ran).toEqual([]);
    expect(await main(["--dry-run", "-s", "prod"])).toEqual({ stdout: "", stderr: "", code: 0 });
    expect(await main([])).toEqual({ stdout: "", stderr: "", code: 1 });
    expect(ran).toEqual([{ stack: "prod", dryRun: true }, { stack: undefined, dryRun: false }]);
  });

  test("a bad argument: the usage error and exit 2, nothing run; a known error from run: its message, exit 2", async () => {
    expect(await main(["--bogus"])).toEqual({ stdout: "", stderr: `thing: unknown argument '--bogus' ${ALLOWED}\n${USAGE}\n`, code: 2 });
    expect(ran).toEqual([]);
    expect(await main(["--stack", "broken"])).toEqual({ stdout: "", stderr: "thing: stack broken cannot be read\n", code: 2 });
  });

  test("commandMain runs nothing when the module is not the program node runs (a test importing the script)", () => {
    // Jest makes this test file node's main module: a module object of the same shape that is not it.
    const imported = { ...module } as NodeModule;
    commandMain(imported, command);
    expect(ran).toEqual([]);
  });
});
