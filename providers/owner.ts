// The stack's owner id (lib/minio/ownership.ts): a resource made once, first, and kept in the state, so it
// survives `pulumi stack rename`. Everything the stack makes on MinIO waits for it and is marked with it.
// Its create is also the first look at MinIO: a bucket, user or policy the stack is about to make that is
// marked as another stack's is refused there, before anything at all is written (also for `up --skip-preview`,
// where the resources' own checks run side by side with the first writes).
import * as pulumi from "@pulumi/pulumi";
import { claimRefusal, Found, Kind, newOwnerId } from "../lib/minio/ownership";
import { liveUser, livePolicy } from "./admin";
import { adminOf, configureAdmin, ConfiguredProvider, known, TargetProps, targetOf } from "./common";
import { minioCall, providerError, s3Client } from "./minioClients";
import { liveBucket } from "./s3";

export interface OwnerProps extends Partial<TargetProps> {
  /** The stack's project and name when the id was made (the markers carry the current ones). */
  project: string;
  stack: string;
  /** What the stack is about to make, looked at before the first write. */
  bucket?: string;
  user?: string;
  policy?: string;
  /** The GC's user and its policy (components/gcAccess.ts). */
  gcUser?: string;
  gcPolicy?: string;
  /** A private cache's reader and its policy (components/readerAccess.ts). */
  readerUser?: string;
  readerPolicy?: string;
  ownerId?: string;
}

export const ownerProvider: pulumi.dynamic.ResourceProvider<OwnerProps, OwnerProps> & ConfiguredProvider = {
  configure: configureAdmin,
  async create(inputs) {
    const ownerId = newOwnerId();
    if (known(inputs.endpoint) && inputs.region) {
      const target = targetOf(inputs as TargetProps, this);
      const admin = adminOf(this);
      const look: [Kind, string | undefined, () => Promise<Found>][] = [
        ["bucket", inputs.bucket, () => liveBucket(s3Client(target, admin), inputs.bucket ?? "")],
        ["user", inputs.user, () => liveUser(target, admin, inputs.user ?? "", undefined, ownerId)],
        ["policy", inputs.policy, () => livePolicy(target, admin, inputs.policy ?? "")],
        ["user", inputs.gcUser, () => liveUser(target, admin, inputs.gcUser ?? "", undefined, ownerId)],
        ["policy", inputs.gcPolicy, () => livePolicy(target, admin, inputs.gcPolicy ?? "")],
        ["user", inputs.readerUser, () => liveUser(target, admin, inputs.readerUser ?? "", undefined, ownerId)],
        ["policy", inputs.readerPolicy, () => livePolicy(target, admin, inputs.readerPolicy ?? "")],
      ];
      for (const [kind, name, read] of look) {
        if (!known(name)) continue;
        const found = await minioCall(`read ${kind} ${name}`, target, read);
        // Only another stack's marker is refused here: an unmarked thing may be this stack's own from before
        // markers (its state holds it), which only the resource itself can tell; it refuses the others.
        const refusal = claimRefusal({ kind, name: name ?? "", found, us: ownerId, adopt: this.adopt?.allowed ?? false, inState: true });
        if (refusal) throw providerError(refusal);
      }
    }
    return { id: ownerId, outs: { ...inputs, ownerId } };
  },
  async read(id, props) {
    return props ? { id, props } : { id: "" };
  },
  async diff() {
    // Made once and never changed: a new project or stack name (pulumi stack rename) keeps the id, which is
    // what the markers on MinIO are compared by. New names are looked at by their resources.
    return { changes: false };
  },
};

