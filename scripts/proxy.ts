// `npm run proxy -- --listen HOST:PORT [--stack NAME] [--tls-cert F --tls-key F]`: serves the selected stack's
// private cache through the read proxy (lib/proxy) until Ctrl-C or SIGTERM. Reads the stack like `npm run verify`
// (scripts/stackReader.ts): the reader's keys and the hosts' tokens from its outputs, MinIO's endpoint, region and
// bucket from its config. On a host of its own the proxy runs from its NixOS module instead (lib/proxy/service.ts).
import { commandMain, OptionSpecs, parseCommandLine, ParsedCommandLine, SetupError } from "../lib/cli/command";
import { SettingsError } from "../lib/config/settings";
import { ProxyConfig } from "../lib/proxy/server";
import { listenOption, readTlsFiles, serveUntilStopped } from "../lib/proxy/service";
import { parseTokenHashes, tokenHashesText } from "../lib/proxy/tokens";
import { readStack } from "./stackReader";

const USAGE = `usage: npm run proxy -- --listen HOST:PORT [--stack NAME] [--tls-cert FILE --tls-key FILE]

Serves the stack's private cache (nix-cache:access=private) at http(s)://HOST:PORT/ until Ctrl-C or SIGTERM:
each host in readerHosts reads with its netrc line (login HOST, password its token from readerTokens), and the
proxy signs each GET or HEAD to MinIO as the reader user. One log line per request. To revoke a host, remove it
from readerHosts, run \`pulumi up\`, and restart this command.
  --listen HOST:PORT        where to listen, e.g. 0.0.0.0:8480 (the port of the proxyUrl output)
  --stack NAME, -s NAME     the stack to serve (default: the selected stack)
  --tls-cert FILE           serve https with this certificate (chain), PEM ...
  --tls-key FILE            ... and its private key, PEM
  --help, -h                this text
Exit status: 0 stopped by Ctrl-C or SIGTERM, 2 could not start (bad arguments, stack unreadable or public,
the port taken).`;

const OPTIONS = {
  listen: { type: "string", valueName: "HOST:PORT" },
  stack: { type: "string", short: "s", valueName: "NAME" },
  "tls-cert": { type: "string", valueName: "FILE" },
  "tls-key": { type: "string", valueName: "FILE" },
} as const satisfies OptionSpecs;

/** What the proxy needs from a stack: its outputs (secrets shown) and settings. */
export interface ProxyStackView {
  stackName: string;
  outputs: Record<string, unknown>;
  settings: { endpoint: string; region: string; bucket: string; caCertificate?: string };
}

/**
 * The proxy's upstream and tokens from a stack; a SetupError (exit 2) that says what to do when the stack is not
 * private or lacks an output. readerTokens may be the JSON object or a string holding it.
 */
export function proxyFromStack(view: ProxyStackView): Pick<ProxyConfig, "upstream" | "tokenHashes"> {
  const { stackName, outputs, settings } = view;
  const access = outputs.access;
  if (access !== "private") {
    throw new SetupError(
      `stack ${stackName} is not a private cache (its access output is ${access === undefined ? "missing" : `'${String(access)}'`}): ` +
        "the read proxy serves only access=private caches (anyone can read a public one); " +
        "set `pulumi config set nix-cache:access private` and run `pulumi up` first",
    );
  }
  const text = (name: string): string => {
    const v = outputs[name];
    if (typeof v !== "string" || v === "") throw new SetupError(`stack ${stackName} has no output '${name}': run \`pulumi up\` first`);
    return v;
  };
  let tokens: unknown = outputs.readerTokens;
  if (typeof tokens === "string") {
    try {
      tokens = JSON.parse(tokens);
    } catch {
      throw new SetupError(`stack ${stackName}'s output readerTokens is not JSON (want an object host → token)`);
    }
  }
  if (typeof tokens !== "object" || tokens === null || Array.isArray(tokens) || Object.values(tokens).some((t) => typeof t !== "string" || t === "")) {
    throw new SetupError(`stack ${stackName} has no output 'readerTokens' (an object host → token): set nix-cache:readerHosts and run \`pulumi up\``);
  }
  let tokenHashes: Map<string, string>;
  try {
    tokenHashes = parseTokenHashes(tokenHashesText(tokens as Record<string, string>));
  } catch (err) {
    throw new SetupError(`stack ${stackName}'s output readerTokens: ${(err as Error).message}`);
  }
  if (tokenHashes.size === 0) throw new SetupError(`stack ${stackName} has no host in readerTokens: set nix-cache:readerHosts and run \`pulumi up\``);
  const ca = typeof outputs.caCertificate === "string" && outputs.caCertificate !== "" ? outputs.caCertificate : settings.caCertificate;
  return {
    upstream: {
      endpoint: settings.endpoint,
      region: settings.region,
      bucket: settings.bucket,
      accessKey: text("readerAccessKey"),
      secretKey: text("readerSecretKey"),
      ...(ca ? { ca } : {}),
    },
    tokenHashes,
  };
}

async function proxy({ values }: ParsedCommandLine<typeof OPTIONS>) {
  const listen = listenOption(values.listen);
  const tls = readTlsFiles(values["tls-cert"], values["tls-key"]);
  const { upstream, tokenHashes } = proxyFromStack(readStack("proxy", values.stack));
  return serveUntilStopped("proxy", { listen, upstream, tokenHashes, ...(tls ? { tls } : {}) }, { log: (line) => console.log(line), signals: process });
}

commandMain(module, {
  name: "proxy",
  usage: USAGE,
  parse: (argv) => parseCommandLine(argv, { options: OPTIONS, usage: USAGE }),
  run: proxy,
  known: [SettingsError],
});
