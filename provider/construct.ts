// The plugin's Construct of `nix-cache:index:NixCache`, for programs in other languages (Pulumi YAML): the same
// component index.ts builds, from the inputs the program gives, validated as index.ts validates the stack config
// (lib/config/settings.ts), and the same outputs index.ts exports.
import * as pulumi from "@pulumi/pulumi";
import type * as provider from "@pulumi/pulumi/provider";
import { NixCache, NixCacheArgs } from "../components/nixCache";
import { CacheSettings, CONFIG_NAMESPACE, parseSettings, RawSettings, SettingsError } from "../lib/config/settings";
import { NIX_CACHE_INPUTS } from "./schema";

/** An input once its value is there: known (with the value), or unknown in a preview (another resource's output). */
type Settled = { known: true; value: unknown } | { known: false };

/** The inputs that must be known when the program runs: they decide which resources the component declares. */
const PLAIN_INPUTS = ["access", "readerHosts", "adopt"] as const;

/** Output's own knownness (the SDK keeps it on every Output; its type hides it). */
interface WithKnown {
  isKnown: Promise<boolean>;
}

async function settle(input: unknown): Promise<Settled> {
  if (!pulumi.Output.isInstance(input)) return pulumi.isUnknown(input) ? { known: false } : { known: true, value: input };
  if (!(await (input as unknown as WithKnown).isKnown)) return { known: false };
  const value = await new Promise<unknown>((resolve) => input.apply((v) => (resolve(v), v)));
  return { known: true, value };
}

/** An input value as the stack config would hold it (what parseSettings reads): text, or a list's JSON. */
function rawText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

/**
 * A settings problem (`nix-cache:NAME is "VALUE": allowed is …`) as the input it names and the reason. The
 * engine shows each as `property NAME with value VALUE has a problem: REASON` (secrets hidden), so a leading
 * `is "VALUE":` is left out of the reason.
 */
export function inputProblem(problem: string): { propertyPath: string; reason: string } {
  const m = new RegExp(`^${CONFIG_NAMESPACE}:([\\w]+(?:\\[\\d+\\])?)\\s*(.*)$`, "s").exec(problem);
  if (!m) return { propertyPath: "", reason: problem };
  return { propertyPath: m[1], reason: m[2].replace(/^is "(?:[^"\\]|\\.)*": /, "") };
}

/**
 * Validates NixCache's inputs with parseSettings. Inputs not known yet (a preview) are not checked; a problem that
 * names one is left out. Throws one InputPropertiesError naming every bad input, or returns the settings
 * (undefined when some input is unknown and parseSettings could not give them).
 */
export function validateInputs(values: Record<string, Settled>): CacheSettings | undefined {
  const unknown = Object.keys(values).filter((k) => !values[k].known);
  const problems: string[] = [];
  for (const key of Object.keys(values)) {
    if (!(key in NIX_CACHE_INPUTS)) problems.push(`${CONFIG_NAMESPACE}:${key} is not an input of NixCache: allowed are ${Object.keys(NIX_CACHE_INPUTS).join(", ")}`);
  }
  for (const key of PLAIN_INPUTS) {
    if (values[key] && !values[key].known) {
      problems.push(`${CONFIG_NAMESPACE}:${key} is not known until another resource is made: allowed is a value known when the program runs (a literal or config)`);
    }
  }
  const raw: RawSettings = {};
  for (const [key, settled] of Object.entries(values)) {
    if (settled.known && key in NIX_CACHE_INPUTS) raw[key as keyof RawSettings] = rawText(settled.value);
  }
  let settings: CacheSettings | undefined;
  try {
    settings = parseSettings(raw);
  } catch (err) {
    if (!(err instanceof SettingsError)) throw err;
    problems.push(...err.problems.filter((p) => !unknown.includes(inputProblem(p).propertyPath.replace(/\[\d+\]$/, ""))));
  }
  if (problems.length > 0) {
    const errors = problems.map(inputProblem);
    // The engine lists each input under the message, with its value and reason.
    throw new pulumi.InputPropertiesError({ message: `invalid NixCache inputs: ${errors.map((e) => e.propertyPath).join(", ")}`, errors });
  }
  return unknown.length > 0 ? undefined : settings;
}

