// The base of every resource the nix-cache plugin serves, on the program side: a CustomResource with the
// plugin's type token and the alias to its former dynamic type.
import * as pulumi from "@pulumi/pulumi";
import { dynamicTokenOf, ResourceKind, tokenOf } from "./kinds";

export abstract class PluginResource extends pulumi.CustomResource {
  protected constructor(kind: ResourceKind, name: string, props: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super(tokenOf(kind), name, props, { ...opts, aliases: [...(opts?.aliases ?? []), { type: dynamicTokenOf(kind) }] });
  }
}
