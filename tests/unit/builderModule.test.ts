// The builder module text, and its hook and drain scripts run by bash with stand-in nix tools.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  BUILDER_DEFAULTS,
  builderModule,
  defaultPreviousSigningKeyFiles,
  drainBody,
  nixIndentedBody,
  previousSigningKeyFileName,
  PUSH_COMMAND_ENV,
  queueHookBody,
  SECRETS_MOUNT,
} from "../../lib/builderModule";
import { nixosModule } from "../../lib/hostConfig";
import { evalHostModules } from "../support/nixosStandIn";

const PUSH_URL = "s3://nix-cache?profile=nixbuilder&endpoint=http://127.0.0.1:9000&region=us-east-1&compression=zstd";
const PUBLIC_KEY = "s3.homelab.local-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
const KEY_2 = "s3.homelab.local-2:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
const KEY_3 = "s3.homelab.local-3:6Xqc6rBOEk7fBtqxmTaJhbSDmMQSrd/9MnWOnBbJ6tk=";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-builder-unit-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("nixIndentedBody", () => {
  test("escapes what Nix would interpolate or end the string at, and indents non-empty lines", () => {
    expect(nixIndentedBody('echo "${x}" \'\'\n\nmore\n\n', "  ")).toBe("  echo \"''${x}\" '''\n\n  more");
  });
});

