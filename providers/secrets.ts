// Dynamic resources made with node's crypto in place of @pulumi/tls and @pulumi/random: the Nix signing
// keys and the builder's password. Nothing remote: read returns the state, and only a change of the inputs
// (a new key name, a new length) makes new ones.
import * as pulumi from "@pulumi/pulumi";
import { ALLOW_KEY_DROP_KEY, importRefusal, keyChangeRefusal, KeyRingState, nextRing, ringChanges, ringOf } from "../lib/signing/keyRing";
import { readAllowKeyDrop } from "../lib/config/settings";
import { diffProps, UNKNOWN_INPUT } from "./common";
import { providerError } from "./minioClients";

/** The key ring's inputs and outputs: names (the active first) and, once made, the keys in the same order. */
export interface KeyRingProps extends Partial<Omit<KeyRingState, "keyNames">> {
  keyNames: string[];
  /** nix-cache:importKeys: existing Nix secret keys used for their names (a secret input; never an output). */
  importedKeys?: string[];
  /** Left by stacks made before key sets (one key): read once, then replaced by the fields above. */
  keyName?: string;
  publicKey?: string;
  secretKey?: string;
}

/** The key ring's provider also keeps the drop opt-in (nix-cache:allowKeyDrop) from the stack config. */
type KeyRingProvider = pulumi.dynamic.ResourceProvider<KeyRingProps, KeyRingProps> & { allowKeyDrop?: ReturnType<typeof readAllowKeyDrop> };

export const keyRingProvider: KeyRingProvider = {
  async configure(req) {
    this.allowKeyDrop = readAllowKeyDrop(req.config.get(ALLOW_KEY_DROP_KEY));
  },
  async create(inputs) {
    const ring = nextRing(ringOf({}), inputs.keyNames, undefined, inputs.importedKeys ?? []);
    return { id: inputs.keyNames[0], outs: { ...ring } };
  },
  async read(id, props) {
    return props ? { id, props } : { id: "" };
  },
  async diff(_id, olds, news) {
    // A key change is never a silent loss of a key hosts trust: refused (the preview fails saying why and
    // what to do instead), or an update that keeps every listed key byte for byte (lib/signing/keyRing.ts).
    if (this.allowKeyDrop?.problem) throw providerError(this.allowKeyDrop.problem);
    const old = ringOf(olds);
    if (JSON.stringify(news.keyNames).includes(UNKNOWN_INPUT)) return { changes: true };
    const allowKeyDrop = this.allowKeyDrop?.allowed ?? false;
    const imported = news.importedKeys ?? [];
    const refusal = keyChangeRefusal(old, news.keyNames, allowKeyDrop) ?? importRefusal(old, news.keyNames, imported, allowKeyDrop);
    if (refusal) throw providerError(refusal);
    // A state from before key sets is rewritten once in the new shape, keeping its key.
    const legacy = !Array.isArray(olds.keyNames);
    return { changes: legacy || ringChanges(old, news.keyNames, imported), replaces: [], deleteBeforeReplace: false };
  },
  async update(_id, olds, news) {
    return { outs: { ...nextRing(ringOf(olds), news.keyNames, undefined, news.importedKeys ?? []) } };
  },
};


export interface PasswordProps {
  length: number;
  result?: string;
}

export const passwordProvider: pulumi.dynamic.ResourceProvider<PasswordProps, PasswordProps> = {
  async create(inputs) {
    const crypto: typeof import("crypto") = require("crypto");
    // Letters and digits only: safe in an AWS credentials file, a URL and a shell without quoting.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let result = "";
    while (result.length < inputs.length) result += alphabet[crypto.randomInt(alphabet.length)];
    return { id: crypto.randomUUID(), outs: { length: inputs.length, result } };
  },
  async read(id, props) {
    return props ? { id, props } : { id: "" };
  },
  async diff(_id, olds, news) {
    return diffProps(olds, news, ["length"], []);
  },
};

