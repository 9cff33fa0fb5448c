// The Pulumi package schema of the nix-cache provider plugin (its GetSchema answer): the component
// `nix-cache:index:NixCache`, which the plugin constructs (provider/construct.ts), and the resource types it serves
// (resources/kinds.ts). Pulumi YAML reads it to check a program's properties and to know NixCache is a component.
// Pure: no Pulumi runtime, no file reads (it is bundled into the plugin).
import { PACKAGE, ResourceKind, tokenOf } from "../resources/kinds";

/** A property as the schema describes it (the subset used here). */
export interface SchemaProperty {
  type?: "string" | "integer" | "number" | "boolean" | "array" | "object";
  items?: SchemaProperty;
  additionalProperties?: SchemaProperty;
  $ref?: string;
  description?: string;
  secret?: boolean;
}

/** A resource (or component) as the schema describes it. */
export interface SchemaResource {
  description: string;
  isComponent?: boolean;
  inputProperties: Record<string, SchemaProperty>;
  requiredInputs: string[];
  properties: Record<string, SchemaProperty>;
  required: string[];
}

/** The component's type token. */
export const NIX_CACHE_TOKEN = `${PACKAGE}:index:NixCache`;

const text = (description?: string): SchemaProperty => ({ type: "string", ...(description ? { description } : {}) });
const int = (description?: string): SchemaProperty => ({ type: "integer", ...(description ? { description } : {}) });
const bool = (description?: string): SchemaProperty => ({ type: "boolean", ...(description ? { description } : {}) });
const texts = (description?: string): SchemaProperty => ({ type: "array", items: { type: "string" }, ...(description ? { description } : {}) });
const textMap = (description: string): SchemaProperty => ({ type: "object", additionalProperties: { type: "string" }, description });
const secret = (p: SchemaProperty): SchemaProperty => ({ ...p, secret: true });
const ref = (name: string, description?: string): SchemaProperty => ({
  $ref: `#/types/${PACKAGE}:index:${name}`,
  ...(description ? { description } : {}),
});

/**
 * NixCache's inputs: the fields of NixCacheArgs (components/nixCache.ts), their descriptions its TSDoc
 * (tests/unit/schema.test.ts checks the two agree).
 */
export const NIX_CACHE_INPUTS: Record<string, SchemaProperty> = {
  endpoint: text("MinIO S3 API URL the deployment and the builder use (scheme://host[:port]). Required."),
  publicUrl: text("URL Nix clients reach MinIO at. Default: endpoint."),
  region: text('S3 region MinIO answers for. Default "us-east-1".'),
  bucket: text('Bucket name. Default "nix-cache".'),
  builderUser: text(
    'The builder\'s MinIO user. Default "nixbuilder" for the bucket "nix-cache", else "BUCKET-builder"; a stack ' +
      "that already has the user keeps its name.",
  ),
  builderPassword: secret(
    text(
      "The builder user's existing password, kept instead of a generated one (taking over a cache made by hand: " +
        "the builder's ~/.aws/credentials keeps working). Kept a Pulumi secret. Default: a generated password.",
    ),
  ),
  keyName: text('Name of the active signing key. Default "s3.homelab.local-1".'),
  previousKeyNames: texts("Older signing keys kept during a rotation: still trusted by hosts and still signing. Default none."),
  importKeys: secret(
    texts(
      "Existing Nix secret keys (`NAME:base64(seed ‖ pub)`, e.g. the chapter's secret.key) used instead of " +
        "generated ones, each named keyName or one of previousKeyNames. Kept a Pulumi secret. Default none.",
    ),
  ),
  storeDir: text('nix-cache-info StoreDir. Default "/nix/store".'),
  wantMassQuery: bool("nix-cache-info WantMassQuery. Default true."),
  priority: int("nix-cache-info Priority. Default 40."),
  retention: text(
    'How old objects go: "gc", the closure-safe garbage collector (`npm run gc`, run with the GC user), with a ' +
      'bucket lifecycle that expires nothing; or "lifecycle", the age rule (expireDays), which can break closures. ' +
      'Default "gc".',
  ),
  retainDays: int("retention=gc: the GC keeps closures of paths pushed or refreshed within this many days. Default 7."),
  expireDays: int("retention=lifecycle only: days after which the lifecycle rule expires cached objects. Default 7."),
  gcUser: text(
    'The GC\'s MinIO user (lists, reads, deletes; writes only gc/ bookkeeping). Default "nixgc" for the bucket ' +
      '"nix-cache", else "BUCKET-gc"; a stack that already has the user keeps its name.',
  ),
  anonymousList: bool("Let anonymous clients list the bucket (access=public). Default false."),
  access: text(
    'Who may read: "public" (anyone, anonymous download) or "private" (no anonymous access; hosts read with the ' +
      'reader user\'s credentials or through the read proxy with a per-host token). Default "public".',
  ),
  readerUser: text('access=private: the reader\'s MinIO user. Default "nixreader" for the bucket "nix-cache", else "BUCKET-reader".'),
  readerHosts: texts("access=private: hosts that each get their own read-proxy token (leaving one out revokes it). Default none."),
  proxyUrl: text("access=private: the URL hosts reach the read proxy at. Default publicUrl's scheme and host, port 8480."),
  forceDestroy: bool("Delete cached objects with the bucket on destroy. Default false."),
  adopt: bool(
    "Take over a cache made by hand (the chapter's bucket, users, policies): the preview shows what changes and " +
      "why, or refuses a takeover that would break hosts (lib/minio/takeover.ts). The providers read the opt-in " +
      "itself from the stack config (nix-cache:adopt). Default false.",
  ),
  caCertificate: text(
    "PEM of the CA that signed MinIO's certificate, for the hosts' trust (the providers read it from the stack " +
      "config). Default: none, the system trust store.",
  ),
};