describe("builderModule", () => {
  const text = builderModule({ pushUrl: PUSH_URL, publicKey: PUBLIC_KEY });

  test("declares each option with a type, a NixOS-style default and a description", () => {
    const options = [...text.matchAll(/^ {4}(\w+) = lib\.mkOption \{\n {6}type = ([^;]+);\n {6}default = ([^;]+);\n {6}description = "([^"]+)";/gm)];
    expect(options.map((m) => m[1])).toEqual([
      "enable", "pushUrl", "signingKeyFile", "previousSigningKeyFiles", "awsCredentialsFile", "spoolDir", "pushAttempts", "retryDelaySec",
      "sslCertFile", "retryInterval",
    ]);
    expect(text.match(/lib\.mkOption/g)).toHaveLength(options.length);
    const defaults = Object.fromEntries(options.map((m) => [m[1], m[3]]));
    expect(defaults).toMatchObject({
      enable: "true",
      pushUrl: JSON.stringify(PUSH_URL),
      signingKeyFile: '"/run/secrets/nix-cache-signing-key"',
      previousSigningKeyFiles: "[ ]",
      awsCredentialsFile: '"/run/secrets/nix-cache-aws-credentials"',
      spoolDir: `"${BUILDER_DEFAULTS.spoolDir}"`,
      pushAttempts: String(BUILDER_DEFAULTS.pushAttempts),
    });
    expect(text).toContain(`whose public half is ${PUBLIC_KEY}`);
  });

  test("uses the key file for secret-key-files, the queue script as post-build-hook, and reads credentials by path", () => {
    expect(text).toContain("nix.settings.secret-key-files = [ cfg.signingKeyFile ] ++ cfg.previousSigningKeyFiles;");
    expect(text).toContain("nix.settings.post-build-hook = queueHook;");
    expect(text).toContain("export AWS_SHARED_CREDENTIALS_FILE=${lib.escapeShellArg cfg.awsCredentialsFile}");
    expect(text).toContain("OnUnitActiveSec = cfg.retryInterval;");
  });

  test("a URL with Nix syntax in it stays text", () => {
    expect(builderModule({ pushUrl: 's3://b?x=${builtins.abort "no"}"', publicKey: PUBLIC_KEY })).toContain(
      'default = "s3://b?x=\\${builtins.abort \\"no\\"}\\"";',
    );
  });
});

describe("builderModule with a set of keys", () => {
  const input = (keys: string[]) => ({ pushUrl: PUSH_URL, publicKey: keys[0], trustedPublicKeys: keys });
  const optionOf = (text: string, name: string) =>
    new RegExp(`^ {4}${name} = lib\\.mkOption \\{\\n {6}type = ([^;]+);\\n {6}default = ([^;]+);\\n {6}description = "([^"]+)";`, "m").exec(text);

  test("one key (or trustedPublicKeys of just the publicKey): the same text as before key sets, no previous key file", () => {
    const single = builderModule({ pushUrl: PUSH_URL, publicKey: PUBLIC_KEY });
    expect(builderModule(input([PUBLIC_KEY]))).toBe(single);
    expect(optionOf(single, "previousSigningKeyFiles")?.[2]).toBe("[ ]");
    expect(optionOf(single, "previousSigningKeyFiles")?.[3]).toContain("This stack has no previous key: empty.");
  });

  test("two keys: previousSigningKeyFiles defaults to the previous key's file, named by its key name", () => {
    const text = builderModule(input([KEY_2, PUBLIC_KEY]));
    const previous = optionOf(text, "previousSigningKeyFiles");
    expect(previous?.[1]).toBe("lib.types.listOf lib.types.str");
    expect(previous?.[2]).toBe('[ "/run/secrets/nix-cache-signing-key-s3.homelab.local-1" ]');
    expect(previous?.[3]).toContain(`This stack's previous keys: s3.homelab.local-1 (public key ${PUBLIC_KEY}).`);
    expect(optionOf(text, "signingKeyFile")?.[2]).toBe('"/run/secrets/nix-cache-signing-key"');
    expect(optionOf(text, "signingKeyFile")?.[3]).toContain(`whose public half is ${KEY_2}`);
  });

  test("file names: by key name, percent-encoded where a name has characters a file name should not", () => {
    expect(previousSigningKeyFileName("s3.homelab.local-1")).toBe("nix-cache-signing-key-s3.homelab.local-1");
    expect(previousSigningKeyFileName("a/b")).toBe("nix-cache-signing-key-a%2Fb");
    expect(defaultPreviousSigningKeyFiles([KEY_3, "bare-1"])).toEqual([
      `${SECRETS_MOUNT}/nix-cache-signing-key-s3.homelab.local-3`,
      `${SECRETS_MOUNT}/nix-cache-signing-key-bare-1`,
    ]);
  });

  test("refuses a key list that does not start with publicKey, or has two keys of one name", () => {
    expect(() => builderModule({ pushUrl: PUSH_URL, publicKey: PUBLIC_KEY, trustedPublicKeys: [KEY_2, PUBLIC_KEY] })).toThrow(
      `the first of trustedPublicKeys must be the active publicKey ${PUBLIC_KEY}`,
    );
    expect(() => builderModule(input([KEY_2, KEY_2.replace("11q", "22q")]))).toThrow("two keys are named 's3.homelab.local-2'");
  });

  test("real Nix 2.8 evaluates it (NixOS stand-in): secret-key-files holds every key file, the active first", () => {
    const keys = [KEY_3, KEY_2, PUBLIC_KEY];
    const files = { client: path.join(dir, "client.nix"), builder: path.join(dir, "builder.nix") };
    fs.writeFileSync(files.client, nixosModule("http://127.0.0.1:9000/nix-cache", keys));
    fs.writeFileSync(files.builder, builderModule(input(keys)));
    const evaluated = evalHostModules(path.join(dir, "eval"), files, {}, path.join(dir, "scripts"));
    expect(evaluated.client.nix.settings["extra-trusted-public-keys"]).toEqual(keys);
    expect(evaluated.builder.nix.settings["secret-key-files"]).toEqual([
      BUILDER_DEFAULTS.signingKeyFile,
      "/run/secrets/nix-cache-signing-key-s3.homelab.local-2",
      "/run/secrets/nix-cache-signing-key-s3.homelab.local-1",
    ]);
    expect(evaluated.options.previousSigningKeyFiles.type).toBe("list of string");
    expect(evaluated.builder.assertions.map((a) => a.assertion)).toEqual([true]);

    // Set by the user (agenix paths, say): used as given; the single-key option still sets the active key.
    const set = evalHostModules(path.join(dir, "eval-set"), files, {
      signingKeyFile: "/run/agenix/k3",
      previousSigningKeyFiles: ["/run/agenix/k2", "/run/agenix/k1"],
    }, path.join(dir, "scripts-set"));
    expect(set.builder.nix.settings["secret-key-files"]).toEqual(["/run/agenix/k3", "/run/agenix/k2", "/run/agenix/k1"]);
    expect(set.builder.assertions.map((a) => a.assertion)).toEqual([true]);

    // A previous key's file in the world-readable store (or a relative path) fails the assertion.
    for (const bad of [["/run/agenix/k2", "/nix/store/x-k1"], ["k1"]]) {
      const e = evalHostModules(path.join(dir, "eval-bad"), files, { previousSigningKeyFiles: bad }, path.join(dir, "scripts-bad"));
      expect([bad, e.builder.assertions.map((a) => a.assertion)]).toEqual([bad, [false]]);
    }
    expect(() =>
      evalHostModules(path.join(dir, "eval-type"), files, { previousSigningKeyFiles: "/run/agenix/k2" }, path.join(dir, "scripts-type")),
    ).toThrow("option previousSigningKeyFiles: not a list of string");
  });
});

/** Runs a script body with bash after `prelude` (the variables the module sets). */
function runBash(prelude: string, body: string, env: NodeJS.ProcessEnv = {}) {
  const file = path.join(dir, `script-${Math.random().toString(36).slice(2)}.sh`);
  fs.writeFileSync(file, `${prelude}\n${body}`, { mode: 0o755 });
  const started = Date.now();
  const r = spawnSync("bash", [file], { env: { PATH: process.env.PATH, ...env }, encoding: "utf8" });
  return { ...r, ms: Date.now() - started };
}

describe("the queue hook", () => {
  const spool = () => path.join(dir, "spool");
  const entries = () => fs.readdirSync(path.join(spool(), "queue")).map((e) => fs.readFileSync(path.join(spool(), "queue", e), "utf8"));

  test("queues OUT_PATHS and DRV_PATH as one entry, and exits 0", () => {
    const r = runBash(`spool=${spool()}`, queueHookBody(), { OUT_PATHS: "/nix/store/a-x /nix/store/b-x-dev", DRV_PATH: "/nix/store/c-x.drv" });
    expect([r.status, r.stdout, r.stderr]).toEqual([0, "", ""]);
    expect(entries()).toEqual(["out /nix/store/a-x\nout /nix/store/b-x-dev\ndrv /nix/store/c-x.drv\n"]);
    expect(fs.readdirSync(path.join(spool(), "tmp"))).toEqual([]);
  });

  test("with the empty OUT_PATHS of Nix 2.8.0 it still queues the derivation", () => {
    const r = runBash(`spool=${spool()}`, queueHookBody(), { OUT_PATHS: "", DRV_PATH: "/nix/store/c-x.drv" });
    expect(r.status).toBe(0);
    expect(entries()).toEqual(["drv /nix/store/c-x.drv\n"]);
  });

  test("exits 0 with a warning when it cannot write the spool", () => {
    fs.writeFileSync(path.join(dir, "file"), "");
    const r = runBash(`spool=${path.join(dir, "file", "spool")}`, queueHookBody(), { OUT_PATHS: "/nix/store/a-x" });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("nix-cache: could not queue /nix/store/a-x");
  });
});

describe("the drain", () => {
  const spool = () => path.join(dir, "spool");
  const queue = () => path.join(spool(), "queue");
  const pushed = () => path.join(dir, "pushed");
  /** Stand-in nix-store: *-gone paths are invalid; a .drv's output is the same path without .drv. */
  const stubs = () => {
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(
      path.join(bin, "nix-store"),
      [
        "#!/bin/bash",
        'if [ "$1" = --query ]; then for d in "${@:3}"; do echo "${d%.drv}"; done; exit 0; fi',
        'if [ "$1" = --check-validity ]; then shift; [ "$1" = --print-invalid ] && shift; for p in "$@"; do case "$p" in *-gone) echo "$p";; esac; done; exit 0; fi',
        "exit 2",
      ].join("\n"),
      { mode: 0o755 },
    );
    return `${bin}:${process.env.PATH}`;
  };
  const queueEntry = (name: string, text: string) => {
    fs.mkdirSync(queue(), { recursive: true });
    fs.writeFileSync(path.join(queue(), name), text);
  };
  /** A push command: a script that records its URL and arguments, then runs `then` (its exit decides). */
  const pushStub = (then: string) => {
    const file = path.join(dir, "push.sh");
    fs.writeFileSync(file, `#!/bin/bash\necho "push $NIX_CACHE_PUSH_URL $*" >> ${pushed()}\n${then}\n`, { mode: 0o755 });
    return file;
  };
  const pushLog = () => fs.readFileSync(pushed(), "utf8").split("\n").filter((l) => l !== "");
  const drain = (pushCommand: string, attempts = 3) =>
    runBash(`spool=${spool()}\npush_url='${PUSH_URL}'\nattempts=${attempts}\ndelay=0`, drainBody(), {
      PATH: stubs(),
      [PUSH_COMMAND_ENV]: pushCommand,
    });

  test("pushes each queued path once (an entry's out paths, else its derivation's outputs), drops deleted ones, empties the queue", () => {
    queueEntry("1-a", "out /nix/store/aaa-x\nout /nix/store/bbb-gone\ndrv /nix/store/ccc-x.drv\n");
    queueEntry("2-b", "drv /nix/store/ddd-y.drv\n");
    queueEntry("3-c", "out /nix/store/aaa-x\n");
    const r = drain(pushStub("exit 0"));
    expect(r.status).toBe(0);
    expect(pushLog()).toEqual([`push ${PUSH_URL} /nix/store/aaa-x /nix/store/ddd-y`]);
    expect(r.stdout).toContain("nix-cache: /nix/store/bbb-gone is no longer in the store; dropping it");
    expect(r.stdout).toContain("nix-cache: pushed 2 paths");
    expect(fs.readdirSync(queue())).toEqual([]);
  });

  test("retries, then keeps the queue and fails when every attempt fails", () => {
    queueEntry("1-a", "out /nix/store/aaa-x\n");
    const r = drain(pushStub("exit 1"), 3);
    expect(r.status).toBe(1);
    expect(pushLog()).toEqual(Array(3).fill(`push ${PUSH_URL} /nix/store/aaa-x`));
    expect(r.stderr).toContain("push attempt 2/3 failed; retrying in 0s");
    expect(r.stderr).toContain("failed 3 times; they stay queued");
    expect(fs.readdirSync(queue())).toEqual(["1-a"]);
  });

  test("a push that succeeds on a retry empties the queue", () => {
    queueEntry("1-a", "out /nix/store/aaa-x\n");
    const r = drain(pushStub(`[ "$(wc -l < ${pushed()})" -ge 2 ]`), 3);
    expect(r.status).toBe(0);
    expect(pushLog()).toHaveLength(2);
    expect(fs.readdirSync(queue())).toEqual([]);
  });

  test("leaves the queue to a drain that is already running", async () => {
    queueEntry("1-a", "out /nix/store/aaa-x\n");
    const lock = path.join(spool(), "drain.lock");
    const holder = spawn("flock", [lock, "sleep", "30"], { stdio: "ignore" });
    try {
      // Wait until the holder has the lock.
      while (spawnSync("flock", ["-n", lock, "true"]).status === 0) await new Promise((r) => setTimeout(r, 20));
      const r = drain(pushStub("exit 0"));
      expect([r.status, r.stdout]).toEqual([0, "nix-cache: another drain is running\n"]);
      expect(fs.existsSync(pushed())).toBe(false);
      expect(fs.readdirSync(queue())).toEqual(["1-a"]);
    } finally {
      holder.kill();
    }
  });
});
