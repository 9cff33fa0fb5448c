// The proxy figure's printed lines (bench/proxyBench.ts): medians, throughput, the ratio against its goal, the
// memory before, sampled and at peak. The figure itself runs against MinIO from the bench.
import { PROXY_GOAL, proxyFigureLines } from "../../bench/proxyBench";

test("the pull line: medians, MiB/s, the ratio and its goal; the memory line: before, sampled, peak and the goal", () => {
  const lines = proxyFigureLines({
    objectMb: 500,
    proxySeconds: [2, 1, 4],
    directSeconds: [1, 0.5, 3],
    ratio: 2,
    clients: 4,
    rssBeforeMiB: 84.9,
    rssMaxSampledMiB: 85.6,
    peakMiB: 85.9,
    concurrentSeconds: 5.07,
  });
  expect(lines).toEqual([
    `proxy pull (GET of a 500 MiB object, one client): through the proxy 2.00 s (250 MiB/s) | MinIO directly, anonymous 1.00 s (500 MiB/s) | ratio 2.00 (goal ≤ ${PROXY_GOAL.maxPullRatio})`,
    "proxy memory (4 clients pulling the 500 MiB object at once, 5.07 s): RSS 85 MiB before, at most 86 MiB sampled, peak 86 MiB (goal: flat, < 150 MiB)",
  ]);
});