/** Said of the outputs only a private cache has (NixCache.reader's). */
export const PRIVATE_ONLY = " Only for access=private.";

/**
 * NixCache's outputs: what index.ts exports (a program's stack outputs), the same names; the secret ones marked.
 * The reader's outputs are there only for access=private.
 */
export const NIX_CACHE_OUTPUTS: Record<string, SchemaProperty> = {
  substituterUrl: text("HTTP(S) URL clients substitute from."),
  publicKey: text("The active public signing key for trusted-public-keys."),
  secretKey: secret(text("The active secret signing key (secret).")),
  trustedPublicKeys: texts("Every public key hosts trust, the active first."),
  secretKeys: secret(texts("Every secret key the builder signs with, the active first (secret).")),
  builderAccessKey: text("Builder access key."),
  builderSecretKey: secret(text("Builder secret key (secret).")),
  awsCredentials: secret(text("`~/.aws/credentials` text with the builder's profile (secret).")),
  gcAccessKey: text("GC access key."),
  gcSecretKey: secret(text("GC secret key (secret).")),
  gcCredentials: secret(text("`~/.aws/credentials` text with a profile named after the GC user (secret).")),
  retention: text('The retention mode: "gc" or "lifecycle".'),
  retainDays: int("retention=gc: the GC's retention period in days."),
  nixosModule: text("NixOS module for client hosts."),
  pushUrl: text("`s3://` URL for `nix copy --to`."),
  signCommand: text("The `nix store sign` command for the builder."),
  pushCommand: text("The `nix copy` command for the builder."),
  caCertificate: text('PEM of the CA hosts must trust for the cache\'s certificate; "" when none is configured.'),
  access: text('"public" or "private".'),
  readerAccessKey: text(`The reader's access key (its user name).${PRIVATE_ONLY}`),
  readerSecretKey: secret(text(`The reader's secret key (secret).${PRIVATE_ONLY}`)),
  readerCredentials: secret(text(`\`~/.aws/credentials\` text with a profile named after the reader (secret).${PRIVATE_ONLY}`)),
  readerSubstituterUrl: text(`The \`s3://\` substituter URL for hosts whose Nix has S3 (NixOS), with profile=READER.${PRIVATE_ONLY}`),
  readerTokens: secret(textMap(`host → its read-proxy token (secret).${PRIVATE_ONLY}`)),
  netrc: secret(textMap(`host → its netrc line for the proxy (secret).${PRIVATE_ONLY}`)),
  proxyUrl: text(`The read proxy's root URL.${PRIVATE_ONLY}`),
  proxyTokenHashes: text(`The proxy's tokens file: one \`HOST sha256:HEX\` line per host (hashes only, not secret).${PRIVATE_ONLY}`),
  proxyClientModule: text(`NixOS module for hosts that read through the proxy.${PRIVATE_ONLY}`),
};

