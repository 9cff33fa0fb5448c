// The engine's floor of the deploy figures: a stack of bench/noopProgram on the bench stack's backend (same
// environment, its own project and directory) that rebuilds the shape of our deployed stack with a provider that
// does nothing (a dynamic one for dynamic resources, a plugin for a plugin's). `mirror` copies the shape from
// our stack's state; `checkMirror` confirms the copy took.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { PROJECT_DIR } from "../harness/stack";
import { Blueprint, blueprintOf, isDynamic, StateResource } from "./noopProgram/blueprint";

export const NOOP_DIR = path.join(PROJECT_DIR, "bench", "noopProgram");

/** What the engine's work depends on in a deployed stack: what it holds and how it hangs together. */
export interface Shape {
  components: number;
  custom: number;
  /** Of the custom resources, the dynamic ones (the others are served by a provider plugin). */
  dynamic: number;
  /** Deepest parent nesting under the stack (the stack's children are at 1). */
  nesting: number;
  /** Longest chain of dependencies (a resource with none is 1). */
  chain: number;
  /** Outputs of every resource (a dynamic resource's outputs are its state), and how many are secret. */
  resourceOutputs: number;
  secretResourceOutputs: number;
  stackOutputs: number;
  secretStackOutputs: number;
}

export function shapeOf(b: Blueprint): Shape {
  const nesting: number[] = [];
  const chain: number[] = [];
  b.nodes.forEach((n, i) => {
    nesting[i] = n.parent === undefined ? 1 : 1 + nesting[n.parent];
    chain[i] = 1 + Math.max(0, ...n.deps.map((d) => chain[d]));
  });
  const all = b.nodes.flatMap((n) => n.outputs);
  return {
    components: b.nodes.filter((n) => n.component).length,
    custom: b.nodes.filter((n) => !n.component).length,
    dynamic: b.nodes.filter((n) => !n.component && isDynamic(n.type)).length,
    nesting: Math.max(0, ...nesting),
    chain: Math.max(0, ...chain),
    resourceOutputs: all.length,
    secretResourceOutputs: all.filter((o) => o.secret).length,
    stackOutputs: b.outputs.length,
    secretStackOutputs: b.outputs.filter((o) => o.secret).length,
  };
}

/** "6 components, 9 dynamic resources" or "7 components, 15 nix-cache resources" (served by the provider plugin):
 *  what the floor holds, for the figures' labels. */
export function shortShape(b: Blueprint): string {
  const custom = b.nodes.filter((n) => !n.component);
  const kinds = [
    ["dynamic", custom.filter((n) => isDynamic(n.type)).length],
    ["nix-cache", custom.filter((n) => n.type.startsWith("nix-cache:")).length],
  ] as const;
  const other = custom.length - kinds.reduce((sum, [, n]) => sum + n, 0);
  const parts = kinds.filter(([, n]) => n > 0).map(([kind, n]) => `${n} ${kind} resources`);
  if (other > 0 || parts.length === 0) parts.push(`${other} other custom resources`);
  return `${shapeOf(b).components} components, ${parts.join(", ")}`;
}

export function describeShape(b: Blueprint): string {
  const s = shapeOf(b);
  return (
    `${shortShape(b)}, nesting ${s.nesting} deep, dependency chain ${s.chain} long, ` +
    `${s.resourceOutputs} resource outputs (${s.secretResourceOutputs} secret), ${s.stackOutputs} stack outputs (${s.secretStackOutputs} secret)`
  );
}

async function blueprintOfStack(stack: Stack): Promise<Blueprint> {
  const exported = await stack.exportStack();
  return blueprintOf((exported.deployment as { resources?: StateResource[] }).resources ?? []);
}

export interface EngineFloor {
  stack: Stack;
  /** Gives the no-op program the shape of `ours`, which must be deployed; returns its blueprint. */
  mirror(ours: Stack): Promise<Blueprint>;
  /** Throws unless the deployed no-op stack has the shape of `blueprint`. */
  checkMirror(blueprint: Blueprint): Promise<void>;
  /** Destroys and removes the stack and its Pulumi.<stack>.yaml. */
  remove(): Promise<void>;
}

/** A new no-op stack on the backend whose environment (PULUMI_BACKEND_URL, passphrase, home) is `env`. */
export async function createEngineFloor(env: Record<string, string>): Promise<EngineFloor> {
  const stackName = `noop-${crypto.randomBytes(3).toString("hex")}`;
  const stack = await LocalWorkspace.createOrSelectStack({ stackName, workDir: NOOP_DIR }, { envVars: env });
  return {
    stack,
    async mirror(ours) {
      const blueprint = await blueprintOfStack(ours);
      await stack.setConfig("blueprint", { value: JSON.stringify(blueprint) });
      return blueprint;
    },
    async checkMirror(blueprint) {
      const want = shapeOf(blueprint);
      const got = shapeOf(await blueprintOfStack(stack));
      const differ = (Object.keys(want) as (keyof Shape)[]).filter((k) => want[k] !== got[k]);
      if (differ.length > 0) {
        throw new Error(`the no-op stack did not take our stack's shape: ${differ.map((k) => `${k} ${got[k]}, not ${want[k]}`).join("; ")}`);
      }
    },
    async remove() {
      await stack.destroy().catch(() => undefined);
      await stack.workspace.removeStack(stackName, { force: true }).catch(() => undefined);
      fs.rmSync(path.join(NOOP_DIR, `Pulumi.${stackName}.yaml`), { force: true });
    },
  };
}
