// Resources on MinIO's admin API (served by providers/admin.ts in the plugin): a user, a policy, an attachment.
import * as pulumi from "@pulumi/pulumi";
import { PluginResource } from "./resource";

/** A MinIO user; its secret key is a secret output. */
export class MinioUser extends PluginResource {
  declare readonly user: pulumi.Output<string>;
  declare readonly secretKey: pulumi.Output<string>;
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super("MinioUser", name, args, { ...opts, additionalSecretOutputs: ["secretKey"] });
  }
}

/** A MinIO IAM policy. */
export class MinioPolicy extends PluginResource {
  declare readonly name: pulumi.Output<string>;
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super("MinioPolicy", name, args, opts);
  }
}

/** A policy attached to a user. */
export class MinioPolicyAttachment extends PluginResource {
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super("MinioPolicyAttachment", name, args, opts);
  }
}
