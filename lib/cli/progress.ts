// The one progress line of the project's long commands (gc, resign): drawn in place on a terminal, at most every
// intervalMs, cleared when the command prints something else or ends; nothing at all when the stream is not a
// terminal (systemd's journal, CI logs and pipes get none). No imports: the builder's GC script bundles it
// (lib/gc/bundle.ts) and runs with plain node.

/** Where the line is drawn (process.stderr, or a test's fake). */
export interface ProgressStream {
  readonly isTTY?: boolean;
  /** The terminal's width; a longer line is cut to it, since '\r' goes back to the start of the last row only. */
  readonly columns?: number;
  write(text: string): unknown;
}

export interface ProgressLine {
  /** Whether anything is ever drawn (the stream is a terminal). */
  readonly active: boolean;
  /** Draws `text` as the line, unless one was drawn less than intervalMs ago; `final` (the last count) always draws. */
  show(text: string, final?: boolean): void;
  /** Clears a drawn line, so what is written next takes its place; nothing when none is shown. */
  clear(): void;
}

/** Back to the start of the row ("\r") and erase to its end ("\x1b[K"). */
const CLEAR = "\r\x1b[K";

export function progressLine(stream: ProgressStream = process.stderr, opts: { intervalMs?: number; now?: () => number } = {}): ProgressLine {
  if (!stream.isTTY) return { active: false, show() {}, clear() {} };
  const intervalMs = opts.intervalMs ?? 250;
  const now = opts.now ?? Date.now;
  let lastDrawn = -Infinity;
  let shown = false;
  return {
    active: true,
    show(text, final = false) {
      const t = now();
      if (!final && t - lastDrawn < intervalMs) return;
      lastDrawn = t;
      shown = true;
      const width = stream.columns ?? 0;
      const fitted = width > 1 && text.length >= width ? `${text.slice(0, width - 2)}…` : text;
      // The erase comes after the text: it removes what a longer earlier line left, without a blank flash.
      stream.write(`\r${fitted}\x1b[K`);
    },
    clear() {
      if (shown) stream.write(CLEAR);
      shown = false;
    },
  };
}
