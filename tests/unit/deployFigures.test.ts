// The deploy figures' printed lines (bench/deployFigures.ts): each program's state, up, destroy and no-op preview
// against its engine floor and the direct calls, the comparison before → after and issue 22's goals, met or not.
// The figures themselves are measured against MinIO by the bench (bench/deployBench.ts).
import { shapeOf, shortShape } from "../../bench/engineFloor";
import { bytes, DEPLOY_GOAL, DirectCalls, goalLines, ProgramFigures, programLines, shares } from "../../bench/deployFigures";
import { Blueprint } from "../../bench/noopProgram/blueprint";

const figures = (over: Partial<ProgramFigures>): ProgramFigures => ({
  label: "after (provider plugin, this checkout)",
  shape: "7 components, 15 nix-cache resources",
  stateBytes: 60_000,
  resources: 24,
  up: [5, 6, 7],
  engineUp: [3, 3.5, 4],
  down: [2, 2, 2],
  engineDown: [1.5, 1.5, 1.5],
  preview: [6, 6, 6],
  enginePreview: [4, 4.5, 5],
  ...over,
});

const direct: DirectCalls = { process: 1.25, calls: 0.5, down: 0.1 };

test("our shares are the medians of the per-run differences to the engine floor", () => {
  expect(shares(figures({ up: [5, 6, 10], engineUp: [3, 3, 3] }))).toEqual({ up: 3, down: 0.5, preview: 1.5 });
});

test("bytes are grouped by thousands", () => {
  expect(bytes(1_070_367)).toBe("1,070,367 bytes");
  expect(bytes(512)).toBe("512 bytes");
});

test("a program's lines: state, up against both floors, our share and its ratio, destroy, preview", () => {
  expect(programLines(figures({}), direct)).toEqual([
    "deploy after (provider plugin, this checkout): state after up 60,000 bytes (24 resources)",
    "deploy after (provider plugin, this checkout) (up from empty): pulumi up 6.00 s | engine floor (same 7 components, 15 nix-cache resources, no-op) 3.50 s | direct calls 1.25 s",
    "deploy after (provider plugin, this checkout): our share of up (up − engine floor) 2.50 s | direct calls 1.25 s | ratio 2.00",
    "deploy after (provider plugin, this checkout) (up from empty vs the API calls alone): pulumi up 6.00 s | calls 0.50 s | ratio 12.00",
    "deploy after (provider plugin, this checkout) (destroy): pulumi destroy 2.00 s | engine floor (same 7 components, 15 nix-cache resources, no-op) 1.50 s | our share 0.50 s | the API calls alone 0.10 s",
    "deploy after (provider plugin, this checkout) (no-op preview --refresh): ours 6.00 s | engine floor (same 7 components, 15 nix-cache resources, no-op) 4.50 s | our share 1.50 s",
  ]);
});

describe("the goals are judged by this checkout's program (after)", () => {
  const before = figures({ label: "before (dynamic providers, eface94)", stateBytes: 1_070_367, up: [9, 10, 11], engineUp: [3, 3, 3] });

  test("both met at the limits: state 100,000 bytes, share exactly twice the direct calls", () => {
    const lines = goalLines(before, figures({ stateBytes: DEPLOY_GOAL.maxStateBytes }), direct);
    expect(lines).toEqual([
      "deploy before → after: state 1,070,367 bytes → 100,000 bytes (0.09×) | our share of up 7.00 s → 2.50 s (ratio to the direct calls 5.60 → 2.00) | of the no-op preview --refresh 1.50 s → 1.50 s",
      "deploy goals (issue 22, after (provider plugin, this checkout)): state ≤ 100,000 bytes: 100,000 bytes, met | our share of up ≤ 2× the direct calls: 2.00×, met",
    ]);
  });

  test("one byte or a share over the limit: not met", () => {
    const [, goals] = goalLines(before, figures({ stateBytes: 100_001, up: [5, 6.01, 7] }), direct);
    expect(goals).toBe(
      "deploy goals (issue 22, after (provider plugin, this checkout)): state ≤ 100,000 bytes: 100,001 bytes, not met | our share of up ≤ 2× the direct calls: 2.01×, not met",
    );
  });

  test("the before figures do not decide: a huge before with a small after still meets", () => {
    const [, goals] = goalLines(figures({ stateBytes: 5_000_000, up: [99, 99, 99] }), figures({ stateBytes: 10_000, up: [4, 4, 4] }), direct);
    expect(goals).toMatch(/10,000 bytes, met \| .* 0\.40×, met$/);
  });
});

describe("the engine floor's label names what serves the custom resources", () => {
  const node = (type: string, component = false) => ({ name: type, type, component, deps: [], outputs: [] });
  const shape = (...types: string[]): Blueprint => ({ nodes: [node("nix-cache:index:NixCache", true), ...types.map((t) => node(t))], outputs: [] });

  test("dynamic providers (before), the plugin (after), anything else", () => {
    expect(shortShape(shape("pulumi-nodejs:dynamic:MinioBucket", "pulumi-nodejs:dynamic:MinioUser"))).toBe("1 components, 2 dynamic resources");
    expect(shortShape(shape("nix-cache:index:MinioBucket", "nix-cache:index:MinioUser", "random:index:RandomId"))).toBe(
      "1 components, 2 nix-cache resources, 1 other custom resources",
    );
    expect(shortShape(shape())).toBe("1 components, 0 other custom resources");
  });

  test("the shape counts the dynamic ones, so a floor of the other kind does not pass for the same shape", () => {
    const dynamic = shapeOf(shape("pulumi-nodejs:dynamic:MinioBucket", "pulumi-nodejs:dynamic:Nothing"));
    const plugin = shapeOf(shape("nix-cache:index:MinioBucket", "nix-cache-bench-noop:index:Nothing"));
    expect([dynamic.custom, dynamic.dynamic, plugin.custom, plugin.dynamic]).toEqual([2, 2, 2, 0]);
  });
});
