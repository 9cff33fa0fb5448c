// Generated secrets (served by providers/secrets.ts in the plugin): the signing key ring and passwords.
import * as pulumi from "@pulumi/pulumi";
import { PluginResource } from "./resource";

/** The ed25519 signing keys, in Nix's formats; the secret keys are secret outputs. */
export class NixSigningKeypair extends PluginResource {
  declare readonly keyNames: pulumi.Output<string[]>;
  declare readonly publicKeys: pulumi.Output<string[]>;
  declare readonly secretKeys: pulumi.Output<string[]>;
  constructor(
    name: string,
    args: { keyNames: pulumi.Input<pulumi.Input<string>[]>; importedKeys?: pulumi.Input<pulumi.Input<string>[]> },
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(
      "NixSigningKeypair",
      name,
      { ...args, publicKeys: undefined, secretKeys: undefined, retiredKeyNames: undefined, importedKeyNames: undefined },
      { ...opts, additionalSecretOutputs: ["secretKeys"] },
    );
  }
}

/** A generated password (a secret output). */
export class RandomPassword extends PluginResource {
  declare readonly result: pulumi.Output<string>;
  constructor(name: string, args: { length: pulumi.Input<number> }, opts?: pulumi.CustomResourceOptions) {
    super("RandomPassword", name, { ...args, result: undefined }, { ...opts, additionalSecretOutputs: ["result"] });
  }
}