/** The outputs every NixCache has (the reader's only a private one). */
const NIX_CACHE_REQUIRED_OUTPUTS = Object.entries(NIX_CACHE_OUTPUTS)
  .filter(([, p]) => !p.description?.endsWith(PRIVATE_ONLY))
  .map(([name]) => name);

// The custom resources: what components/ gives each as inputs (providers/*.ts Props), and what it reads back.
const endpoint = text("MinIO S3 API URL (scheme://host[:port]).");
const region = text("S3 region MinIO answers for.");
const target = { endpoint, region };
const owner = ref("OwnerMark", "This stack's owner marker (lib/minio/ownership.ts).");
const liveOwner = ref("OwnerMark", "Read back when the marker on MinIO is not this stack's.");

/** A custom resource's inputs, the extra outputs it adds to them, and the required inputs. */
interface CustomSpec {
  description: string;
  inputs: Record<string, SchemaProperty>;
  outputs?: Record<string, SchemaProperty>;
  required: string[];
}

const CUSTOM: Record<ResourceKind, CustomSpec> = {
  MinioBucket: {
    description: "An S3 bucket on MinIO, marked with its stack's owner id (tags).",
    inputs: { ...target, bucket: text(), forceDestroy: bool("Delete the cached objects with the bucket on destroy."), owner },
    outputs: { liveOwner },
    required: ["endpoint", "region", "bucket", "forceDestroy"],
  },
  MinioObject: {
    description: "One object with text content (nix-cache-info).",
    inputs: { ...target, bucket: text(), key: text(), content: text(), contentType: text() },
    required: ["endpoint", "region", "bucket", "key", "content", "contentType"],
  },
  MinioBucketPolicy: {
    description: "The bucket's policy (anonymous access, or none).",
    inputs: { ...target, bucket: text(), owner, policy: text("The policy document as JSON text.") },
    required: ["endpoint", "region", "bucket", "policy"],
  },
  MinioLifecycle: {
    description: "The bucket's lifecycle rules.",
    inputs: { ...target, bucket: text(), owner, rules: { type: "array", items: ref("ExpiryRule") } },
    required: ["endpoint", "region", "bucket", "rules"],
  },
  MinioDestroyGuard: {
    description: "Refuses a destroy that would delete cached objects nobody asked to delete (lib/minio/destroy.ts).",
    inputs: { ...target, bucket: text(), forceDestroy: bool(), owner },
    required: ["endpoint", "region", "bucket", "forceDestroy"],
  },
  MinioUser: {
    description: "A MinIO user; its secret key is a secret.",
    inputs: {
      ...target,
      user: text(),
      secretKey: secret(text("The user's password (MinIO's secret key).")),
      owner,
      keepExistingName: bool("`user` is a default name: a user this stack already has keeps its own name."),
    },
    outputs: {
      status: text('Read back: "enabled" unless someone disabled the user.'),
      secretKeyWorks: bool("Read back: false when the password no longer works (changed outside Pulumi)."),
      liveOwner,
    },
    required: ["endpoint", "region", "user", "secretKey"],
  },
  MinioPolicy: {
    description: "A MinIO IAM policy.",
    inputs: { ...target, name: text(), owner, document: text("The policy document as JSON text.") },
    required: ["endpoint", "region", "name", "document"],
  },
  MinioPolicyAttachment: {
    description: "A policy attached to a user.",
    inputs: { ...target, user: text(), policy: text() },
    required: ["endpoint", "region", "user", "policy"],
  },
  NixCacheOwner: {
    description: "The id that marks what this stack made on MinIO (lib/minio/ownership.ts).",
    inputs: {
      ...target,
      project: text(),
      stack: text(),
      bucket: text(),
      user: text(),
      policy: text(),
      gcUser: text(),
      gcPolicy: text(),
      readerUser: text(),
      readerPolicy: text(),
    },
    outputs: { ownerId: text() },
    required: ["project", "stack"],
  },
  NixSigningKeypair: {
    description: "The ed25519 signing keys, in Nix's formats; the secret keys are secret.",
    inputs: {
      keyNames: texts("Names, the active first."),
      importedKeys: secret(texts("Existing Nix secret keys used for their names (never an output).")),
    },
    outputs: {
      publicKeys: texts(),
      secretKeys: secret(texts()),
      retiredKeyNames: texts("Names of keys dropped from the ring: never used again."),
      importedKeyNames: texts("Names whose key came from nix-cache:importKeys."),
    },
    required: ["keyNames"],
  },
  RandomPassword: {
    description: "A generated password (a secret).",
    inputs: { length: int() },
    outputs: { result: secret(text()) },
    required: ["length"],
  },
  NixCacheTakeover: {
    description: "Checks (in the preview) what taking over an existing cache changes, and refuses what would break hosts.",
    inputs: {
      ...target,
      bucket: text(),
      ownerId: text(),
      builderUser: text(),
      builderPolicy: text(),
      builderPassword: secret(text()),
      gcUser: text(),
      gcPolicy: text(),
      anonymousList: bool(),
      access: text(),
      retention: text(),
      expireDays: int(),
      cacheInfo: text(),
      keyNames: texts(),
      importedPublicKeys: texts(),
    },
    outputs: { plan: texts("The plan's lines (the preview shows them).") },
    required: ["endpoint", "region", "bucket", "builderUser", "builderPolicy", "gcUser", "gcPolicy", "keyNames"],
  },
};

