// Resources on MinIO's S3 API (served by providers/s3.ts in the plugin): the bucket, an object, the bucket
// policy, the lifecycle rule and the destroy guard.
import * as pulumi from "@pulumi/pulumi";
import type { ExpiryRule } from "../lib/minio/lifecycle";
import { PluginResource } from "./resource";

/** An S3 bucket on MinIO. */
export class MinioBucket extends PluginResource {
  declare readonly bucket: pulumi.Output<string>;
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super("MinioBucket", name, args, opts);
  }
}

/** One object with text content (nix-cache-info). */
export class MinioObject extends PluginResource {
  declare readonly content: pulumi.Output<string>;
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super("MinioObject", name, args, opts);
  }
}

/** The bucket's policy (anonymous access, or none). */
export class MinioBucketPolicy extends PluginResource {
  declare readonly policy: pulumi.Output<string>;
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super("MinioBucketPolicy", name, args, opts);
  }
}

/** The bucket's lifecycle rules. */
export class MinioLifecycle extends PluginResource {
  declare readonly rules: pulumi.Output<ExpiryRule[]>;
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super("MinioLifecycle", name, args, opts);
  }
}

/** Refuses a destroy that would delete cached objects nobody asked to delete. */
export class MinioDestroyGuard extends PluginResource {
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super("MinioDestroyGuard", name, args, opts);
  }
}
