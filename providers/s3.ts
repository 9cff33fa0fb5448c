// Dynamic resources on MinIO's S3 API: the bucket, an object, the bucket policy and the lifecycle rule.
// Thin: each CRUD call translates to SDK calls; the decisions live in lib/.
import * as pulumi from "@pulumi/pulumi";
import { canonicalPolicy, policyStatementCount } from "../lib/minio/policies";
import { canonicalRules, ExpiryRule, lifecycleConfigurationOf, readExpiryRules } from "../lib/minio/lifecycle";
import { bucketOwner, Found, mayDelete, ownerOfPolicy, ownerOfRules, ownerOfTags, withOwnerTags } from "../lib/minio/ownership";
import { ALLOW_BUCKET_RENAME_KEY, bucketRenameRefusal, readAllowBucketRename } from "../lib/config/settings";
import { destroyRefusal } from "../lib/minio/destroy";
import { bucketExists, errorCode, minioCall, providerError, readTextObject, requireWriteQuorum, s3Client } from "./minioClients";
import {
  adminOf,
  checkClaim,
  configureAdmin,
  ConfiguredProvider,
  diffProps,
  enforceClaim,
  enforceNotTakenOver,
  known,
  OwnerMark,
  ownerIdOf,
  TargetProps,
  targetOf,
  UNKNOWN_INPUT,
} from "./common";


// ---------------------------------------------------------------------------------------------- bucket

export interface BucketProps extends TargetProps {
  bucket: string;
  /** Delete the cached objects with the bucket on destroy. */
  forceDestroy: boolean;
  /** This stack's owner marker, written as the bucket's tags (lib/minio/ownership.ts). */
  owner?: OwnerMark;
  /** Read back when the marker on MinIO is not this stack's: another stack's, or none (id ""). */
  liveOwner?: OwnerMark;
}

type S3 = ReturnType<typeof s3Client>;

/** Reads a bucket setting, or `none` when the bucket has none (or is gone). */
async function orNone<T>(read: Promise<T>, none: T, codes: string[]): Promise<T> {
  try {
    return await read;
  } catch (err) {
    if ([...codes, "NoSuchBucket"].includes(errorCode(err))) return none;
    throw err;
  }
}

const bucketTags = (client: S3, bucket: string) => orNone(client.getBucketTagging(bucket), [], ["NoSuchTagSet"]);
export const bucketPolicyText = (client: S3, bucket: string) => orNone(client.getBucketPolicy(bucket), "", ["NoSuchBucketPolicy"]);
export const bucketRules = async (client: S3, bucket: string) =>
  readExpiryRules(await orNone<unknown>(client.getBucketLifecycle(bucket), null, ["NoSuchLifecycleConfiguration"]));

/** The bucket as MinIO has it: absent, or present with the owner its markers name (lib/minio/ownership.ts). */
export async function liveBucket(client: S3, bucket: string): Promise<Found> {
  if (!(await bucketExists(client, bucket))) return { exists: false };
  const tags = await bucketTags(client, bucket);
  if (ownerOfTags(tags)) return { exists: true, owner: ownerOfTags(tags) };
  return { exists: true, owner: bucketOwner(tags, await bucketPolicyText(client, bucket), await bucketRules(client, bucket)) };
}

/**
 * Makes the bucket (or takes the existing one, when this stack may: lib/minio/ownership.ts) and marks it as this
 * stack's. `inState`: the bucket is already this stack's by its state (a stack from before markers).
 */
async function claimBucket(provider: ConfiguredProvider, props: BucketProps, inState: boolean): Promise<void> {
  const client = s3Client(targetOf(props, provider), adminOf(provider));
  await minioCall(`create bucket ${props.bucket}`, targetOf(props, provider), async () => {
    const found = await liveBucket(client, props.bucket);
    enforceClaim(provider, { kind: "bucket", name: props.bucket, found, us: ownerIdOf(props.owner), inState });
    // An existing bucket is adopted, never emptied: it may already hold someone's cache.
    if (!found.exists) await client.makeBucket(props.bucket, props.region);
    const us = ownerIdOf(props.owner);
    if (us && (!found.exists || found.owner?.id !== us || inState)) {
      const owner = { id: us, project: props.owner?.project ?? "", stack: props.owner?.stack ?? "" };
      await client.setBucketTagging(props.bucket, withOwnerTags(found.exists ? await bucketTags(client, props.bucket) : [], owner));
    }
  });
}

