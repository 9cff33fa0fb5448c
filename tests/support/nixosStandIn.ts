// Evaluates the generated NixOS modules with real Nix against a minimal stand-in for what NixOS passes a
// module ({ config, lib, pkgs, ... }), and gives tests a daemon-less Nix 2.8 environment of their own.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { requireTool } from "../../harness/toolchain";
import { nixEnv } from "../../harness/nix";

/**
 * Just enough lib and pkgs for the generated modules: mkOption/mkIf/optional(s)/types/all/hasPrefix/escapeShellArg(s), and
 * pkgs.writeShellScript/writeText returning a derivation-like set ({ outPath; text }). Option values are each
 * option's default overridden by `settings` (nested sets of options, like gc.*, by nested settings), checked
 * against the option's type; an unknown setting is an error. `options` names nested ones with dots (gc.enable).
 * `service` names the module's option set under services (the builder's by default).
 * Tool packages map to /usr, where Debian keeps them, so the evaluated scripts run on this machine as they are.
 */
export const STAND_IN_NIX = `
{ file, settings ? { }, scriptDir ? "/stand-in/bin", service ? "nix-cache-builder" }:
let
  type = name: check: { inherit name check; };
  lib = {
    types = {
      bool = type "boolean" builtins.isBool;
      str = type "string" builtins.isString;
      ints.positive = type "positive integer" (v: builtins.isInt v && v > 0);
      ints.unsigned = type "unsigned integer, meaning >=0" (v: builtins.isInt v && v >= 0);
      port = type "16 bit unsigned integer; between 0 and 65535 (both inclusive)" (v: builtins.isInt v && v >= 0 && v <= 65535);
      nullOr = t: type "null or \${t.name}" (v: v == null || t.check v);
      listOf = t: type "list of \${t.name}" (v: builtins.isList v && builtins.all t.check v);
    };
    all = builtins.all;
    mkOption = { type, default, description }: { _type = "option"; inherit type default description; };
    mkIf = cond: content: if cond then content else { };
    optional = cond: x: if cond then [ x ] else [ ];
    optionals = cond: xs: if cond then xs else [ ];
    optionalString = cond: s: if cond then s else "";
    optionalAttrs = cond: as: if cond then as else { };
    concatStringsSep = builtins.concatStringsSep;
    hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
    escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\\\''" ] s + "'";
    escapeShellArgs = args: builtins.concatStringsSep " " (map lib.escapeShellArg args);
  };
  pkgs = {
    coreutils = "/usr";
    util-linux = "/usr";
    gnused = "/usr";
    gnugrep = "/usr";
    curl = "/usr";
    nodejs = "/usr";
    writeText = name: text: { inherit name text; outPath = "\${scriptDir}/\${name}"; };
    writeShellScript = name: text: { inherit name; text = "#!/bin/bash\\n" + text; outPath = "\${scriptDir}/\${name}"; };
  };
  module = (import file) { inherit config lib pkgs; };
  declared = module.options.services.\${service} or { };
  isOption = v: (v._type or null) == "option";
  # Values of a set of options (nested sets like gc.* too): each default overridden by \`set\`, type-checked.
  valuesOf = prefix: decl: set:
    let unknown = builtins.filter (n: !(decl ? \${n})) (builtins.attrNames set); in
    if unknown != [ ] then throw "no such option: \${toString (map (n: prefix + n) unknown)}" else
    builtins.mapAttrs
      (name: opt:
        if isOption opt then
          let v = set.\${name} or opt.default; in
          if opt.type.check v then v else throw "option \${prefix}\${name}: not a \${opt.type.name}"
        else valuesOf "\${prefix}\${name}." opt (set.\${name} or { }))
      decl;
  # Every option by its dotted name (gc.enable).
  flatten = prefix: decl: builtins.foldl'
    (acc: name:
      let o = decl.\${name}; in
      acc // (if isOption o then { "\${prefix}\${name}" = { inherit (o) default description; type = o.type.name; }; } else flatten "\${prefix}\${name}." o))
    { }
    (builtins.attrNames decl);
  config = {
    services.\${service} = valuesOf "" declared settings;
    nix.package = "/usr";
  };
in
{
  config = module.config or module;
  options = flatten "" declared;
}
`;

export { nixEnv };

/** A builder option value; a nested set of options (gc.*) takes an object of them. */
export type StandInSetting = string | number | boolean | string[] | { [name: string]: StandInSetting };

