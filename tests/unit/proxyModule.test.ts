// The read proxy's NixOS module: parsed by the real Nix 2.8, evaluated against the NixOS stand-in, its unit checked by
// systemd's own `systemd-analyze verify`, and its ExecStart= run with node, so the embedded script and its
// command line are what the proxy (lib/proxy/service.ts) is given.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { requireTool } from "../../harness/toolchain";
import { PROXY_DEFAULTS, proxyServiceModule, ProxyServiceInput } from "../../lib/hosts/proxyModule";
import { awsCredentials } from "../../lib/hosts/hostConfig";
import { proxyScriptText } from "../../lib/proxy/bundle";
import { tokenHashesText } from "../../lib/proxy/tokens";
import { freePort } from "../../harness/minio";
import { evalModule, EvaluatedModule, StandInSetting } from "../support/nixosStandIn";
import { nixOk, nixSandbox } from "./support/nix";

const nix = nixSandbox();
afterAll(() => nix.cleanup());

/** A stand-in for the bundle: prints its arguments as JSON; quotes and `${` test the embedding. */
const SCRIPT = [
  "// nix-cache-proxy.js stand-in: '' and ${x} and '${y}' and \\ stay as they are",
  "process.stdout.write(JSON.stringify(process.argv.slice(2)));",
  "",
].join("\n");
const CA = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2hlY2tlZA==\n-----END CERTIFICATE-----\n";
const INPUT: ProxyServiceInput = {
  endpoint: "https://s3.homelab.local:9000/",
  region: "us-east-1",
  bucket: "nix-cache",
  profile: "nixreader",
  listen: "0.0.0.0:8480",
  script: SCRIPT,
  caCertificate: CA,
};

interface Service {
  description: string;
  wantedBy: string[];
  wants: string[];
  after: string[];
  serviceConfig: Record<string, string | boolean | number | string[]>;
}
interface ProxyConfig {
  assertions: { assertion: boolean; message: string }[];
  networking: { firewall: { allowedTCPPorts: number[] } };
  systemd: { services: { "nix-cache-proxy": Service } };
}

let n = 0;
function evaluate(input: ProxyServiceInput, settings: Record<string, StandInSetting> = {}): { e: EvaluatedModule; config: ProxyConfig; text: string } {
  const text = proxyServiceModule(input);
  const file = path.join(nix.dir, `proxy-${++n}.nix`);
  fs.writeFileSync(file, text);
  nixOk(nix, "nix-instantiate", ["--store", "dummy://", "--parse", file]);
  const e = evalModule(path.join(nix.dir, `eval-${n}`), file, "nix-cache-proxy", settings);
  return { e, config: e.config as unknown as ProxyConfig, text };
}
const serviceOf = (c: ProxyConfig) => c.systemd.services["nix-cache-proxy"];

/** The unit as NixOS writes it: a list is one line per entry, a boolean true/false. */
function unitText(s: Service): string {
  const line = (k: string, v: string | boolean | number) => `${k}=${typeof v === "boolean" ? (v ? "true" : "false") : String(v)}`;
  const lines = (k: string, v: string | boolean | number | string[]) => (Array.isArray(v) ? v.map((x) => line(k, x)) : [line(k, v)]);
  return [
    "[Unit]",
    line("Description", s.description),
    line("Wants", s.wants.join(" ")),
    line("After", s.after.join(" ")),
    "[Service]",
    ...Object.entries(s.serviceConfig).flatMap(([k, v]) => lines(k, v)),
    "[Install]",
    line("WantedBy", s.wantedBy.join(" ")),
    "",
  ].join("\n");
}

