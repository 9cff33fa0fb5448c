// sequencer: about 65 s (the engine runs are inside docs/takeover.sh, where the estimate cannot count them)
// The runbook "Coming from the chapter" (docs/takeover.md) run as written: docs/takeover.sh, which the doc shows
// verbatim (tests/unit/runbookDocs.test.ts), in a copy of this checkout, against a MinIO where the chapter's
// set-up was made by hand (harness/chapter.ts: mc and Nix, its commands verbatim) and a closure pushed the
// chapter's way, as a user whose HOME holds the chapter's files. One value differs from the doc: the MinIO's URL
// (the test's MinIO is not s3.homelab.local). Pulumi's prompts get what a user types: the passphrase
// (PULUMI_CONFIG_PASSPHRASE), MinIO's admin password (on stdin) and "yes" to each update
// (PULUMI_SKIP_CONFIRMATIONS). The copy keeps the checkout's committed Pulumi.homelab.yaml out of reach.
import { execFileSync, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { buildChapterCache, ChapterCache, pushAsChapter } from "../../harness/chapter";
import { MinioServer, startMinio } from "../../harness/minio";
import { backendEnv, backendText, PROJECT_DIR } from "../../harness/stack";
import { requireTool } from "../../harness/toolchain";
import { closureExpression, NixClient, payloadExpression, requireNix } from "./nixEnv";

const RUNBOOK = path.join("docs", "takeover.sh");
/** The runbook's one site-specific line, and the MinIO's URL the test puts in it. */
const ENDPOINT_LINE = "pulumi config set nix-cache:endpoint https://s3.homelab.local";
/** The chapter's MinIO admin user as the runbook names it (the password is the test MinIO's own). */
const ADMIN_USER = "minioadmin";

let minio: MinioServer;
let cache: ChapterCache;
let root: string;
let checkout: string;
let env: NodeJS.ProcessEnv;
let backendDir: string;
let run: { code: number | null; output: string } | undefined;
const nonce = crypto.randomBytes(6).toString("hex");
/** Store paths pushed the chapter's way (before and after the takeover) → their content. */
const pushed = new Map<string, string>();

/**
 * A copy of this checkout as a user has it (no tests, history or local state; the npm packages linked), so the
 * runbook's `pulumi stack init homelab` edits the copy's Pulumi.homelab.yaml, not the committed one.
 */
function copyCheckout(dest: string): void {
  const skipped = new Set([".git", "node_modules", ".local", "tests", "bench", "examples", "coverage"]);
  fs.cpSync(PROJECT_DIR, dest, {
    recursive: true,
    preserveTimestamps: true,
    filter: (src) => {
      const top = path.relative(PROJECT_DIR, src).split(path.sep)[0];
      // Other tests' stacks come and go beside the project's own files.
      return !skipped.has(top) && !(/^Pulumi\..+\.yaml$/.test(top) && top !== "Pulumi.homelab.yaml");
    },
  });
  // `npm run` reinstalls the packages when package-lock.json is newer than the last install's stamp; through
  // the link that would rewrite the shared node_modules under the other tests, so it must be up to date.
  const stamp = path.join(PROJECT_DIR, "node_modules", ".nix-cache-installed");
  if (!fs.existsSync(stamp) || fs.statSync(path.join(dest, "package-lock.json")).mtimeMs > fs.statSync(stamp).mtimeMs) {
    throw new Error("the npm packages are not installed for this package-lock.json: run the tests with `npm test`, which installs them first");
  }
  fs.symlinkSync(path.join(PROJECT_DIR, "node_modules"), path.join(dest, "node_modules"));
}

/** Runs `command` in the copy as the user, `input` on stdin; resolves with the exit status and all output. */
function userRuns(command: string, args: string[], input = ""): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: checkout, env, stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (output += d.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, output }));
    child.stdin.end(input);
  });
}

/** Builds `expression` and pushes its closure as the chapter's builder does (its secret.key, credentials, URL). */
function pushTheChaptersWay(name: string, expression: string): void {
  const builder = new NixClient(root, "builder");
  const store = path.join(root, "store-builder");
  const file = path.join(root, `${name}.nix`);
  fs.writeFileSync(file, expression);
  const top = builder.ok("nix-build", ["--store", store, "--no-out-link", file]).trim();
  for (const p of builder.ok("nix-store", ["--store", store, "-qR", top]).trim().split("\n")) pushed.set(p, fs.readFileSync(path.join(store, p), "utf8"));
  pushAsChapter(cache, store, [top]);
}