/** Lists up to `limit` object keys (to report, or to delete in batches). */
async function someKeys(client: ReturnType<typeof s3Client>, bucket: string, limit: number): Promise<string[]> {
  const res = await client.listObjectsV2Query(bucket, "", "", "", limit, "");
  return res.objects.map((o) => o.name).filter((n): n is string => typeof n === "string");
}

/** The bucket's provider also keeps the rename opt-in (nix-cache:allowBucketRename) from the stack config. */
type BucketProvider = pulumi.dynamic.ResourceProvider<BucketProps, BucketProps> &
  ConfiguredProvider & { rename?: ReturnType<typeof readAllowBucketRename> };

export const bucketProvider: BucketProvider = {
  async configure(req) {
    await configureAdmin.call(this, req);
    this.rename = readAllowBucketRename(req.config.get(ALLOW_BUCKET_RENAME_KEY));
  },
  async check(olds, news) {
    // A bucket new to this stack (a first up, an opted-in rename) that exists and is another stack's or
    // nobody's is refused here, in the preview, before anything changes (lib/minio/ownership.ts).
    if (olds?.bucket !== news.bucket && known(news.bucket) && known(news.endpoint)) {
      await checkClaim(async () => {
        const client = s3Client(targetOf(news, this), adminOf(this));
        const found = await minioCall(`read bucket ${news.bucket}`, targetOf(news, this), () => liveBucket(client, news.bucket));
        enforceClaim(this, { kind: "bucket", name: news.bucket, found, us: ownerIdOf(news.owner), inState: false });
      });
    }
    return { inputs: news };
  },
  async create(inputs) {
    await claimBucket(this, inputs, false);
    return { id: inputs.bucket, outs: inputs };
  },
  async read(id, props) {
    if (!props) return { id: "" };
    const client = s3Client(targetOf(props, this), adminOf(this));
    const live = await minioCall(`read bucket ${props.bucket}`, targetOf(props, this), async () =>
      (await bucketExists(client, props.bucket)) ? { owner: ownerOfTags(await bucketTags(client, props.bucket)) } : undefined,
    );
    if (!live) return { id: "" };
    // One request per refresh: a cluster that lost its write quorum is not a working cache, drift or not.
    await requireWriteQuorum(targetOf(props, this));
    // The marker as MinIO has it: ours (nothing to note), gone (an update puts it back), or another stack's.
    const { liveOwner: _before, ...rest } = props;
    if (!props.owner || live.owner?.id === props.owner.id) return { id, props: rest };
    return { id, props: { ...rest, liveOwner: live.owner ? { id: live.owner.id, ...(live.owner.label ? { label: live.owner.label } : {}) } : { id: "" } } };
  },
  async diff(_id, olds, news) {
    // A rename is never a silent replacement: refused (the preview fails saying why), or with the opt-in an
    // update that switches to the new bucket and leaves the old one as it is (lib/config/settings.ts).
    if (this.rename?.problem) throw providerError(this.rename.problem);
    const allowed = this.rename?.allowed ?? false;
    const refusal = news.bucket === UNKNOWN_INPUT ? undefined : bucketRenameRefusal(olds.bucket, news.bucket, allowed);
    if (refusal) throw providerError(refusal);
    // Another stack took the bucket over since (it adopted it): leave it alone instead of fighting over it.
    enforceNotTakenOver(this, "bucket", olds.bucket, olds.liveOwner, ownerIdOf(news.owner));
    const diff = diffProps(olds, news, ["endpoint"], ["bucket", "forceDestroy", "region"]);
    // Only the owner id counts: a stack rename changes the name beside it, and nothing on MinIO.
    const owner =
      JSON.stringify(news.owner?.id ?? null).includes(UNKNOWN_INPUT) || olds.liveOwner !== undefined || (olds.owner?.id ?? "") !== (news.owner?.id ?? "");
    return { ...diff, changes: diff.changes || owner };
  },
  async update(_id, olds, news) {
    // The id keeps the first bucket's name; every call uses the `bucket` property. A new bucket (an
    // opted-in rename) is claimed as on create; the same bucket only gets its marker (back).
    if (olds.bucket !== news.bucket || olds.liveOwner !== undefined || (olds.owner?.id ?? "") !== (news.owner?.id ?? "")) {
      await claimBucket(this, news, olds.bucket === news.bucket);
    }
    return { outs: news };
  },
  async delete(_id, props) {
    const client = s3Client(targetOf(props, this), adminOf(this));
    await minioCall(`delete bucket ${props.bucket}`, targetOf(props, this), async () => {
      if (!(await bucketExists(client, props.bucket))) return;
      // Another stack took it over (adopted it): it is that stack's to delete.
      if (!mayDelete(ownerOfTags(await bucketTags(client, props.bucket)), ownerIdOf(props.owner))) return;
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


// ---------------------------------------------------------------------------------------------- object

export interface ObjectProps extends TargetProps {
  bucket: string;
  key: string;
  content: string;
  contentType: string;
}

export const objectProvider: pulumi.dynamic.ResourceProvider<ObjectProps, ObjectProps> & ConfiguredProvider = {
  configure: configureAdmin,
  async create(inputs) {
    const client = s3Client(targetOf(inputs, this), adminOf(this));
    const body = Buffer.from(inputs.content, "utf8");
    await minioCall(`upload ${inputs.bucket}/${inputs.key}`, targetOf(inputs, this), () =>
      client.putObject(inputs.bucket, inputs.key, body, body.length, { "Content-Type": inputs.contentType }),
    );
    return { id: `${inputs.bucket}/${inputs.key}`, outs: inputs };
  },
  async read(id, props) {
    if (!props) return { id: "" };
    const client = s3Client(targetOf(props, this), adminOf(this));
    const live = await minioCall(`read ${props.bucket}/${props.key}`, targetOf(props, this), () =>
      readTextObject(client, props.bucket, props.key),
    );
    // A missing object reads as empty content, not as "gone": its id stays known, so a preview that puts it
    // back shows an update of this object only, not changes to everything that waits for it.
    return { id, props: { ...props, ...(live ?? { content: "", contentType: "" }) } };
  },
  async diff(_id, olds, news) {
    // A new bucket (an opted-in rename) is an update: write it there, leave the old bucket's copy alone.
    return diffProps(olds, news, ["endpoint", "key"], ["bucket", "content", "contentType", "region"]);
  },
  async update(id, _olds, news) {
    await this.create(news);
    return { outs: news };
  },
  async delete(_id, props) {
    const client = s3Client(targetOf(props, this), adminOf(this));
    await minioCall(`delete ${props.bucket}/${props.key}`, targetOf(props, this), async () => {
      try {
        await client.removeObject(props.bucket, props.key);
      } catch (err) {
        if (errorCode(err) !== "NoSuchBucket") throw err;
      }
    });
  },
};


// ---------------------------------------------------------------------------------------------- bucket policy

/** What a bucket policy grants, and whose marker it carries (the Sids; not the Id, which only names the stack). */
const markedPolicy = (doc: unknown): string => `${canonicalPolicy(doc)} owner=${ownerOfPolicy(doc)?.id ?? ""}`;

export interface BucketPolicyProps extends TargetProps {
  bucket: string;
  /** This stack's owner (its id is in the policy's Sids); kept as written, so destroy knows its own. */
  owner?: OwnerMark;
  /** The policy document as JSON text. */
  policy: string;
}

export const bucketPolicyProvider: pulumi.dynamic.ResourceProvider<BucketPolicyProps, BucketPolicyProps> & ConfiguredProvider = {
  configure: configureAdmin,
  async create(inputs) {
    const client = s3Client(targetOf(inputs, this), adminOf(this));
    await minioCall(`set the policy of bucket ${inputs.bucket}`, targetOf(inputs, this), async () => {
      if (policyStatementCount(inputs.policy) > 0) return client.setBucketPolicy(inputs.bucket, inputs.policy);
      // No statement (access=private): no bucket policy at all, whatever was there (ours, or one set by hand).
      try {
        await client.setBucketPolicy(inputs.bucket, "");
      } catch (err) {
        if (errorCode(err) !== "NoSuchBucketPolicy") throw err;
      }
    });
    return { id: inputs.bucket, outs: inputs };
  },
  async read(id, props) {
    if (!props) return { id: "" };
    const client = s3Client(targetOf(props, this), adminOf(this));
    const live = await minioCall(`read the policy of bucket ${props.bucket}`, targetOf(props, this), async () => {
      try {
        return await client.getBucketPolicy(props.bucket);
      } catch (err) {
        if (["NoSuchBucketPolicy", "NoSuchBucket"].includes(errorCode(err))) return "";
        throw err;
      }
    });
    // No policy is the wanted state of a private cache; for a public one the grant is gone (made again).
    if (live.trim() === "") return policyStatementCount(props.policy) === 0 ? { id, props } : { id: "" };
    // Keep our own text when MinIO's differs only in form, so an unchanged policy shows no diff.
    const same = markedPolicy(live) === markedPolicy(props.policy);
    return { id, props: { ...props, policy: same ? props.policy : live } };
  },
  async diff(_id, olds, news) {
    // A new bucket (an opted-in rename) is an update: set it there, leave the old bucket's policy alone.
    return diffProps(olds, news, ["endpoint"], ["bucket", "policy", "region"], { policy: markedPolicy });
  },
  async update(_id, _olds, news) {
    await this.create(news);
    return { outs: news };
  },
  async delete(_id, props) {
    const client = s3Client(targetOf(props, this), adminOf(this));
    await minioCall(`remove the policy of bucket ${props.bucket}`, targetOf(props, this), async () => {
      // Another stack's policy now (it adopted the bucket): that stack's to remove.
      if (!mayDelete(ownerOfPolicy(await bucketPolicyText(client, props.bucket)), ownerIdOf(props.owner))) return;
      try {
        await client.setBucketPolicy(props.bucket, "");
      } catch (err) {
        if (errorCode(err) !== "NoSuchBucket") throw err;
      }
    });
  },
};


// ---------------------------------------------------------------------------------------------- lifecycle

export interface LifecycleProps extends TargetProps {
  bucket: string;
  /** This stack's owner (its id is in the rule's ID); kept as written, so destroy knows its own. */
  owner?: OwnerMark;
  rules: ExpiryRule[];
}

export const lifecycleProvider: pulumi.dynamic.ResourceProvider<LifecycleProps, LifecycleProps> & ConfiguredProvider = {
  configure: configureAdmin,
  async create(inputs) {
    const client = s3Client(targetOf(inputs, this), adminOf(this));
    const config = lifecycleConfigurationOf(inputs.rules);
    await minioCall(`set the lifecycle of bucket ${inputs.bucket}`, targetOf(inputs, this), async () => {
      if (config) return client.setBucketLifecycle(inputs.bucket, config as never);
      // No rules (retention=gc): no lifecycle at all, so whatever rule was there (ours from retention=lifecycle,
      // or one added by hand) expires nothing any more. Objects are never deleted here.
      try {
        await client.removeBucketLifecycle(inputs.bucket);
      } catch (err) {
        if (errorCode(err) !== "NoSuchLifecycleConfiguration") throw err;
      }
    });
    return { id: inputs.bucket, outs: inputs };
  },
  async read(id, props) {
    if (!props) return { id: "" };
    const client = s3Client(targetOf(props, this), adminOf(this));
    const live = await minioCall(`read the lifecycle of bucket ${props.bucket}`, targetOf(props, this), async () => {
      try {
        return await client.getBucketLifecycle(props.bucket);
      } catch (err) {
        if (errorCode(err) === "NoSuchLifecycleConfiguration") return null;
        // Gone with its bucket, in either mode: made again once the bucket is.
        if (errorCode(err) === "NoSuchBucket") return undefined;
        throw err;
      }
    });
    if (live === undefined) return { id: "" };
    const rules = readExpiryRules(live);
    // An expiry rule removed by hand reads as gone (the preview shows it made again); with no rules declared
    // (retention=gc) no lifecycle is the wanted state, and any rule found is drift.
    if (rules.length === 0 && (props.rules ?? []).length > 0) return { id: "" };
    return { id, props: { ...props, rules } };
  },
  async diff(_id, olds, news) {
    // A new bucket (an opted-in rename) is an update: set it there, leave the old bucket's rule alone.
    return diffProps(olds, news, ["endpoint"], ["bucket", "rules", "region"], {
      rules: (v) => canonicalRules((v ?? []) as ExpiryRule[]),
    });
  },
  async update(_id, _olds, news) {
    await this.create(news);
    return { outs: news };
  },
  async delete(_id, props) {
    const client = s3Client(targetOf(props, this), adminOf(this));
    await minioCall(`remove the lifecycle of bucket ${props.bucket}`, targetOf(props, this), async () => {
      // Another stack's rule now (it adopted the bucket): that stack's to remove.
      if (!mayDelete(ownerOfRules(await bucketRules(client, props.bucket)), ownerIdOf(props.owner))) return;
      try {
        await client.removeBucketLifecycle(props.bucket);
      } catch (err) {
        if (errorCode(err) !== "NoSuchBucket") throw err;
      }
    });
  },
};


// ---------------------------------------------------------------------------------------------- destroy guard

export interface DestroyGuardProps extends TargetProps {
  bucket: string;
  forceDestroy: boolean;
  /** This stack's owner: a bucket another stack took over is that stack's, and no reason to refuse. */
  owner?: OwnerMark;
}

/**
 * Every other resource of the cache is deleted after this one (it depends on them all), so its delete is the
 * first step of `pulumi destroy`: it refuses while the bucket holds cached objects and forceDestroy is off, before
 * anything is deleted (lib/minio/destroy.ts). Nothing else: create and update only record the inputs.
 */
export const destroyGuardProvider: pulumi.dynamic.ResourceProvider<DestroyGuardProps, DestroyGuardProps> & ConfiguredProvider = {
  configure: configureAdmin,
  async create(inputs) {
    return { id: inputs.bucket, outs: inputs };
  },
  async read(id, props) {
    return props ? { id, props } : { id: "" };
  },
  async diff(_id, olds, news) {
    return diffProps(olds, news, [], ["endpoint", "bucket", "forceDestroy", "region"]);
  },
  async update(_id, _olds, news) {
    return { outs: news };
  },
  async delete(_id, props) {
    const client = s3Client(targetOf(props, this), adminOf(this));
    const refusal = await minioCall(`look into bucket ${props.bucket}`, targetOf(props, this), async () => {
      if (!(await bucketExists(client, props.bucket))) return undefined;
      // Another stack took the bucket over: this stack's destroy leaves it to that stack (the bucket's own delete).
      if (!mayDelete(ownerOfTags(await bucketTags(client, props.bucket)), ownerIdOf(props.owner))) return undefined;
      const res = await client.listObjectsV2Query(props.bucket, "", "", "", 1000, "");
      const keys = res.objects.map((o) => o.name).filter((n): n is string => typeof n === "string");
      return destroyRefusal(props.bucket, keys, res.isTruncated, props.forceDestroy);
    });
    if (refusal) throw providerError(refusal);
  },
};