describe("proxyServiceModule", () => {
  test("parses and evaluates: the options, their defaults, and every assertion holds", () => {
    const { e, config, text } = evaluate(INPUT);
    expect(Object.keys(e.options).sort()).toEqual(
      ["caFile", "credentialsFile", "enable", "listen", "openFirewall", "tlsCertFile", "tlsKeyFile", "tokensFile"].sort(),
    );
    const defaults = Object.fromEntries(Object.entries(e.options).map(([k, o]) => [k, o.default]));
    expect(defaults).toEqual({
      enable: true,
      listen: "0.0.0.0:8480",
      credentialsFile: "/run/secrets/nix-cache-reader-credentials",
      tokensFile: "/run/secrets/nix-cache-proxy-tokens",
      tlsCertFile: null,
      tlsKeyFile: null,
      caFile: "/stand-in/bin/nix-cache-ca.pem",
      openFirewall: false,
    });
    expect(config.assertions.map((a) => a.assertion)).toEqual([true, true, true]);
    expect(config.networking.firewall.allowedTCPPorts).toEqual([]);
    // Nothing secret-shaped in the text: the secrets are paths.
    expect(text).not.toMatch(/aws_secret_access_key|sha256:[0-9a-f]{64}|password /);
  });

  test("the hardening: a dynamic user, no capabilities, no writable system, the secrets through systemd", () => {
    const sc = serviceOf(evaluate(INPUT).config).serviceConfig;
    expect(sc).toMatchObject({
      DynamicUser: true,
      NoNewPrivileges: true,
      ProtectSystem: "strict",
      ProtectHome: true,
      PrivateTmp: true,
      PrivateDevices: true,
      PrivateUsers: true,
      ProtectKernelTunables: true,
      ProtectKernelModules: true,
      ProtectKernelLogs: true,
      ProtectControlGroups: true,
      RestrictAddressFamilies: ["AF_INET", "AF_INET6", "AF_UNIX"],
      RestrictNamespaces: true,
      SystemCallFilter: ["@system-service", "~@privileged"],
      MemoryDenyWriteExecute: false,
      CapabilityBoundingSet: "",
      LoadCredential: ["reader:/run/secrets/nix-cache-reader-credentials"],
      ExecStartPre: "+/usr/bin/install -m 0444 -T /run/secrets/nix-cache-proxy-tokens /run/nix-cache-proxy/tokens",
      ExecReload: [
        "+/usr/bin/install -m 0444 -T /run/secrets/nix-cache-proxy-tokens /run/nix-cache-proxy/tokens",
        "/usr/bin/kill -HUP $MAINPID",
      ],
      RuntimeDirectory: "nix-cache-proxy",
    });
    expect(sc.AmbientCapabilities).toBeUndefined();
    expect(serviceOf(evaluate(INPUT).config).wantedBy).toEqual(["multi-user.target"]);
  });

  test("a port below 1024 gets CAP_NET_BIND_SERVICE and nothing more; the firewall opens the port when asked", () => {
    const { config } = evaluate(INPUT, { listen: "[::]:443", openFirewall: true });
    const sc = serviceOf(config).serviceConfig;
    expect([sc.AmbientCapabilities, sc.CapabilityBoundingSet, sc.PrivateUsers]).toEqual(["CAP_NET_BIND_SERVICE", "CAP_NET_BIND_SERVICE", false]);
    expect(config.networking.firewall.allowedTCPPorts).toEqual([443]);
    expect(config.assertions.map((a) => a.assertion)).toEqual([true, true, true]);
  });

  test("ExecStart runs the embedded script, byte for byte, with the proxy's command line", () => {
    const work = path.join(nix.dir, "run");
    const credentials = path.join(work, "credentials");
    fs.mkdirSync(credentials, { recursive: true });
    const run = (settings: Record<string, StandInSetting>) => {
      const { config, text } = evaluate(INPUT, settings);
      // The script as Nix reads the module's indented string: exactly the input.
      const literal = /proxyScript = pkgs\.writeText "nix-cache-proxy\.js" (''\n[\s\S]*?\n  '');\n/.exec(text)?.[1] ?? "";
      const script = JSON.parse(nixOk(nix, "nix-instantiate", ["--store", "dummy://", "--eval", "--strict", "--json", "--expr", literal])) as string;
      expect(script).toBe(SCRIPT);
      const scriptFile = path.join(work, "nix-cache-proxy.js");
      fs.writeFileSync(scriptFile, script);
      // systemd puts CREDENTIALS_DIRECTORY in; no word needs quoting (the module refuses such values).
      const words = String(serviceOf(config).serviceConfig.ExecStart).replace(/\$\{CREDENTIALS_DIRECTORY\}/g, credentials).split(" ");
      expect(words.slice(0, 2)).toEqual(["/usr/bin/node", "/stand-in/bin/nix-cache-proxy.js"]);
      const r = spawnSync(words[0], [scriptFile, ...words.slice(2)], { encoding: "utf8" });
      expect([r.status, r.stderr]).toEqual([0, ""]);
      return JSON.parse(r.stdout) as string[];
    };
    expect(run({})).toEqual([
      "--listen", "0.0.0.0:8480",
      "--endpoint", "https://s3.homelab.local:9000",
      "--region", "us-east-1",
      "--bucket", "nix-cache",
      "--profile", "nixreader",
      "--credentials-file", `${credentials}/reader`,
      "--tokens-file", `${PROXY_DEFAULTS.runtimeDir}/tokens`,
      "--ca-file", "/stand-in/bin/nix-cache-ca.pem",
    ]);
    expect(run({ tlsCertFile: "/run/secrets/proxy.crt", tlsKeyFile: "/run/secrets/proxy.key", caFile: "/etc/ssl/ca.pem", listen: "[::1]:9443" })).toEqual([
      "--listen", "[::1]:9443",
      "--endpoint", "https://s3.homelab.local:9000",
      "--region", "us-east-1",
      "--bucket", "nix-cache",
      "--profile", "nixreader",
      "--credentials-file", `${credentials}/reader`,
      "--tokens-file", `${PROXY_DEFAULTS.runtimeDir}/tokens`,
      "--tls-cert", `${credentials}/tls-cert`,
      "--tls-key", `${credentials}/tls-key`,
      "--ca-file", "/etc/ssl/ca.pem",
    ]);
  });

  test("systemd 252's own `systemd-analyze verify` takes the unit without a complaint, with TLS and a low port too", () => {
    const analyze = requireTool("systemd-analyze", "the unit tests check the proxy's unit with systemd-analyze: install it with `apt-get install systemd`");
    const dir = path.join(nix.dir, "units");
    fs.mkdirSync(dir, { recursive: true });
    const variants: Record<string, StandInSetting>[] = [{}, { listen: "[::]:443", tlsCertFile: "/run/secrets/c.pem", tlsKeyFile: "/run/secrets/k.pem" }];
    for (const settings of variants) {
      const unit = path.join(dir, "nix-cache-proxy.service");
      fs.writeFileSync(unit, unitText(serviceOf(evaluate(INPUT, settings).config)));
      const r = spawnSync(analyze, ["verify", "--man=no", unit], { encoding: "utf8" });
      expect([r.status, r.stderr]).toEqual([0, ""]);
    }
    // ... which does complain about what it does not know (so the empty stderr above means something).
    fs.writeFileSync(path.join(dir, "bad.service"), "[Service]\nExecStart=/usr/bin/node\nProtectProc=nonsense\nNoSuchKey=1\n");
    const bad = spawnSync(analyze, ["verify", "--man=no", path.join(dir, "bad.service")], { encoding: "utf8" });
    expect(bad.stderr).toContain("Unknown key 'NoSuchKey'");
    expect(bad.stderr).toContain("Failed to parse /proc/ protection mode, ignoring: nonsense");
  });

  test("an http endpoint: no CA, no --ca-file", () => {
    const { config, text } = evaluate({ ...INPUT, endpoint: "http://10.0.0.2:9000" });
    expect(text).not.toContain("BEGIN CERTIFICATE");
    const execStart = String(serviceOf(config).serviceConfig.ExecStart);
    expect(execStart).toContain("--endpoint http://10.0.0.2:9000 ");
    expect(execStart).not.toContain("--ca-file");
  });

  test.each<[string, Record<string, StandInSetting>, number]>([
    ["a listen without a port", { listen: "0.0.0.0" }, 0],
    ["a port above 65535", { listen: "0.0.0.0:65536" }, 0],
    ["port 0", { listen: "[::]:0" }, 0],
    ["a space in listen", { listen: "a b:80" }, 0],
    ["credentials in the Nix store", { credentialsFile: "/nix/store/abc-reader" }, 1],
    ["a relative tokens file", { tokensFile: "secrets/tokens" }, 1],
    ["a TLS key in the store", { tlsCertFile: "/run/secrets/c.pem", tlsKeyFile: "/nix/store/abc-key.pem" }, 1],
    ["a space in a secret path", { credentialsFile: "/run/secrets/my reader" }, 1],
    ["a certificate without its key", { tlsCertFile: "/run/secrets/c.pem" }, 2],
    ["a CA path with a space", { caFile: "/etc/my ca.pem" }, 2],
  ])("%s fails its assertion, and only that one", (_, settings, which) => {
    const held = evaluate(INPUT, settings).config.assertions.map((a) => a.assertion);
    expect(held).toEqual([0, 1, 2].map((i) => i !== which));
  });

  test("refuses what the command line could not carry as it is, and a non-http endpoint", () => {
    expect(() => proxyServiceModule({ ...INPUT, bucket: "nix cache" })).toThrow("the bucket 'nix cache' has a character the service's command line would need to quote");
    expect(() => proxyServiceModule({ ...INPUT, profile: "reader%i" })).toThrow("the profile 'reader%i'");
    expect(() => proxyServiceModule({ ...INPUT, region: "" })).toThrow("the region ''");
    expect(() => proxyServiceModule({ ...INPUT, endpoint: "ftp://s3.homelab.local" })).toThrow("the endpoint must be http(s)://host[:port]");
  });

  test("by default it embeds the real proxy, which the unit's own commands start, reload (a revoked host gets 401) and stop", async () => {
    const work = path.join(nix.dir, "service");
    const [secrets, credentialsDir, runtimeDir] = ["secrets", "credentials", "runtime"].map((d) => path.join(work, d));
    for (const d of [secrets, credentialsDir, runtimeDir]) fs.mkdirSync(d, { recursive: true });
    const tokens = { "web-1": "Zq3xV9kLmN2pR7sT1uW4yA6bC8dE0fG5hJ1kL3mN", "db.lan": "Pp0oO9iI8uU7yY6tT5rR4eE3wW2qQ1aAsSdDfFgG" };
    const credentialsFile = path.join(secrets, "reader");
    const tokensFile = path.join(secrets, "tokens");
    fs.writeFileSync(credentialsFile, awsCredentials("nixreader", "nixreader", "reader-secret-value"), { mode: 0o600 });
    fs.writeFileSync(tokensFile, tokenHashesText(tokens), { mode: 0o600 });
    const port = await freePort();
    // MinIO's place: a port nothing listens on, so a request the proxy lets through ends in its own 502.
    const { script: _, ...input } = { ...INPUT, endpoint: `http://127.0.0.1:${await freePort()}` };
    const { config, text } = evaluate(input, { listen: `127.0.0.1:${port}`, credentialsFile, tokensFile });
    const literal = /proxyScript = pkgs\.writeText "nix-cache-proxy\.js" (''\n[\s\S]*?\n  '');\n/.exec(text)?.[1] ?? "";
    const script = JSON.parse(nixOk(nix, "nix-instantiate", ["--store", "dummy://", "--eval", "--strict", "--json", "--expr", literal])) as string;
    expect(script === proxyScriptText()).toBe(true);
    const scriptFile = path.join(work, "nix-cache-proxy.js");
    fs.writeFileSync(scriptFile, script);

    // What systemd does: LoadCredential= copies each ID:PATH into the credentials directory; the commands get
    // CREDENTIALS_DIRECTORY and MAINPID, and the runtime directory exists.
    const sc = serviceOf(config).serviceConfig;
    for (const entry of sc.LoadCredential as string[]) {
      const [id, file] = [entry.slice(0, entry.indexOf(":")), entry.slice(entry.indexOf(":") + 1)];
      fs.copyFileSync(file, path.join(credentialsDir, id));
    }
    const words = (command: string, pid = 0) =>
      command
        .replace(/^\+/, "")
        .replace(/\$\{CREDENTIALS_DIRECTORY\}/g, credentialsDir)
        .replace(/\$MAINPID/g, String(pid))
        .replaceAll(PROXY_DEFAULTS.runtimeDir, runtimeDir)
        .replace("/stand-in/bin/nix-cache-proxy.js", scriptFile)
        .split(" ");
    const runNow = (command: string, pid = 0) => {
      const [file, ...args] = words(command, pid);
      const r = spawnSync(file, args, { encoding: "utf8" });
      expect([command, r.status, r.stderr]).toEqual([command, 0, ""]);
    };
    runNow(String(sc.ExecStartPre));
    const [node, ...args] = words(String(sc.ExecStart));
    const proxy = spawn(node, args, { stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    proxy.stdout.on("data", (b: Buffer) => (log += b.toString()));
    proxy.stderr.on("data", (b: Buffer) => (log += b.toString()));
    const logged = async (what: string) => {
      for (let i = 0; i < 200 && !log.includes(what); i++) await new Promise((r) => setTimeout(r, 50));
      expect(log).toContain(what);
    };
    const get = async (host?: keyof typeof tokens) => {
      const headers: Record<string, string> = host ? { Authorization: `Basic ${Buffer.from(`${host}:${tokens[host]}`).toString("base64")}` } : {};
      const r = await fetch(`http://127.0.0.1:${port}/nix-cache-info`, { headers });
      await r.arrayBuffer();
      return [r.status, r.headers.get("www-authenticate") !== null];
    };
    try {
      await logged("serving nix-cache at http://127.0.0.1:");
      expect(await get()).toEqual([401, true]);
      expect(await get("web-1")).toEqual([502, false]);
      // Revoke web-1: a new tokens file, then `systemctl reload`: ExecReload's copy, then its SIGHUP.
      fs.writeFileSync(tokensFile, tokenHashesText({ "db.lan": tokens["db.lan"] }));
      for (const command of sc.ExecReload as string[]) runNow(command, proxy.pid);
      await logged("tokens reloaded, 1 host (was 2)");
      expect([await get("web-1"), await get("db.lan")]).toEqual([[401, true], [502, false]]);
    } finally {
      proxy.kill("SIGTERM");
    }
    const code = await new Promise<number | null>((resolve) => proxy.on("exit", resolve));
    expect(code).toBe(0);
    expect(log.includes("reader-secret-value") || Object.values(tokens).some((t) => log.includes(t))).toBe(false);
  });
});