export interface EvaluatedModules {
  /** The client module's config (security.pki only when the stack has a CA). */
  client: { nix: { settings: Record<string, unknown> }; security?: { pki: { certificates: string[] } } };
  /** The builder module's config (derivations appear as their outPath). */
  builder: {
    assertions: { assertion: boolean; message: string }[];
    nix: { settings: { "secret-key-files": string[]; "post-build-hook": string } };
    systemd: {
      services: Record<string, { serviceConfig: Record<string, unknown> } & Record<string, unknown>>;
      paths: Record<string, { pathConfig: Record<string, string>; wantedBy: string[] }>;
      timers: Record<string, { timerConfig: Record<string, string>; wantedBy: string[] }>;
      tmpfiles: { rules: string[] };
    };
  };
  /** The builder module's options: default, description and type name. */
  options: Record<string, { default: unknown; description: string; type: string }>;
  hookText: string;
  drainText: string;
}

/**
 * Evaluates both modules with `nix-instantiate --eval --strict --json` (on the dummy store: evaluation
 * must not write anything) and writes the hook and drain scripts, as evaluated, to their outPaths in
 * `scriptDir`. `settings` are builder option values.
 */
export function evalHostModules(
  workDir: string,
  files: { client: string; builder: string },
  settings: Record<string, StandInSetting>,
  scriptDir: string,
): EvaluatedModules {
  const evaluated = evalWithStandIn<EvaluatedModules>(
    workDir,
    settings,
    `
      client = standIn { file = ${files.client}; };
      builder = standIn { file = ${files.builder}; inherit settings; scriptDir = ${JSON.stringify(scriptDir)}; };
    in {
      client = client.config;
      builder = builder.config;
      options = builder.options;
      hookText = builder.config.nix.settings.post-build-hook.text;
      drainText = builder.config.systemd.services.nix-cache-push.serviceConfig.ExecStart.text;
    }`,
  );
  fs.mkdirSync(scriptDir, { recursive: true });
  fs.writeFileSync(evaluated.builder.nix.settings["post-build-hook"], evaluated.hookText, { mode: 0o755 });
  fs.writeFileSync(String(evaluated.builder.systemd.services["nix-cache-push"].serviceConfig.ExecStart), evaluated.drainText, {
    mode: 0o755,
  });
  return evaluated;
}

/** One module evaluated against the stand-in: its config (derivations appear as { name; text; outPath }) and options. */
export interface EvaluatedModule {
  config: Record<string, unknown>;
  options: Record<string, { default: unknown; description: string; type: string }>;
}

/**
 * Evaluates one module (`file`) with the stand-in, its option set at services.`service`, each option's default
 * overridden by `settings`; on the dummy store, so evaluation writes nothing. Nix's error is in the thrown message.
 */
export function evalModule(workDir: string, file: string, service: string, settings: Record<string, StandInSetting> = {}): EvaluatedModule {
  return evalWithStandIn<EvaluatedModule>(workDir, settings, `
    in standIn { file = ${file}; service = ${JSON.stringify(service)}; inherit settings; }`);
}

/**
 * `nix-instantiate --eval --strict --json` of `let standIn = …; settings = …;` followed by `rest` (more bindings,
 * then `in …`), with the stand-in and `settings` written to `workDir`; on the dummy store, so evaluation writes
 * nothing. Nix's error goes into the thrown error's message, not onto the test run's output.
 */
function evalWithStandIn<T>(workDir: string, settings: Record<string, StandInSetting>, rest: string): T {
  requireTool("nix-instantiate", "the tests need Nix 2.8 (Debian's nix-bin): run them with `npm test`");
  fs.mkdirSync(workDir, { recursive: true });
  fs.writeFileSync(path.join(workDir, "stand-in.nix"), STAND_IN_NIX);
  fs.writeFileSync(path.join(workDir, "settings.json"), JSON.stringify(settings));
  const expr = `
    let
      standIn = import ${path.join(workDir, "stand-in.nix")};
      settings = builtins.fromJSON (builtins.readFile ${path.join(workDir, "settings.json")});${rest}`;
  const json = execFileSync("nix-instantiate", ["--eval", "--strict", "--json", "--store", "dummy://", "-E", expr], {
    env: nixEnv(path.join(workDir, "home")),
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  return JSON.parse(json) as T;
}
