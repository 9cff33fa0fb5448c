// Stopping and continuing a server process for the "server that stops answering" tests. kill() only queues the
// signal: each thread of the target stops when it is next scheduled, so on a busy machine a request sent right
// after kill(SIGSTOP) can still be answered by a thread that is running on the other core (seen once: a GET got
// its answer 16 ms after SIGSTOP). These wait until the kernel reports the state the test needs.
import * as fs from "fs";

/** The state letter of every thread of `pid` (/proc/PID/task/TID/stat, the field after the command's ")"). */
export function threadStates(pid: number): string[] {
  return fs.readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      return [stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)];
    } catch {
      return []; // the thread ended between the listing and the read
    }
  });
}

async function waitForThreads(pid: number, stopped: boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const states = threadStates(pid);
    const isStopped = (s: string) => s === "T" || s === "t";
    if (states.length > 0 && states.every((s) => isStopped(s) === stopped)) return;
    if (Date.now() > deadline) throw new Error(`process ${pid} did not ${what} within 30 s (thread states: ${states.join("")})`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** SIGSTOP, then waits until every thread of `pid` is stopped: from then on, nothing it serves can answer. */
export async function stopProcess(pid: number): Promise<void> {
  process.kill(pid, "SIGSTOP");
  await waitForThreads(pid, true, "stop after SIGSTOP");
}

/** SIGCONT, then waits until no thread of `pid` is stopped. */
export async function continueProcess(pid: number): Promise<void> {
  process.kill(pid, "SIGCONT");
  await waitForThreads(pid, false, "continue after SIGCONT");
}
