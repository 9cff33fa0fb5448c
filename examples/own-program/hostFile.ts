// One of this program's own resources: a text file on the machine that runs `pulumi up`, e.g. a NixOS module in
// the directory the homelab's host configurations import from. A small dynamic resource: nix-cache's plugin
// serves only nix-cache's own types, and the program's own things need nothing from it.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";

export interface HostFileArgs {
  /** Absolute path of the file. Changing it replaces the file (the old one is deleted). */
  path: pulumi.Input<string>;
  /** The file's text. */
  content: pulumi.Input<string>;
}

interface HostFileState {
  path: string;
  content: string;
}

const provider: pulumi.dynamic.ResourceProvider<HostFileState, HostFileState> = {
  async create(inputs) {
    fs.mkdirSync(path.dirname(inputs.path), { recursive: true });
    fs.writeFileSync(inputs.path, inputs.content);
    return { id: inputs.path, outs: inputs };
  },
  async diff(_id, olds, news) {
    const replaces = olds.path === news.path ? [] : ["path"];
    return { changes: replaces.length > 0 || olds.content !== news.content, replaces, deleteBeforeReplace: false };
  },
  async update(_id, _olds, news) {
    fs.writeFileSync(news.path, news.content);
    return { outs: news };
  },
  async read(id, props) {
    // Gone: the engine drops it from the state and the next `up` writes it again; changed: a diff to put back.
    if (!fs.existsSync(id)) return {};
    return { id, props: { path: id, content: fs.readFileSync(id, "utf8") }, inputs: props };
  },
  async delete(id) {
    fs.rmSync(id, { force: true });
  },
};

/** A text file on the machine that runs the program. */
export class HostFile extends pulumi.dynamic.Resource {
  declare readonly path: pulumi.Output<string>;
  declare readonly content: pulumi.Output<string>;

  constructor(name: string, args: HostFileArgs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { path: args.path, content: args.content }, opts, "homelab", "HostFile");
  }
}
