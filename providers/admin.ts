// Dynamic resources on MinIO's admin API: a user, a canned policy, and the policy's attachment to the user.
import * as pulumi from "@pulumi/pulumi";
import { canonicalPolicy } from "../lib/policies";
import { errorCode, minioAdmin, minioCall, MinioTarget, s3Client } from "./minioClients";
import { adminOf, configureAdmin, ConfiguredProvider, diffProps, TargetProps, targetOf } from "./common";

// ---------------------------------------------------------------------------------------------- user

export interface UserProps extends TargetProps {
  user: string;
  /** The user's password (MinIO's secret key); a Pulumi secret. */
  secretKey: string;
  /** Read back: "enabled" unless someone disabled the user. */
  status?: string;
  /** Read back: false when the password no longer works (changed outside Pulumi). */
  secretKeyWorks?: boolean;
}

/**
 * Does the password still work? MinIO never returns it, so sign a harmless request as the user: a wrong
 * password is refused as a bad signature, a right one gets an answer (access denied is fine).
 */
async function passwordWorks(props: UserProps, target: MinioTarget): Promise<boolean> {
  const client = s3Client(target, { accessKey: props.user, secretKey: props.secretKey });
  try {
    await client.listBuckets();
    return true;
  } catch (err) {
    const code = errorCode(err);
    if (code === "SignatureDoesNotMatch" || code === "InvalidAccessKeyId") return false;
    if (code === "AccessDenied") return true;
    throw err;
  }
}

const userProvider: pulumi.dynamic.ResourceProvider<UserProps, UserProps> & ConfiguredProvider = {
  configure: configureAdmin,
  async create(inputs) {
    const admin = adminOf(this);
    await minioAdmin.addUser(targetOf(inputs, this), admin, inputs.user, inputs.secretKey);
    return { id: inputs.user, outs: { ...inputs, status: "enabled", secretKeyWorks: true } };
  },
  async read(id, props) {
    if (!props) return { id: "" };
    const target = targetOf(props, this);
    const info = await minioAdmin.userInfo(target, adminOf(this), props.user);
    if (!info) return { id: "" };
    const works =
      info.status === "enabled"
        ? await minioCall(`check the password of user ${props.user}`, target, () => passwordWorks(props, target))
        : (props.secretKeyWorks ?? true);
    return { id, props: { ...props, status: info.status, secretKeyWorks: works } };
  },
  async diff(_id, olds, news) {
    const wanted = { ...news, status: "enabled", secretKeyWorks: true };
    return diffProps({ ...olds, status: olds.status ?? "enabled", secretKeyWorks: olds.secretKeyWorks ?? true }, wanted, ["endpoint", "user"], [
      "secretKey",
      "status",
      "secretKeyWorks",
      "region",
    ]);
  },
  async update(_id, _olds, news) {
    // add-user on an existing user sets its password and enables it; its policy attachments stay.
    const created = await this.create(news);
    return { outs: created.outs };
  },
  async delete(_id, props) {
    await minioAdmin.removeUser(targetOf(props, this), adminOf(this), props.user);
  },
};

/** A MinIO user (the builder). */
export class MinioUser extends pulumi.dynamic.Resource {
  declare readonly user: pulumi.Output<string>;
  declare readonly secretKey: pulumi.Output<string>;
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super(userProvider, name, args, { ...opts, additionalSecretOutputs: ["secretKey"] }, undefined, "MinioUser");
  }
}

// ---------------------------------------------------------------------------------------------- canned policy

export interface PolicyProps extends TargetProps {
  name: string;
  /** The policy document as JSON text. */
  document: string;
}

const policyProvider: pulumi.dynamic.ResourceProvider<PolicyProps, PolicyProps> & ConfiguredProvider = {
  configure: configureAdmin,
  async create(inputs) {
    await minioAdmin.putPolicy(targetOf(inputs, this), adminOf(this), inputs.name, inputs.document);
    return { id: inputs.name, outs: inputs };
  },
  async read(id, props) {
    if (!props) return { id: "" };
    const live = await minioAdmin.policyDocument(targetOf(props, this), adminOf(this), props.name);
    if (live === undefined) return { id: "" };
    const same = canonicalPolicy(live) === canonicalPolicy(props.document);
    return { id, props: { ...props, document: same ? props.document : JSON.stringify(live) } };
  },
  async diff(_id, olds, news) {
    return diffProps(olds, news, ["endpoint", "name"], ["document", "region"], { document: canonicalPolicy });
  },
  async update(_id, _olds, news) {
    await this.create(news);
    return { outs: news };
  },
  async delete(_id, props) {
    await minioAdmin.removePolicy(targetOf(props, this), adminOf(this), props.name);
  },
};

/** A MinIO canned (IAM) policy. */
export class MinioPolicy extends pulumi.dynamic.Resource {
  declare readonly name: pulumi.Output<string>;
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super(policyProvider, name, args, opts, undefined, "MinioPolicy");
  }
}

// ---------------------------------------------------------------------------------------------- attachment

export interface AttachmentProps extends TargetProps {
  user: string;
  policy: string;
}

const attachmentProvider: pulumi.dynamic.ResourceProvider<AttachmentProps, AttachmentProps> & ConfiguredProvider = {
  configure: configureAdmin,
  async create(inputs) {
    await minioAdmin.attachPolicy(targetOf(inputs, this), adminOf(this), inputs.user, inputs.policy);
    return { id: `${inputs.user}/${inputs.policy}`, outs: inputs };
  },
  async read(id, props) {
    if (!props) return { id: "" };
    const info = await minioAdmin.userInfo(targetOf(props, this), adminOf(this), props.user);
    return info && info.policies.includes(props.policy) ? { id, props } : { id: "" };
  },
  async diff(_id, olds, news) {
    return diffProps(olds, news, ["endpoint", "user", "policy"], ["region"]);
  },
  async update(_id, _olds, news) {
    return { outs: news };
  },
  async delete(_id, props) {
    await minioAdmin.attachPolicy(targetOf(props, this), adminOf(this), props.user, props.policy, true);
  },
};

/** Attaches a canned policy to a user. */
export class MinioPolicyAttachment extends pulumi.dynamic.Resource {
  constructor(name: string, args: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
    super(attachmentProvider, name, args, opts, undefined, "MinioPolicyAttachment");
  }
}
