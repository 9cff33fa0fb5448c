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
