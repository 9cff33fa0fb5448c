// The test order's estimate for a file jest has no duration for (tests/sequencer.js).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const { estimatedSeconds } = require("../sequencer.js") as { estimatedSeconds: (file: string) => number };

const write = (text: string): string => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-seq-")), "x.test.ts");
  fs.writeFileSync(file, text);
  return file;
};

test("counts engine runs, 8 s each, plus 2 s", () => {
  expect(estimatedSeconds(write("await t.stack.up();\nawait t.stack.preview();\nawait driftPreview(s);\n"))).toBe(26);
  expect(estimatedSeconds(write("expect(1).toBe(1);\n"))).toBe(2);
});

test("a file that runs the engine out of sight declares its time", () => {
  expect(estimatedSeconds(write("// sequencer: about 65 s (inside a script)\nrunScript();\n"))).toBe(65);
  expect(estimatedSeconds(path.join(__dirname, "..", "e2e", "takeoverRunbook.test.ts"))).toBeGreaterThan(30);
});
