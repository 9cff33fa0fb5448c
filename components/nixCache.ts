import * as pulumi from "@pulumi/pulumi";
import { AccessMode, defaultProxyUrl, DEFAULTS, defaultUserNames, Retention } from "../lib/config/settings";
import { awsCredentials, defaultSecretKeyFiles, nixosModule, pushCommand, pushUrl, signCommand, substituterUrl } from "../lib/hosts/hostConfig";
import { AnonymousAccess } from "./anonymousAccess";
import { BuilderAccess } from "./builderAccess";
import { CacheBucket } from "./cacheBucket";
import { CacheExpiry } from "./cacheExpiry";
import { GcAccess, gcPolicyName } from "./gcAccess";
import { ReaderAccess, readerPolicyName } from "./readerAccess";
import { SigningKey } from "./signingKey";
import { StackOwner } from "../lib/minio/ownership";
import { NixCacheOwner } from "../resources/owner";
import { NixCacheTakeover } from "../resources/takeover";
import { MinioDestroyGuard } from "../resources/s3";
import { renderCacheInfo } from "../lib/config/cacheInfo";
import { publicKeyOf } from "../lib/signing/signingKey";
import { netrcLine, proxyClientModule, readerNixosModule, readerSubstituterUrl } from "../lib/hosts/privateModules";
import { tokenHashesText } from "../lib/proxy/tokens";

export interface NixCacheArgs {
  /** MinIO S3 API URL the deployment and the builder use (scheme://host[:port]). Required. */
  endpoint: pulumi.Input<string>;
  /** URL Nix clients reach MinIO at. Default: endpoint. */
  publicUrl?: pulumi.Input<string>;
  /** S3 region MinIO answers for. Default "us-east-1". */
  region?: pulumi.Input<string>;
  /** Bucket name. Default "nix-cache". */
  bucket?: pulumi.Input<string>;
  /**
   * The builder's MinIO user. Default "nixbuilder" for the bucket "nix-cache", else "BUCKET-builder"; a stack
   * that already has the user keeps its name.
   */
  builderUser?: pulumi.Input<string>;
  /**
   * The builder user's existing password, kept instead of a generated one (taking over a cache made by hand:
   * the builder's ~/.aws/credentials keeps working). Kept a Pulumi secret. Default: a generated password.
   */
  builderPassword?: pulumi.Input<string>;
  /** Name of the active signing key. Default "s3.homelab.local-1". */
  keyName?: pulumi.Input<string>;
  /** Older signing keys kept during a rotation: still trusted by hosts and still signing. Default none. */
  previousKeyNames?: pulumi.Input<pulumi.Input<string>[]>;
  /**
   * Existing Nix secret keys (`NAME:base64(seed ‖ pub)`, e.g. the chapter's secret.key) used instead of
   * generated ones, each named keyName or one of previousKeyNames. Kept a Pulumi secret. Default none.
   */
  importKeys?: pulumi.Input<pulumi.Input<string>[]>;
  /** nix-cache-info StoreDir. Default "/nix/store". */
  storeDir?: pulumi.Input<string>;
  /** nix-cache-info WantMassQuery. Default true. */
  wantMassQuery?: pulumi.Input<boolean>;
  /** nix-cache-info Priority. Default 40. */
  priority?: pulumi.Input<number>;
  /**
   * How old objects go: "gc", the closure-safe garbage collector (`npm run gc`, run with the GC user), with a
   * bucket lifecycle that expires nothing; or "lifecycle", the age rule (expireDays), which can break closures.
   * Default "gc".
   */
  retention?: pulumi.Input<Retention>;
  /** retention=gc: the GC keeps closures of paths pushed or refreshed within this many days. Default 7. */
  retainDays?: pulumi.Input<number>;
  /** retention=lifecycle only: days after which the lifecycle rule expires cached objects. Default 7. */
  expireDays?: pulumi.Input<number>;
  /**
   * The GC's MinIO user (lists, reads, deletes; writes only gc/ bookkeeping). Default "nixgc" for the bucket
   * "nix-cache", else "BUCKET-gc"; a stack that already has the user keeps its name.
   */
  gcUser?: pulumi.Input<string>;
  /** Let anonymous clients list the bucket (access=public). Default false. */
  anonymousList?: pulumi.Input<boolean>;
  /**
   * Who may read: "public" (anyone, anonymous download) or "private" (no anonymous access; hosts read with the
   * reader user's credentials or through the read proxy with a per-host token). Default "public".
   */
  access?: AccessMode;
  /** access=private: the reader's MinIO user. Default "nixreader" for the bucket "nix-cache", else "BUCKET-reader". */
  readerUser?: pulumi.Input<string>;
  /** access=private: hosts that each get their own read-proxy token (leaving one out revokes it). Default none. */
  readerHosts?: string[];
  /** access=private: the URL hosts reach the read proxy at. Default publicUrl's scheme and host, port 8480. */
  proxyUrl?: pulumi.Input<string>;
  /** Delete cached objects with the bucket on destroy. Default false. */
  forceDestroy?: pulumi.Input<boolean>;
  /**
   * Take over a cache made by hand (the chapter's bucket, users, policies): the preview shows what changes and
   * why, or refuses a takeover that would break hosts (lib/minio/takeover.ts). The providers read the opt-in
   * itself from the stack config (nix-cache:adopt). Default false.
   */
  adopt?: boolean;
  /**
   * PEM of the CA that signed MinIO's certificate, for the hosts' trust (the providers read it from the stack
   * config). Default: none, the system trust store.
   */
  caCertificate?: pulumi.Input<string>;
}

