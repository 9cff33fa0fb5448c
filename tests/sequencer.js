// The order jest starts test files in, two at a time: the longest first, so no long file starts last and runs
// alone at the end. Jest's own order uses the durations it cached on this machine; a fresh clone has none, and
// then jest goes by file size, which says little here. For a file without a cached duration this estimates one:
// each engine run (up, preview, refresh, destroy, a drift check) costs far more than anything else a test does.
"use strict";
const fs = require("fs");
const Sequencer = require("@jest/test-sequencer").default;

const ENGINE_RUN = /\.(up|preview|destroy|refresh)\(|driftPreview\(|deployCache\(|expectConverged\(|runVerifyCli\(|pulumiCli\(/g;
/** Seconds per engine run and per file, from measured runs (2 cores): a rough scale, only the order matters. */
const SECONDS_PER_ENGINE_RUN = 8;

/** A file whose engine runs happen out of sight (in a script it starts) says how long it takes: `// sequencer: about N s`. */
const DECLARED = /^\/\/ sequencer: about (\d+) s\b/m;

function estimatedSeconds(path) {
  const text = fs.readFileSync(path, "utf8");
  const declared = DECLARED.exec(text);
  if (declared) return Number(declared[1]);
  return 2 + SECONDS_PER_ENGINE_RUN * (text.match(ENGINE_RUN) || []).length;
}

class LongestFirst extends Sequencer {
  sort(tests) {
    const seconds = (test) => {
      const cached = this.time(test);
      return cached != null ? cached / 1000 : estimatedSeconds(test.path);
    };
    const failed = (test) => (this.hasFailed(test) ? 1 : 0);
    return [...tests].sort((a, b) => failed(b) - failed(a) || seconds(b) - seconds(a));
  }
}

module.exports = LongestFirst;
module.exports.estimatedSeconds = estimatedSeconds;
