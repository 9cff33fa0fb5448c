// Dynamic resources on MinIO's S3 API: the bucket, an object, the bucket policy and the lifecycle rule.
// Thin: each CRUD call translates to SDK calls; the decisions live in lib/.
import * as pulumi from "@pulumi/pulumi";
import { canonicalPolicy } from "../lib/policies";
import { canonicalRules, ExpiryRule, lifecycleConfiguration, readExpiryRules } from "../lib/lifecycle";
import { minioCall, s3Client } from "./minioClients";
import { adminOf, configureAdmin, ConfiguredProvider, diffProps, TargetProps, targetOf } from "./common";

const codeOf = (err: unknown) => (err as { code?: string } | undefined)?.code ?? "";

// ---------------------------------------------------------------------------------------------- bucket

export interface BucketProps extends TargetProps {
  bucket: string;
  /** Delete the cached objects with the bucket on destroy. */
  forceDestroy: boolean;
}

/** Lists up to `limit` object keys (to report, or to delete in batches). */
async function someKeys(client: ReturnType<typeof s3Client>, bucket: string, limit: number): Promise<string[]> {
  const res = await client.listObjectsV2Query(bucket, "", "", "", limit, "");
  return res.objects.map((o) => o.name).filter((n): n is string => typeof n === "string");
}

const bucketProvider: pulumi.dynamic.ResourceProvider<BucketProps, BucketProps> & ConfiguredProvider = {
  configure: configureAdmin,
  async create(inputs) {
    const client = s3Client(targetOf(inputs), adminOf(this));
    await minioCall(`create bucket ${inputs.bucket}`, inputs.endpoint, async () => {
      // An existing bucket is adopted, never emptied: it may already hold someone's cache.
      if (!(await client.bucketExists(inputs.bucket))) await client.makeBucket(inputs.bucket, inputs.region);
    });
    return { id: inputs.bucket, outs: inputs };
  },
  async read(id, props) {
    if (!props) return { id: "" };
    const client = s3Client(targetOf(props), adminOf(this));
    const exists = await minioCall(`read bucket ${props.bucket}`, props.endpoint, () => client.bucketExists(props.bucket));
    return exists ? { id, props } : { id: "" };
  },
  async diff(_id, olds, news) {
    return diffProps(olds, news, ["endpoint", "bucket"], ["forceDestroy", "region"]);
  },
  async update(_id, _olds, news) {
    return { outs: news };
  },
  async delete(_id, props) {
    const client = s3Client(targetOf(props), adminOf(this));
    await minioCall(`delete bucket ${props.bucket}`, props.endpoint, async () => {
      if (!(await client.bucketExists(props.bucket))) return;
      for (;;) {
        const keys = await someKeys(client, props.bucket, 1000);
        if (keys.length === 0) break;
        if (!props.forceDestroy) {
          throw new Error(
            `bucket '${props.bucket}' still holds cached objects (e.g. ${keys.slice(0, 3).join(", ")}); nothing was deleted. ` +
              `To delete them with the bucket: pulumi config set nix-cache:forceDestroy true && pulumi up, then destroy again. ` +
              `To keep the cache and forget it in Pulumi: pulumi state delete <the bucket's URN>.`,
          );
        }
        await client.removeObjects(props.bucket, keys);
      }
      await client.removeBucket(props.bucket);
    });
  },
};

/** An S3 bucket on MinIO. */
export class MinioBucket extends pulumi.dynamic.Resource {
  declare readonly bucket: pulumi.Output<string>;
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super(bucketProvider, name, args, opts, undefined, "MinioBucket");
  }
}

// ---------------------------------------------------------------------------------------------- object

export interface ObjectProps extends TargetProps {
  bucket: string;
  key: string;
  content: string;
  contentType: string;
}

const objectProvider: pulumi.dynamic.ResourceProvider<ObjectProps, ObjectProps> & ConfiguredProvider = {
  configure: configureAdmin,
  async create(inputs) {
    const client = s3Client(targetOf(inputs), adminOf(this));
    const body = Buffer.from(inputs.content, "utf8");
    await minioCall(`upload ${inputs.bucket}/${inputs.key}`, inputs.endpoint, () =>
      client.putObject(inputs.bucket, inputs.key, body, body.length, { "Content-Type": inputs.contentType }),
    );
    return { id: `${inputs.bucket}/${inputs.key}`, outs: inputs };
  },
  async read(id, props) {
    if (!props) return { id: "" };
    const client = s3Client(targetOf(props), adminOf(this));
    const live = await minioCall(`read ${props.bucket}/${props.key}`, props.endpoint, async () => {
      try {
        const stat = await client.statObject(props.bucket, props.key);
        const stream = await client.getObject(props.bucket, props.key);
        const chunks: Buffer[] = [];
        for await (const chunk of stream) chunks.push(chunk as Buffer);
        const meta = stat.metaData as Record<string, string | undefined>;
        return { content: Buffer.concat(chunks).toString("utf8"), contentType: meta["content-type"] ?? "" };
      } catch (err) {
        if (["NoSuchKey", "NoSuchBucket", "NotFound"].includes(codeOf(err))) return undefined;
        throw err;
      }
    });
    return live ? { id, props: { ...props, ...live } } : { id: "" };
  },
  async diff(_id, olds, news) {
    return diffProps(olds, news, ["endpoint", "bucket", "key"], ["content", "contentType", "region"]);
  },
  async update(id, _olds, news) {
    await this.create(news);
    return { outs: news };
  },
  async delete(_id, props) {
    const client = s3Client(targetOf(props), adminOf(this));
    await minioCall(`delete ${props.bucket}/${props.key}`, props.endpoint, async () => {
      try {
        await client.removeObject(props.bucket, props.key);
      } catch (err) {
        if (codeOf(err) !== "NoSuchBucket") throw err;
      }
    });
  },
};

