// The cache's signing keys as a set, for rotation without a host ever rejecting the cache: the active key
// (nix-cache:keyName) plus older keys still trusted and still signing (nix-cache:previousKeyNames). Pure: the
// key-ring provider (providers/secrets.ts) calls these; no Pulumi runtime. Kept free of classes and Maps,
// which do not survive Pulumi's serialization of provider code.
import { generateKeypair, NixKeypair, publicKeyOf } from "./signingKey";

/** The key ring's state: names (the active first), and each key in Nix's formats, in the same order. */
export interface KeyRingState {
  keyNames: string[];
  publicKeys: string[];
  secretKeys: string[];
  /** Names of keys dropped from the ring: never used again (hosts may still trust the old key by that name). */
  retiredKeyNames: string[];
  /** Names whose key came from nix-cache:importKeys (not generated): dropping the import is refused. */
  importedKeyNames: string[];
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
      importedKeyNames: [...(state.importedKeyNames ?? [])],
    };
  }
  if (typeof state.keyName === "string" && state.publicKey && state.secretKey) {
    return { keyNames: [state.keyName], publicKeys: [state.publicKey], secretKeys: [state.secretKey], retiredKeyNames: [], importedKeyNames: [] };
  }
  return { keyNames: [], publicKeys: [], secretKeys: [], retiredKeyNames: [], importedKeyNames: [] };
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
    `Rotate in two steps (docs/operations.md, "Rotate the signing key"): ` +
    `(1) pulumi config set --path 'nix-cache:previousKeyNames[${slot}]' ${active} && pulumi up && npm run resign, ` +
    `then give every host the new host config; ` +
    `(2) once resign reports nothing missing and hosts have the new config, remove '${active}' from ` +
    `nix-cache:previousKeyNames and pulumi up. To drop '${active}' now on purpose (a compromised key): ` +
    `pulumi config set ${ALLOW_KEY_DROP_KEY} true && pulumi up.`
  );
}

/** The name of a Nix key (`NAME:…`). */
const nameOf = (key: string): string => key.slice(0, key.indexOf(":"));

/**
 * Why importing `imported` (Nix secret keys, validated by lib/config/settings.ts) into the ring `old` for the
 * names `next` must not go ahead, or undefined when it may. A key under a name is never swapped silently:
 * - an import under a name the ring already holds with another key: hosts trusting the ring's key by that name
 *   would reject what the imported one signs (and the other way round);
 * - a name whose key was imported, still in use, but no longer imported: it would get a generated key.
 * Both go ahead only with nix-cache:allowKeyDrop=true (the old key is then gone for good).
 */
export function importRefusal(old: KeyRingState, next: readonly string[], imported: readonly string[], allowKeyDrop: boolean): string | undefined {
  if (allowKeyDrop) return undefined;
  for (const key of imported) {
    const name = nameOf(key);
    const at = old.keyNames.indexOf(name);
    if (at >= 0 && next.includes(name) && old.secretKeys[at] && old.secretKeys[at] !== key) {
      return (
        `nix-cache:importKeys holds a key named '${name}' that is not the key this stack already has under that name; nothing was changed. ` +
        `Nix identifies trusted keys by name: hosts that trust this stack's '${name}' would reject every path the imported key signs, ` +
        `and hosts that trust the imported one would reject what this stack's key signed. To keep this stack's key: remove the import ` +
        `(pulumi config rm --path 'nix-cache:importKeys[N]'). To import a key of its own, use a new name: pulumi config set nix-cache:keyName NAME ` +
        `with the old name kept in nix-cache:previousKeyNames. To replace '${name}' on purpose (hosts trusting the old key stop trusting the cache): ` +
        `pulumi config set ${ALLOW_KEY_DROP_KEY} true && pulumi up.`
      );
    }
  }
  const importedNames = imported.map(nameOf);
  const dropped = old.importedKeyNames.filter((n) => next.includes(n) && !importedNames.includes(n));
  if (dropped.length > 0) {
    const name = dropped[0];
    return (
      `nix-cache:importKeys no longer holds '${name}', the key this stack imported, while ${next[0] === name ? "nix-cache:keyName" : "nix-cache:previousKeyNames"} ` +
      `still names it; nothing was changed. Going on would sign with a newly generated key under the name hosts trust for the imported one, ` +
      `so they would reject every new path. To keep the key: import it again (pulumi config set --secret --path 'nix-cache:importKeys[0]' "$(cat secret.key)"). ` +
      `To retire it: rotate to a new name (docs/operations.md, "Rotate the signing key") and remove the import with the name. ` +
      `To replace it with a generated key on purpose: pulumi config set ${ALLOW_KEY_DROP_KEY} true && pulumi up.`
    );
  }
  return undefined;
}

/**
 * The ring for the names `next` (active first): imported keys (`imported`, Nix secret keys) are used for their
 * names, keys of names already in the ring are kept byte for byte, other new names get new keys from
 * `generate`, dropped names are remembered as retired.
 */
export function nextRing(
  old: KeyRingState,
  next: readonly string[],
  generate: (name: string) => NixKeypair = generateKeypair,
  imported: readonly string[] = [],
): KeyRingState {
  const publicKeys: string[] = [];
  const secretKeys: string[] = [];
  const importedKeyNames: string[] = [];
  for (const name of next) {
    const given = imported.find((k) => nameOf(k) === name);
    const at = old.keyNames.indexOf(name);
    const pair = given
      ? { publicKey: publicKeyOf(given), secretKey: given }
      : at >= 0 && old.publicKeys[at] && old.secretKeys[at]
        ? { publicKey: old.publicKeys[at], secretKey: old.secretKeys[at] }
        : generate(name);
    if (given) importedKeyNames.push(name);
    publicKeys.push(pair.publicKey);
    secretKeys.push(pair.secretKey);
  }
  const dropped = old.keyNames.filter((n) => !next.includes(n));
  const retiredKeyNames = [...old.retiredKeyNames.filter((n) => !next.includes(n)), ...dropped.filter((n) => !old.retiredKeyNames.includes(n))];
  return { keyNames: [...next], publicKeys, secretKeys, retiredKeyNames, importedKeyNames };
}

/** Would the ring change for these names and imports (a key taken from an import, or an import dropped)? */
export function ringChanges(old: KeyRingState, next: readonly string[], imported: readonly string[]): boolean {
  if (JSON.stringify(old.keyNames) !== JSON.stringify(next)) return true;
  const importedNames = next.filter((n) => imported.some((k) => nameOf(k) === n));
  if (JSON.stringify([...old.importedKeyNames].sort()) !== JSON.stringify([...importedNames].sort())) return true;
  return imported.some((k) => {
    const at = old.keyNames.indexOf(nameOf(k));
    return at >= 0 && old.secretKeys[at] !== k;
  });
}