/** The component's args from the checked settings, as index.ts makes them from the stack config. */
function argsOf(settings: CacheSettings): NixCacheArgs {
  return {
    ...settings,
    builderUser: settings.builderUserDefaulted ? undefined : settings.builderUser,
    gcUser: settings.gcUserDefaulted ? undefined : settings.gcUser,
    importKeys: settings.importKeys.length > 0 ? pulumi.secret(settings.importKeys) : undefined,
    builderPassword: settings.builderPassword === undefined ? undefined : pulumi.secret(settings.builderPassword),
  };
}

/** NixCache's outputs under the names index.ts exports them (the reader's only for a private cache). */
export function nixCacheOutputs(cache: NixCache): Record<string, pulumi.Output<unknown>> {
  return {
    substituterUrl: cache.substituterUrl,
    publicKey: cache.publicKey,
    secretKey: cache.secretKey,
    trustedPublicKeys: cache.trustedPublicKeys,
    secretKeys: cache.secretKeys,
    builderAccessKey: cache.builderAccessKey,
    builderSecretKey: cache.builderSecretKey,
    awsCredentials: cache.awsCredentials,
    gcAccessKey: cache.gcAccessKey,
    gcSecretKey: cache.gcSecretKey,
    gcCredentials: cache.gcCredentials,
    retention: cache.retention,
    retainDays: cache.retainDays,
    nixosModule: cache.nixosModule,
    pushUrl: cache.pushUrl,
    signCommand: cache.signCommand,
    pushCommand: cache.pushCommand,
    caCertificate: cache.caCertificate,
    access: cache.access,
    ...(cache.reader
      ? {
          readerAccessKey: cache.reader.accessKey,
          readerSecretKey: cache.reader.secretKey,
          readerCredentials: cache.reader.credentials,
          readerSubstituterUrl: cache.reader.substituterUrl,
          readerTokens: cache.reader.tokens,
          netrc: cache.reader.netrc,
          proxyUrl: cache.reader.proxyUrl,
          proxyTokenHashes: cache.reader.proxyTokenHashes,
          proxyClientModule: cache.reader.proxyClientModule,
        }
      : {}),
  };
}

/**
 * Construct of `nix-cache:index:NixCache`: checks the inputs (one error naming each bad one), builds the component
 * and returns its URN and outputs. A checked value keeps the dependencies and secrecy of the input it came from.
 */
export async function constructNixCache(
  name: string,
  inputs: pulumi.Inputs,
  options: pulumi.ComponentResourceOptions,
): Promise<provider.ConstructResult> {
  const values: Record<string, Settled> = {};
  for (const [key, input] of Object.entries(inputs)) {
    if (input !== undefined && input !== null) values[key] = await settle(input);
  }
  const settings = validateInputs(values);
  let args: NixCacheArgs;
  if (settings) {
    // The checked (normalized, defaulted) value of each input, on the input's own Output when it was one.
    const checked = argsOf(settings) as unknown as Record<string, unknown>;
    const fromInputs: Record<string, unknown> = { ...checked };
    for (const [key, input] of Object.entries(inputs)) {
      if (pulumi.Output.isInstance(input) && key in checked && !(PLAIN_INPUTS as readonly string[]).includes(key)) {
        const value = checked[key];
        fromInputs[key] = input.apply(() => value);
      }
    }
    args = fromInputs as unknown as NixCacheArgs;
  } else {
    // A preview with inputs not known yet: the known ones are checked above, all are passed on as given.
    const plain = PLAIN_INPUTS as readonly string[];
    args = Object.fromEntries(
      Object.entries(values).map(([k, v]) => [k, v.known && plain.includes(k) ? v.value : inputs[k]]),
    ) as unknown as NixCacheArgs;
  }
  const cache = new NixCache(name, args, options);
  return { urn: cache.urn, state: nixCacheOutputs(cache) };
}
