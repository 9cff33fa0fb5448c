// The texts hosts consume: URLs, the NixOS module (checked by the real Nix parser), AWS credentials, and
// the builder's commands (checked by a real shell).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { nixEnv } from "../../harness/nix";
import {
  awsCredentials,
  DEFAULT_SECRET_KEY_FILE,
  defaultSecretKeyFiles,
  keyFileSuffix,
  keyList,
  keyNameOf,
  nixosModule,
  nixString,
  PUSH_COMPRESSION,
  PUSH_COMPRESSION_LEVEL,
  pushCommand,
  pushUrl,
  signCommand,
  substituterUrl,
} from "../../lib/hosts/hostConfig";
import { generateKeypair } from "../../lib/signing/signingKey";
import { nixOk, nixSandbox } from "./support/nix";

const nix = nixSandbox();
afterAll(() => nix.cleanup());

/** The argv a shell passes to `nix` for a command line: a stub `nix` prints one argument per line. */
function argvOf(commandLine: string, home: string): string[] {
  const r = spawnSync("sh", ["-c", `nix() { for a in "$@"; do printf '%s\\n' "$a"; done; }\n${commandLine}`], {
    encoding: "utf8",
    env: { PATH: process.env.PATH, HOME: home },
  });
  if (r.status !== 0) throw new Error(`sh failed: ${r.stderr}`);
  return r.stdout.split("\n").slice(0, -1);
}

describe("substituterUrl", () => {
  test.each([
    ["https://s3.homelab.local", "nix-cache", "https://s3.homelab.local/nix-cache"],
    ["https://s3.homelab.local/", "nix-cache", "https://s3.homelab.local/nix-cache"],
    ["http://127.0.0.1:9000", "my.cache", "http://127.0.0.1:9000/my.cache"],
    ["http://127.0.0.1:9000//", "c-1", "http://127.0.0.1:9000/c-1"],
  ])("%s + %s", (url, bucket, expected) => {
    expect(substituterUrl(url, bucket)).toBe(expected);
  });
});

