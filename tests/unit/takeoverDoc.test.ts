// The runbook "Coming from the chapter" shows docs/takeover.sh verbatim between its markers, so what
// tests/e2e/takeoverRunbook.test.ts runs is what a reader types; and the README points to it.
import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR } from "../../harness/stack";

const doc = fs.readFileSync(path.join(PROJECT_DIR, "docs", "takeover.md"), "utf8");
const script = fs.readFileSync(path.join(PROJECT_DIR, "docs", "takeover.sh"), "utf8");

/** The text of the fenced sh block between `<!-- begin NAME -->` and `<!-- end NAME -->`. */
function includedBlock(markdown: string, name: string): string {
  const m = new RegExp(`^<!-- begin ${name} -->\\n\`\`\`sh\\n([\\s\\S]*?)^\`\`\`\\n<!-- end ${name} -->$`, "m").exec(markdown);
  if (!m) throw new Error(`docs/takeover.md has no \`\`\`sh block between <!-- begin ${name} --> and <!-- end ${name} -->`);
  return m[1];
}

test("docs/takeover.md shows docs/takeover.sh verbatim", () => {
  expect(includedBlock(doc, "docs/takeover.sh")).toBe(script);
});

test("docs/takeover.sh runs the takeover's steps in the runbook's order", () => {
  const commands = script.split("\n").filter((line) => /^(pulumi|npm) /.test(line));
  const order = [
    "pulumi stack init homelab",
    "pulumi config set nix-cache:endpoint ",
    "pulumi config set nix-cache:adminUser ",
    "pulumi config set --secret nix-cache:adminPassword",
    "pulumi config set --secret --path 'nix-cache:importKeys[0]' \"$(cat ~/.config/nix/secret.key)\"",
    "pulumi config set --secret nix-cache:builderPassword ",
    "pulumi config set nix-cache:adopt true",
    "pulumi preview",
    "pulumi up",
    "pulumi config rm nix-cache:adopt",
    "pulumi up",
    "npm run verify",
    "pulumi preview --refresh --expect-no-changes",
    "npm run gc -- --dry-run",
    "npm run host-config -- ",
  ];
  // An entry ending in a space is a command's start; its value is the reader's.
  expect(commands.map((line, i) => (order[i]?.endsWith(" ") ? line.slice(0, order[i].length) : line))).toEqual(order);
});

test("the README points chapter readers to the runbook", () => {
  expect(fs.readFileSync(path.join(PROJECT_DIR, "README.md"), "utf8")).toContain("(docs/takeover.md)");
});
