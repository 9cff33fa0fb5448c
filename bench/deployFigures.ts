// The deploy figures' printed lines (bench/deployBench.ts measures them): for each program (the dynamic-provider
// one before the plugin, and this checkout's), its state after `up`, `up` from empty, destroy and the no-op
// `preview --refresh`, each against the engine floor, our share and its ratio to the direct calls; then the
// goals of issue 22, met or not, by this checkout's figures. Pure: no I/O.
import { fmt, median, pairedDifference } from "./measure";

/** Issue 22's goals for the demo stack: its state at most 100 KB, our share of an `up` at most twice the
 *  direct calls. */
export const DEPLOY_GOAL = { maxStateBytes: 100_000, maxShareRatio: 2 } as const;

/** What one program measured, run by run beside its engine floor (the same index is the same round). */
export interface ProgramFigures {
  /** "before (dynamic providers, eface94)": the label of its lines. */
  label: string;
  /** What its engine floor holds: "7 components, 15 custom resources". */
  shape: string;
  /** Length of the JSON of its exported state after `up`, and the resources in it (the stack included). */
  stateBytes: number;
  resources: number;
  up: number[];
  engineUp: number[];
  down: number[];
  engineDown: number[];
  preview: number[];
  enginePreview: number[];
}

/** The direct calls (bench/floor.ts), medians of the same rounds: the process's time (node's start and module
 *  loading included), the calls' own time inside it, and the API calls that undo them. */
export interface DirectCalls {
  process: number;
  calls: number;
  down: number;
}

/** Our share of a program's `up`, `destroy` and no-op `preview --refresh`: the median of the per-run
 *  differences to its engine floor. */
export function shares(f: ProgramFigures): { up: number; down: number; preview: number } {
  return {
    up: pairedDifference(f.up, f.engineUp),
    down: pairedDifference(f.down, f.engineDown),
    preview: pairedDifference(f.preview, f.enginePreview),
  };
}

/** 1070367 → "1,070,367 bytes". */
export const bytes = (n: number) => `${n.toLocaleString("en-US")} bytes`;

const ratio = (a: number, b: number) => (a / b).toFixed(2);

/** One program's lines. */
export function programLines(f: ProgramFigures, direct: DirectCalls): string[] {
  const s = shares(f);
  const engine = `engine floor (same ${f.shape}, no-op)`;
  const name = `deploy ${f.label}`;
  return [
    `${name}: state after up ${bytes(f.stateBytes)} (${f.resources} resources)`,
    `${name} (up from empty): pulumi up ${fmt(median(f.up))} | ${engine} ${fmt(median(f.engineUp))} | direct calls ${fmt(direct.process)}`,
    `${name}: our share of up (up − engine floor) ${fmt(s.up)} | direct calls ${fmt(direct.process)} | ratio ${ratio(s.up, direct.process)}`,
    `${name} (up from empty vs the API calls alone): pulumi up ${fmt(median(f.up))} | calls ${fmt(direct.calls)} | ratio ${ratio(median(f.up), direct.calls)}`,
    `${name} (destroy): pulumi destroy ${fmt(median(f.down))} | ${engine} ${fmt(median(f.engineDown))} | our share ${fmt(s.down)} | the API calls alone ${fmt(direct.down)}`,
    `${name} (no-op preview --refresh): ours ${fmt(median(f.preview))} | ${engine} ${fmt(median(f.enginePreview))} | our share ${fmt(s.preview)}`,
  ];
}

const met = (ok: boolean) => (ok ? "met" : "not met");

/** The comparison of both programs and the goals, judged by `after` (this checkout's program). */
export function goalLines(before: ProgramFigures, after: ProgramFigures, directCalls: DirectCalls): string[] {
  const b = shares(before);
  const a = shares(after);
  const direct = directCalls.process;
  const shareRatio = a.up / direct;
  return [
    [
      `deploy before → after: state ${bytes(before.stateBytes)} → ${bytes(after.stateBytes)} (${ratio(after.stateBytes, before.stateBytes)}×)`,
      `our share of up ${fmt(b.up)} → ${fmt(a.up)} (ratio to the direct calls ${ratio(b.up, direct)} → ${ratio(a.up, direct)})`,
      `of the no-op preview --refresh ${fmt(b.preview)} → ${fmt(a.preview)}`,
    ].join(" | "),
    [
      `deploy goals (issue 22, ${after.label}): state ≤ ${bytes(DEPLOY_GOAL.maxStateBytes)}: ${bytes(after.stateBytes)}, ${met(after.stateBytes <= DEPLOY_GOAL.maxStateBytes)}`,
      `our share of up ≤ ${DEPLOY_GOAL.maxShareRatio}× the direct calls: ${ratio(a.up, direct)}×, ${met(shareRatio <= DEPLOY_GOAL.maxShareRatio)}`,
    ].join(" | "),
  ];
}
