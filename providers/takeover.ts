// The takeover record (nix-cache:adopt=true): a dynamic resource whose check reads, before anything is written,
// what a cache made by hand holds, and plans its takeover (lib/minio/takeover.ts). The preview shows the plan
// (the program prints its lines) or fails with the refusal. It writes nothing to MinIO: the other resources do
// the taking over, after it (they wait for it).
import * as pulumi from "@pulumi/pulumi";
import { readAllowKeyDrop } from "../lib/config/settings";
import { ALLOW_KEY_DROP_KEY } from "../lib/signing/keyRing";
import { CACHE_INFO_KEY } from "../lib/config/cacheInfo";
import { signerNamesOf, TAKEN_OVER, TakeoverFacts, takeoverPlan, TakeoverWanted, UserFacts } from "../lib/minio/takeover";
import { passwordWorks } from "./admin";
import { adminOf, configureAdmin, ConfiguredProvider, known, TargetProps, targetOf } from "./common";
import { bucketExists, minioAdmin, minioCall, MinioTarget, AdminCredentials, providerError, readTextObject, s3Client } from "./minioClients";
import { bucketPolicyText, bucketRules, liveBucket } from "./s3";

export interface TakeoverProps extends TargetProps, Omit<TakeoverWanted, "allowKeyDrop"> {
  bucket: string;
  /** This stack's owner id (placeholder until the stack's first up made it): a bucket marked with it is ours. */
  ownerId?: string;
  builderUser: string;
  builderPolicy: string;
  gcUser: string;
  gcPolicy: string;
  /** nix-cache:builderPassword, to tell whether it is the user's current password (a secret input). */
  builderPassword?: string;
  /** The plan's lines, set by check (the preview shows them). */
  plan?: string[];
}

/** Objects counted, and narinfos read for their signers: enough to tell, cheap on a large cache. */
const OBJECT_COUNT_LIMIT = 1000;
const NARINFO_SAMPLE = 50;

async function userFacts(target: MinioTarget, admin: AdminCredentials, name: string, keptPassword: string | undefined): Promise<UserFacts> {
  const info = await minioAdmin.userInfo(target, admin, name);
  if (!info) return { name, exists: false, policies: [] };
  if (keptPassword === undefined) return { name, exists: true, policies: info.policies };
  const works = info.status === "enabled" && (await passwordWorks({ user: name, secretKey: keptPassword }, target));
  return { name, exists: true, policies: info.policies, keptPasswordWorks: works };
}

/** What MinIO holds of the cache about to be taken over (reads only). */
async function gatherFacts(target: MinioTarget, admin: AdminCredentials, props: TakeoverProps): Promise<TakeoverFacts> {
  const client = s3Client(target, admin);
  const facts: TakeoverFacts = {
    bucket: props.bucket,
    bucketExists: await bucketExists(client, props.bucket),
    objectCount: 0,
    objectCountCapped: false,
    bucketPolicy: "",
    rules: [],
    signers: [],
    narinfosSampled: 0,
    builder: await userFacts(target, admin, props.builderUser, props.builderPassword),
    builderPolicy: { name: props.builderPolicy, document: await minioAdmin.policyDocument(target, admin, props.builderPolicy) },
    gc: await userFacts(target, admin, props.gcUser, undefined),
    gcPolicy: { name: props.gcPolicy, document: await minioAdmin.policyDocument(target, admin, props.gcPolicy) },
  };
  if (!facts.bucketExists) return facts;
  const listing = await client.listObjectsV2Query(props.bucket, "", "", "", OBJECT_COUNT_LIMIT, "");
  const keys = listing.objects.map((o) => o.name).filter((n): n is string => typeof n === "string");
  facts.objectCount = keys.length;
  facts.objectCountCapped = listing.isTruncated;
  facts.bucketPolicy = await bucketPolicyText(client, props.bucket);
  facts.rules = await bucketRules(client, props.bucket);
  facts.cacheInfo = await readTextObject(client, props.bucket, CACHE_INFO_KEY);
  for (const key of keys.filter((k) => k.endsWith(".narinfo")).slice(0, NARINFO_SAMPLE)) {
    const narinfo = await readTextObject(client, props.bucket, key);
    if (!narinfo) continue;
    facts.narinfosSampled++;
    for (const name of signerNamesOf(narinfo.content)) {
      const seen = facts.signers.find((s) => s.name === name);
      if (seen) seen.narinfos++;
      else facts.signers.push({ name, narinfos: 1 });
    }
  }
  return facts;
}

type TakeoverProvider = pulumi.dynamic.ResourceProvider<TakeoverProps, TakeoverProps> &
  ConfiguredProvider & { allowKeyDrop?: ReturnType<typeof readAllowKeyDrop> };

export const takeoverProvider: TakeoverProvider = {
  async configure(req) {
    await configureAdmin.call(this, req);
    this.allowKeyDrop = readAllowKeyDrop(req.config.get(ALLOW_KEY_DROP_KEY));
  },
  async check(olds, news) {
    // Done before (this stack's state has the record): the things are this stack's now; nothing to read.
    if (olds && typeof olds.bucket === "string") return { inputs: { ...news, plan: [TAKEN_OVER] } };
    const names = [news.endpoint, news.bucket, news.builderUser, news.builderPolicy, news.gcUser, news.gcPolicy];
    if (!names.every(known)) return { inputs: news };
    const target = targetOf(news, this);
    // The bucket already carries this stack's marker (the record was dropped by a refresh while the opt-in
    // stayed set): nothing to take over, and the key ring already holds the keys its paths are signed with.
    if (known(news.ownerId)) {
      const found = await minioCall(`read bucket ${news.bucket}`, target, () => liveBucket(s3Client(target, adminOf(this)), news.bucket));
      if (found.exists && found.owner?.id === news.ownerId) return { inputs: { ...news, plan: [TAKEN_OVER] } };
    }
    const facts = await minioCall("read what the takeover would change", target, () => gatherFacts(target, adminOf(this), news));
    const plan = takeoverPlan(facts, { ...news, allowKeyDrop: this.allowKeyDrop?.allowed ?? false });
    if (plan.refusal) throw providerError(plan.refusal);
    return { inputs: { ...news, plan: plan.lines } };
  },
  async create(inputs) {
    // The plan was for the preview; once done, the record says so (and later checks keep it, so no diff).
    const { builderPassword: _secret, ...rest } = inputs;
    return { id: inputs.bucket, outs: { ...rest, plan: [TAKEN_OVER] } };
  },
  async read() {
    // Nothing on MinIO to read back: a refresh drops the record, so once the opt-in is removed the drift check
    // (preview --refresh) is clean at once, and a plain up deletes it (its delete does nothing).
    return { id: "" };
  },
  async diff(_id, olds, news) {
    return { changes: JSON.stringify(olds.plan ?? []) !== JSON.stringify(news.plan ?? []), replaces: [], deleteBeforeReplace: false };
  },
  async update(_id, _olds, news) {
    const { builderPassword: _secret, ...rest } = news;
    return { outs: rest };
  },
  async delete() {
    // Nothing on MinIO belongs to the record: removing the opt-in only drops it from the state.
  },
};

