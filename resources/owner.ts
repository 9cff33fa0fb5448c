// This stack's owner id (served by providers/owner.ts in the plugin).
import * as pulumi from "@pulumi/pulumi";
import { PluginResource } from "./resource";

/** The id that marks what this stack made on MinIO (lib/minio/ownership.ts). */
export class NixCacheOwner extends PluginResource {
  declare readonly ownerId: pulumi.Output<string>;
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super("NixCacheOwner", name, { ...args, ownerId: undefined }, opts);
  }
}
