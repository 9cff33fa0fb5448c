// The runbooks show their scripts verbatim between markers, so what the tests run is what a reader types:
// docs/takeover.sh (run by tests/e2e/takeoverRunbook.test.ts), the key rotation's two steps
// (tests/integration/keyRotation.test.ts) and the GC's commands (tests/integration/gc.test.ts). Each script keeps
// its runbook's commands in the runbook's order; and the README points chapter readers to the takeover.
import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR } from "../../harness/stack";

const read = (rel: string) => fs.readFileSync(path.join(PROJECT_DIR, rel), "utf8");

/** Each runbook script and the doc that shows it. */
const INCLUDED: { script: string; doc: string }[] = [
  { script: "docs/takeover.sh", doc: "docs/takeover.md" },
  { script: "docs/rotate-key-step1.sh", doc: "docs/operations.md" },
  { script: "docs/rotate-key-step2.sh", doc: "docs/operations.md" },
  { script: "docs/gc.sh", doc: "docs/operations.md" },
];

/** The text of the fenced sh block between `<!-- begin NAME -->` and `<!-- end NAME -->`. */
function includedBlock(markdown: string, name: string): string {
  const m = new RegExp(`^<!-- begin ${name} -->\\n\`\`\`sh\\n([\\s\\S]*?)^\`\`\`\\n<!-- end ${name} -->$`, "m").exec(markdown);
  if (!m) throw new Error(`no \`\`\`sh block between <!-- begin ${name} --> and <!-- end ${name} -->`);
  return m[1];
}

/** The script's command lines (pulumi, npm), comments after them cut. */
const commandsOf = (script: string): string[] =>
  script
    .split("\n")
    .filter((line) => /^(pulumi|npm) /.test(line))
    .map((line) => line.replace(/\s+#.*$/, ""));

/** `order` entries ending in a space are a command's start (its value is the reader's); the rest whole lines. */
function expectOrder(script: string, order: string[]): void {
  const commands = commandsOf(read(script));
  expect(commands.map((line, i) => (order[i]?.endsWith(" ") ? line.slice(0, order[i].length) : line))).toEqual(order);
}

test.each(INCLUDED)("$doc shows $script verbatim", ({ script, doc }) => {
  expect(includedBlock(read(doc), script)).toBe(read(script));
});

test("every script in docs/ is a runbook shown by its doc, and every include marker names one of them", () => {
  const scripts = fs.readdirSync(path.join(PROJECT_DIR, "docs")).filter((f) => f.endsWith(".sh")).map((f) => `docs/${f}`).sort();
  expect(scripts).toEqual(INCLUDED.map((i) => i.script).sort());
  const docs = ["README.md", ...fs.readdirSync(path.join(PROJECT_DIR, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
  const markers = docs.flatMap((doc) => [...read(doc).matchAll(/^<!-- begin (\S+) -->$/gm)].map((m) => `${doc}: ${m[1]}`)).sort();
  expect(markers).toEqual(INCLUDED.map((i) => `${i.doc}: ${i.script}`).sort());
});

test("docs/takeover.sh runs the takeover's steps in the runbook's order", () => {
  expectOrder("docs/takeover.sh", [
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
  ]);
});

test("the key rotation's scripts: step 1 adds a key, keeps the old one, re-signs, writes the hosts' files; step 2 retires it", () => {
  expectOrder("docs/rotate-key-step1.sh", [
    "pulumi config set nix-cache:keyName ",
    "pulumi config set --path 'nix-cache:previousKeyNames[0]' ",
    "pulumi up",
    "npm run resign",
    "npm run host-config -- ",
  ]);
  expectOrder("docs/rotate-key-step2.sh", ["pulumi config rm nix-cache:previousKeyNames", "pulumi up", "npm run host-config -- "]);
  // Both steps write to the same places, so the reader finds step 2's files where step 1's were.
  const hostConfig = (script: string) => commandsOf(read(script)).filter((c) => c.startsWith("npm run host-config"));
  expect(hostConfig("docs/rotate-key-step2.sh")).toEqual(hostConfig("docs/rotate-key-step1.sh"));
});

test("docs/gc.sh pins, lists the pins, looks, then collects", () => {
  expectOrder("docs/gc.sh", ['npm run gc -- pin laptop "$system"', "npm run gc -- pins", "npm run gc -- --dry-run", "npm run gc"]);
});

test("the README points chapter readers to the runbook", () => {
  expect(read("README.md")).toContain("(docs/takeover.md)");
});
