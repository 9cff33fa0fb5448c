// What bench/noopProgram rebuilds of a deployed stack: its components and custom resources, with the same parent
// nesting, the same dependencies between them and the same outputs (names, which are secret), but none of what
// they do. bench/engineFloor.ts reads it from our stack's state after an `up` and hands it to the no-op stack as
// config, so the engine's floor follows the project's shape as it changes.

/** A stack output or a component's registered output: its name and whether it is a secret. */
export interface OutputSpec {
  name: string;
  secret: boolean;
}

export interface NodeSpec {
  name: string;
  /** The type of the resource it stands for (for the bench's description only). */
  type: string;
  /** A component (no provider) rather than a custom resource. */
  component: boolean;
  /** Index of the parent in `Blueprint.nodes` (always earlier); absent: the stack. */
  parent?: number;
  /** Indexes of what it depends on (always earlier). */
  deps: number[];
  /** Its outputs: for a custom resource the provider's, for a component the registered ones. */
  outputs: OutputSpec[];
}

export interface Blueprint {
  /** In the order the engine finished them: parents and dependencies before what hangs on them. */
  nodes: NodeSpec[];
  /** The stack's outputs. */
  outputs: OutputSpec[];
}

/** A resource of a state file (`pulumi stack export`), the fields read here. */
export interface StateResource {
  urn: string;
  type: string;
  custom?: boolean;
  parent?: string;
  dependencies?: string[];
  outputs?: Record<string, unknown>;
}

/** A dynamic resource's type (a dynamic provider serves it); others are served by a provider plugin. */
export const isDynamic = (type: string) => type.startsWith("pulumi-nodejs:dynamic:");

/** Pulumi's marker of a secret value in a state file. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

const outputSpecs = (outputs: Record<string, unknown> | undefined): OutputSpec[] =>
  Object.entries(outputs ?? {})
    .filter(([name]) => name !== "__provider")
    .map(([name, v]) => ({ name, secret: typeof v === "object" && v !== null && SECRET_SIG in v }));

/** The blueprint of a deployed stack's state: everything but the stack itself and provider resources. */
export function blueprintOf(resources: StateResource[]): Blueprint {
  const stack = resources.find((r) => r.type === "pulumi:pulumi:Stack");
  const nodes = resources.filter((r) => r !== stack && !r.type.startsWith("pulumi:providers:"));
  const index = new Map(nodes.map((r, i) => [r.urn, i]));
  const earlier = (i: number) => (urn: string) => {
    const j = index.get(urn);
    if (j !== undefined && j >= i) throw new Error(`state not in dependency order: ${urn} after what needs it`);
    return j;
  };
  return {
    nodes: nodes.map((r, i) => ({
      name: r.urn.slice(r.urn.lastIndexOf("::") + 2),
      type: r.type,
      component: !r.custom,
      parent: r.parent === undefined ? undefined : earlier(i)(r.parent),
      deps: (r.dependencies ?? []).map(earlier(i)).filter((j): j is number => j !== undefined),
      outputs: outputSpecs(r.outputs),
    })),
    outputs: outputSpecs(stack?.outputs),
  };
}
