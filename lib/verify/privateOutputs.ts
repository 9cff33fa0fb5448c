// What `npm run verify` reads of a private cache's stack outputs, and which proxy token it sends: pure, so the
// forms the outputs arrive in (readerTokens as an object, or as the JSON text of one) and every refusal are
// tested directly. A missing output is a SetupError (exit 2) that says to run `pulumi up`.
import { SetupError, UsageError } from "../cli/command";

/** The outputs verify reads of a private cache besides the public ones. */
export interface PrivateOutputs {
  readerAccessKey: string;
  readerSecretKey: string;
  /** host → its proxy token. */
  readerTokens: Record<string, string>;
  /** The read proxy's root URL hosts are given (informational: verify checks the URL it is given with --proxy). */
  proxyUrl: string;
}

const missing = (stackName: string, name: string, what = "no output") =>
  new SetupError(`stack ${stackName} has ${what} '${name}' (nix-cache:access is private): run \`pulumi up\` first`);

/** readerTokens, readerAccessKey, readerSecretKey and proxyUrl of `outputs` (secrets shown), else a SetupError. */
export function privateOutputs(outputs: Record<string, unknown>, stackName: string): PrivateOutputs {
  const text = (name: string): string => {
    const v = outputs[name];
    if (typeof v !== "string" || v === "") throw missing(stackName, name);
    return v;
  };
  const readerAccessKey = text("readerAccessKey");
  const readerSecretKey = text("readerSecretKey");
  const proxyUrl = text("proxyUrl");
  let tokens = outputs.readerTokens;
  // The pulumi CLI prints an object output as an object; a program may also export its JSON text.
  if (typeof tokens === "string") {
    try {
      tokens = JSON.parse(tokens) as unknown;
    } catch {
      throw missing(stackName, "readerTokens", "an unreadable (not JSON)");
    }
  }
  if (typeof tokens !== "object" || tokens === null || Array.isArray(tokens)) throw missing(stackName, "readerTokens");
  const readerTokens: Record<string, string> = {};
  for (const [host, token] of Object.entries(tokens)) {
    if (typeof token !== "string" || token === "") throw missing(stackName, "readerTokens", `no token for ${host} in the output`);
    readerTokens[host] = token;
  }
  return { readerAccessKey, readerSecretKey, readerTokens, proxyUrl };
}

/** What verify's proxy check is given: the proxy's root URL and the host whose token it sends. */
export interface ProxyTarget {
  url: string;
  host: string;
  token: string;
}

/** The proxy options as given: --proxy URL (the proxy's root) and --proxy-host NAME. */
export interface ProxyArgs {
  url: string;
  host?: string;
}

/** --proxy URL and --proxy-host NAME checked (a UsageError names the bad one); undefined without --proxy. */
export function proxyArgs(proxyArg: string | undefined, hostArg: string | undefined): ProxyArgs | undefined {
  if (proxyArg === undefined) {
    if (hostArg !== undefined) throw new UsageError("--proxy-host NAME needs --proxy URL (the proxy to check)");
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(proxyArg);
  } catch {
    throw new UsageError(`--proxy needs the proxy's root URL, http(s)://HOST:PORT, not '${proxyArg}'`);
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.username || url.password || url.search || url.hash) {
    throw new UsageError(`--proxy needs the proxy's root URL, http(s)://HOST:PORT (no credentials, query or fragment), not '${proxyArg}'`);
  }
  return { url: `${url.origin}${url.pathname.replace(/\/+$/, "")}`, ...(hostArg !== undefined ? { host: hostArg } : {}) };
}

/**
 * The proxy check's target: the given host's token (default: the first host by name). An unknown host is a
 * UsageError naming the hosts; a stack that gives no host a token a SetupError.
 */
export function proxyTarget(args: ProxyArgs, tokens: Record<string, string>): ProxyTarget {
  const hosts = Object.keys(tokens).sort();
  if (hosts.length === 0) {
    throw new SetupError(
      "the stack gives no host a proxy token (readerTokens is empty): set the hosts with " +
        "`pulumi config set --path 'nix-cache:readerHosts[0]' NAME` and run `pulumi up`, or leave out --proxy",
    );
  }
  const host = args.host ?? hosts[0];
  if (!Object.hasOwn(tokens, host)) throw new UsageError(`--proxy-host ${host} has no token in the stack's readerTokens (hosts: ${hosts.join(", ")})`);
  return { url: args.url, host, token: tokens[host] };
}