/** One small text object (the cache's `nix-cache-info`). */
export class MinioObject extends pulumi.dynamic.Resource {
  declare readonly content: pulumi.Output<string>;
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super(objectProvider, name, args, opts, undefined, "MinioObject");
  }
}

// ---------------------------------------------------------------------------------------------- bucket policy

export interface BucketPolicyProps extends TargetProps {
  bucket: string;
  /** The policy document as JSON text. */
  policy: string;
}

const bucketPolicyProvider: pulumi.dynamic.ResourceProvider<BucketPolicyProps, BucketPolicyProps> & ConfiguredProvider = {
  configure: configureAdmin,
  async create(inputs) {
    const client = s3Client(targetOf(inputs), adminOf(this));
    await minioCall(`set the policy of bucket ${inputs.bucket}`, inputs.endpoint, () =>
      client.setBucketPolicy(inputs.bucket, inputs.policy),
    );
    return { id: inputs.bucket, outs: inputs };
  },
  async read(id, props) {
    if (!props) return { id: "" };
    const client = s3Client(targetOf(props), adminOf(this));
    const live = await minioCall(`read the policy of bucket ${props.bucket}`, props.endpoint, async () => {
      try {
        return await client.getBucketPolicy(props.bucket);
      } catch (err) {
        if (["NoSuchBucketPolicy", "NoSuchBucket"].includes(codeOf(err))) return "";
        throw err;
      }
    });
    if (live.trim() === "") return { id: "" };
    // Keep our own text when MinIO's differs only in form, so an unchanged policy shows no diff.
    const same = canonicalPolicy(live) === canonicalPolicy(props.policy);
    return { id, props: { ...props, policy: same ? props.policy : live } };
  },
  async diff(_id, olds, news) {
    return diffProps(olds, news, ["endpoint", "bucket"], ["policy", "region"], { policy: canonicalPolicy });
  },
  async update(_id, _olds, news) {
    await this.create(news);
    return { outs: news };
  },
  async delete(_id, props) {
    const client = s3Client(targetOf(props), adminOf(this));
    await minioCall(`remove the policy of bucket ${props.bucket}`, props.endpoint, async () => {
      try {
        await client.setBucketPolicy(props.bucket, "");
      } catch (err) {
        if (codeOf(err) !== "NoSuchBucket") throw err;
      }
    });
  },
};

/** A bucket policy (the anonymous-download grant). */
export class MinioBucketPolicy extends pulumi.dynamic.Resource {
  declare readonly policy: pulumi.Output<string>;
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super(bucketPolicyProvider, name, args, opts, undefined, "MinioBucketPolicy");
  }
}

// ---------------------------------------------------------------------------------------------- lifecycle

export interface LifecycleProps extends TargetProps {
  bucket: string;
  rules: ExpiryRule[];
}

const lifecycleProvider: pulumi.dynamic.ResourceProvider<LifecycleProps, LifecycleProps> & ConfiguredProvider = {
  configure: configureAdmin,
  async create(inputs) {
    const client = s3Client(targetOf(inputs), adminOf(this));
    const rule = inputs.rules[0];
    await minioCall(`set the lifecycle of bucket ${inputs.bucket}`, inputs.endpoint, () =>
      client.setBucketLifecycle(inputs.bucket, lifecycleConfiguration(rule) as never),
    );
    return { id: inputs.bucket, outs: inputs };
  },
  async read(id, props) {
    if (!props) return { id: "" };
    const client = s3Client(targetOf(props), adminOf(this));
    const live = await minioCall(`read the lifecycle of bucket ${props.bucket}`, props.endpoint, async () => {
      try {
        return await client.getBucketLifecycle(props.bucket);
      } catch (err) {
        if (["NoSuchLifecycleConfiguration", "NoSuchBucket"].includes(codeOf(err))) return null;
        throw err;
      }
    });
    const rules = readExpiryRules(live);
    if (rules.length === 0) return { id: "" };
    return { id, props: { ...props, rules } };
  },
  async diff(_id, olds, news) {
    return diffProps(olds, news, ["endpoint", "bucket"], ["rules", "region"], {
      rules: (v) => canonicalRules((v ?? []) as ExpiryRule[]),
    });
  },
  async update(_id, _olds, news) {
    await this.create(news);
    return { outs: news };
  },
  async delete(_id, props) {
    const client = s3Client(targetOf(props), adminOf(this));
    await minioCall(`remove the lifecycle of bucket ${props.bucket}`, props.endpoint, async () => {
      try {
        await client.removeBucketLifecycle(props.bucket);
      } catch (err) {
        if (codeOf(err) !== "NoSuchBucket") throw err;
      }
    });
  },
};

/** The bucket's lifecycle configuration (one expiry rule). */
export class MinioLifecycle extends pulumi.dynamic.Resource {
  declare readonly rules: pulumi.Output<ExpiryRule[]>;
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super(lifecycleProvider, name, args, opts, undefined, "MinioLifecycle");
  }
}
