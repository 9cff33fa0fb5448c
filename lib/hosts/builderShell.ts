// The builder's shell scripts, lib/hosts/sh/*.sh, read at run time for the builder's NixOS module
// (lib/hosts/builderModule.ts escapes them into Nix indented strings). Real files, so shellcheck reads them
// (tests/unit/builderShell.test.ts); as TypeScript string arrays, escaped twice over, nothing did.
import * as fs from "fs";
import * as path from "path";

/** Beside this module, so ts-node (host-config, Pulumi) and jest find them alike. */
export const BUILDER_SHELL_DIR = path.join(__dirname, "sh");

/** The builder's scripts, each one file of BUILDER_SHELL_DIR. */
export const BUILDER_SHELL_FILES = ["queue-hook.sh", "keep-alive.sh", "drain.sh"] as const;
export type BuilderShellFile = (typeof BUILDER_SHELL_FILES)[number];

/**
 * The line that ends a script's header. The header (notes, and `declare` lines naming the variables the module
 * sets before the script, for shellcheck, which reads one file alone) stays out of the module.
 */
export const MODULE_TEXT_MARKER = "# ---- the module text: lib/hosts/builderModule.ts reads the lines below this one ----";

/** The module text of a script's source: what follows its one marker line. */
export function moduleTextOf(source: string, name: string): string {
  // A checkout with CRLF line ends would put a carriage return at the end of every script line.
  if (source.includes("\r")) throw new Error(`${name}: has a carriage return (CRLF line ends?)`);
  const lines = source.split("\n");
  const at = lines.indexOf(MODULE_TEXT_MARKER);
  if (at < 0 || lines.indexOf(MODULE_TEXT_MARKER, at + 1) >= 0) {
    throw new Error(`${name}: needs exactly one line '${MODULE_TEXT_MARKER}'`);
  }
  return lines.slice(at + 1).join("\n");
}

/** `text` with its one line `# @splice NAME` replaced by `piece` (text ending with a newline). */
export function spliceInto(text: string, name: string, piece: string): string {
  const lines = text.split("\n");
  const marker = `# @splice ${name}`;
  const at = lines.indexOf(marker);
  if (at < 0 || lines.indexOf(marker, at + 1) >= 0) throw new Error(`needs exactly one line '${marker}'`);
  if (!piece.endsWith("\n")) throw new Error(`the text spliced for ${name} must end with a newline`);
  return [...lines.slice(0, at), piece.slice(0, -1), ...lines.slice(at + 1)].join("\n");
}

/** The module text of one of the builder's scripts. */
export function builderShellText(file: BuilderShellFile): string {
  return moduleTextOf(fs.readFileSync(path.join(BUILDER_SHELL_DIR, file), "utf8"), `lib/hosts/sh/${file}`);
}
