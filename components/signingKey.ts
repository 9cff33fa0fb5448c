import * as pulumi from "@pulumi/pulumi";
import { DEFAULTS } from "../lib/settings";
import { NixSigningKeypair } from "../providers/secrets";

export interface SigningKeyArgs {
  /** Nix key name; end it in an integer you bump to rotate the key. Default "s3.homelab.local-1". */
  keyName?: pulumi.Input<string>;
}

/** The cache's ed25519 signing keypair in Nix's formats. */
export class SigningKey extends pulumi.ComponentResource {
  /** `NAME:base64(public key)` for trusted-public-keys. */
  readonly publicKey: pulumi.Output<string>;
  /** `NAME:base64(seed ‖ public key)` for `nix store sign --key-file` (a Pulumi secret). */
  readonly secretKey: pulumi.Output<string>;

  constructor(name: string, args: SigningKeyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nix-cache:index:SigningKey", name, {}, opts);
    const pair = new NixSigningKeypair(`${name}-keypair`, { keyName: args.keyName ?? DEFAULTS.keyName }, { parent: this });
    this.publicKey = pair.publicKey;
    this.secretKey = pulumi.secret(pair.secretKey);
    this.registerOutputs({ publicKey: this.publicKey, secretKey: this.secretKey });
  }
}
