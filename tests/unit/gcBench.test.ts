// The gc figure's pure pieces (bench/gcBench.ts): reading a child's result line, refusing anything that would
// make a figure of nothing, and the printed figure itself.
import { gcFigureLines, parseChildResult } from "../../bench/gcBench";

const good = { mode: "gc", ms: 1500, peakBytes: 300 * 2 ** 20, startBytes: 200 * 2 ** 20, narinfos: 10 };

test("a child's last line is its result; what it logged before is ignored", () => {
  const r = parseChildResult(`listing…\n${JSON.stringify(good)}\n`, "gc");
  expect(r).toEqual(good);
  const floor = parseChildResult(JSON.stringify({ ...good, mode: "floor", objects: 20 }), "floor");
  expect(floor.objects).toBe(20);
});

test("no result, another mode's, a missing or negative count, or a bad object count is refused", () => {
  expect(() => parseChildResult("", "gc")).toThrow(/printed no result/);
  expect(() => parseChildResult("Error: boom", "gc")).toThrow(/printed no result/);
  expect(() => parseChildResult(JSON.stringify(good), "floor")).toThrow(/malformed/);
  const { narinfos: _narinfos, ...noCount } = good;
  expect(() => parseChildResult(JSON.stringify(noCount), "gc")).toThrow(/malformed/);
  expect(() => parseChildResult(JSON.stringify({ ...good, ms: -1 }), "gc")).toThrow(/malformed/);
  expect(() => parseChildResult(JSON.stringify({ ...good, peakBytes: "300" }), "gc")).toThrow(/malformed/);
  expect(() => parseChildResult(JSON.stringify({ ...good, objects: null }), "gc")).toThrow(/malformed/);
});

test("the figure: counts, medians, their ratio and the largest peaks", () => {
  const lines = gcFigureLines({
    narinfos: 100,
    objects: 200,
    concurrency: 16,
    gcSeconds: [3, 1, 2],
    floorSeconds: [1, 0.5, 4],
    gcPeaks: [300 * 2 ** 20, 310 * 2 ** 20, 305 * 2 ** 20],
    floorPeaks: [250 * 2 ** 20, 240 * 2 ** 20, 245 * 2 ** 20],
    startBytes: 200 * 2 ** 20,
  });
  expect(lines).toEqual([
    "gc (100 narinfos, 200 objects, 16 at a time): gc --dry-run 2.00 s | floor (the same list and narinfo GETs from one node process) 1.00 s | ratio 2.00",
    "gc: peak memory gc --dry-run 310.0 MiB | floor 250.0 MiB (VmHWM of each child; 200.0 MiB of it before the first request: node, ts-node, the modules)",
  ]);
});
