// Evaluates the generated NixOS modules with real Nix against a minimal stand-in for what NixOS passes a
// module ({ config, lib, pkgs, ... }), and gives tests a daemon-less Nix 2.8 environment of their own.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { requireTool } from "../../harness/toolchain";
import { nixEnv } from "../../harness/nix";

/**
 * Just enough lib and pkgs for the generated modules: mkOption/mkIf/types/all/hasPrefix/escapeShellArg, and
 * pkgs.writeShellScript returning a derivation-like set ({ outPath; text }). Option values are each option's
 * default overridden by `settings`, checked against the option's type; an unknown setting is an error.
 * Tool packages map to /usr, where Debian keeps them, so the evaluated scripts run on this machine as they are.
 */
export const STAND_IN_NIX = `
{ file, settings ? { }, scriptDir ? "/stand-in/bin" }:
let
  type = name: check: { inherit name check; };
  lib = {
    types = {
      bool = type "boolean" builtins.isBool;
      str = type "string" builtins.isString;
      ints.positive = type "positive integer" (v: builtins.isInt v && v > 0);
      ints.unsigned = type "unsigned integer, meaning >=0" (v: builtins.isInt v && v >= 0);
      listOf = t: type "list of \${t.name}" (v: builtins.isList v && builtins.all t.check v);
    };
    all = builtins.all;
    mkOption = { type, default, description }: { _type = "option"; inherit type default description; };
    mkIf = cond: content: if cond then content else { };
    hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
    escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\\\''" ] s + "'";
  };
  pkgs = {
    coreutils = "/usr";
    util-linux = "/usr";
    gnused = "/usr";
    gnugrep = "/usr";
    curl = "/usr";
    writeShellScript = name: text: { inherit name; text = "#!/bin/bash\\n" + text; outPath = "\${scriptDir}/\${name}"; };
  };
  module = (import file) { inherit config lib pkgs; };
  declared = module.options.services.nix-cache-builder or { };
  unknown = builtins.filter (n: !(declared ? \${n})) (builtins.attrNames settings);
  values = builtins.mapAttrs
    (name: opt:
      let v = settings.\${name} or opt.default; in
      if opt.type.check v then v else throw "option \${name}: not a \${opt.type.name}")
    declared;
  config = {
    services.nix-cache-builder = if unknown == [ ] then values else throw "no such option: \${toString unknown}";
    nix.package = "/usr";
  };
in
{
  config = module.config or module;
  options = builtins.mapAttrs (n: o: { inherit (o) default description; type = o.type.name; }) declared;
}
`;

export { nixEnv };

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
  settings: Record<string, string | number | boolean | string[]>,
  scriptDir: string,
): EvaluatedModules {
  requireTool("nix-instantiate", "the e2e tests need Nix 2.8 (Debian's nix-bin): run them with `npm test`");
  fs.mkdirSync(workDir, { recursive: true });
  fs.writeFileSync(path.join(workDir, "stand-in.nix"), STAND_IN_NIX);
  fs.writeFileSync(path.join(workDir, "settings.json"), JSON.stringify(settings));
  const expr = `
    let
      standIn = import ${path.join(workDir, "stand-in.nix")};
      settings = builtins.fromJSON (builtins.readFile ${path.join(workDir, "settings.json")});
      client = standIn { file = ${files.client}; };
      builder = standIn { file = ${files.builder}; inherit settings; scriptDir = ${JSON.stringify(scriptDir)}; };
    in {
      client = client.config;
      builder = builder.config;
      options = builder.options;
      hookText = builder.config.nix.settings.post-build-hook.text;
      drainText = builder.config.systemd.services.nix-cache-push.serviceConfig.ExecStart.text;
    }`;
  const json = execFileSync("nix-instantiate", ["--eval", "--strict", "--json", "--store", "dummy://", "-E", expr], {
    env: nixEnv(path.join(workDir, "home")),
    encoding: "utf8",
    // Nix's error goes into the thrown error's message, not onto the test run's output.
    stdio: ["ignore", "pipe", "pipe"],
  });
  const evaluated = JSON.parse(json) as EvaluatedModules;
  fs.mkdirSync(scriptDir, { recursive: true });
  fs.writeFileSync(evaluated.builder.nix.settings["post-build-hook"], evaluated.hookText, { mode: 0o755 });
  fs.writeFileSync(String(evaluated.builder.systemd.services["nix-cache-push"].serviceConfig.ExecStart), evaluated.drainText, {
    mode: 0o755,
  });
  return evaluated;
}
