// The texts hosts consume: URLs, the NixOS module (checked by the real Nix parser), AWS credentials, and
// the builder's commands (checked by a real shell).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  awsCredentials,
  DEFAULT_SECRET_KEY_FILE,
  nixosModule,
  nixString,
  PUSH_COMPRESSION,
  pushCommand,
  pushUrl,
  signCommand,
  substituterUrl,
} from "../../lib/hostConfig";
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
      "s3://nix-cache?profile=nixbuilder&endpoint=https://s3.homelab.local&region=us-east-1&compression=zstd",
    );
  });

  test("http endpoint with a port", () => {
    const url = pushUrl({ bucket: "c", endpoint: "http://127.0.0.1:9000", region: "eu-west-1", profile: "builder.1" });
    expect(url).toBe("s3://c?profile=builder.1&endpoint=http://127.0.0.1:9000&region=eu-west-1&compression=zstd");
    const parsed = new URL(url);
    expect(parsed.protocol).toBe("s3:");
    expect(parsed.host).toBe("c");
    expect(Object.fromEntries(parsed.searchParams)).toEqual({
      profile: "builder.1",
      endpoint: "http://127.0.0.1:9000",
      region: "eu-west-1",
      compression: PUSH_COMPRESSION,
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
