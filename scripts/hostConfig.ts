// `npm run host-config -- [--stack NAME] --out DIR [--secrets-dir DIR]`: writes the files NixOS hosts use
// from a deployed stack's outputs (see lib/hosts/hostFiles.ts). Never prints a secret. Exits 0 when the files are
// written, 2 when it could not run (bad arguments, stack unreadable, outputs missing); --help prints the usage.
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import { commandMain, EXIT, ExitCode, SetupError } from "../lib/cli/command";
import { writeFileAtomic } from "../lib/cli/writeFile";
import {
  HostConfigArgs,
  HostFile,
  hostFiles,
  Outputs,
  parseHostConfigArgs,
  staleNetrcFiles,
  staleSigningKeyFiles,
  USAGE,
} from "../lib/hosts/hostFiles";

const PROJECT_DIR = path.resolve(__dirname, "..");

/** `pulumi stack output --json` in the project directory, with the user's backend and passphrase settings. */
async function stackOutputs(stack: string | undefined, showSecrets: boolean): Promise<Outputs> {
  const args = ["stack", "output", "--json", "--non-interactive"];
  if (stack) args.push("--stack", stack);
  if (showSecrets) args.push("--show-secrets");
  try {
    const { stdout } = await promisify(execFile)("pulumi", args, { cwd: PROJECT_DIR, maxBuffer: 16 * 1024 * 1024 });
    return JSON.parse(stdout) as Outputs;
  } catch (e) {
    const err = e as { stderr?: string; message: string; code?: string };
    if (err.code === "ENOENT") throw new SetupError("the pulumi CLI is not on PATH: run this through `npm run host-config`");
    // pulumi's stderr names the problem (no such stack, no passphrase, ...) and holds no output values.
    throw new SetupError(`could not read the stack outputs: ${(err.stderr ?? err.message).trim()}`);
  }
}

/** Writes one host file into `dir` (lib/cli/writeFile.ts) and returns its path. */
function writeHostFile(dir: string, file: HostFile, mode: number): string {
  const target = path.join(dir, file.name);
  writeFileAtomic(target, file.content, mode);
  return target;
}

async function hostConfig(args: HostConfigArgs): Promise<ExitCode> {
  const plain = await stackOutputs(args.stack, false);
  const revealed = args.secretsDir ? await stackOutputs(args.stack, true) : undefined;
  const files = hostFiles(plain, revealed);

  fs.mkdirSync(args.out, { recursive: true });
  for (const f of files.public) console.log(`wrote ${writeHostFile(args.out, f, 0o644)}`);
  if (args.secretsDir) {
    fs.mkdirSync(args.secretsDir, { recursive: true, mode: 0o700 });
    for (const f of files.secret) console.log(`wrote ${writeHostFile(args.secretsDir, f, 0o600)} (secret, mode 0600)`);
    // A stack from before the GC identity: said, not fatal (the builder's pushes do not need it).
    for (const note of files.notes) console.log(note);
    // A key retired since an earlier run leaves its file behind: named, never deleted (a builder may still read it).
    for (const f of staleSigningKeyFiles(fs.readdirSync(args.secretsDir), files.secret)) {
      console.log(
        `left ${path.join(args.secretsDir, f)}: not a signing key of this stack any more (a retired key); ` +
          "delete it, and its copy in your secret manager, once no builder's previousSigningKeyFiles names it",
      );
    }
    // A host removed from readerHosts (revoked) leaves its netrc file behind: named, never deleted.
    for (const f of staleNetrcFiles(fs.readdirSync(args.secretsDir), files.secret)) {
      console.log(
        `left ${path.join(args.secretsDir, f)}: its host is not in readerHosts any more (revoked); delete it, and its copy in your secret manager`,
      );
    }
  }
  return EXIT.ok;
}

commandMain(module, {
  name: "host-config",
  usage: USAGE,
  // npm runs scripts from the project root; INIT_CWD is where the user typed the command.
  parse: (argv) => parseHostConfigArgs(argv, process.env.INIT_CWD ?? process.cwd()),
  run: hostConfig,
});
