import * as pulumi from "@pulumi/pulumi";
import { DEFAULTS } from "../lib/config/settings";
import { NixSigningKeypair } from "../resources/secrets";

export interface SigningKeyArgs {
  /** Name of the active key, the one that signs first and that hosts trust. Default "s3.homelab.local-1". */
  keyName?: pulumi.Input<string>;
  /** Older keys kept during a rotation: still trusted and still signing. Default none. */
  previousKeyNames?: pulumi.Input<pulumi.Input<string>[]>;
  /**
   * Existing Nix secret keys (`NAME:base64(seed ‖ pub)`) used instead of generated ones for their names, each
   * named keyName or one of previousKeyNames; kept a Pulumi secret. Default none.
   */
  importKeys?: pulumi.Input<pulumi.Input<string>[]>;
}

/** The cache's ed25519 signing keys in Nix's formats: the active one, and the previous ones of a rotation. */
export class SigningKey extends pulumi.ComponentResource {
  /** The active key's `NAME:base64(public key)` for trusted-public-keys. */
  readonly publicKey: pulumi.Output<string>;
  /** The active key's `NAME:base64(seed ‖ public key)` for `nix store sign --key-file` (a Pulumi secret). */
  readonly secretKey: pulumi.Output<string>;
  /** Every public key, the active first: what hosts trust. */
  readonly trustedPublicKeys: pulumi.Output<string[]>;
  /** Every secret key, the active first: what the builder signs with (a Pulumi secret). */
  readonly secretKeys: pulumi.Output<string[]>;

  constructor(name: string, args: SigningKeyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nix-cache:index:SigningKey", name, {}, opts);
    const keyNames = pulumi
      .all([args.keyName ?? DEFAULTS.keyName, args.previousKeyNames ?? []])
      .apply(([active, previous]) => [active, ...previous]);
    // One resource for the whole set, under the name the single keypair had: its key carries over.
    // Only given when there are imports, so the inputs of a stack without any stay as they were.
    const importedKeys = args.importKeys === undefined ? undefined : pulumi.secret(args.importKeys);
    const ring = new NixSigningKeypair(`${name}-keypair`, { keyNames, ...(importedKeys ? { importedKeys } : {}) }, {
      parent: this,
      // A takeover's plan (components/nixCache.ts) is checked before any key is made.
      dependsOn: opts?.dependsOn,
    });
    this.trustedPublicKeys = ring.publicKeys;
    this.secretKeys = pulumi.secret(ring.secretKeys);
    this.publicKey = ring.publicKeys.apply((keys) => keys[0]);
    this.secretKey = pulumi.secret(ring.secretKeys.apply((keys) => keys[0]));
    this.registerOutputs({
      publicKey: this.publicKey,
      secretKey: this.secretKey,
      trustedPublicKeys: this.trustedPublicKeys,
      secretKeys: this.secretKeys,
    });
  }
}
