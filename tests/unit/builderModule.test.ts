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
  keepAliveBody,
  nixIndentedBody,
  previousSigningKeyFileName,
  PUSH_COMMAND_ENV,
  PUSH_NIX_CONFIG,
  PUSH_NIX_OPTION,
  queueHookBody,
  SECRETS_MOUNT,
} from "../../lib/hosts/builderModule";
import { nixosModule } from "../../lib/hosts/hostConfig";
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
  test("a quote right before ${ stays a quote (two plain escapes would make three quotes and a live ${)", () => {
    expect(nixIndentedBody("echo '${HOME}'", "")).toBe("echo ''\\'''${HOME}'");
  });
});

describe("builderModule", () => {
  const text = builderModule({ pushUrl: PUSH_URL, publicKey: PUBLIC_KEY });

  test("declares each option with a type, a NixOS-style default and a description", () => {
    const options = [...text.matchAll(/^ {4}(\w+) = lib\.mkOption \{\n {6}type = ([^;]+);\n {6}default = ([^;]+);\n {6}description = "([^"]+)";/gm)];
    expect(options.map((m) => m[1])).toEqual([
      "enable", "pushUrl", "signingKeyFile", "previousSigningKeyFiles", "awsCredentialsFile", "spoolDir", "pushAttempts", "retryDelaySec",
      "sslCertFile", "retryInterval", "refreshAfterSec",
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
      refreshAfterSec: "86400",
    });
    expect(Object.fromEntries(options.map((m) => [m[1], m[2]])).refreshAfterSec).toBe("lib.types.ints.unsigned");
    expect(text).toContain(`whose public half is ${PUBLIC_KEY}`);
  });

  test("uses the key file for secret-key-files, the queue script as post-build-hook, and reads credentials by path", () => {
    expect(text).toContain("nix.settings.secret-key-files = [ cfg.signingKeyFile ] ++ cfg.previousSigningKeyFiles;");
    expect(text).toContain("nix.settings.post-build-hook = queueHook;");
    expect(text).toContain("export AWS_SHARED_CREDENTIALS_FILE=${lib.escapeShellArg cfg.awsCredentialsFile}");
    expect(text).toContain("OnUnitActiveSec = cfg.retryInterval;");
  });

  test("the drain pushes with narinfo-cache-positive-ttl 0, has curl on its PATH and gets refreshAfterSec", () => {
    expect(text).toContain('nix --extra-experimental-features nix-command copy --option narinfo-cache-positive-ttl 0 --to "$push_url" "$@"');
    expect(text).toContain("${pkgs.curl}/bin:");
    expect(text).toContain("    refresh_after=${toString cfg.refreshAfterSec}\n");
    expect(drainBody()).toContain(keepAliveBody());
  });

  test("lib/hosts/sh/drain.sh spells out PUSH_COMMAND_ENV and the push setting as the constants do", () => {
    expect(drainBody()).toContain(`if [ -n "\${${PUSH_COMMAND_ENV}:-}" ]; then`);
    expect(drainBody()).toContain(`sh -c "$${PUSH_COMMAND_ENV} `);
    expect(drainBody()).toContain(`$nl}${PUSH_NIX_CONFIG}" NIX_CACHE_PUSH_URL=`);
    expect(drainBody()).toContain(` copy --option ${PUSH_NIX_OPTION.name} ${PUSH_NIX_OPTION.value} --to `);
  });

  test("real Nix 2.8 evaluates refreshAfterSec: 86400 by default, 0 allowed, negative refused; the drain gets it", () => {
    const files = { client: path.join(dir, "client.nix"), builder: path.join(dir, "builder.nix") };
    fs.writeFileSync(files.client, nixosModule("http://127.0.0.1:9000/nix-cache", [PUBLIC_KEY]));
    fs.writeFileSync(files.builder, text);
    const byDefault = evalHostModules(path.join(dir, "eval"), files, {}, path.join(dir, "scripts"));
    expect(byDefault.options.refreshAfterSec).toMatchObject({ default: 86400, type: "unsigned integer, meaning >=0" });
    expect(byDefault.drainText).toContain("\nrefresh_after=86400\n");
    expect(byDefault.drainText).toContain(":/usr/bin:"); // the stand-in's pkgs.curl
    expect(byDefault.drainText).toContain(drainBody());
    const zero = evalHostModules(path.join(dir, "eval-0"), files, { refreshAfterSec: 0 }, path.join(dir, "scripts-0"));
    expect(zero.drainText).toContain("\nrefresh_after=0\n");
    expect(() => evalHostModules(path.join(dir, "eval-neg"), files, { refreshAfterSec: -1 }, path.join(dir, "scripts-neg"))).toThrow(
      "option refreshAfterSec: not a unsigned integer",
    );
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

/** Stand-in nix-store (@GRAPH@: the reference graph file). */
const NIX_STORE_STUB = [
  '#!/bin/bash',
  "# Stand-in nix-store. *-gone paths are invalid; a .drv's output is the same path without .drv; references",
  "# come from the graph file's \"PATH REF...\" lines; requisites print dependents first, to prove the drain sorts.",
  'graph=@GRAPH@',
  'refs() { if [ -f "$graph" ]; then sed -n "s|^$1 ||p" "$graph"; fi; }',
  'if [ "$1" = --query ] && [ "$2" = --requisites ]; then',
  '  if [ -n "${STUB_NO_STORE:-}" ]; then echo "error: stand-in store is broken" >&2; exit 1; fi',
  '  declare -A seen',
  '  todo=("${@:3}")',
  '  while [ "${#todo[@]}" -gt 0 ]; do',
  '    p=${todo[0]}',
  '    todo=("${todo[@]:1}")',
  '    if [ -n "${seen[$p]:-}" ]; then continue; fi',
  '    seen[$p]=1',
  '    for r in $(refs "$p"); do todo+=("$r"); done',
  '  done',
  '  printf "%s\\n" "${!seen[@]}" | sort -r',
  '  exit 0',
  'fi',
  'if [ "$1" = --query ]; then for d in "${@:3}"; do echo "${d%.drv}"; done; exit 0; fi',
  'if [ "$1" = --dump-db ]; then',
  '  shift',
  '  for p in "$@"; do',
  '    r=($(refs "$p"))',
  '    printf "%s\\n0000\\n1\\n\\n%s\\n" "$p" "${#r[@]}"',
  '    if [ "${#r[@]}" -gt 0 ]; then printf "%s\\n" "${r[@]}"; fi',
  '  done',
  '  exit 0',
  'fi',
  'if [ "$1" = --check-validity ]; then shift; [ "$1" = --print-invalid ] && shift; for p in "$@"; do case "$p" in *-gone) echo "$p";; esac; done; exit 0; fi',
  'exit 2',
].join("\n");

/** Stand-in curl (@LOG@: its log file, @BUCKET@: the bucket's directory). */
const CURL_STUB = [
  '#!/bin/bash',
  "# Stand-in curl for the drain's S3 requests: a bucket is a directory, a key a file, its mtime the LastModified.",
  '# Logs "METHOD KEY [copy=SOURCE DIRECTIVE TYPE]" per request, the command line and the config read on stdin.',
  '# STUB_CURL_DOWN: no answer; STUB_CURL_FAIL="METHOD KEY-PREFIX": 403 AccessDenied for matching requests.',
  'log=@LOG@',
  'bucket=@BUCKET@',
  'method=GET',
  'hdrs=()',
  'url=""',
  'dump=/dev/null',
  'out=/dev/null',
  'printf "%s\\n" "$*" >> "$log.argv"',
  'while [ "$#" -gt 0 ]; do',
  '  case $1 in',
  '    --config) cat >> "$log.config"; shift 2 ;;',
  '    --head) method=HEAD; shift ;;',
  '    --request) method=$2; shift 2 ;;',
  '    --header) hdrs+=("$2"); shift 2 ;;',
  '    --dump-header) dump=$2; shift 2 ;;',
  '    --output) out=$2; shift 2 ;;',
  '    --aws-sigv4|--cacert|--connect-timeout|--max-time|--write-out) shift 2 ;;',
  '    -*) shift ;;',
  '    *) url=$1; shift ;;',
  '  esac',
  'done',
  'if [ -n "${STUB_CURL_DOWN:-}" ]; then echo "curl: (7) Failed to connect to 127.0.0.1 port 9000" >&2; printf 000; exit 7; fi',
  'key=${url#*://*/*/}',
  'copy=""',
  'for h in "${hdrs[@]}"; do',
  '  case $h in',
  '    x-amz-copy-source:*) copy="copy=${h#*: }" ;;',
  '    x-amz-metadata-directive:*) copy="$copy ${h#*: }" ;;',
  '    Content-Type:*) copy="$copy ${h#*: }" ;;',
  '  esac',
  'done',
  'echo "$method $key${copy:+ $copy}" >> "$log"',
  'http_date() { date -u "$@" "+%a, %d %b %Y %H:%M:%S GMT"; }',
  'if [ -n "${STUB_CURL_FAIL:-}" ] && [[ "$method $key" == "$STUB_CURL_FAIL"* ]]; then',
  '  printf "HTTP/1.1 403 Forbidden\\r\\n\\r\\n" > "$dump"',
  '  printf "<?xml version=\\"1.0\\"?><Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>" > "$out"',
  '  printf 403',
  '  exit 0',
  'fi',
  'if [ ! -f "$bucket/$key" ]; then',
  '  printf "HTTP/1.1 404 Not Found\\r\\nDate: %s\\r\\n\\r\\n" "$(http_date)" > "$dump"',
  '  : > "$out"',
  '  printf 404',
  '  exit 0',
  'fi',
  'if [ "$method" = PUT ]; then touch "$bucket/$key"; fi',
  'printf "HTTP/1.1 200 OK\\r\\nLast-Modified: %s\\r\\nDate: %s\\r\\n\\r\\n" "$(http_date -r "$bucket/$key")" "$(http_date)" > "$dump"',
  'if [ "$method" = GET ]; then cat "$bucket/$key" > "$out"; else : > "$out"; fi',
  'printf 200',
].join("\n");

const ACCESS_KEY = "nixbuilder";
const SECRET_KEY = "s3cr3t-Key/with+odd\\chars\"and-quotes";

describe("the drain", () => {
  const spool = () => path.join(dir, "spool");
  const queue = () => path.join(spool(), "queue");
  const pushed = () => path.join(dir, "pushed");
  const bucket = () => path.join(dir, "bucket");
  const curlLog = () => path.join(dir, "curl.log");
  const graph = () => path.join(dir, "graph");
  const credentials = () => path.join(dir, "credentials");
  /** Stand-ins for nix-store and curl in front of PATH. */
  const stubs = () => {
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin, { recursive: true });
    fs.mkdirSync(bucket(), { recursive: true });
    fs.writeFileSync(path.join(bin, "nix-store"), NIX_STORE_STUB.replace("@GRAPH@", graph()), { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "curl"), CURL_STUB.replace("@LOG@", curlLog()).replace("@BUCKET@", bucket()), { mode: 0o755 });
    fs.writeFileSync(
      credentials(),
      `[other]\naws_access_key_id = other\naws_secret_access_key = other-secret\n\n[ nixbuilder ]\n  aws_access_key_id=${ACCESS_KEY}\naws_secret_access_key = ${SECRET_KEY}\n`,
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
  const drain = (pushCommand: string, attempts = 3, refreshAfter = 86400, env: NodeJS.ProcessEnv = {}, pushUrl = PUSH_URL) =>
    runBash(`spool=${spool()}\npush_url='${pushUrl}'\nattempts=${attempts}\ndelay=0\nrefresh_after=${refreshAfter}`, drainBody(), {
      PATH: stubs(),
      AWS_SHARED_CREDENTIALS_FILE: credentials(),
      [PUSH_COMMAND_ENV]: pushCommand,
      ...env,
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

  /** A store path whose hash is 32 times `c` (a character of Nix's base-32). */
  const sp = (c: string, name: string) => `/nix/store/${c.repeat(32)}-${name}`;
  const hashOf = (p: string) => path.basename(p).slice(0, 32);
  const LEAF = sp("l", "leaf");
  const MID1 = sp("m", "mid1");
  const MID2 = sp("n", "mid2");
  const YOUNG = sp("y", "young");
  const UNCACHED = sp("z", "uncached");
  const TOP = sp("p", "top");
  const TWO_DAYS_AGO = new Date(Date.now() - 2 * 86400_000);
  /** TOP references MID1, MID2, YOUNG, UNCACHED and itself; both MIDs reference LEAF. All but UNCACHED are
   *  cached; TOP (just pushed) and YOUNG are new, the rest two days old. */
  const closure = () => {
    fs.writeFileSync(
      graph(),
      [`${TOP} ${MID1} ${MID2} ${YOUNG} ${UNCACHED} ${TOP}`, `${MID1} ${LEAF}`, `${MID2} ${LEAF}`, `${LEAF} ${LEAF}`, YOUNG, UNCACHED].join("\n") + "\n",
    );
    fs.mkdirSync(path.join(bucket(), "nar"), { recursive: true });
    for (const p of [LEAF, MID1, MID2, YOUNG, TOP]) {
      const h = hashOf(p);
      fs.writeFileSync(path.join(bucket(), `${h}.narinfo`), `StorePath: ${p}\nURL: nar/${h}.nar.zst\nCompression: zstd\n`);
      fs.writeFileSync(path.join(bucket(), "nar", `${h}.nar.zst`), "nar");
      if (p !== TOP && p !== YOUNG) {
        for (const key of [`${h}.narinfo`, `nar/${h}.nar.zst`]) fs.utimesSync(path.join(bucket(), key), TWO_DAYS_AGO, TWO_DAYS_AGO);
      }
    }
    queueEntry("1-a", `out ${TOP}\n`);
  };
  const curlCalls = () => (fs.existsSync(curlLog()) ? fs.readFileSync(curlLog(), "utf8").split("\n").filter((l) => l !== "") : []);
  const touches = (p: string) => {
    const h = hashOf(p);
    return [
      `PUT nar/${h}.nar.zst copy=/nix-cache/nar/${h}.nar.zst REPLACE application/x-nix-nar`,
      `PUT ${h}.narinfo copy=/nix-cache/${h}.narinfo REPLACE text/x-nix-narinfo`,
    ];
  };
  const mtime = (key: string) => fs.statSync(path.join(bucket(), key)).mtimeMs;

  test("after a push, refreshes the closure's cached paths older than refresh_after: NAR then narinfo, dependencies first", () => {
    closure();
    const r = drain(pushStub("exit 0"));
    expect([r.status, fs.readdirSync(queue())]).toEqual([0, []]);
    expect(r.stdout).toContain("nix-cache: pushed 1 paths");
    expect(r.stdout).toContain("nix-cache: refreshed 3 of 5 cached paths\n");
    expect(r.stderr).toBe(`nix-cache: ${hashOf(UNCACHED)}.narinfo (${UNCACHED}) is not in the cache; not refreshed\n`);
    const calls = curlCalls();
    // Every closure path is looked at once, in an order where each comes after its references.
    const heads = calls.filter((c) => c.startsWith("HEAD ")).map((c) => c.slice(5, 37));
    expect([...heads].sort()).toEqual([LEAF, MID1, MID2, YOUNG, UNCACHED, TOP].map(hashOf).sort());
    const at = (p: string) => heads.indexOf(hashOf(p));
    expect([at(LEAF) < at(MID1), at(LEAF) < at(MID2), at(MID1) < at(TOP), at(MID2) < at(TOP), at(YOUNG) < at(TOP), at(UNCACHED) < at(TOP)]).toEqual(
      Array(6).fill(true),
    );
    // The old ones are copied onto themselves, each NAR right before its narinfo; the new ones are left alone.
    const puts = calls.filter((c) => c.startsWith("PUT "));
    const [first, second] = at(MID1) < at(MID2) ? [MID1, MID2] : [MID2, MID1];
    expect(puts).toEqual([...touches(LEAF), ...touches(first), ...touches(second)]);
    expect(calls.filter((c) => c.startsWith("GET "))).toEqual([LEAF, first, second].map((p) => `GET ${hashOf(p)}.narinfo`));
    for (const p of [LEAF, MID1, MID2]) expect(mtime(`${hashOf(p)}.narinfo`)).toBeGreaterThan(Date.now() - 60_000);
    expect(mtime(`${hashOf(YOUNG)}.narinfo`)).toBeGreaterThan(Date.now() - 60_000);
  });

  test("signs with the push URL's profile and region, passing the keys on stdin, never on a command line or in the output", () => {
    closure();
    const r = drain(pushStub("exit 0"));
    expect(r.status).toBe(0);
    const argv = fs.readFileSync(`${curlLog()}.argv`, "utf8");
    expect(argv).toContain("--aws-sigv4 aws:amz:us-east-1:s3");
    expect(argv).toContain(`http://127.0.0.1:9000/nix-cache/${hashOf(LEAF)}.narinfo`);
    expect(argv).toContain("x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    // curl's config syntax: backslash and double quote escaped.
    const config = fs.readFileSync(`${curlLog()}.config`, "utf8").split("\n").filter((l) => l !== "");
    expect(new Set(config)).toEqual(new Set(['user = "nixbuilder:s3cr3t-Key/with+odd\\\\chars\\"and-quotes"']));
    for (const text of [argv, r.stdout, r.stderr]) {
      expect([text.includes("s3cr3t"), text.includes("other-secret")]).toEqual([false, false]);
    }
  });

  test("refresh_after=0 refreshes every cached path of the closure, new ones too", () => {
    closure();
    const r = drain(pushStub("exit 0"), 3, 0);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("nix-cache: refreshed 5 of 5 cached paths\n");
    const puts = curlCalls().filter((c) => c.startsWith("PUT "));
    expect(puts).toHaveLength(10);
    expect(puts.slice(-2)).toEqual(touches(TOP));
  });

  test("nothing old: no refresh and no summary line", () => {
    closure();
    for (const f of fs.readdirSync(bucket(), { recursive: true, withFileTypes: true })) {
      if (f.isFile()) fs.utimesSync(path.join(f.parentPath, f.name), new Date(), new Date());
    }
    const r = drain(pushStub("exit 0"));
    expect(r.status).toBe(0);
    expect(r.stdout).not.toContain("refreshed");
    expect(curlCalls().filter((c) => !c.startsWith("HEAD "))).toEqual([]);
  });

  test("a refresh the cache refuses stops the refresh, is reported, and neither fails the drain nor queues anything", () => {
    closure();
    const r = drain(pushStub("exit 0"), 3, 86400, { STUB_CURL_FAIL: "PUT nar/" });
    expect([r.status, fs.readdirSync(queue())]).toEqual([0, []]);
    expect(r.stderr).toContain(
      `nix-cache: refreshing cached paths stopped: refreshing nar/${hashOf(LEAF)}.nar.zst: HTTP 403 (AccessDenied); the push itself succeeded\n`,
    );
    expect(r.stdout).not.toContain("refreshed");
    // The dependency's NAR was the first thing refreshed, and nothing after it was tried: no dependent gets
    // younger than a dependency that could not be refreshed.
    expect(curlCalls().filter((c) => c.startsWith("PUT ")).map((c) => c.split(" ")[1])).toEqual([`nar/${hashOf(LEAF)}.nar.zst`]);
    expect(curlCalls().at(-1)).toBe(`PUT nar/${hashOf(LEAF)}.nar.zst copy=/nix-cache/nar/${hashOf(LEAF)}.nar.zst REPLACE application/x-nix-nar`);
  });

  test("a refusal after some refreshes still prints how many were refreshed", () => {
    closure();
    const r = drain(pushStub("exit 0"), 3, 0, { STUB_CURL_FAIL: `PUT ${hashOf(TOP)}.narinfo` });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`stopped: refreshing ${hashOf(TOP)}.narinfo: HTTP 403 (AccessDenied); the push itself succeeded`);
    expect(r.stdout).toContain("nix-cache: refreshed 4 of 5 cached paths\n");
  });

  test("with the cache unreachable after the push, the refresh says so and the drain succeeds", () => {
    closure();
    const r = drain(pushStub("exit 0"), 3, 86400, { STUB_CURL_DOWN: "1" });
    expect([r.status, fs.readdirSync(queue())]).toEqual([0, []]);
    expect(r.stderr).toMatch(
      /nix-cache: refreshing cached paths stopped: HEAD [0-9a-z]{32}\.narinfo: no answer \(curl: \(7\) Failed to connect to 127\.0\.0\.1 port 9000 \); the push itself succeeded/,
    );
  });

  test("a failed push refreshes nothing", () => {
    closure();
    const r = drain(pushStub("exit 1"), 2);
    expect(r.status).toBe(1);
    expect(fs.existsSync(curlLog())).toBe(false);
    expect(fs.readdirSync(queue())).toEqual(["1-a"]);
  });

  test("a NAR that vanished is reported and its narinfo left alone; the rest is refreshed", () => {
    closure();
    fs.rmSync(path.join(bucket(), "nar", `${hashOf(MID1)}.nar.zst`));
    const r = drain(pushStub("exit 0"));
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`nix-cache: nar/${hashOf(MID1)}.nar.zst (the NAR of ${hashOf(MID1)}.narinfo) is missing; skipped\n`);
    expect(r.stdout).toContain("nix-cache: refreshed 2 of 5 cached paths\n");
    expect(curlCalls()).not.toContain(touches(MID1)[1]);
  });

  test("reads an https endpoint, bucket, region and profile from the URL as Nix does, and trusts NIX_SSL_CERT_FILE", () => {
    closure();
    const url = "s3://my-cache?compression=zstd&endpoint=s3.homelab.local%3A9443%2Fignored&scheme=https&region=eu-west-1&profile=nixbuilder";
    const r = drain(pushStub("exit 0"), 3, 86400, { NIX_SSL_CERT_FILE: "/etc/homelab/ca.pem" }, url);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("nix-cache: refreshed 3 of 5 cached paths\n");
    const argv = fs.readFileSync(`${curlLog()}.argv`, "utf8");
    expect(argv).toContain("--aws-sigv4 aws:amz:eu-west-1:s3");
    expect(argv).toContain("--cacert /etc/homelab/ca.pem");
    expect(argv).toContain(`https://s3.homelab.local:9443/my-cache/${hashOf(LEAF)}.narinfo`);
    expect(curlCalls()).toContain(`PUT ${hashOf(LEAF)}.narinfo copy=/my-cache/${hashOf(LEAF)}.narinfo REPLACE text/x-nix-narinfo`);
  });

  test("without credentials for the URL's profile (default when none), or without the closure, it only says why", () => {
    closure();
    const noProfile = drain(pushStub("exit 0"), 3, 86400, {}, "s3://nix-cache?endpoint=http://127.0.0.1:9000");
    expect([noProfile.status, noProfile.stdout.includes("pushed 1 paths")]).toEqual([0, true]);
    expect(noProfile.stderr).toBe(
      `nix-cache: refreshing cached paths stopped: no credentials for profile default in ${credentials()}; the push itself succeeded\n`,
    );
    expect(fs.existsSync(curlLog())).toBe(false);

    queueEntry("2-b", `out ${TOP}\n`);
    const noStore = drain(pushStub("exit 0"), 3, 86400, { STUB_NO_STORE: "1" });
    expect(noStore.status).toBe(0);
    expect(noStore.stderr).toContain("nix-cache: refreshing cached paths stopped: could not read the closure of the pushed paths from the store");
    expect(fs.existsSync(curlLog())).toBe(false);
  });

  test("the push command gets narinfo-cache-positive-ttl = 0 appended to NIX_CONFIG, which real Nix 2.8 reads", () => {
    queueEntry("1-a", "out /nix/store/aaa-x\n");
    const seen = path.join(dir, "nix-config");
    const home = path.join(dir, "home");
    // The drain appends the paths to the command: `true` takes them.
    const command = `nix --extra-experimental-features nix-command show-config > ${seen}; true`;
    const r = drain(command, 1, 86400, { HOME: home, XDG_CACHE_HOME: home, NIX_CONFIG: "narinfo-cache-negative-ttl = 7\nnarinfo-cache-positive-ttl = 99" });
    expect(r.status).toBe(0);
    const config = fs.readFileSync(seen, "utf8");
    expect(config).toContain("\nnarinfo-cache-positive-ttl = 0\n");
    expect(config).toContain("\nnarinfo-cache-negative-ttl = 7\n");
    queueEntry("2-b", "out /nix/store/aaa-x\n");
    const again = drain(`printf '%s' "$NIX_CONFIG" > ${seen}; true`, 1);
    // runBash passes no NIX_CONFIG of its own: the line alone.
    expect([again.status, fs.readFileSync(seen, "utf8")]).toEqual([0, "narinfo-cache-positive-ttl = 0"]);
  });
});
