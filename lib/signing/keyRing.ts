// The cache's signing keys as a set, for rotation without a host ever rejecting the cache: the active key
// (nix-cache:keyName) plus older keys still trusted and still signing (nix-cache:previousKeyNames). Pure: the
// key-ring provider (providers/secrets.ts) calls these; no Pulumi runtime. Kept free of classes and Maps,
// which do not survive Pulumi's serialization of provider code.
import { generateKeypair, NixKeypair } from "./signingKey";

/** The key ring's state: names (the active first), and each key in Nix's formats, in the same order. */
export interface KeyRingState {
  keyNames: string[];
  publicKeys: string[];
  secretKeys: string[];
  /** Names of keys dropped from the ring: never used again (hosts may still trust the old key by that name). */
  retiredKeyNames: string[];
}

/** The state of a stack made before key sets: one NixSigningKeypair with these outputs. */
export interface LegacyKeypairState {
  keyName: string;
  publicKey?: string;
  secretKey?: string;
}

export const ALLOW_KEY_DROP_KEY = "nix-cache:allowKeyDrop";

/** The ring's state from what Pulumi holds, whether written by this version or by the single-key one. */
export function ringOf(state: Partial<KeyRingState> & Partial<LegacyKeypairState>): KeyRingState {
  if (Array.isArray(state.keyNames)) {
    return {
      keyNames: [...state.keyNames],
      publicKeys: [...(state.publicKeys ?? [])],
      secretKeys: [...(state.secretKeys ?? [])],
      retiredKeyNames: [...(state.retiredKeyNames ?? [])],
    };
  }
  if (typeof state.keyName === "string" && state.publicKey && state.secretKey) {
    return { keyNames: [state.keyName], publicKeys: [state.publicKey], secretKeys: [state.secretKey], retiredKeyNames: [] };
  }
  return { keyNames: [], publicKeys: [], secretKeys: [], retiredKeyNames: [] };
}

/**
 * Why the change from `old` to the names `next` (active first) must not go ahead, or undefined when it may:
 * - the active key dropped at once (not kept in previousKeyNames): every host trusting only it would reject
 *   what the builder signs from then on, and hosts given the new module would reject the whole cache;
 *   allowed only with nix-cache:allowKeyDrop=true (a compromised key);
 * - a name of a retired key used again: Nix keys trusted keys by name, so a host still trusting the old key
 *   under that name would silently ignore the new one.
 */
export function keyChangeRefusal(old: KeyRingState, next: readonly string[], allowKeyDrop: boolean): string | undefined {
  const reused = next.filter((n) => old.retiredKeyNames.includes(n) && !old.keyNames.includes(n));
  if (reused.length > 0) {
    return (
      `the key name${reused.length > 1 ? "s" : ""} ${reused.map((n) => `'${n}'`).join(", ")} belonged to a key this stack retired; ` +
      `nothing was changed. Nix identifies trusted keys by name, so a host still trusting the old '${reused[0]}' would ` +
      `ignore a new key of that name. Pick a name never used before (bump the trailing integer past every earlier one).`
    );
  }
  const active = old.keyNames[0];
  if (active === undefined || next.includes(active) || allowKeyDrop) return undefined;
  const newActive = next[0];
  // `--path …[k]` with k = the number of previous names now set appends, leaving the others as they are.
  const slot = next.length - 1;
  return (
    `nix-cache:keyName changed from '${active}' to '${newActive}' without keeping '${active}' in nix-cache:previousKeyNames; ` +
    `nothing was changed. Dropping the active key at once makes every host that trusts only '${active}' reject what the ` +
    `builder signs from now on, and hosts given the new module reject every path signed only by '${active}'. ` +
    `Rotate in two steps (README: "Rotate the signing key"): ` +
    `(1) pulumi config set --path 'nix-cache:previousKeyNames[${slot}]' ${active} && pulumi up && npm run resign, ` +
    `then give every host the new host config; ` +
    `(2) once resign reports nothing missing and hosts have the new config, remove '${active}' from ` +
    `nix-cache:previousKeyNames and pulumi up. To drop '${active}' now on purpose (a compromised key): ` +
    `pulumi config set ${ALLOW_KEY_DROP_KEY} true && pulumi up.`
  );
}

/**
 * The ring for the names `next` (active first): keys of names already in the ring are kept byte for byte,
 * new names get new keys from `generate`, dropped names are remembered as retired.
 */
export function nextRing(old: KeyRingState, next: readonly string[], generate: (name: string) => NixKeypair = generateKeypair): KeyRingState {
  const publicKeys: string[] = [];
  const secretKeys: string[] = [];
  for (const name of next) {
    const at = old.keyNames.indexOf(name);
    const pair = at >= 0 && old.publicKeys[at] && old.secretKeys[at] ? { publicKey: old.publicKeys[at], secretKey: old.secretKeys[at] } : generate(name);
    publicKeys.push(pair.publicKey);
    secretKeys.push(pair.secretKey);
  }
  const dropped = old.keyNames.filter((n) => !next.includes(n));
  const retiredKeyNames = [...old.retiredKeyNames.filter((n) => !next.includes(n)), ...dropped.filter((n) => !old.retiredKeyNames.includes(n))];
  return { keyNames: [...next], publicKeys, secretKeys, retiredKeyNames };
}
