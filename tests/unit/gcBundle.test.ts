// The builder's GC script: lib/gc/bundle.ts's one-file bundle of lib/gc/service.ts runs with plain node and no
// node_modules, requires nothing but node built-ins, and refuses a module that imports a package; the service
// reads its environment (lib/gc/service.ts readGcEnvironment); lib/hosts/gcTimerModule.ts's pieces, put into a module
// and evaluated by real Nix 2.8, give back the bundle byte for byte, the service, the timer and the options.
import { spawnSync } from "child_process";
import * as fs from "fs";
import { isBuiltin } from "module";
import * as os from "os";
import * as path from "path";
import { bundleText, collectModules, gcScriptText, importSpecifiers, requiredSpecifiers } from "../../lib/gc/bundle";
import { GC_USAGE } from "../../lib/gc/command";
import { GC_ENV, GC_SERVICE_USAGE, GcServiceConfig, readGcEnvironment } from "../../lib/gc/service";
import {
  GC_DEFAULTS,
  gcAssertionLines,
  gcConfigLines,
  gcOptionLines,
  gcScriptLetLines,
  GcTimerInput,
  nixIndentedLines,
} from "../../lib/hosts/gcTimerModule";
import { nixOk, nixSandbox } from "./support/nix";

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-gcbundle-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs a script with plain node, from a directory with no node_modules anywhere above it, and only `env`. */
function runNode(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, { cwd: dir, env: { PATH: process.env.PATH ?? "", ...env }, encoding: "utf8", timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("gcScriptText: one file for plain node", () => {
  const script = gcScriptText();
  let file: string;
  beforeAll(() => {
    file = path.join(dir, "nix-cache-gc.js");
    fs.writeFileSync(file, script);
  });

  test("requires node built-ins and its own modules only: no npm package, no path outside the bundle", () => {
    const modules = collectModules(path.join(__dirname, "../../lib"));
    expect(modules.map((m) => m.id)).toEqual([
      "gc/service", "cli/command", "gc/command", "cli/progress", "gc/plan", "gc/run", "s3/pushTarget", "s3/client", "s3/sigv4", "s3/xml",
    ]);
    const ids = new Set(modules.map((m) => m.id));
    const required = requiredSpecifiers(script);
    const bundled = modules.flatMap((m) => Object.entries(m.imports)).filter(([, id]) => ids.has(id)).map(([spec]) => spec);
    expect(required.filter((spec) => !isBuiltin(spec) && !bundled.includes(spec))).toEqual([]);
    expect(required.filter((spec) => isBuiltin(spec)).sort()).toEqual(["crypto", "fs", "fs", "http", "https", "os", "url", "util"]);
    for (const pkg of ["minio", "@pulumi", "typescript", "aws4", "ts-node", "@peculiar", "./stackReader", "../config/settings"]) {
      expect([pkg, script.includes(`require("${pkg}`)]).toEqual([pkg, false]);
    }
    expect(script.endsWith("\n") && !script.endsWith("\n\n")).toBe(true);
    expect(gcScriptText()).toBe(script);
  });

  test("`node nix-cache-gc.js --help` prints the gc usage and the environment it reads; exit 0", () => {
    const r = runNode([file, "--help"]);
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toBe(`${GC_SERVICE_USAGE}\n`);
    expect(r.stdout.startsWith(GC_USAGE)).toBe(true);
    for (const name of Object.values(GC_ENV)) expect(r.stdout).toContain(`  ${name} `);
  });

  test("required by something else (node -e), it runs nothing: its entry runs only as node's main script", () => {
    const r = runNode(["-e", `require(${JSON.stringify(file)}); console.log("loaded")`, "--", "--help"]);
    expect([r.status, r.stdout, r.stderr]).toEqual([0, "loaded\n", ""]);
  });

  test("a missing variable: exit 2 and one line naming it; a bad argument: the usage error", () => {
    const r = runNode([file, "--dry-run"], { [GC_ENV.endpoint]: "http://127.0.0.1:1" });
    expect([r.status, r.stdout, r.stderr]).toEqual([2, "", `nix-cache-gc: ${GC_ENV.bucket} is not set: the builder module's nix-cache-gc.service sets it\n`]);
    const bad = runNode([file, "--retain-days", "seven"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr.split("\n")[0]).toBe("nix-cache-gc: --retain-days needs a number of days ≥ 0 (e.g. 7, 0.5, 0), not 'seven'");
    const stack = runNode([file, "--stack", "dev"]);
    expect([stack.status, stack.stderr.split("\n")[0]]).toEqual([
      2,
      "nix-cache-gc: --stack does not apply on the builder: nix-cache-gc reads its bucket from the environment (see --help)",
    ]);
  });
});

describe("collectModules refuses what the builder could not run", () => {
  const lib = (files: Record<string, string>) => {
    const d = fs.mkdtempSync(path.join(dir, "lib-"));
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(d, name), text);
    return d;
  };

  test("an npm package imported by any bundled module, even for types only: throws naming module and package", () => {
    const withPackage = lib({ "gcService.ts": 'import { a } from "./a";\nconsole.log(a);\n', "a.ts": 'import * as Minio from "minio";\nexport const a = Minio;\n' });
    expect(() => collectModules(withPackage, "gcService")).toThrow("gc bundle: lib/a.ts imports the package 'minio', which the builder does not have");
    const typeOnly = lib({ "gcService.ts": 'import type { Output } from "@pulumi/pulumi";\nexport type X = Output<string>;\n' });
    expect(() => collectModules(typeOnly, "gcService")).toThrow("lib/gcService.ts imports the package '@pulumi/pulumi'");
  });

  test("a relative import that leaves lib/ or names no module", () => {
    expect(() => collectModules(lib({ "gcService.ts": 'import "../harness/minio";\n' }), "gcService")).toThrow(
      "gc bundle: lib/gcService.ts imports '../harness/minio', which is no .ts module under lib/",
    );
    expect(() => collectModules(lib({ "gcService.ts": 'export { x } from "./missing";\n' }), "gcService")).toThrow("imports './missing', which is no .ts module");
  });

  test("node: built-ins, re-exports and import cycles run as node would run them", () => {
    const d = lib({
      "gcService.ts": 'import { x } from "./x";\nimport { join } from "node:path";\nconsole.log(x(), join("a", "b"));\n',
      "x.ts": 'import { y } from "./y";\nexport const x = () => `x${y()}`;\nexport const name = "x";\n',
      "y.ts": 'import * as X from "./x";\nexport { y };\nfunction y() { return `y-${X.name}`; }\n',
    });
    expect(importSpecifiers(fs.readFileSync(path.join(d, "gcService.ts"), "utf8"))).toEqual(["./x", "node:path"]);
    const file = path.join(d, "out.js");
    fs.writeFileSync(file, bundleText(collectModules(d, "gcService")));
    expect(runNode([file])).toEqual({ status: 0, stdout: "xy-x a/b\n", stderr: "" });
  });
});

describe("readGcEnvironment", () => {
  const CREDS = "/run/secrets/nix-cache-gc-credentials";
  const files: Record<string, string> = {
    [CREDS]: "[nixbuilder]\naws_access_key_id = nixbuilder\naws_secret_access_key = b-secret\n\n[nixgc]\naws_access_key_id = nixgc\naws_secret_access_key = g-secret\n",
    "/etc/ssl/certs/ca-certificates.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    "/etc/empty": "",
  };
  const read = (f: string) => {
    if (!Object.hasOwn(files, f)) throw Object.assign(new Error(`ENOENT: ${f}`), { code: "ENOENT" });
    return files[f];
  };
  const env: Record<string, string> = {
    [GC_ENV.endpoint]: "https://s3.homelab.local:9000/",
    [GC_ENV.region]: "eu-west-1",
    [GC_ENV.bucket]: "nix-cache",
    [GC_ENV.retainDays]: "7",
    [GC_ENV.storeDir]: "/nix/store",
    [GC_ENV.credentialsFile]: CREDS,
    [GC_ENV.profile]: "nixgc",
    [GC_ENV.caFile]: "/etc/ssl/certs/ca-certificates.crt",
  };
  const failure = (over: Record<string, string | undefined>) => {
    try {
      readGcEnvironment({ ...env, ...over }, read);
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error("not refused");
  };

  test("reads the GC identity's keys from its profile, the CA for https, the retention", () => {
    const expected: GcServiceConfig = {
      endpoint: "https://s3.homelab.local:9000",
      region: "eu-west-1",
      bucket: "nix-cache",
      retainDays: 7,
      storeDir: "/nix/store",
      profile: "nixgc",
      accessKey: "nixgc",
      secretKey: "g-secret",
      ca: files["/etc/ssl/certs/ca-certificates.crt"],
    };
    expect(readGcEnvironment(env, read)).toEqual(expected);
    // Defaults: region, store dir; over http the CA bundle is not read.
    const http = readGcEnvironment({ ...env, [GC_ENV.endpoint]: "http://127.0.0.1:9000", [GC_ENV.region]: "", [GC_ENV.storeDir]: undefined, [GC_ENV.caFile]: "/nope" }, read);
    expect([http.region, http.storeDir, http.ca, http.retainDays]).toEqual(["us-east-1", "/nix/store", undefined, 7]);
    expect(readGcEnvironment({ ...env, [GC_ENV.retainDays]: "0.5", [GC_ENV.caFile]: undefined }, read)).toMatchObject({ retainDays: 0.5, ca: undefined });
  });

  test("each missing or bad variable: one line naming it, never a secret", () => {
    const messages = [
      failure({ [GC_ENV.endpoint]: undefined }),
      failure({ [GC_ENV.endpoint]: "s3.homelab.local" }),
      failure({ [GC_ENV.endpoint]: "https://s3.homelab.local/nix-cache" }),
      failure({ [GC_ENV.bucket]: " " }),
      failure({ [GC_ENV.bucket]: "Nix_Cache" }),
      failure({ [GC_ENV.retainDays]: undefined }),
      failure({ [GC_ENV.retainDays]: "-1" }),
      failure({ [GC_ENV.storeDir]: "nix/store/" }),
      failure({ [GC_ENV.credentialsFile]: undefined }),
      failure({ [GC_ENV.credentialsFile]: "/run/secrets/missing" }),
      failure({ [GC_ENV.profile]: undefined }),
      failure({ [GC_ENV.profile]: "nixadmin" }),
      failure({ [GC_ENV.caFile]: "/etc/missing.crt" }),
      failure({ [GC_ENV.caFile]: "/etc/empty" }),
    ];
    expect(messages.map((m) => m.split(" ")[0])).toEqual([
      GC_ENV.endpoint, GC_ENV.endpoint, GC_ENV.endpoint, GC_ENV.bucket, GC_ENV.bucket, GC_ENV.retainDays, GC_ENV.retainDays, GC_ENV.storeDir,
      GC_ENV.credentialsFile, GC_ENV.credentialsFile, GC_ENV.profile, GC_ENV.profile, GC_ENV.caFile, GC_ENV.caFile,
    ]);
    expect(messages[0]).toBe(`${GC_ENV.endpoint} is not set: the builder module's nix-cache-gc.service sets it`);
    expect(messages[9]).toBe(
      `${GC_ENV.credentialsFile} names /run/secrets/missing, which cannot be read (ENOENT): host-config --secrets-dir writes it as nix-cache-gc-credentials`,
    );
    expect(messages[11]).toBe(`${GC_ENV.profile} names the profile [nixadmin], which ${CREDS} (${GC_ENV.credentialsFile}) has no aws_access_key_id and aws_secret_access_key for`);
    expect(messages.filter((m) => m.includes("\n") || m.includes("secret\n") || m.includes("g-secret") || m.includes("b-secret"))).toEqual([]);
  });
});

describe("nixIndentedLines: Nix 2.8 reads back exactly the text", () => {
  const nix = nixSandbox();
  afterAll(() => nix.cleanup());
  const evalJson = (expr: string): unknown => {
    const file = path.join(nix.dir, `expr-${Math.random().toString(36).slice(2)}.nix`);
    fs.writeFileSync(file, expr);
    return JSON.parse(nixOk(nix, "nix-instantiate", ["--eval", "--strict", "--json", "--store", "dummy://", file]));
  };

  test("text with everything a Nix indented string treats specially", () => {
    const tricky = [
      "// ${interpolation} '${after a quote}' ''${escaped already} '''${three} $${two dollars} $''",
      "''two quotes'' at both ends and in the middle '' and ''' and ''''",
      "  indented, \ttab, trailing spaces   ",
      "\tleading tab",
      "   ",
      "",
      "''\\n ''\\t ''$ '' \\ \\\\ `${x}` \"${y}\" 'end'",
      "unicode ≥ ✓ and a lone $ and a { and } and '",
      "",
    ].join("\n");
    const lines = nixIndentedLines(tricky, "    ");
    expect(evalJson(`{ s = ${lines.join("\n")}; }`)).toEqual({ s: tricky });
  });

  test("refuses what it cannot keep: no final newline, every line indented, a carriage return", () => {
    expect(() => nixIndentedLines("a", "  ")).toThrow("must end with exactly one newline");
    expect(() => nixIndentedLines("a\n\n", "  ")).toThrow("must end with exactly one newline");
    expect(() => nixIndentedLines("  a\n  b\n", "  ")).toThrow("every line of the text starts with a space");
    expect(() => nixIndentedLines("a\r\n", "  ")).toThrow("carriage return");
  });

  test("the GC script as the module's gcScript: pkgs.writeText gets the bundle byte for byte", () => {
    const script = gcScriptText();
    expect(script).toContain("'${"); // the case two plain escapes get wrong (see escapeNixIndented)
    const expr = ["let", '  pkgs = { writeText = name: text: { inherit name text; }; };', ...gcScriptLetLines({ script }), "in gcScript", ""].join("\n");
    expect(evalJson(expr)).toEqual({ name: "nix-cache-gc.js", text: script });
  });
});

// Just enough of NixOS for the pieces: nested options (gc.*), mkIf, the types they use, escapeShellArgs, and
// pkgs.writeText/nodejs. Option values: each default overridden by `settings` and checked against its type.
const STAND_IN = `
{ file, settings ? { } }:
let
  type = name: check: { inherit name check; };
  lib = rec {
    types = {
      bool = type "boolean" builtins.isBool;
      str = type "string" builtins.isString;
      ints.positive = type "positive integer" (v: builtins.isInt v && v > 0);
      listOf = t: type "list of \${t.name}" (v: builtins.isList v && builtins.all t.check v);
    };
    mkOption = { type, default, description }: { _type = "option"; inherit type default description; };
    mkIf = cond: content: if cond then content else { };
    hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
    escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\\\''" ] s + "'";
    escapeShellArgs = l: builtins.concatStringsSep " " (map escapeShellArg l);
  };
  pkgs = {
    nodejs = "/stand-in/nodejs";
    writeText = name: text: { inherit name text; outPath = "/stand-in/store/\${name}"; };
  };
  isOption = d: (d._type or null) == "option";
  valuesOf = decl: set: builtins.mapAttrs (n: d:
    if isOption d then (let v = set.\${n} or d.default; in if d.type.check v then v else throw "option \${n}: not a \${d.type.name}")
    else valuesOf d (set.\${n} or { })) decl;
  describe = decl: builtins.mapAttrs (n: d: if isOption d then { inherit (d) default description; type = d.type.name; } else describe d) decl;
  declared = module.options.services.nix-cache-builder;
  config.services.nix-cache-builder = valuesOf declared settings;
  module = (import file) { inherit config lib pkgs; };
in
{ inherit (module) config; options = describe declared; }
`;

describe("gcTimerModule's pieces in a module, evaluated by Nix 2.8", () => {
  const nix = nixSandbox();
  afterAll(() => nix.cleanup());
  const input: GcTimerInput = {
    endpoint: "https://s3.homelab.local:9000",
    region: "us-east-1",
    bucket: "nix-cache",
    profile: "nixgc",
    retainDays: 7,
    storeDir: "/nix/store",
  };
  // The shape lib/hosts/builderModule.ts has: cfg and isSecretPath in the let, sslCertFile among the options.
  const moduleText = [
    "{ config, lib, pkgs, ... }:",
    "let",
    "  cfg = config.services.nix-cache-builder;",
    '  isSecretPath = p: lib.hasPrefix "/" p && !(lib.hasPrefix builtins.storeDir p);',
    ...gcScriptLetLines(input),
    "in",
    "{",
    "  options.services.nix-cache-builder = {",
    '    sslCertFile = lib.mkOption { type = lib.types.str; default = "/etc/ssl/certs/ca-certificates.crt"; description = "CA"; };',
    ...gcOptionLines(input),
    "  };",
    "  config = {",
    "    assertions = [",
    ...gcAssertionLines(),
    "    ];",
    ...gcConfigLines(input),
    "    testScript = { inherit (gcScript) name text; path = \"\${gcScript}\"; };",
    "  };",
    "}",
    "",
  ].join("\n");

  interface Evaluated {
    config: {
      assertions: { assertion: boolean; message: string }[];
      systemd: {
        services: Record<string, { environment: Record<string, string>; serviceConfig: Record<string, string | number | boolean>; after: string[]; wants: string[] }>;
        timers: Record<string, { wantedBy: string[]; timerConfig: Record<string, string | boolean> }>;
      };
      testScript: { name: string; text: string; path: string };
    };
    options: { gc: Record<string, { default: unknown; description: string; type: string }> };
  }
  const evaluate = (settings: Record<string, unknown>): Evaluated => {
    const d = fs.mkdtempSync(path.join(nix.dir, "eval-"));
    fs.writeFileSync(path.join(d, "module.nix"), moduleText);
    fs.writeFileSync(path.join(d, "stand-in.nix"), STAND_IN);
    fs.writeFileSync(path.join(d, "settings.json"), JSON.stringify(settings));
    const expr = `import ${d}/stand-in.nix { file = ${d}/module.nix; settings = builtins.fromJSON (builtins.readFile ${d}/settings.json); }`;
    return JSON.parse(nixOk(nix, "nix-instantiate", ["--eval", "--strict", "--json", "--store", "dummy://", "-E", expr])) as Evaluated;
  };

  test("defaults: a oneshot service at idle priority running the bundle with node, its environment, a daily persistent timer", () => {
    const e = evaluate({});
    expect(Object.fromEntries(Object.entries(e.options.gc).map(([k, o]) => [k, [o.type, o.default]]))).toEqual({
      enable: ["boolean", true],
      credentialsFile: ["string", GC_DEFAULTS.credentialsFile],
      schedule: ["string", "daily"],
      retainDays: ["positive integer", 7],
      extraArgs: ["list of string", []],
    });
    expect(GC_DEFAULTS.credentialsFile).toBe("/run/secrets/nix-cache-gc-credentials");
    const service = e.config.systemd.services["nix-cache-gc"];
    expect(service.serviceConfig).toMatchObject({
      Type: "oneshot",
      ExecStart: "/stand-in/nodejs/bin/node /stand-in/store/nix-cache-gc.js ",
      Nice: 19,
      IOSchedulingClass: "idle",
    });
    expect([service.wants, service.after]).toEqual([["network-online.target"], ["network-online.target"]]);
    expect(service.environment).toEqual({
      [GC_ENV.endpoint]: input.endpoint,
      [GC_ENV.region]: input.region,
      [GC_ENV.bucket]: input.bucket,
      [GC_ENV.retainDays]: "7",
      [GC_ENV.storeDir]: "/nix/store",
      [GC_ENV.credentialsFile]: GC_DEFAULTS.credentialsFile,
      [GC_ENV.profile]: "nixgc",
      [GC_ENV.caFile]: "/etc/ssl/certs/ca-certificates.crt",
    });
    expect(e.config.systemd.timers["nix-cache-gc"]).toEqual({
      wantedBy: ["timers.target"],
      timerConfig: { OnCalendar: "daily", Persistent: true, RandomizedDelaySec: "1h" },
    });
    expect(e.config.assertions.map((a) => a.assertion)).toEqual([true]);
    expect(e.config.testScript).toEqual({ name: "nix-cache-gc.js", text: gcScriptText(), path: "/stand-in/store/nix-cache-gc.js" });
  });

  test("settings: schedule, retainDays, extraArgs (shell-quoted), credentialsFile; gc.enable = false drops the unit and timer", () => {
    const e = evaluate({ gc: { schedule: "Sun 03:00", retainDays: 30, extraArgs: ["--grace", "12h", "it's"], credentialsFile: "/run/agenix/gc" } });
    const service = e.config.systemd.services["nix-cache-gc"];
    expect(service.serviceConfig.ExecStart).toBe("/stand-in/nodejs/bin/node /stand-in/store/nix-cache-gc.js '--grace' '12h' 'it'\\''s'");
    expect([service.environment[GC_ENV.retainDays], service.environment[GC_ENV.credentialsFile]]).toEqual(["30", "/run/agenix/gc"]);
    expect(e.config.systemd.timers["nix-cache-gc"].timerConfig.OnCalendar).toBe("Sun 03:00");
    const off = evaluate({ gc: { enable: false, credentialsFile: "/nix/store/x-creds" } });
    expect([off.config.systemd.services["nix-cache-gc"], off.config.systemd.timers["nix-cache-gc"]]).toEqual([{}, {}]);
    expect(off.config.assertions.map((a) => a.assertion)).toEqual([true]);
    // A credentials file in the world-readable store, or a relative path, fails the assertion.
    for (const bad of ["/nix/store/x-creds", "creds"]) {
      expect([bad, evaluate({ gc: { credentialsFile: bad } }).config.assertions.map((a) => a.assertion)]).toEqual([bad, [false]]);
    }
    expect(() => evaluate({ gc: { retainDays: 0 } })).toThrow("option retainDays: not a positive integer");
    expect(() => gcOptionLines({ retainDays: 1.5 })).toThrow("gc retainDays must be a whole number of days ≥ 1");
  });

  test("the evaluated script runs with the evaluated environment: it reads the credentials file the module names", () => {
    const e = evaluate({});
    const file = path.join(dir, "evaluated-gc.js");
    fs.writeFileSync(file, e.config.testScript.text);
    const env = e.config.systemd.services["nix-cache-gc"].environment;
    const missing = runNode([file], env);
    expect([missing.status, missing.stdout, missing.stderr]).toEqual([
      2,
      "",
      `nix-cache-gc: ${GC_ENV.credentialsFile} names ${GC_DEFAULTS.credentialsFile}, which cannot be read (ENOENT): host-config --secrets-dir writes it as nix-cache-gc-credentials\n`,
    ]);
    const creds = path.join(dir, "other-creds");
    fs.writeFileSync(creds, "[nixbuilder]\naws_access_key_id = nixbuilder\naws_secret_access_key = s\n");
    const wrong = runNode([file], { ...env, [GC_ENV.credentialsFile]: creds });
    expect([wrong.status, wrong.stderr.trim()]).toEqual([
      2,
      `nix-cache-gc: ${GC_ENV.profile} names the profile [nixgc], which ${creds} (${GC_ENV.credentialsFile}) has no aws_access_key_id and aws_secret_access_key for`,
    ]);
  });
});
