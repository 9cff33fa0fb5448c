// @ts-check
// The provider plugin of the engine floor for a stack served by a provider plugin (bench/noopProgram, resources of
// type nix-cache-bench-noop:index:Nothing): does nothing, as the no-op program's dynamic provider does nothing for
// a dynamic-provider stack. Plain JavaScript with only @pulumi/pulumi loaded, so what it costs is the engine's and
// the SDK's: a plugin process and its gRPC server, no program code (the nix-cache plugin's bundle and its loading
// are ours, and the bench counts them in our share).
"use strict";
const provider = require("@pulumi/pulumi/provider");

/** Pulumi's marker of a secret value: the SDK hands secrets to a plugin wrapped, as `{ [SECRET_SIG]: …, value }`. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/** A value as JSON with its secrets unwrapped (a refreshed secret and the program's may differ in the wrapping only). */
const plain = (/** @type {unknown} */ v) =>
  JSON.stringify(v, (_k, x) => (typeof x === "object" && x !== null && SECRET_SIG in x ? x.value : x));

/** @param {Record<string, unknown>} olds @param {Record<string, unknown>} news */
const changed = (olds, news) => Object.keys(news).some((k) => plain(olds[k]) !== plain(news[k]));

/** Creates by handing the inputs back; reads what the state holds; changes when an input did. @type {provider.Provider} */
const nothing = {
  version: "0.0.1",
  async check(_urn, _olds, news) {
    return { inputs: news };
  },
  async diff(_id, _urn, olds, news) {
    return { changes: changed(olds, news) };
  },
  async create(_urn, inputs) {
    return { id: "nothing", outs: inputs };
  },
  async read(id, _urn, props) {
    return { id, props };
  },
  async update(_id, _urn, _olds, news) {
    return { outs: news };
  },
  async delete() {},
};

void provider.main(nothing, process.argv.slice(2));