/** What hosts of a private cache read it with (NixCache.reader). */
export interface PrivateReadOutputs {
  /** The reader's access key (its user name). */
  accessKey: pulumi.Output<string>;
  /** The reader's secret key (secret). */
  secretKey: pulumi.Output<string>;
  /** `~/.aws/credentials` text with a profile named after the reader (secret). */
  credentials: pulumi.Output<string>;
  /** The `s3://` substituter URL for hosts whose Nix has S3 (NixOS), with profile=READER. */
  substituterUrl: pulumi.Output<string>;
  /** host → its read-proxy token (secret). */
  tokens: pulumi.Output<Record<string, string>>;
  /** host → its netrc line for the proxy (secret). */
  netrc: pulumi.Output<Record<string, string>>;
  /** The read proxy's root URL. */
  proxyUrl: pulumi.Output<string>;
  /** The proxy's tokens file: one `HOST sha256:HEX` line per host (hashes only, not secret). */
  proxyTokenHashes: pulumi.Output<string>;
  /** NixOS module for hosts that read through the proxy. */
  proxyClientModule: pulumi.Output<string>;
}

/** A signed Nix binary cache on MinIO, and everything hosts need to use it. */
export class NixCache extends pulumi.ComponentResource {
  /** HTTP(S) URL clients substitute from. */
  readonly substituterUrl: pulumi.Output<string>;
  /** The active public signing key for trusted-public-keys. */
  readonly publicKey: pulumi.Output<string>;
  /** The active secret signing key (secret). */
  readonly secretKey: pulumi.Output<string>;
  /** Every public key hosts trust, the active first. */
  readonly trustedPublicKeys: pulumi.Output<string[]>;
  /** Every secret key the builder signs with, the active first (secret). */
  readonly secretKeys: pulumi.Output<string[]>;
  /** Builder access key. */
  readonly builderAccessKey: pulumi.Output<string>;
  /** Builder secret key (secret). */
  readonly builderSecretKey: pulumi.Output<string>;
  /** `~/.aws/credentials` text with the builder's profile (secret). */
  readonly awsCredentials: pulumi.Output<string>;
  /** GC access key. */
  readonly gcAccessKey: pulumi.Output<string>;
  /** GC secret key (secret). */
  readonly gcSecretKey: pulumi.Output<string>;
  /** `~/.aws/credentials` text with a profile named after the GC user (secret). */
  readonly gcCredentials: pulumi.Output<string>;
  /** The retention mode: "gc" or "lifecycle". */
  readonly retention: pulumi.Output<Retention>;
  /** retention=gc: the GC's retention period in days. */
  readonly retainDays: pulumi.Output<number>;
  /** NixOS module for client hosts. */
  readonly nixosModule: pulumi.Output<string>;
  /** `s3://` URL for `nix copy --to`. */
  readonly pushUrl: pulumi.Output<string>;
  /** The `nix store sign` command for the builder. */
  readonly signCommand: pulumi.Output<string>;
  /** The `nix copy` command for the builder. */
  readonly pushCommand: pulumi.Output<string>;
  /** PEM of the CA hosts must trust for the cache's certificate; "" when none is configured. */
  readonly caCertificate: pulumi.Output<string>;
  /** "public" or "private". */
  readonly access: pulumi.Output<AccessMode>;
  /** access=private only: how hosts read it (undefined for a public cache). */
  readonly reader?: PrivateReadOutputs;

