// The nix-cache provider plugin: one Provider (@pulumi/pulumi/provider) that serves every resource type of
// resources/kinds.ts with the CRUD code in providers/. Thin: it picks the implementation by the type in the URN,
// configures it once from the engine's Configure (the `nix-cache:*` stack config), and translates the calls.
import * as pulumi from "@pulumi/pulumi";
import * as provider from "@pulumi/pulumi/provider";
import { attachmentProvider, policyProvider, userProvider } from "../providers/admin";
import { ownerProvider } from "../providers/owner";
import { bucketPolicyProvider, bucketProvider, destroyGuardProvider, lifecycleProvider, objectProvider } from "../providers/s3";
import { keyRingProvider, passwordProvider } from "../providers/secrets";
import { takeoverProvider } from "../providers/takeover";
import { kindOfToken, ResourceKind, typeOfUrn } from "../resources/kinds";
import { configFrom, keepSecrets, unwrapSecrets } from "./config";
import { NIX_CACHE_TOKEN, nixCacheSchema } from "./schema";

/** The CRUD code of one resource type, as providers/ writes it (the dynamic-provider shape). */
type Implementation = pulumi.dynamic.ResourceProvider;

// Each implementation's own object: `configure` keeps what it read on `this`, as the methods expect.
const IMPLEMENTATIONS: Record<ResourceKind, Implementation> = {
  MinioBucket: bucketProvider as Implementation,
  MinioObject: objectProvider as Implementation,
  MinioBucketPolicy: bucketPolicyProvider as Implementation,
  MinioLifecycle: lifecycleProvider as Implementation,
  MinioDestroyGuard: destroyGuardProvider as Implementation,
  MinioUser: userProvider as Implementation,
  MinioPolicy: policyProvider as Implementation,
  MinioPolicyAttachment: attachmentProvider as Implementation,
  NixCacheOwner: ownerProvider as Implementation,
  NixSigningKeypair: keyRingProvider as Implementation,
  RandomPassword: passwordProvider as Implementation,
  NixCacheTakeover: takeoverProvider as Implementation,
};

/**
 * The serialized code a dynamic resource carried in its inputs and outputs (a stack deployed before the plugin).
 * The plugin never passes it on, and the first `up` after the switch rewrites the outputs without it.
 */
const DYNAMIC_CODE_KEY = "__provider";

type Props = Record<string, unknown>;

/** Props as the implementations take them: plain values (no secret wrappers), no dynamic-provider code. */
function clean(props: unknown): Props {
  const plain = (unwrapSecrets(props ?? {}) ?? {}) as Props;
  const { [DYNAMIC_CODE_KEY]: _code, ...rest } = plain;
  return rest;
}

const hasDynamicCode = (props: unknown): boolean => typeof props === "object" && props !== null && DYNAMIC_CODE_KEY in props;

export class NixCacheProvider implements provider.Provider {
  /** The engine's Configure arguments; undefined until it calls Configure. */
  private args: Record<string, unknown> | undefined;
  private readonly configured = new Map<ResourceKind, Promise<Implementation>>();

  constructor(readonly version: string) {}

  /** Called by the gRPC server hook (provider/serve.ts) with Configure's arguments, before any CRUD call. */
  configure(args: Record<string, unknown>): void {
    this.args = args;
    this.configured.clear();
  }

  /** The implementation for a URN's type, configured once with the stack config. */
  private implementation(urn: string): Promise<Implementation> {
    const type = typeOfUrn(urn);
    const kind = kindOfToken(type);
    if (!kind) return Promise.reject(new Error(`the nix-cache provider does not serve the resource type ${type}`));
    let ready = this.configured.get(kind);
    if (!ready) {
      const impl = IMPLEMENTATIONS[kind];
      const config = configFrom(this.args ?? {});
      ready = Promise.resolve(impl.configure?.({ config })).then(() => impl);
      // A failed configure (say, missing admin credentials) is reported on each call, not cached as done.
      ready.catch(() => this.configured.delete(kind));
      this.configured.set(kind, ready);
    }
    return ready;
  }

  /** The package schema (provider/schema.ts): Pulumi YAML reads the types and that NixCache is a component. */
  async getSchema(): Promise<string> {
    return nixCacheSchema(this.version);
  }

  /** Builds the NixCache component for a program in another language (provider/construct.ts). */
  async construct(name: string, type: string, inputs: pulumi.Inputs, options: pulumi.ComponentResourceOptions): Promise<provider.ConstructResult> {
    if (type !== NIX_CACHE_TOKEN) throw new Error(`the nix-cache provider has no component ${type}`);
    // Loaded on the first construct only (a YAML program): the component pulls in the whole Pulumi SDK (its
    // closure serializer loads typescript), ~0.6 s of CPU a CRUD-only plugin start no longer pays.
    const { constructNixCache } = await import("./construct");
    return constructNixCache(name, inputs, options);
  }

  async check(urn: string, olds: unknown, news: unknown): Promise<provider.CheckResult> {
    const impl = await this.implementation(urn);
    const inputs = clean(news);
    if (!impl.check) return { inputs: keepSecrets(inputs, news) };
    const result = await impl.check(clean(olds), inputs);
    return { inputs: keepSecrets(result.inputs ?? inputs, news), failures: result.failures };
  }

  async diff(id: string, urn: string, olds: unknown, news: unknown): Promise<provider.DiffResult> {
    const impl = await this.implementation(urn);
    const result: provider.DiffResult = impl.diff ? await impl.diff(id, clean(olds), clean(news)) : { changes: undefined };
    // A resource still carrying dynamic-provider code updates once (the state then holds only its own props).
    if (!result.changes && hasDynamicCode(olds)) return { ...result, changes: true };
    return result;
  }

  async create(urn: string, inputs: unknown): Promise<provider.CreateResult> {
    const impl = await this.implementation(urn);
    const result = await impl.create(clean(inputs));
    return { ...result, outs: keepSecrets(result.outs, inputs) };
  }

  async read(id: string, urn: string, props?: unknown): Promise<provider.ReadResult> {
    const impl = await this.implementation(urn);
    if (!impl.read) return { id, props: keepSecrets(clean(props), props) };
    const result = await impl.read(id, props === undefined ? undefined : clean(props));
    return { ...result, props: keepSecrets(result.props, props) };
  }

  async update(id: string, urn: string, olds: unknown, news: unknown): Promise<provider.UpdateResult> {
    const impl = await this.implementation(urn);
    const before = clean(olds);
    const after = clean(news);
    // The one-time rewrite of a resource deployed as a dynamic resource: when nothing of its own changed, its
    // outputs stay as they are, minus the code (no request reaches MinIO).
    if (hasDynamicCode(olds) && impl.diff) {
      const own = await impl.diff(id, before, after);
      if (!own.changes) return { outs: keepSecrets(before, olds) };
    }
    if (!impl.update) return { outs: keepSecrets(after, news) };
    const result = await impl.update(id, before, after);
    return { ...result, outs: keepSecrets(result.outs, news) };
  }

  async delete(id: string, urn: string, props: unknown): Promise<void> {
    const impl = await this.implementation(urn);
    await impl.delete?.(id, clean(props));
  }
}
