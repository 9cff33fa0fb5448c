// lib/cli/progress.ts on a fake terminal: drawn in place, throttled (the last count always drawn), cut to the
// terminal's width, cleared; nothing at all off a terminal. And gc's processIo on it: a line clears the progress.
import * as fs from "fs";
import * as path from "path";
import { progressLine, ProgressStream } from "../../lib/cli/progress";
import { processIo } from "../../lib/gc/command";

/** A stream that records what is written; a terminal unless `isTTY` is false. */
function fakeStream(isTTY = true, columns?: number): ProgressStream & { written: string[] } {
  const written: string[] = [];
  return { isTTY, columns, written, write: (text: string) => written.push(text) };
}

describe("progressLine", () => {
  test("on a terminal: each line drawn in place, at most one per interval unless final; clear erases it once", () => {
    const stream = fakeStream();
    let t = 1_000;
    const p = progressLine(stream, { intervalMs: 250, now: () => t });
    expect(p.active).toBe(true);
    p.show("gc: 1/10");
    t += 100;
    p.show("gc: 2/10"); // too soon: skipped
    t += 150;
    p.show("gc: 3/10");
    t += 1;
    p.show("gc: 10/10", true); // the last count: drawn however soon
    p.clear();
    p.clear(); // nothing shown any more: nothing written
    expect(stream.written).toEqual(["\rgc: 1/10\x1b[K", "\rgc: 3/10\x1b[K", "\rgc: 10/10\x1b[K", "\r\x1b[K"]);
  });

  test("a line as wide as the terminal or wider is cut to one column less, ending in '…'", () => {
    const stream = fakeStream(true, 10);
    const p = progressLine(stream, { intervalMs: 0 });
    p.show("123456789");
    p.show("1234567890");
    p.show("resign: 1999/2000 narinfos");
    expect(stream.written).toEqual(["\r123456789\x1b[K", "\r12345678…\x1b[K", "\rresign: …\x1b[K"]);
  });

  test("not a terminal (a pipe, the journal): inactive, writes nothing", () => {
    for (const stream of [fakeStream(false), { written: [] as string[], write(text: string) { this.written.push(text); } }]) {
      const p = progressLine(stream, { intervalMs: 0 });
      expect(p.active).toBe(false);
      p.show("gc: 1/1", true);
      p.clear();
      expect(stream.written).toEqual([]);
    }
  });

  test("imports nothing: the builder's GC script bundles it and runs with plain node", () => {
    const source = fs.readFileSync(path.join(__dirname, "..", "..", "lib", "cli", "progress.ts"), "utf8");
    expect(source).not.toMatch(/\bimport\b|\brequire\(/);
  });
});

describe("gc's processIo", () => {
  let logged: string[];
  let spy: jest.SpyInstance;
  beforeEach(() => {
    logged = [];
    spy = jest.spyOn(console, "log").mockImplementation((line: string) => void logged.push(`log ${line}`));
  });
  afterEach(() => spy.mockRestore());

  test("on a terminal: progress on stderr, cleared before each line on stdout and by endLine", () => {
    const stderr = fakeStream();
    const io = processIo(stderr);
    io.progress?.("gc: listing 5", false);
    io.log("gc: listed");
    io.progress?.("gc: deleting 1/1", true);
    io.endLine();
    expect(stderr.written).toEqual(["\rgc: listing 5\x1b[K", "\r\x1b[K", "\rgc: deleting 1/1\x1b[K", "\r\x1b[K"]);
    expect(logged).toEqual(["log gc: listed"]);
  });

  test("off a terminal: no progress at all (runGcAction then asks for none), lines as they are", () => {
    const stderr = fakeStream(false);
    const io = processIo(stderr);
    expect(io.progress).toBeUndefined();
    io.log("gc: done");
    io.endLine();
    expect(stderr.written).toEqual([]);
    expect(logged).toEqual(["log gc: done"]);
  });
});