  constructor(name: string, args: NixCacheArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nix-cache:index:NixCache", name, {}, opts);
    const region = args.region ?? DEFAULTS.region;
    const access = args.access ?? DEFAULTS.access;
    const child = { parent: this };

    // This stack's owner id (random, kept in the state, so it survives a stack rename): everything below is
    // marked with it on MinIO, and a bucket, user or policy marked as another stack's (or by nobody) is refused
    // unless nix-cache:adopt is set (lib/minio/ownership.ts).
    const project = pulumi.getProject();
    const stack = pulumi.getStack();
    const bucketName = pulumi.output(args.bucket ?? DEFAULTS.bucket);
    const builderUser = args.builderUser ?? bucketName.apply((b) => defaultUserNames(b).builderUser);
    const gcUser = args.gcUser ?? bucketName.apply((b) => defaultUserNames(b).gcUser);
    const keyNames = pulumi.all([args.keyName ?? DEFAULTS.keyName, args.previousKeyNames ?? []]).apply(([active, previous]) => [active, ...previous]);
    const ownerResource = new NixCacheOwner(
      `${name}-owner`,
      {
        project,
        stack,
        endpoint: args.endpoint,
        region,
        bucket: bucketName,
        user: builderUser,
        policy: bucketName.apply((b) => `${b}-write`),
        gcUser,
        gcPolicy: bucketName.apply(gcPolicyName),
        ...(access === "private"
          ? { readerUser: args.readerUser ?? bucketName.apply((b) => defaultUserNames(b).readerUser), readerPolicy: bucketName.apply(readerPolicyName) }
          : {}),
      },
      child,
    );
    // A takeover is planned before anything is made or written (lib/minio/takeover.ts): everything on MinIO waits
    // for the owner id below, which waits for the takeover's check; the key ring waits for it too. The owner id
    // (made first, it writes nothing) lets the check tell a bucket this stack already owns.
    const takeover = args.adopt
      ? new NixCacheTakeover(
          `${name}-takeover`,
          {
            endpoint: args.endpoint,
            region,
            bucket: bucketName,
            ownerId: ownerResource.ownerId,
            builderUser,
            builderPolicy: bucketName.apply((b) => `${b}-write`),
            gcUser,
            gcPolicy: bucketName.apply(gcPolicyName),
            anonymousList: args.anonymousList ?? DEFAULTS.anonymousList,
            ...(access === "private" ? { access } : {}),
            retention: args.retention ?? DEFAULTS.retention,
            expireDays: args.expireDays ?? DEFAULTS.expireDays,
            cacheInfo: pulumi
              .all([args.storeDir ?? DEFAULTS.storeDir, args.wantMassQuery ?? DEFAULTS.wantMassQuery, args.priority ?? DEFAULTS.priority])
              .apply(([storeDir, wantMassQuery, priority]) => renderCacheInfo({ storeDir, wantMassQuery, priority })),
            keyNames,
            // The public halves are not secret: the plan names them.
            importedPublicKeys: pulumi.unsecret(pulumi.output(args.importKeys ?? []).apply((keys) => keys.map(publicKeyOf))),
            ...(args.builderPassword === undefined ? {} : { builderPassword: pulumi.secret(args.builderPassword) }),
          },
          child,
        )
      : undefined;
    const afterTakeover = takeover ? [takeover] : [];
    takeover?.plan.apply((lines) => {
      for (const line of lines ?? []) pulumi.log.warn(`takeover: ${line}`, this);
    });
    const owner: pulumi.Output<StackOwner> = pulumi
      .all([ownerResource.ownerId, takeover ? takeover.plan : []])
      .apply(([id]) => ({ id, project, stack }));

    const store = new CacheBucket(
      `${name}-store`,
      {
        endpoint: args.endpoint,
        region,
        bucket: args.bucket,
        storeDir: args.storeDir,
        wantMassQuery: args.wantMassQuery,
        priority: args.priority,
        forceDestroy: args.forceDestroy,
        owner,
      },
      child,
    );
    const anonymous = new AnonymousAccess(
      `${name}-anonymous`,
      { endpoint: args.endpoint, region, bucket: store.bucket, access: args.access, allowList: args.anonymousList, owner },
      child,
    );
    // One bucket-config write at a time: MinIO saves a bucket's policy and lifecycle by read-modify-write of
    // one metadata file with no lock around it (cmd/bucket-metadata-sys.go updateAndParse), so a policy and a
    // lifecycle written at once can lose one of the two.
    const expiry = new CacheExpiry(
      `${name}-expiry`,
      {
        endpoint: args.endpoint,
        region,
        bucket: store.bucket,
        retention: args.retention,
        expireDays: args.expireDays,
        cacheInfo: store.cacheInfo,
        owner,
      },
      { parent: this, dependsOn: [anonymous] },
    );
    const builder = new BuilderAccess(
      `${name}-builder`,
      { endpoint: args.endpoint, region, bucket: store.bucket, user: args.builderUser, password: args.builderPassword, owner },
      child,
    );
    const gc = new GcAccess(`${name}-gc`, { endpoint: args.endpoint, region, bucket: store.bucket, user: args.gcUser, owner }, child);
    // Only a private cache has a reader: switching to public deletes it and its tokens, switching back makes new ones.
    const readerAccess =
      access === "private"
        ? new ReaderAccess(`${name}-reader`, { endpoint: args.endpoint, region, bucket: store.bucket, user: args.readerUser, hosts: args.readerHosts, owner }, child)
        : undefined;
    const key = new SigningKey(
      `${name}-signing`,
      { keyName: args.keyName, previousKeyNames: args.previousKeyNames, ...(args.importKeys === undefined ? {} : { importKeys: args.importKeys }) },
      { parent: this, dependsOn: afterTakeover },
    );
    // Deleted before everything else (it depends on all of it): `pulumi destroy` refuses there, with nothing
    // deleted yet, while the bucket holds cached objects and forceDestroy is off (lib/minio/destroy.ts).
    new MinioDestroyGuard(
      `${name}-destroy-guard`,
      { endpoint: args.endpoint, region, bucket: store.bucket, forceDestroy: args.forceDestroy ?? DEFAULTS.forceDestroy, owner },
      { parent: this, dependsOn: [ownerResource, store, anonymous, expiry, builder, gc, key, ...(readerAccess ? [readerAccess] : [])] },
    );

    const profile = builder.accessKey;
    this.substituterUrl = pulumi
      .all([args.publicUrl ?? args.endpoint, store.bucket])
      .apply(([url, bucket]) => substituterUrl(url, bucket));
    this.publicKey = key.publicKey;
    this.secretKey = key.secretKey;
    this.trustedPublicKeys = key.trustedPublicKeys;
    this.secretKeys = key.secretKeys;
    this.builderAccessKey = builder.accessKey;
    this.builderSecretKey = builder.secretKey;
    this.awsCredentials = pulumi.secret(
      pulumi.all([profile, builder.accessKey, builder.secretKey]).apply(([p, ak, sk]) => awsCredentials(p, ak, sk)),
    );
    this.gcAccessKey = gc.accessKey;
    this.gcSecretKey = gc.secretKey;
    this.gcCredentials = pulumi.secret(pulumi.all([gc.accessKey, gc.secretKey]).apply(([ak, sk]) => awsCredentials(ak, ak, sk)));
    this.retention = pulumi.output(args.retention ?? DEFAULTS.retention);
    this.retainDays = pulumi.output(args.retainDays ?? DEFAULTS.retainDays);
    this.caCertificate = pulumi.output(args.caCertificate ?? "");
    this.pushUrl = pulumi
      .all([store.bucket, args.endpoint, region, profile])
      .apply(([bucket, endpoint, r, p]) => pushUrl({ bucket, endpoint, region: r, profile: p }));
    this.access = pulumi.output(access);
    if (readerAccess) {
      // Hosts with an S3-capable Nix read the bucket as the reader, from the same endpoint the builder pushes to.
      const readerUrl = pulumi
        .all([store.bucket, args.publicUrl ?? args.endpoint, region, readerAccess.accessKey])
        .apply(([bucket, endpoint, r, p]) => readerSubstituterUrl({ bucket, endpoint, region: r, profile: p }));
      const proxyUrl = args.proxyUrl ? pulumi.output(args.proxyUrl) : pulumi.output(args.publicUrl ?? args.endpoint).apply(defaultProxyUrl);
      this.reader = {
        accessKey: readerAccess.accessKey,
        secretKey: readerAccess.secretKey,
        credentials: pulumi.secret(
          pulumi.all([readerAccess.accessKey, readerAccess.secretKey]).apply(([ak, sk]) => awsCredentials(ak, ak, sk)),
        ),
        substituterUrl: readerUrl,
        tokens: readerAccess.tokens,
        netrc: pulumi.secret(
          pulumi.all([proxyUrl, readerAccess.tokens]).apply(([url, tokens]) =>
            Object.fromEntries(Object.entries(tokens).map(([host, token]) => [host, netrcLine(url, host, token)])),
          ),
        ),
        proxyUrl,
        // Hashes of 40 random characters: publishing them lets no one in (lib/proxy/tokens.ts).
        proxyTokenHashes: pulumi.unsecret(readerAccess.tokens.apply(tokenHashesText)),
        proxyClientModule: pulumi
          .all([proxyUrl, this.trustedPublicKeys, this.caCertificate])
          .apply(([url, keys, ca]) => proxyClientModule({ proxyUrl: url, publicKeys: keys, ...(ca && url.startsWith("https:") ? { caCertificate: ca } : {}) })),
      };
      this.nixosModule = pulumi
        .all([readerUrl, this.trustedPublicKeys, this.caCertificate])
        .apply(([url, keys, ca]) => readerNixosModule({ substituter: url, publicKeys: keys, ...(ca ? { caCertificate: ca } : {}) }));
    } else {
      this.nixosModule = pulumi
        .all([this.substituterUrl, this.trustedPublicKeys, this.caCertificate])
        .apply(([url, keys, ca]) => nixosModule(url, keys, ca || undefined));
    }
    // One `nix store sign` per key (active first), with the key files host-config's builder set-up names.
    this.signCommand = this.trustedPublicKeys.apply((keys) => signCommand(defaultSecretKeyFiles(keys)));
    this.pushCommand = this.pushUrl.apply((u) => pushCommand(u));

    this.registerOutputs({
      substituterUrl: this.substituterUrl,
      publicKey: this.publicKey,
      secretKey: this.secretKey,
      trustedPublicKeys: this.trustedPublicKeys,
      secretKeys: this.secretKeys,
      builderAccessKey: this.builderAccessKey,
      builderSecretKey: this.builderSecretKey,
      awsCredentials: this.awsCredentials,
      gcAccessKey: this.gcAccessKey,
      gcSecretKey: this.gcSecretKey,
      gcCredentials: this.gcCredentials,
      retention: this.retention,
      retainDays: this.retainDays,
      nixosModule: this.nixosModule,
      pushUrl: this.pushUrl,
      signCommand: this.signCommand,
      pushCommand: this.pushCommand,
      caCertificate: this.caCertificate,
      access: this.access,
      ...(this.reader ? { reader: pulumi.output(this.reader) } : {}),
    });
  }
}

