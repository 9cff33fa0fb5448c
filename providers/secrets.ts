// Dynamic resources made with node's crypto in place of @pulumi/tls and @pulumi/random: the Nix signing
// keypair and the builder's password. Nothing remote: read returns the state, and only a change of the
// inputs (a new key name, a new length) makes new ones.
import * as pulumi from "@pulumi/pulumi";
import { generateKeypair } from "../lib/signingKey";
import { diffProps } from "./common";

export interface KeypairProps {
  keyName: string;
  publicKey?: string;
  secretKey?: string;
}

const keypairProvider: pulumi.dynamic.ResourceProvider<KeypairProps, KeypairProps> = {
  async create(inputs) {
    const pair = generateKeypair(inputs.keyName);
    return { id: inputs.keyName, outs: { keyName: inputs.keyName, ...pair } };
  },
  async read(id, props) {
    return props ? { id, props } : { id: "" };
  },
  async diff(_id, olds, news) {
    // A new key name is a key rotation: a new keypair.
    return diffProps(olds, news, ["keyName"], []);
  },
};

/** An ed25519 signing keypair in Nix's formats. */
export class NixSigningKeypair extends pulumi.dynamic.Resource {
  declare readonly publicKey: pulumi.Output<string>;
  declare readonly secretKey: pulumi.Output<string>;
  constructor(name: string, args: { keyName: pulumi.Input<string> }, opts?: pulumi.CustomResourceOptions) {
    super(
      keypairProvider,
      name,
      { ...args, publicKey: undefined, secretKey: undefined },
      { ...opts, additionalSecretOutputs: ["secretKey"] },
      undefined,
      "NixSigningKeypair",
    );
  }
}

export interface PasswordProps {
  length: number;
  result?: string;
}

const passwordProvider: pulumi.dynamic.ResourceProvider<PasswordProps, PasswordProps> = {
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

/** A random password of letters and digits. */
export class RandomPassword extends pulumi.dynamic.Resource {
  declare readonly result: pulumi.Output<string>;
  constructor(name: string, args: { length: pulumi.Input<number> }, opts?: pulumi.CustomResourceOptions) {
    super(passwordProvider, name, { ...args, result: undefined }, { ...opts, additionalSecretOutputs: ["result"] }, undefined, "RandomPassword");
  }
}