describe("pushUrl", () => {
  test("https endpoint without port: the endpoint is the full origin", () => {
    expect(pushUrl({ bucket: "nix-cache", endpoint: "https://s3.homelab.local", region: "us-east-1", profile: "nixbuilder" })).toBe(
      "s3://nix-cache?profile=nixbuilder&endpoint=https://s3.homelab.local&region=us-east-1&compression=zstd&compression-level=9",
    );
  });

  test("http endpoint with a port", () => {
    const url = pushUrl({ bucket: "c", endpoint: "http://127.0.0.1:9000", region: "eu-west-1", profile: "builder.1" });
    expect(url).toBe("s3://c?profile=builder.1&endpoint=http://127.0.0.1:9000&region=eu-west-1&compression=zstd&compression-level=9");
    const parsed = new URL(url);
    expect(parsed.protocol).toBe("s3:");
    expect(parsed.host).toBe("c");
    expect(Object.fromEntries(parsed.searchParams)).toEqual({
      profile: "builder.1",
      endpoint: "http://127.0.0.1:9000",
      region: "eu-west-1",
      compression: PUSH_COMPRESSION,
      "compression-level": String(PUSH_COMPRESSION_LEVEL),
    });
  });

  test("a default port, a trailing slash and upper case are normalized away", () => {
    const url = new URL(pushUrl({ bucket: "c", endpoint: "HTTPS://S3.Example.org:443/", region: "us-east-1", profile: "p" }));
    expect(url.searchParams.get("endpoint")).toBe("https://s3.example.org");
  });

  test("characters that would split the query are percent-encoded", () => {
    const url = pushUrl({ bucket: "c", endpoint: "http://h:1", region: "r", profile: "a&b=c d#e" });
    expect(url).toContain("profile=a%26b%3Dc%20d%23e&");
    expect(new URL(url).searchParams.get("profile")).toBe("a&b=c d#e");
  });

  test("Nix reads the values back as meant (percent-decoded; ':' and '/' as is)", () => {
    // Nix 2.8 here has no S3 store, but every store URL's query goes through the same decoding: feed each
    // raw value to a parameter whose error message shows the value Nix read.
    const url = pushUrl({ bucket: "c", endpoint: "http://127.0.0.1:9000", region: "us-east-1", profile: "a&b c" });
    const raw = (name: string) => new RegExp(`[?&]${name}=([^&]*)`).exec(url)?.[1] ?? "";
    fs.mkdirSync(path.join(nix.dir, "decode"), { recursive: true });
    for (const [name, meant] of [["endpoint", "http://127.0.0.1:9000"], ["profile", "a&b c"]]) {
      const r = nix.run("nix", ["store", "ping", "--store", `file://${nix.dir}/decode?priority=${raw(name)}`]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain(`invalid value '${meant}'`);
    }
  });
});

describe("the compression pushUrl asks for, as Nix 2.8 writes it", () => {
  // Nix 2.8 here has no S3 store, but its S3 store and its file:// store are the same binary cache store with
  // the same compression settings: write a NAR through a file:// URL with pushUrl's compression parameters.
  const compressionQuery = (url: string) => {
    const params = new URL(url).searchParams;
    return ["compression", "compression-level"].map((k) => `${k}=${params.get(k)}`).join("&");
  };
  // 2 MiB of text that compresses well but not trivially: words of a small vocabulary in a pseudo-random order.
  const words = ["nix", "store", "cache", "minio", "derivation", "closure", "signature", "narinfo", "bucket", "zstd"];
  let seed = 1;
  const text = Array.from({ length: 300_000 }, () => words[(seed = (seed * 48271) % 2147483647) % words.length]).join(" ");

  /** Adds the text to a binary cache at `query`; the narinfo's Compression and FileSize, and Nix's stderr. */
  const write = (name: string, query: string) => {
    const file = path.join(nix.dir, `${name}.txt`);
    fs.writeFileSync(file, text.slice(0, 2 * 2 ** 20));
    const dir = path.join(nix.dir, `cache-${name}`);
    const r = nix.run("nix", ["store", "add-file", "--store", `file://${dir}?${query}`, file]);
    if (r.status !== 0) throw new Error(`nix store add-file exited ${r.status}: ${r.stderr}`);
    const narinfo = fs.readFileSync(path.join(dir, fs.readdirSync(dir).find((f) => f.endsWith(".narinfo"))!), "utf8");
    const field = (name: string) => new RegExp(`^${name}: (.*)$`, "m").exec(narinfo)?.[1];
    return { compression: field("Compression"), fileSize: Number(field("FileSize")), stderr: r.stderr };
  };

  test("zstd at pushUrl's level: read without a warning, and it changes the NAR's size", () => {
    const url = pushUrl({ bucket: "c", endpoint: "http://127.0.0.1:9000", region: "us-east-1", profile: "p" });
    expect(compressionQuery(url)).toBe(`compression=zstd&compression-level=${PUSH_COMPRESSION_LEVEL}`);
    const ours = write("ours", compressionQuery(url));
    expect(ours.compression).toBe("zstd");
    expect(ours.stderr).not.toContain("unknown setting");
    // zstd's default level (3): Nix passed the level on, as the NAR's size shows.
    const defaultLevel = write("default", "compression=zstd");
    expect(defaultLevel.compression).toBe("zstd");
    expect(ours.fileSize).toBeLessThan(defaultLevel.fileSize);
  });
});

describe("nixString", () => {
  test.each([
    ["plain", '"plain"'],
    ['say "hi"', '"say \\"hi\\""'],
    ["back\\slash", '"back\\\\slash"'],
    ["${builtins.currentTime}", '"\\${builtins.currentTime}"'],
    ["$notInterpolated {x}", '"$notInterpolated {x}"'],
  ])("quotes %j", (input, expected) => {
    expect(nixString(input)).toBe(expected);
  });

  test("Nix evaluates every quoted string back to the original", () => {
    const inputs = ['a"b', "c\\d", "${x}", "$${y}", "\\${z}", "end$", "\\", '"', "line\nbreak", "tab\there", "''"];
    const list = `[ ${inputs.map(nixString).join(" ")} ]`;
    const out = nixOk(nix, "nix-instantiate", ["--store", "dummy://", "--eval", "--strict", "--json", "--expr", list]);
    expect(JSON.parse(out)).toEqual(inputs);
  });
});

describe("nixosModule", () => {
  const url = "https://s3.homelab.local/nix-cache";
  const key = "s3.homelab.local-1:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
  const text = nixosModule(url, key);

  test("is the expected text", () => {
    expect(text).toBe(
      [
        "# Generated by the nix-cache Pulumi project: use the self-hosted binary cache.",
        "{ ... }:",
        "{",
        "  nix.settings = {",
        `    extra-substituters = [ "${url}" ];`,
        `    extra-trusted-public-keys = [ "${key}" ];`,
        "  };",
        "}",
        "",
      ].join("\n"),
    );
  });

  test("parses with nix-instantiate and gives the settings when applied", () => {
    const file = path.join(nix.dir, "module.nix");
    fs.writeFileSync(file, text);
    nixOk(nix, "nix-instantiate", ["--store", "dummy://", "--parse", file]);
    const settings = nixOk(nix, "nix-instantiate", [
      "--store", "dummy://", "--eval", "--strict", "--json", "--expr", `(import ${file} {}).nix.settings`,
    ]);
    expect(JSON.parse(settings)).toEqual({ "extra-substituters": [url], "extra-trusted-public-keys": [key] });
  });

  test("a hostile value stays a string in the module", () => {
    const file = path.join(nix.dir, "hostile.nix");
    const hostileUrl = 'http://x/"; evil = true; x = "${builtins.abort "no"}';
    fs.writeFileSync(file, nixosModule(hostileUrl, key));
    const settings = nixOk(nix, "nix-instantiate", [
      "--store", "dummy://", "--eval", "--strict", "--json", "--expr", `(import ${file} {}).nix.settings`,
    ]);
    expect(JSON.parse(settings)).toEqual({ "extra-substituters": [hostileUrl], "extra-trusted-public-keys": [key] });
  });
});

describe("nixosModule with a set of keys", () => {
  const url = "https://s3.homelab.local/nix-cache";
  const k1 = "s3.homelab.local-1:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
  const k2 = "s3.homelab.local-2:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
  const k3 = "s3.homelab.local-3:6Xqc6rBOEk7fBtqxmTaJhbSDmMQSrd/9MnWOnBbJ6tk=";
  const settingsOf = (text: string, name: string) => {
    const file = path.join(nix.dir, name);
    fs.writeFileSync(file, text);
    nixOk(nix, "nix-instantiate", ["--store", "dummy://", "--parse", file]);
    return JSON.parse(
      nixOk(nix, "nix-instantiate", ["--store", "dummy://", "--eval", "--strict", "--json", "--expr", `(import ${file} {}).nix.settings`]),
    );
  };

  test("a list of one key is the single-key module, byte for byte", () => {
    expect(nixosModule(url, [k1])).toBe(nixosModule(url, k1));
    expect(nixosModule(url, [k1], "")).toBe(nixosModule(url, k1));
  });

  test("two keys: both trusted, the active first, one per line under a comment", () => {
    const text = nixosModule(url, [k2, k1]);
    expect(text).toBe(
      [
        "# Generated by the nix-cache Pulumi project: use the self-hosted binary cache.",
        "{ ... }:",
        "{",
        "  nix.settings = {",
        `    extra-substituters = [ "${url}" ];`,
        "    # The active key first, then the previous keys (nix-cache:previousKeyNames), still trusted during a",
        "    # rotation: Nix accepts a path that carries a valid signature by any of them.",
        "    extra-trusted-public-keys = [",
        `      "${k2}"`,
        `      "${k1}"`,
        "    ];",
        "  };",
        "}",
        "",
      ].join("\n"),
    );
    expect(settingsOf(text, "two-keys.nix")).toEqual({ "extra-substituters": [url], "extra-trusted-public-keys": [k2, k1] });
  });

  test("three keys with a CA: Nix 2.8 evaluates every key in order, and the CA stays", () => {
    const ca = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2hlY2tlZA==\n-----END CERTIFICATE-----\n";
    const text = nixosModule(url, [k3, k2, k1], ca);
    expect(settingsOf(text, "three-keys.nix")).toEqual({ "extra-substituters": [url], "extra-trusted-public-keys": [k3, k2, k1] });
    expect(text).toContain("security.pki.certificates = [");
  });

  test("a hostile key stays a string", () => {
    const hostile = 'odd-1:"; evil = true; x = "${builtins.abort "no"}';
    expect(settingsOf(nixosModule(url, [k1, hostile]), "hostile-keys.nix")["extra-trusted-public-keys"]).toEqual([k1, hostile]);
  });

  test("an empty set, or two keys under one name (Nix would ignore the second), is refused", () => {
    expect(() => nixosModule(url, [])).toThrow("no keys given");
    expect(() => nixosModule(url, [k1, k1.replace("11q", "22q")])).toThrow(
      "two keys are named 's3.homelab.local-1': Nix trusts keys by name and would ignore the second",
    );
  });
});

describe("keyNameOf, keyList, keyFileSuffix", () => {
  test("a key's name is the text before the first ':'; a bare name is itself", () => {
    expect(keyNameOf("s3.homelab.local-1:abc=")).toBe("s3.homelab.local-1");
    expect(keyNameOf("s3.homelab.local-1:a:b")).toBe("s3.homelab.local-1");
    expect(keyNameOf("bare-2")).toBe("bare-2");
  });

  test("keyList: one key is a list of one; names must differ, bare or not", () => {
    expect(keyList("a-1:x")).toEqual(["a-1:x"]);
    expect(keyList(["a-2:y", "a-1:x"])).toEqual(["a-2:y", "a-1:x"]);
    expect(() => keyList(["a-1", "a-1:x"])).toThrow("two keys are named 'a-1'");
  });

  test("file-name suffix: plain names as they are, anything else percent-encoded (no '/', no clash)", () => {
    expect(keyFileSuffix("s3.homelab.local-1")).toBe("s3.homelab.local-1");
    expect(keyFileSuffix("../etc/x")).toBe("..%2Fetc%2Fx");
    expect(keyFileSuffix("a%2F")).toBe("a%252F");
    expect(keyFileSuffix("ключ")).toBe("%D0%BA%D0%BB%D1%8E%D1%87");
    const names = ["a/b", "a%2Fb", "a_b", "a b", "a'b", "a$b"];
    expect(new Set(names.map(keyFileSuffix)).size).toBe(names.length);
    for (const n of names) expect(keyFileSuffix(n)).toMatch(/^[A-Za-z0-9._+=@%-]+$/);
  });
});

describe("awsCredentials", () => {
  test("is an INI profile with both keys", () => {
    expect(awsCredentials("nixbuilder", "nixbuilder", "S3cr3tValue")).toBe(
      "[nixbuilder]\naws_access_key_id = nixbuilder\naws_secret_access_key = S3cr3tValue\n",
    );
  });
});

describe("signCommand", () => {
  test("default text", () => {
    expect(signCommand()).toBe("nix store sign --key-file ~/.config/nix/secret.key --recursive ./result");
    expect(DEFAULT_SECRET_KEY_FILE).toBe("~/.config/nix/secret.key");
  });

  test("the shell expands ~ in the default key file", () => {
    expect(argvOf(signCommand(), "/home/builder")).toEqual([
      "store", "sign", "--key-file", "/home/builder/.config/nix/secret.key", "--recursive", "./result",
    ]);
  });

  test("a key file with spaces or quotes stays one argument", () => {
    expect(argvOf(signCommand("/keys/my key's file", "./result"), "/h")).toEqual([
      "store", "sign", "--key-file", "/keys/my key's file", "--recursive", "./result",
    ]);
    expect(argvOf(signCommand("~/my keys/k", "./result"), "/h")).toEqual([
      "store", "sign", "--key-file", "/h/my keys/k", "--recursive", "./result",
    ]);
  });

  test("paths are shell words (several allowed)", () => {
    expect(argvOf(signCommand(undefined, "./result ./result-dev"), "/h").slice(-2)).toEqual(["./result", "./result-dev"]);
  });

  test("a list of one key file is the single-key command", () => {
    expect(signCommand([DEFAULT_SECRET_KEY_FILE])).toBe(signCommand());
    expect(signCommand(defaultSecretKeyFiles(["s3.homelab.local-1:abc="]))).toBe(signCommand());
    expect(() => signCommand([])).toThrow("at least one key file");
  });

  test("several key files: one `nix store sign` per key (Nix 2.8 reads one --key-file), joined with &&", () => {
    const files = defaultSecretKeyFiles(["s3.homelab.local-2:pub2=", "s3.homelab.local-1:pub1="]);
    expect(signCommand(files)).toBe(
      "nix store sign --key-file ~/.config/nix/secret.key --recursive ./result && " +
        "nix store sign --key-file ~/.config/nix/secret-s3.homelab.local-1.key --recursive ./result",
    );
    expect(argvOf(signCommand(files, "./a ./b"), "/home/b")).toEqual([
      "store", "sign", "--key-file", "/home/b/.config/nix/secret.key", "--recursive", "./a", "./b",
      "store", "sign", "--key-file", "/home/b/.config/nix/secret-s3.homelab.local-1.key", "--recursive", "./a", "./b",
    ]);
    expect(argvOf(signCommand(["/k/one key", "/k/it's"]), "/h")).toEqual([
      "store", "sign", "--key-file", "/k/one key", "--recursive", "./result",
      "store", "sign", "--key-file", "/k/it's", "--recursive", "./result",
    ]);
  });

  test("a failing run stops the rest (a missing key file is not skipped silently)", () => {
    const r = spawnSync("sh", ["-c", `nix() { echo "$4" >> runs; [ "$4" != /k/missing ]; }\n${signCommand(["/k/missing", "/k/b"])}`], {
      cwd: nix.dir,
      encoding: "utf8",
    });
    expect(r.status).not.toBe(0);
    expect(fs.readFileSync(path.join(nix.dir, "runs"), "utf8")).toBe("/k/missing\n");
  });

  test("default key files: the active key's where it always was, each previous key's by its name", () => {
    expect(defaultSecretKeyFiles(["s3.homelab.local-1:abc="])).toEqual([DEFAULT_SECRET_KEY_FILE]);
    expect(defaultSecretKeyFiles(["c-3", "c-2", "odd/name"])).toEqual([
      "~/.config/nix/secret.key",
      "~/.config/nix/secret-c-2.key",
      "~/.config/nix/secret-odd%2Fname.key",
    ]);
    expect(() => defaultSecretKeyFiles([])).toThrow("no keys given");
    expect(() => defaultSecretKeyFiles(["c-1:a", "c-1:b"])).toThrow("two keys are named 'c-1'");
  });

  test("real Nix 2.8 runs the command for two keys: the path carries a valid signature by each", () => {
    const home = path.join(nix.dir, "signer");
    const env = nixEnv(home, [`store = ${path.join(nix.dir, "sign-store")}`]);
    const active = generateKeypair("s3.homelab.local-2");
    const previous = generateKeypair("s3.homelab.local-1");
    const files = defaultSecretKeyFiles([active.publicKey, previous.publicKey]);
    fs.mkdirSync(path.join(home, ".config", "nix"), { recursive: true });
    for (const [file, key] of [[files[0], active.secretKey], [files[1], previous.secretKey]]) {
      fs.writeFileSync(path.join(home, file.replace(/^~\//, "")), key, { mode: 0o600 });
    }
    const run = (cmd: string) => spawnSync("sh", ["-c", cmd], { cwd: home, env, encoding: "utf8" });
    // An input-addressed path (a content-addressed one, as `nix store add-file` makes, needs no signature).
    fs.writeFileSync(
      path.join(home, "payload.nix"),
      'derivation { name = "payload"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo signed twice > $out" ]; }\n',
    );
    const built = run("nix-build --no-out-link ./payload.nix");
    expect(built.status).toBe(0);
    const storePath = built.stdout.trim();

    const signed = run(signCommand(files, storePath));
    // One run per key, each adding its signature.
    expect([signed.status, signed.stderr]).toEqual([0, "added 1 signatures\nadded 1 signatures\n"]);
    const sigs = run(`nix path-info --sigs ${storePath}`).stdout;
    expect(sigs).toContain(" s3.homelab.local-2:");
    expect(sigs).toContain(" s3.homelab.local-1:");
    // Pushed to a binary cache, its narinfo carries both Sig lines ...
    const cache = path.join(nix.dir, "sign-cache");
    const pushed = run(`nix copy --to file://${cache} ${storePath}`);
    expect([pushed.status, pushed.stderr]).toEqual([0, expect.stringContaining("copying 1 paths")]);
    const narinfo = fs.readFileSync(path.join(cache, `${path.basename(storePath).slice(0, 32)}.narinfo`), "utf8");
    expect(narinfo.match(/^Sig: [^:]+/gm)?.sort()).toEqual(["Sig: s3.homelab.local-1", "Sig: s3.homelab.local-2"]);
    // ... and a host that trusts only the new key, or only the old one, takes the path; another key does not.
    const pull = (pub: string, name: string) =>
      run(`nix copy --from file://${cache} --to ${path.join(nix.dir, `pull-${name}`)} --option trusted-public-keys '${pub}' ${storePath}`);
    for (const [name, pub] of [["active", active.publicKey], ["previous", previous.publicKey]]) {
      expect([name, pull(pub, name).status]).toEqual([name, 0]);
      expect(fs.existsSync(path.join(nix.dir, `pull-${name}`, storePath))).toBe(true);
    }
    const refused = pull(generateKeypair("other-1").publicKey, "other");
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain("lacks a valid signature");
  });
});

describe("pushCommand", () => {
  const url = pushUrl({ bucket: "nix-cache", endpoint: "http://127.0.0.1:9000", region: "us-east-1", profile: "nixbuilder" });

  test("quotes the URL ('&' and '?' would otherwise reach the shell)", () => {
    expect(pushCommand(url)).toBe(`nix copy --to '${url}' ./result`);
    expect(argvOf(pushCommand(url), "/h")).toEqual(["copy", "--to", url, "./result"]);
  });

  test("a URL with a single quote still arrives intact", () => {
    const odd = "s3://b?profile=it's";
    expect(argvOf(pushCommand(odd, "./a ./b"), "/h")).toEqual(["copy", "--to", odd, "./a", "./b"]);
  });
});
