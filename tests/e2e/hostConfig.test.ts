// `npm run host-config` on a deployed stack, and its files proven with real Nix 2.8: they parse, evaluate
// against a NixOS stand-in, hold no secret; the builder's hook queues without touching the cache, the drain
// pushes the queue to the real MinIO (or keeps it when it cannot), and an empty store pulls what was pushed.
// Then a key rotation on the same stack: with two keys the files trust both and Nix signs with both; once the
// old key is retired, only the new one is left.
import { spawnSync, SpawnSyncReturns } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { OutputMap } from "@pulumi/pulumi/automation";
import {
  AWS_CREDENTIALS_FILE_NAME,
  BUILDER_DEFAULTS,
  previousSigningKeyFileName,
  PUSH_COMMAND_ENV,
  SIGNING_KEY_FILE_NAME,
} from "../../lib/hosts/builderModule";
import { GC_CREDENTIALS_FILE_NAME } from "../../lib/hosts/gcTimerModule";
import { BUILDER_MODULE_FILE, CLIENT_MODULE_FILE, OUTPUTS_JSON_FILE } from "../../lib/hosts/hostFiles";
import { MinioServer, startMinio } from "../../harness/minio";
import { evalHostModules, EvaluatedModules, nixEnv } from "../support/nixosStandIn";
import { createTestStack, minioConfig, PROJECT_DIR, TestStack } from "../../harness/stack";
import { requireTool } from "../../harness/toolchain";
import { scriptCommand, Via } from "../support/scriptCommand";

let minio: MinioServer;
let t: TestStack;
let outputs: OutputMap;
let work: string;
let cli: SpawnSyncReturns<string>;
const out = (name: string): string => String(outputs[name]?.value);
const outDir = () => path.join(work, "host");
const secretsDir = () => path.join(work, "secrets");

/** "At once" for the hook and an empty drain: half the module's shortest network timeout (curl --connect-timeout 10 s). */
const HOOK_BOUND_MS = 5_000;

/** Runs the command as a user would, from their own directory with relative paths (node directly unless `via` is "npm"). */
function hostConfig(args: string[], via: Via = "node"): SpawnSyncReturns<string> {
  const command = scriptCommand("host-config", args, via, work);
  return spawnSync(command.file, command.args, {
    cwd: command.cwd,
    env: { ...process.env, ...command.env, ...t.env },
    encoding: "utf8",
    timeout: 120_000,
  });
}

/** Every file under `dir`, relative names, sorted. */
function filesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

beforeAll(async () => {
  requireTool("nix");
  requireTool("npm");
  work = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-host-"));
  minio = await startMinio();
  t = await createTestStack("e2e-host", minioConfig(minio));
  expect((await t.stack.up()).summary.result).toBe("succeeded");
  outputs = await t.stack.outputs();
  // Through npm, as users run it (the other runs of this file start scripts/hostConfig.ts directly).
  cli = hostConfig(["--stack", t.stack.name, "--out", "host", "--secrets-dir", "secrets"], "npm");
});