function customResource(spec: CustomSpec): SchemaResource {
  return {
    description: spec.description,
    inputProperties: spec.inputs,
    requiredInputs: spec.required,
    properties: { ...spec.inputs, ...spec.outputs },
    required: spec.required,
  };
}

/** The package schema as JSON text, for GetSchema. `version`: the plugin's (package.json's). */
export function nixCacheSchema(version: string): string {
  const resources: Record<string, SchemaResource> = {
    [NIX_CACHE_TOKEN]: {
      description: "A signed Nix binary cache on MinIO, and everything hosts need to use it.",
      isComponent: true,
      inputProperties: NIX_CACHE_INPUTS,
      requiredInputs: ["endpoint"],
      properties: NIX_CACHE_OUTPUTS,
      required: NIX_CACHE_REQUIRED_OUTPUTS,
    },
  };
  for (const [kind, spec] of Object.entries(CUSTOM) as [ResourceKind, CustomSpec][]) resources[tokenOf(kind)] = customResource(spec);
  const schema = {
    name: PACKAGE,
    displayName: "Nix cache on MinIO",
    version,
    description: "A signed Nix binary cache on MinIO: bucket, nix-cache-info, builder and GC users, anonymous download, retention, signing keys.",
    keywords: ["nix", "minio", "binary-cache", "category/utility", "kind/component"],
    license: "MIT",
    config: {
      variables: {
        adminUser: text("MinIO admin (root) user. Required."),
        adminPassword: secret(text("MinIO admin password. Required; set it with --secret.")),
        caCertificate: text("PEM of the CA (or CA bundle) that signed MinIO's TLS certificate. Default: the system trust store."),
        adopt: bool("Let this stack take over a bucket, user or policy that exists and is another stack's or unmarked."),
        allowKeyDrop: bool("Let a change of keyName drop the active key at once."),
        allowBucketRename: bool("Let a change of bucket go ahead (the old bucket is kept, unmanaged)."),
      },
    },
    types: {
      [`${PACKAGE}:index:OwnerMark`]: {
        type: "object",
        description: "The owner marker a resource carries (lib/minio/ownership.ts).",
        properties: { id: text(), project: text(), stack: text(), label: text('"project/stack" of another owner (read back only).') },
        required: ["id"],
      },
      [`${PACKAGE}:index:ExpiryRule`]: {
        type: "object",
        description: "A lifecycle expiry rule.",
        properties: {
          id: text(),
          enabled: bool(),
          days: int(),
          keepUpToBytes: int("Objects of this many bytes or fewer never expire."),
          prefix: text(),
        },
        required: ["id", "enabled", "days", "keepUpToBytes", "prefix"],
      },
    },
    resources,
  };
  return JSON.stringify(schema);
}
