// The engine's floor for `npm run bench`: a Pulumi program that rebuilds the shape of a deployed nix-cache stack
// (its blueprint, read from our stack's state by bench/engineFloor.ts and passed as the config value
// `blueprint`) with a provider that does nothing. The same components and as many custom resources, the same
// parent nesting, the same dependencies between them, the same outputs and as many of them secret: `pulumi up` of
// it is what the engine, the language host and the provider process cost by themselves, which the bench
// subtracts from our `up`. Each custom resource stands in the same kind: a dynamic resource (the no-op dynamic
// provider below) for a dynamic one, else one served by the no-op provider plugin bin/ (as ours are by the
// nix-cache plugin since issue 22).
import * as pulumi from "@pulumi/pulumi";
import { Blueprint, isDynamic, OutputSpec } from "./blueprint";

/** Creates by handing the inputs back; reads what the state holds; changes when an input did. */
const nothing: pulumi.dynamic.ResourceProvider = {
  async create(inputs) {
    return { id: "nothing", outs: inputs };
  },
  async read(id, props) {
    return { id, props };
  },
  async diff(_id, olds, news) {
    return { changes: Object.keys(news).some((k) => JSON.stringify(olds[k]) !== JSON.stringify(news[k])) };
  },
  async update(_id, _olds, news) {
    return { outs: news };
  },
  async delete() {},
};

/** Property names a resource object already has. */
const RESERVED = new Set(["id", "urn"]);

/** A dynamic resource whose outputs have the names (and secrecy) of the one it stands for. */
class Nothing extends pulumi.dynamic.Resource {
  constructor(name: string, outputs: OutputSpec[], opts: pulumi.CustomResourceOptions) {
    const kept = outputs.filter((o) => !RESERVED.has(o.name));
    const props = Object.fromEntries(kept.map((o) => [o.name, o.name]));
    const additionalSecretOutputs = kept.filter((o) => o.secret).map((o) => o.name);
    super(nothing, name, props, { ...opts, additionalSecretOutputs }, undefined, "Nothing");
  }
}

/** The same, served by the no-op provider plugin (bin/pulumi-resource-nix-cache-bench-noop). */
class PluginNothing extends pulumi.CustomResource {
  constructor(name: string, outputs: OutputSpec[], opts: pulumi.CustomResourceOptions) {
    const kept = outputs.filter((o) => !RESERVED.has(o.name));
    const props = Object.fromEntries(kept.map((o) => [o.name, o.name]));
    const additionalSecretOutputs = kept.filter((o) => o.secret).map((o) => o.name);
    super("nix-cache-bench-noop:index:Nothing", name, props, { ...opts, additionalSecretOutputs });
  }
}

class Group extends pulumi.ComponentResource {
  constructor(name: string, outputs: OutputSpec[], opts: pulumi.ComponentResourceOptions) {
    super("nix-cache-bench-noop:index:Group", name, {}, opts);
    this.registerOutputs(values(outputs));
  }
}

/** Placeholder values for outputs: each its own name, secret when the original is. */
function values(outputs: OutputSpec[]): Record<string, pulumi.Output<string>> {
  return Object.fromEntries(outputs.map((o) => [o.name, o.secret ? pulumi.secret(o.name) : pulumi.output(o.name)]));
}

const blueprint = new pulumi.Config().requireObject<Blueprint>("blueprint");
const built: pulumi.Resource[] = [];
for (const node of blueprint.nodes) {
  const opts = {
    parent: node.parent === undefined ? undefined : built[node.parent],
    dependsOn: node.deps.map((i) => built[i]),
  };
  const Custom = isDynamic(node.type) ? Nothing : PluginNothing;
  built.push(node.component ? new Group(node.name, node.outputs, opts) : new Custom(node.name, node.outputs, opts));
}

export = values(blueprint.outputs);
