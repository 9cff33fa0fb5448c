// The takeover check of a cache made by hand (served by providers/takeover.ts in the plugin).
import * as pulumi from "@pulumi/pulumi";
import { PluginResource } from "./resource";

/** Checks (in the preview) what taking over an existing cache changes, and refuses what would break hosts. */
export class NixCacheTakeover extends PluginResource {
  declare readonly plan: pulumi.Output<string[]>;
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super("NixCacheTakeover", name, { ...args, plan: undefined }, opts);
  }
}
