// The stack config as the engine hands it to the nix-cache provider plugin: Configure's arguments are the
// `nix-cache:*` keys of the stack config without their namespace, secrets wrapped. Pure: no Pulumi runtime.
import type { ConfigSource } from "../providers/minioClients";
import { PACKAGE } from "../resources/kinds";

/** The signature key Pulumi marks a secret value with in a provider's JSON inputs. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";

/** A value with every Pulumi secret wrapper replaced by its plain value (the plugin keeps secrets out of its outputs' shape). */
export function unwrapSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    if (obj[SECRET_SIG] === SECRET_VALUE) return unwrapSecrets(obj.value);
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, unwrapSecrets(v)]));
  }
  return value;
}

const isSecret = (value: unknown): boolean =>
  value !== null && typeof value === "object" && (value as Record<string, unknown>)[SECRET_SIG] === SECRET_VALUE;
const containsSecrets = (value: unknown): boolean =>
  isSecret(value) || (value !== null && typeof value === "object" && Object.values(value as object).some(containsSecrets));
const asSecret = (value: unknown) => ({ [SECRET_SIG]: SECRET_VALUE, value });

/**
 * `outs` (plain values) with each property marked secret whose same-name property in `ins` (as the engine sent
 * it, secrets wrapped) held a secret, inside objects property by property: what the engine itself does for a
 * provider that does not take secrets (annotateSecrets in sdk/go/common/resource/plugin/provider_plugin.go). The
 * plugin must take them (the engine constructs components only with such plugins), so it keeps them itself.
 */
export function keepSecrets<T>(outs: T, ins: unknown): T {
  if (outs === null || typeof outs !== "object" || Array.isArray(outs) || ins === null || typeof ins !== "object" || isSecret(ins)) return outs;
  const result: Record<string, unknown> = { ...(outs as Record<string, unknown>) };
  for (const [key, inValue] of Object.entries(ins as Record<string, unknown>)) {
    if (!(key in result)) continue;
    const outValue = result[key];
    const inPlain = isSecret(inValue) ? undefined : inValue;
    if (inPlain !== undefined && inPlain !== null && typeof inPlain === "object" && !Array.isArray(inPlain) && outValue !== null && typeof outValue === "object" && !Array.isArray(outValue)) {
      result[key] = keepSecrets(outValue, inPlain);
    } else if (!isSecret(outValue) && containsSecrets(inValue)) {
      result[key] = asSecret(outValue);
    }
  }
  return result as T;
}

/**
 * The providers' view of the config (`get("nix-cache:adminUser")`) over Configure's arguments. Keys may arrive
 * bare (`adminUser`, the arguments) or namespaced (`nix-cache:adminUser`, `nix-cache:config:adminUser`: the
 * older variables map); a non-text value (a list set with --path) is read as its JSON text.
 */
export function configFrom(args: Record<string, unknown>): ConfigSource & { require(key: string): string } {
  const values = new Map<string, string>();
  for (const [rawKey, rawValue] of Object.entries(unwrapSecrets(args) as Record<string, unknown>)) {
    if (rawValue === undefined || rawValue === null) continue;
    const key = rawKey.replace(/^([^:]+):config:/, "$1:");
    const full = key.includes(":") ? key : `${PACKAGE}:${key}`;
    values.set(full, typeof rawValue === "string" ? rawValue : JSON.stringify(rawValue));
  }
  const get = (key: string) => values.get(key.includes(":") ? key : `${PACKAGE}:${key}`);
  return {
    get,
    require(key: string): string {
      const v = get(key);
      if (v === undefined) throw new Error(`missing required configuration key ${key}`);
      return v;
    },
  };
}