afterAll(async () => {
  await t?.remove();
  await minio?.destroy();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe("npm run host-config", () => {
  test("writes the client module, the builder module and the JSON, and the secrets only under --secrets-dir", () => {
    expect(cli.status).toBe(0);
    expect(cli.stderr).not.toContain("host-config:");
    expect(filesUnder(outDir())).toEqual([BUILDER_MODULE_FILE, CLIENT_MODULE_FILE, OUTPUTS_JSON_FILE].sort());
    // The GC identity's credentials too (the GC timer reads them on the builder).
    expect(filesUnder(secretsDir())).toEqual([AWS_CREDENTIALS_FILE_NAME, GC_CREDENTIALS_FILE_NAME, SIGNING_KEY_FILE_NAME]);
    expect(cli.stdout.split("\n").filter((l) => l.startsWith("wrote "))).toHaveLength(6);

    // One source of truth: the client module is the nixosModule output, byte for byte.
    expect(fs.readFileSync(path.join(outDir(), CLIENT_MODULE_FILE), "utf8")).toBe(out("nixosModule"));
    const nonSecret = Object.fromEntries(
      Object.entries(outputs)
        .filter(([, v]) => !v.secret)
        .map(([k, v]) => [k, v.value]),
    );
    expect(JSON.parse(fs.readFileSync(path.join(outDir(), OUTPUTS_JSON_FILE), "utf8"))).toEqual(nonSecret);
    expect(Object.keys(nonSecret)).toEqual(expect.arrayContaining(["substituterUrl", "publicKey", "pushUrl", "builderAccessKey"]));

    const secret = (name: string) => fs.readFileSync(path.join(secretsDir(), name), "utf8");
    expect(secret(SIGNING_KEY_FILE_NAME) === out("secretKey")).toBe(true);
    expect(secret(AWS_CREDENTIALS_FILE_NAME) === out("awsCredentials")).toBe(true);
    expect(secret(GC_CREDENTIALS_FILE_NAME) === out("gcCredentials")).toBe(true);
    for (const name of [SIGNING_KEY_FILE_NAME, AWS_CREDENTIALS_FILE_NAME, GC_CREDENTIALS_FILE_NAME]) {
      expect((fs.statSync(path.join(secretsDir(), name)).mode & 0o777).toString(8)).toBe("600");
    }
    expect((fs.statSync(secretsDir()).mode & 0o777).toString(8)).toBe("700");
  });

  test("no file outside --secrets-dir, and nothing it prints, holds a secret", () => {
    const secrets = [out("secretKey").split(":")[1], out("builderSecretKey"), minio.rootPassword, out("gcSecretKey")];
    expect(secrets.map((s) => s.length >= 24)).toEqual([true, true, true, true]);
    const texts = filesUnder(outDir()).map((f) => fs.readFileSync(path.join(outDir(), f), "utf8"));
    texts.push(cli.stdout, cli.stderr);
    expect(secrets.map((s) => texts.some((text) => text.includes(s)))).toEqual([false, false, false, false]);
    // ... while the secret files do hold them (so the search above can find one).
    const secretTexts = filesUnder(secretsDir()).map((f) => fs.readFileSync(path.join(secretsDir(), f), "utf8")).join("\n");
    expect([secrets[0], secrets[1]].map((s) => secretTexts.includes(s))).toEqual([true, true]);
  });

  test("without --secrets-dir it writes the same host files and no secret file", () => {
    const r = hostConfig(["--stack", t.stack.name, "--out", "host-only"]);
    expect(r.status).toBe(0);
    expect(filesUnder(path.join(work, "host-only"))).toEqual(filesUnder(outDir()));
    for (const f of filesUnder(outDir())) {
      expect(fs.readFileSync(path.join(work, "host-only", f), "utf8")).toBe(fs.readFileSync(path.join(outDir(), f), "utf8"));
    }
  });

  test("bad arguments fail with one clear message, before reading the stack", () => {
    const inside = hostConfig(["--stack", t.stack.name, "--out", "host", "--secrets-dir", "host/secrets"]);
    expect(inside.status).toBe(2);
    expect(inside.stderr).toMatch(/--secrets-dir .* must not be --out or inside it/);
    const unknown = hostConfig(["--out", "x", "--secret-dir", "y"]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("unknown argument '--secret-dir' (allowed: --stack NAME, --out DIR, --secrets-dir DIR)");
    expect(unknown.stderr).toContain("usage: npm run host-config -- [--stack NAME] --out DIR [--secrets-dir DIR]");
    const noStack = hostConfig(["--stack", "no-such-stack", "--out", "y"]);
    expect(noStack.status).toBe(2);
    expect(noStack.stderr).toMatch(/could not read the stack outputs: .*no-such-stack/s);
    expect(fs.existsSync(path.join(work, "x")) || fs.existsSync(path.join(work, "y"))).toBe(false);
  });
});

/** The builder module's assertion on its secret paths (signingKeyFile and the others). */
const keyFileAssertions = (e: EvaluatedModules) =>
  e.builder.assertions.filter((a) => a.message.includes("signingKeyFile")).map((a) => a.assertion);

describe("the generated modules with real Nix", () => {
  let evaluated: EvaluatedModules;
  const scripts = () => path.join(work, "scripts");
  const files = () => ({ client: path.join(outDir(), CLIENT_MODULE_FILE), builder: path.join(outDir(), BUILDER_MODULE_FILE) });

  test("parse with nix-instantiate --parse", () => {
    for (const f of Object.values(files())) {
      const r = spawnSync("nix-instantiate", ["--parse", f], { env: nixEnv(path.join(work, "parse-home")), encoding: "utf8" });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
    }
  });

  test("evaluate against a NixOS stand-in: substituter, trusted key, secret-key-files, hook and push service", () => {
    evaluated = evalHostModules(path.join(work, "eval"), files(), {}, scripts());
    expect(evaluated.client.nix.settings).toEqual({
      "extra-substituters": [out("substituterUrl")],
      "extra-trusted-public-keys": [out("publicKey")],
    });
    const b = evaluated.builder;
    expect(b.nix.settings["secret-key-files"]).toEqual([BUILDER_DEFAULTS.signingKeyFile]);
    expect(b.nix.settings["post-build-hook"]).toBe(path.join(scripts(), "nix-cache-queue"));
    // The secret-path assertion holds (and any other the module has, e.g. the GC timer's).
    expect(keyFileAssertions(evaluated)).toEqual([true]);
    expect(b.assertions.map((a) => a.assertion)).not.toContain(false);
    expect(b.systemd.services["nix-cache-push"].serviceConfig).toMatchObject({ Type: "oneshot", ExecStart: path.join(scripts(), "nix-cache-drain") });
    expect(b.systemd.paths["nix-cache-push"].pathConfig).toEqual({ PathChanged: `${BUILDER_DEFAULTS.spoolDir}/queue` });
    expect(b.systemd.timers["nix-cache-push"].timerConfig.OnUnitActiveSec).toBe(BUILDER_DEFAULTS.retryInterval);
    expect(evaluated.drainText).toContain(`export AWS_SHARED_CREDENTIALS_FILE='${BUILDER_DEFAULTS.awsCredentialsFile}'\n`);
    expect(evaluated.drainText).toContain(`push_url='${out("pushUrl")}'\n`);
    expect(evaluated.drainText).toContain('nix --extra-experimental-features nix-command copy --option narinfo-cache-positive-ttl 0 --to "$push_url" "$@"');
    expect(evaluated.drainText).toContain("\nrefresh_after=86400\n");
    expect(evaluated.hookText).toContain(`spool='${BUILDER_DEFAULTS.spoolDir}'\n`);
    expect(evaluated.options.pushUrl.default).toBe(out("pushUrl"));
    expect(evaluated.options.signingKeyFile).toMatchObject({ default: "/run/secrets/nix-cache-signing-key", type: "string" });
    expect(evaluated.options.awsCredentialsFile).toMatchObject({ default: "/run/secrets/nix-cache-aws-credentials", type: "string" });
    for (const [name, o] of Object.entries(evaluated.options)) {
      expect([name, o.description.length > 40]).toEqual([name, true]);
    }
  });

  test("a secret file inside the Nix store fails the module's assertion", () => {
    const e = evalHostModules(path.join(work, "eval-bad"), files(), { signingKeyFile: "/nix/store/x-key" }, path.join(work, "scripts-bad"));
    expect(keyFileAssertions(e)).toEqual([false]);
  });
});

describe("the builder's post-build hook and push queue", () => {
  const store = () => path.join(work, "store-builder");
  const spool = () => path.join(work, "spool");
  const queue = () => path.join(spool(), "queue");
  const queueEntries = () => (fs.existsSync(queue()) ? fs.readdirSync(queue()).sort() : []);
  const queueSnapshot = () => queueEntries().map((e) => `${e}\n${fs.readFileSync(path.join(queue(), e), "utf8")}`);
  let builder: EvaluatedModules;
  let built: string;
  let marker: string;
  let minioDown = false;
  const builderSettings = () => ({
    spoolDir: spool(),
    signingKeyFile: path.join(secretsDir(), SIGNING_KEY_FILE_NAME),
    awsCredentialsFile: path.join(secretsDir(), AWS_CREDENTIALS_FILE_NAME),
    pushAttempts: 2,
    retryDelaySec: 1,
  });
  /** Runs the evaluated drain with the test's push path in place of Nix's missing S3 store. */
  const drain = () => {
    const pushViaFile = `node -r ${require.resolve("ts-node/register/transpile-only")} ${path.join(PROJECT_DIR, "tests/support/pushViaFile.ts")}`;
    const started = Date.now();
    const r = spawnSync(builder.builder.systemd.services["nix-cache-push"].serviceConfig.ExecStart as string, [], {
      cwd: PROJECT_DIR,
      env: { ...nixEnv(path.join(work, "drain-home"), [`store = ${store()}`]), [PUSH_COMMAND_ENV]: pushViaFile },
      encoding: "utf8",
      timeout: 120_000,
    });
    return { ...r, ms: Date.now() - started };
  };

  beforeAll(async () => {
    builder = evalHostModules(path.join(work, "eval-builder"), {
      client: path.join(outDir(), CLIENT_MODULE_FILE),
      builder: path.join(outDir(), BUILDER_MODULE_FILE),
    }, builderSettings(), path.join(work, "builder-scripts"));
    // The cache is down for the first steps: the hook and a failed push must not need it.
    await minio.stop();
    minioDown = true;
  });

  afterAll(async () => {
    // A second MinIO on the same port would outlive the test: restart only one that is down.
    if (minioDown) await minio.restart().catch(() => undefined);
  });

  test("run as Nix runs it, the hook returns at once and queues the paths while the cache is unreachable", async () => {
    expect(await fetch(`${out("substituterUrl")}/nix-cache-info`).then(() => "up", () => "down")).toBe("down");
    const outPaths = ["/nix/store/0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-gone", "/nix/store/1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b-gone-dev"];
    const started = Date.now();
    const r = spawnSync(builder.builder.nix.settings["post-build-hook"], [], {
      env: { PATH: process.env.PATH, OUT_PATHS: outPaths.join(" "), DRV_PATH: "/nix/store/2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c-gone.drv" },
      encoding: "utf8",
    });
    const ms = Date.now() - started;
    expect([r.status, r.stderr]).toEqual([0, ""]);
    // "At once": no wait on the unreachable cache. The bound is half the module's shortest network timeout (curl
    // --connect-timeout 10), so a network wait would show, and a busy machine's slow start does not fail it.
    expect(ms).toBeLessThan(HOOK_BOUND_MS);
    const entries = queueEntries();
    expect(entries).toHaveLength(1);
    expect(fs.readFileSync(path.join(queue(), entries[0]), "utf8")).toBe(
      `out ${outPaths[0]}\nout ${outPaths[1]}\ndrv /nix/store/2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c-gone.drv\n`,
    );
    expect((fs.statSync(queue()).mode & 0o777).toString(8)).toBe("700");
  });

  test("the hook exits 0 at once even when it cannot queue", () => {
    const broken = evalHostModules(path.join(work, "eval-broken"), {
      client: path.join(outDir(), CLIENT_MODULE_FILE),
      builder: path.join(outDir(), BUILDER_MODULE_FILE),
    }, { spoolDir: "/dev/null/spool" }, path.join(work, "broken-scripts"));
    const started = Date.now();
    const r = spawnSync(broken.builder.nix.settings["post-build-hook"], [], {
      env: { PATH: process.env.PATH, OUT_PATHS: "/nix/store/0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-x", DRV_PATH: "/nix/store/x.drv" },
      encoding: "utf8",
    });
    expect(r.status).toBe(0);
    expect(Date.now() - started).toBeLessThan(HOOK_BOUND_MS);
    expect(r.stderr).toContain("nix-cache: could not queue /nix/store/0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-x in /dev/null/spool");
  });

  test("Nix runs the hook after a real build, which Nix signs with the signing key file", () => {
    const drvFile = path.join(work, "payload.nix");
    marker = crypto.randomBytes(8).toString("hex");
    fs.writeFileSync(
      drvFile,
      `derivation { name = "payload"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo ${marker} > $out" ]; }\n`,
    );
    const settings = builder.builder.nix.settings;
    const env = nixEnv(path.join(work, "build-home"), [
      `post-build-hook = ${settings["post-build-hook"]}`,
      `secret-key-files = ${settings["secret-key-files"].join(" ")}`,
    ]);
    const before = queueEntries();
    const r = spawnSync("nix-build", ["--store", store(), "--no-out-link", drvFile], { env, encoding: "utf8" });
    expect(r.stderr).toContain("running post-build-hook");
    expect(r.status).toBe(0);
    built = r.stdout.trim();
    expect(built).toMatch(/^\/nix\/store\/[a-z0-9]{32}-payload$/);
    const added = queueEntries().filter((e) => !before.includes(e));
    expect(added).toHaveLength(1);
    // Nix 2.8.0 passes an empty OUT_PATHS (NixOS/nix#6446); the entry always names the derivation.
    expect(fs.readFileSync(path.join(queue(), added[0]), "utf8")).toMatch(/^drv \/nix\/store\/[a-z0-9]{32}-payload\.drv$/m);
    const sigs = spawnSync("nix", ["path-info", "--store", store(), "--sigs", built], { env, encoding: "utf8" });
    expect(sigs.stdout).toContain(` ${out("publicKey").split(":")[0]}:`);
  });

  test("a push that fails every attempt leaves the queue intact", () => {
    const before = queueSnapshot();
    expect(before).toHaveLength(2);
    const r = drain();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("nix-cache: push attempt 1/2 failed; retrying in 1s");
    expect(r.stderr).toMatch(/pushing 1 paths to s3:\/\/.* failed 2 times; they stay queued/);
    expect(r.ms).toBeGreaterThanOrEqual(1000);
    expect(queueSnapshot()).toEqual(before);
  });

  test("once the cache is back, the drain pushes the queue and an empty store pulls it with the public key", async () => {
    await minio.restart();
    minioDown = false;
    const narinfo = `${out("substituterUrl")}/${path.basename(built).slice(0, 32)}.narinfo`;
    expect((await fetch(narinfo)).status).toBe(404);

    const r = drain();
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("nix-cache: pushed 1 paths to s3://");
    // The first entry's paths were never built here: dropped, with a note, instead of blocking the queue.
    expect(r.stdout).toContain("/nix/store/0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-gone is no longer in the store; dropping it");
    expect(queueEntries()).toEqual([]);
    expect((await fetch(narinfo)).status).toBe(200);

    const pullStore = path.join(work, "store-client");
    const pull = spawnSync(
      "nix-store",
      ["--store", pullStore, "-r", built, "--option", "substituters", out("substituterUrl"), "--option", "trusted-public-keys", out("publicKey")],
      { env: nixEnv(path.join(work, "client-home")), encoding: "utf8" },
    );
    expect(pull.status).toBe(0);
    expect(fs.readFileSync(path.join(pullStore, built), "utf8")).toBe(`${marker}\n`);

    // The signature is what made it trusted: another key does not accept it.
    const other = spawnSync("nix", ["key", "generate-secret", "--key-name", "other-1"], { env: nixEnv(path.join(work, "other-home")), encoding: "utf8" });
    const otherPub = spawnSync("nix", ["key", "convert-secret-to-public"], { env: nixEnv(path.join(work, "other-home")), input: other.stdout, encoding: "utf8" });
    const refused = spawnSync(
      "nix-store",
      ["--store", path.join(work, "store-other"), "-r", built, "--option", "substituters", out("substituterUrl"), "--option", "trusted-public-keys", otherPub.stdout.trim()],
      { env: nixEnv(path.join(work, "other-home")), encoding: "utf8" },
    );
    expect(refused.status).not.toBe(0);
  });

  test("an empty queue drains at once", () => {
    const r = drain();
    expect([r.status, r.stdout, r.stderr]).toEqual([0, "", ""]);
    expect(r.ms).toBeLessThan(HOOK_BOUND_MS);
  });
});

describe("a key rotation: host-config for a stack with two keys, then with the old one retired", () => {
  const OLD = "s3.homelab.local-1";
  const NEW = "s3.homelab.local-2";
  const rotatedOut = () => path.join(work, "host-rotated");
  const rotatedSecrets = () => path.join(work, "secrets-rotated");
  const previousFile = () => previousSigningKeyFileName(OLD);
  let before: OutputMap;
  let rotated: OutputMap;
  const value = (outputs: OutputMap, name: string): string => String(outputs[name]?.value);

  beforeAll(async () => {
    before = outputs;
    expect(value(before, "publicKey").split(":")[0]).toBe(OLD);
    // Step 1 of a rotation: the new key is active, the old one kept (still trusted, still signing).
    await t.stack.setConfig("nix-cache:keyName", { value: NEW });
    await t.stack.setConfig("nix-cache:previousKeyNames[0]", { value: OLD }, true);
    expect((await t.stack.up()).summary.result).toBe("succeeded");
    rotated = await t.stack.outputs();
  });

  test("--secrets-dir: the new key where the key always was, the old one (byte-identical) in a file named by its name", () => {
    const r = hostConfig(["--stack", t.stack.name, "--out", "host-rotated", "--secrets-dir", "secrets-rotated"]);
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(filesUnder(rotatedSecrets())).toEqual([AWS_CREDENTIALS_FILE_NAME, GC_CREDENTIALS_FILE_NAME, SIGNING_KEY_FILE_NAME, previousFile()].sort());
    const secret = (name: string) => fs.readFileSync(path.join(rotatedSecrets(), name), "utf8");
    expect(secret(SIGNING_KEY_FILE_NAME) === value(rotated, "secretKey")).toBe(true);
    expect(secret(previousFile()) === value(before, "secretKey")).toBe(true);
    for (const name of filesUnder(rotatedSecrets())) {
      expect([name, (fs.statSync(path.join(rotatedSecrets(), name)).mode & 0o777).toString(8)]).toEqual([name, "600"]);
    }
    const json = JSON.parse(fs.readFileSync(path.join(rotatedOut(), OUTPUTS_JSON_FILE), "utf8"));
    expect(json.trustedPublicKeys).toEqual([value(rotated, "publicKey"), value(before, "publicKey")]);
    expect(json.secretKeys).toBeUndefined();
    // One source of truth with two keys too: the client module is the nixosModule output, and the stack's
    // signCommand signs with each key from the files this set-up names.
    expect(fs.readFileSync(path.join(rotatedOut(), CLIENT_MODULE_FILE), "utf8")).toBe(value(rotated, "nixosModule"));
    expect(value(rotated, "signCommand")).toBe(
      "nix store sign --key-file ~/.config/nix/secret.key --recursive ./result && " +
        `nix store sign --key-file ~/.config/nix/secret-${OLD}.key --recursive ./result`,
    );
    // Neither key's secret is in a public file or in what it printed.
    const secrets = [value(rotated, "secretKey"), value(before, "secretKey")].map((k) => k.split(":")[1]);
    const texts = filesUnder(rotatedOut()).map((f) => fs.readFileSync(path.join(rotatedOut(), f), "utf8"));
    texts.push(r.stdout, r.stderr);
    expect(secrets.map((s) => texts.some((text) => text.includes(s)))).toEqual([false, false]);
  });

  test("the modules trust both keys, and Nix signs a build with both through the builder module's secret-key-files", () => {
    const files = { client: path.join(rotatedOut(), CLIENT_MODULE_FILE), builder: path.join(rotatedOut(), BUILDER_MODULE_FILE) };
    const defaults = evalHostModules(path.join(work, "eval-rotated-defaults"), files, {}, path.join(work, "scripts-rotated-defaults"));
    expect(defaults.client.nix.settings["extra-trusted-public-keys"]).toEqual([value(rotated, "publicKey"), value(before, "publicKey")]);
    expect(defaults.options.previousSigningKeyFiles.default).toEqual([`/run/secrets/${previousFile()}`]);
    expect(defaults.builder.nix.settings["secret-key-files"]).toEqual([BUILDER_DEFAULTS.signingKeyFile, `/run/secrets/${previousFile()}`]);

    const evaluated = evalHostModules(path.join(work, "eval-rotated"), files, {
      signingKeyFile: path.join(rotatedSecrets(), SIGNING_KEY_FILE_NAME),
      previousSigningKeyFiles: [path.join(rotatedSecrets(), previousFile())],
    }, path.join(work, "scripts-rotated"));
    const keyFiles = evaluated.builder.nix.settings["secret-key-files"];
    expect(keyFiles).toEqual([path.join(rotatedSecrets(), SIGNING_KEY_FILE_NAME), path.join(rotatedSecrets(), previousFile())]);
    const drvFile = path.join(work, "rotated.nix");
    fs.writeFileSync(
      drvFile,
      `derivation { name = "rotated"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo ${crypto.randomBytes(8).toString("hex")} > $out" ]; }\n`,
    );
    const env = nixEnv(path.join(work, "rotated-home"), [`secret-key-files = ${keyFiles.join(" ")}`]);
    const store = path.join(work, "store-rotated");
    const r = spawnSync("nix-build", ["--store", store, "--no-out-link", drvFile], { env, encoding: "utf8" });
    expect(r.status).toBe(0);
    const sigs = spawnSync("nix", ["path-info", "--store", store, "--sigs", r.stdout.trim()], { env, encoding: "utf8" });
    expect(sigs.stdout).toContain(` ${NEW}:`);
    expect(sigs.stdout).toContain(` ${OLD}:`);
  });

  test("after retiring the old key: only the new key is trusted, and host-config names the old key's file it left", async () => {
    await t.stack.removeConfig("nix-cache:previousKeyNames");
    expect((await t.stack.up()).summary.result).toBe("succeeded");
    const retired = await t.stack.outputs();
    const r = hostConfig(["--stack", t.stack.name, "--out", "host-rotated", "--secrets-dir", "secrets-rotated"]);
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toContain(`left ${path.join(rotatedSecrets(), previousFile())}: not a signing key of this stack any more`);
    expect(fs.existsSync(path.join(rotatedSecrets(), previousFile()))).toBe(true);
    const json = JSON.parse(fs.readFileSync(path.join(rotatedOut(), OUTPUTS_JSON_FILE), "utf8"));
    expect(json.trustedPublicKeys).toEqual([value(retired, "publicKey")]);
    expect(value(retired, "publicKey")).toBe(value(rotated, "publicKey"));
    const files = { client: path.join(rotatedOut(), CLIENT_MODULE_FILE), builder: path.join(rotatedOut(), BUILDER_MODULE_FILE) };
    const e = evalHostModules(path.join(work, "eval-retired"), files, {}, path.join(work, "scripts-retired"));
    expect(e.client.nix.settings["extra-trusted-public-keys"]).toEqual([value(retired, "publicKey")]);
    expect(e.builder.nix.settings["secret-key-files"]).toEqual([BUILDER_DEFAULTS.signingKeyFile]);
  });
});