beforeAll(async () => {
  requireNix();
  // What the runbook runs besides Nix and mc (checked where they are used), named before anything starts.
  for (const tool of ["pulumi", "npm", "awk"]) requireTool(tool);
  root = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-e2e-runbook-"));
  minio = await startMinio({ root: { user: ADMIN_USER, password: crypto.randomBytes(18).toString("hex") } });
  cache = buildChapterCache(minio, { root });
  pushTheChaptersWay("before", closureExpression(`before-${nonce}`));

  checkout = path.join(root, "checkout");
  copyCheckout(checkout);
  backendDir = path.join(root, "backend");
  fs.mkdirSync(backendDir);
  // The user's environment: their HOME with the chapter's files, the toolchain on PATH, a logged-in backend;
  // nothing of the test run's own npm, ts-node or Pulumi settings. The toolchain stays where the tests' is
  // (toolchain.sh looks under HOME otherwise, and would build all of it again for the new HOME).
  const own = Object.entries(process.env).filter(([k]) => !/^(npm_|PULUMI_|TS_NODE_|NODE_OPTIONS$|INIT_CWD$)/.test(k));
  const toolsDir = process.env.NIX_CACHE_TOOLS_DIR || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "nix-cache-tools");
  env = {
    ...Object.fromEntries(own),
    HOME: cache.home,
    NIX_CACHE_TOOLS_DIR: toolsDir,
    ...backendEnv(backendDir, path.join(cache.home, ".pulumi"), { text: "the chapter reader's passphrase" }),
    PULUMI_SKIP_CONFIRMATIONS: "true",
  };
});

afterAll(async () => {
  await minio?.destroy();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe("the runbook from the chapter's cache to a stack that owns it, as written", () => {
  test("docs/takeover.sh runs to its end: verify passes, the drift check is clean, the host config is written", async () => {
    const script = fs.readFileSync(path.join(checkout, RUNBOOK), "utf8");
    expect(script.split("\n").filter((line) => line === ENDPOINT_LINE)).toHaveLength(1);
    fs.writeFileSync(path.join(checkout, RUNBOOK), script.replace(ENDPOINT_LINE, `pulumi config set nix-cache:endpoint ${minio.endpoint}`));

    run = await userRuns("bash", [RUNBOOK], `${minio.rootPassword}\n`);
    if (run.code !== 0) throw new Error(`bash ${RUNBOOK} exited ${run.code}:\n${run.output}`);
    expect(run.output).toMatch(/^verify: all \d+ checks passed$/m);
    // The closure pushed before the takeover is checked: its narinfos carry the imported key's signature.
    expect(run.output).toMatch(/^PASS +narinfo-signatures +all 2 narinfos: each carries a valid signature/m);
    expect(run.output).not.toMatch(/^FAIL /m);
    expect(fs.readFileSync(path.join(checkout, "hosts", "nix-cache", "nix-cache.nix"), "utf8")).toContain(`"${cache.publicKey}"`);
  });

  test("the stack's key is the chapter's; the chapter's secrets are nowhere in clear (stack file, state, what the runbook printed)", () => {
    expect(run?.code).toBe(0);
    const outputs = JSON.parse(execFileSync("pulumi", ["stack", "output", "--json"], { cwd: checkout, env, encoding: "utf8" })) as Record<string, unknown>;
    expect(outputs.publicKey).toBe(cache.publicKey);
    const seen = { "Pulumi.homelab.yaml": fs.readFileSync(path.join(checkout, "Pulumi.homelab.yaml"), "utf8"), state: backendText(backendDir), output: run?.output ?? "" };
    const secrets = { "secret.key": fs.readFileSync(cache.secretKeyFile, "utf8").trim(), "builder password": cache.password, "admin password": minio.rootPassword };
    for (const [where, text] of Object.entries(seen)) {
      for (const [what, secret] of Object.entries(secrets)) expect(`${where}: ${what} ${text.includes(secret) ? "found" : "absent"}`).toBe(`${where}: ${what} absent`);
    }
    expect(fs.readFileSync(path.join(PROJECT_DIR, "Pulumi.homelab.yaml"), "utf8")).not.toContain("importKeys");
  });

  test("no host noticed: the chapter's builder, untouched, still pushes, and a host on the chapter's config pulls before and after", () => {
    expect(run?.code).toBe(0);
    pushTheChaptersWay("after", payloadExpression(`after-${nonce}`));
    const host = new NixClient(root, "host-chapter");
    const hostStore = path.join(root, "store-host-chapter");
    const copied = host.run("nix", ["copy", "--from", cache.substituterUrl, "--to", hostStore, "--option", "trusted-public-keys", cache.publicKey, ...pushed.keys()]);
    expect(copied.stderr).not.toContain("error");
    expect(copied.status).toBe(0);
    for (const [p, content] of pushed) expect(fs.readFileSync(path.join(hostStore, p), "utf8")).toBe(content);
  });
});
