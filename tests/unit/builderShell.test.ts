// The builder's shell scripts (lib/hosts/sh): shellcheck finds nothing in them, the module text is read from
// them as builderShell.ts promises, and the drain's URL and credentials parsers give what lib/s3/pushTarget.ts's
// parsers give, on the same cases (support/pushTargetCases.ts).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { requireTool } from "../../harness/toolchain";
import { drainBody, keepAliveBody } from "../../lib/hosts/builderModule";
import { BUILDER_SHELL_DIR, BUILDER_SHELL_FILES, MODULE_TEXT_MARKER, moduleTextOf, spliceInto } from "../../lib/hosts/builderShell";
import { CREDENTIALS_CASES, STORE_URL_CASES } from "./support/pushTargetCases";

const SHELLCHECK_HINT = "the unit tests check the builder's scripts with shellcheck: install it with `apt-get install shellcheck` " +
  "(`bash scripts/with-toolchain.sh --nix …`, which `npm test` runs, installs it as root)";

/** shellcheck's findings, one per line (gcc format), at its strictest severity; "" when there are none. */
function shellcheck(args: string[], input?: string): string {
  const tool = requireTool("shellcheck", SHELLCHECK_HINT);
  const r = spawnSync(tool, ["--shell=bash", "--severity=style", "--format=gcc", ...args], { encoding: "utf8", input });
  if (r.error) throw r.error;
  // 0: nothing found; 1: findings (on stdout); anything else is shellcheck failing.
  if (r.status !== 0 && r.status !== 1) throw new Error(`shellcheck exited ${r.status}: ${r.stderr}`);
  return r.stdout + r.stderr;
}

describe("shellcheck", () => {
  test("lib/hosts/sh holds exactly the scripts builderShell.ts names", () => {
    expect(fs.readdirSync(BUILDER_SHELL_DIR).sort()).toEqual([...BUILDER_SHELL_FILES].sort());
  });

  test.each(BUILDER_SHELL_FILES)("finds nothing in lib/hosts/sh/%s", (file) => {
    expect(shellcheck([path.join(BUILDER_SHELL_DIR, file)])).toBe("");
  });

  test("finds nothing in the drain as the module assembles it, behind settings like the module's", () => {
    const settings = "spool=/var/spool/nix-cache\npush_url='s3://c'\nattempts=4\ndelay=5\nrefresh_after=86400\n";
    expect(shellcheck(["-"], settings + drainBody())).toBe("");
  });

  test("does find what it should: the check is live", () => {
    expect(shellcheck(["-"], 'rm -rf "$undefined_dir"/*\n')).toContain("SC2154");
  });
});

describe("moduleTextOf and spliceInto", () => {
  test("the module text is what follows the one marker line", () => {
    expect(moduleTextOf(`# notes\ndeclare x\n${MODULE_TEXT_MARKER}\necho "$x"\n`, "t.sh")).toBe('echo "$x"\n');
    expect(() => moduleTextOf('echo "$x"\n', "t.sh")).toThrow("t.sh: needs exactly one line");
    expect(() => moduleTextOf(`${MODULE_TEXT_MARKER}\n${MODULE_TEXT_MARKER}\n`, "t.sh")).toThrow("t.sh: needs exactly one line");
    expect(() => moduleTextOf(`${MODULE_TEXT_MARKER}\r\necho\r\n`, "t.sh")).toThrow("carriage return");
  });

  test("a splice replaces its one line with the piece", () => {
    expect(spliceInto("a\n# @splice p.sh\n\nb\n", "p.sh", "x\ny\n")).toBe("a\nx\ny\n\nb\n");
    expect(() => spliceInto("a\n", "p.sh", "x\n")).toThrow("needs exactly one line '# @splice p.sh'");
    expect(() => spliceInto("# @splice p.sh\n# @splice p.sh\n", "p.sh", "x\n")).toThrow("exactly one");
    expect(() => spliceInto("# @splice p.sh\n", "p.sh", "x")).toThrow("must end with a newline");
  });

  test("the drain holds the keep-alive functions once, and none of the scripts' headers", () => {
    expect(drainBody().split(keepAliveBody())).toHaveLength(2);
    expect(drainBody()).not.toContain("@splice");
    expect(drainBody()).not.toContain(MODULE_TEXT_MARKER);
    expect(drainBody()).not.toContain("declare spool");
  });
});

/** Runs `driver` in bash after the keep-alive functions, with `set -u` as in the drain. */
function keepAlive(driver: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync("bash", ["-c", `set -u\n${keepAliveBody()}\n${driver}`, "keep-alive", ...args], {
    env: { PATH: process.env.PATH, ...env },
    encoding: "utf8",
    // Not node's socket for stdin: bash would take that for a remote shell and read ~/.bashrc.
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (r.error) throw r.error;
  return r;
}

describe("the drain's s3_target reads a push URL as parseS3StoreUrl does", () => {
  test.each(STORE_URL_CASES.map((c) => [c.name, c] as const))("%s", (_, c) => {
    const r = keepAlive('push_url=$1\nif s3_target; then printf "%s\\n" "$s3_bucket" "$s3_endpoint" "$s3_region" "$s3_profile"; else echo refused; fi', [c.url]);
    expect(r.stderr).toBe("");
    // s3_target reads the profile Nix's S3 client would use when the URL names none: `default`.
    const expected = c.target ? [c.target.bucket, c.target.endpoint, c.target.region, c.target.profile ?? "default"] : ["refused"];
    expect(r.stdout.split("\n").slice(0, -1)).toEqual(expected);
  });
});

describe("the drain's s3_credentials reads a credentials file as parseAwsCredentials does", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-builder-shell-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test.each(CREDENTIALS_CASES.map((c) => [c.name, c] as const))("%s", (_, c) => {
    const file = path.join(dir, "credentials");
    fs.writeFileSync(file, c.text);
    const names = [...Object.keys(c.profiles), ...c.without];
    const r = keepAlive('for s3_profile in "$@"; do if s3_credentials; then echo "$s3_user"; else echo none; fi; done', names, {
      AWS_SHARED_CREDENTIALS_FILE: file,
    });
    expect(r.stderr).toBe("");
    const expected = [...Object.values(c.profiles).map((p) => `${p.accessKey}:${p.secretKey}`), ...c.without.map(() => "none")];
    expect(r.stdout.split("\n").slice(0, -1)).toEqual(expected);
  });

  test("no file: no credentials", () => {
    const r = keepAlive("s3_profile=default; s3_credentials; echo $?", [], { AWS_SHARED_CREDENTIALS_FILE: path.join(dir, "missing") });
    expect(r.stdout).toBe("1\n");
  });
});
