// The client side of a private cache: the reader's s3:// URL, netrc lines, and the two NixOS modules, parsed and
// evaluated by the real Nix 2.8 with a minimal { config, lib } (what the modules use of NixOS).
import * as fs from "fs";
import * as path from "path";
import {
  netrcFileName,
  netrcLine,
  PRIVATE_DEFAULTS,
  proxyClientModule,
  readerNixosModule,
  readerSubstituterUrl,
} from "../../lib/hosts/privateModules";
import { parseS3StoreUrl } from "../../lib/s3/pushTarget";
import { generateKeypair } from "../../lib/signing/signingKey";
import { nixOk, nixSandbox } from "./support/nix";

const nix = nixSandbox();
afterAll(() => nix.cleanup());

const K1 = generateKeypair("cache.example.org-1");
const K2 = generateKeypair("cache.example.org-2");
const CA = "-----BEGIN CERTIFICATE-----\nMIIBprivateModulesTestCA\n-----END CERTIFICATE-----\n";

/** The module's `config` as NixOS would compute it, with `options` set as given (else their defaults). */
function evaluate(text: string, optionPath: string, set: Record<string, string> = {}): Record<string, unknown> {
  const file = path.join(nix.dir, `m-${Math.random().toString(16).slice(2)}.nix`);
  fs.writeFileSync(file, text);
  nixOk(nix, "nix-instantiate", ["--store", "dummy://", "--parse", file]);
  const expr = `
    let
      lib = {
        types.str = "str";
        mkOption = { type, default, description }: default;
        hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
      };
      declared = ((import ${file}) { config = { }; inherit lib; }).options.${optionPath};
      values = declared // builtins.fromJSON ${JSON.stringify(JSON.stringify(set))};
      module = (import ${file}) { config = ${optionPath.split(".").reduceRight((inner, key) => `{ ${key} = ${inner}; }`, "values")}; inherit lib; };
    in module.config`;
  return JSON.parse(nixOk(nix, "nix-instantiate", ["--store", "dummy://", "--eval", "--strict", "--json", "--expr", expr])) as Record<string, unknown>;
}

describe("readerSubstituterUrl", () => {
  test("the bucket, profile, full endpoint URL and region, as Nix's S3 store and our parser read them; nothing for writing", () => {
    const url = readerSubstituterUrl({ bucket: "nix-cache", endpoint: "https://s3.homelab.local:9000/", region: "eu-west-1", profile: "nixreader" });
    expect(url).toBe("s3://nix-cache?profile=nixreader&endpoint=https://s3.homelab.local:9000&region=eu-west-1");
    expect(parseS3StoreUrl(url)).toMatchObject({ bucket: "nix-cache", endpoint: "https://s3.homelab.local:9000", region: "eu-west-1", profile: "nixreader" });
  });
});

describe("netrcLine", () => {
  test("machine is the proxy's host name (curl matches netrc on it), login the host, password the token", () => {
    expect(netrcLine("https://cache.homelab.local:8480", "laptop", "T0ken")).toBe("machine cache.homelab.local login laptop password T0ken");
    expect(netrcLine("http://[::1]:8480", "desk", "x")).toBe("machine ::1 login desk password x");
    expect(() => netrcLine("https://p.lan", "a b", "t")).toThrow(/white space/);
    expect(netrcFileName("laptop")).toBe("nix-cache-netrc-laptop");
  });
});

describe("readerNixosModule", () => {
  const url = readerSubstituterUrl({ bucket: "nix-cache", endpoint: "https://s3.homelab.local", region: "us-east-1", profile: "nixreader" });
  const text = readerNixosModule({ substituter: url, publicKeys: [K1.publicKey, K2.publicKey], caCertificate: CA });

  test("the s3:// substituter, every trusted key, the CA, and nix-daemon reading the credentials file by path", () => {
    const config = evaluate(text, "services.nix-cache-reader") as {
      nix: { settings: Record<string, string[]> };
      systemd: { services: { "nix-daemon": { environment: Record<string, string> } } };
      security: { pki: { certificates: string[] } };
      assertions: { assertion: boolean }[];
    };
    expect(config.nix.settings["extra-substituters"]).toEqual([url]);
    expect(config.nix.settings["extra-trusted-public-keys"]).toEqual([K1.publicKey, K2.publicKey]);
    expect(config.systemd.services["nix-daemon"].environment.AWS_SHARED_CREDENTIALS_FILE).toBe(PRIVATE_DEFAULTS.readerCredentialsFile);
    expect(config.security.pki.certificates).toEqual([CA]);
    expect(config.assertions.every((a) => a.assertion)).toBe(true);
  });

  test("a credentials file in the Nix store fails the assertion; another secret path is taken", () => {
    const inStore = evaluate(text, "services.nix-cache-reader", { credentialsFile: "/nix/store/abc-credentials" }) as { assertions: { assertion: boolean }[] };
    expect(inStore.assertions.map((a) => a.assertion)).toEqual([false]);
    const moved = evaluate(text, "services.nix-cache-reader", { credentialsFile: "/run/agenix/reader" }) as {
      systemd: { services: { "nix-daemon": { environment: Record<string, string> } } };
    };
    expect(moved.systemd.services["nix-daemon"].environment.AWS_SHARED_CREDENTIALS_FILE).toBe("/run/agenix/reader");
  });

  test("holds no secret: no key, no password", () => {
    expect(text).not.toContain(K1.secretKey.split(":")[1]);
    expect(text).not.toMatch(/aws_secret_access_key/);
  });
});

describe("proxyClientModule", () => {
  test("the proxy as substituter, the trusted keys, netrc-file by path; no CA lines without one", () => {
    const text = proxyClientModule({ proxyUrl: "http://cache.homelab.local:8480", publicKeys: [K1.publicKey] });
    const config = evaluate(text, "services.nix-cache-proxy-client") as { nix: { settings: Record<string, unknown> }; security?: unknown; assertions: { assertion: boolean }[] };
    expect(config.nix.settings).toEqual({
      "extra-substituters": ["http://cache.homelab.local:8480"],
      "extra-trusted-public-keys": [K1.publicKey],
      "netrc-file": PRIVATE_DEFAULTS.netrcFile,
    });
    expect(config.security).toBeUndefined();
    expect(config.assertions.every((a) => a.assertion)).toBe(true);
    const inStore = evaluate(text, "services.nix-cache-proxy-client", { netrcFile: "/nix/store/x-netrc" }) as { assertions: { assertion: boolean }[] };
    expect(inStore.assertions.map((a) => a.assertion)).toEqual([false]);
  });
});
