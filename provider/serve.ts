// Starts the nix-cache provider plugin's gRPC server (@pulumi/pulumi/provider's `main`). The SDK's server
// answers Configure without handing its arguments to the Provider, so the one hook here wraps its Configure
// handler to pass them on; everything else is the SDK's own server. The plugin takes secrets as wrapped values
// (the engine constructs components only with a plugin that does) and marks them in what it returns itself.
import * as path from "path";
import * as provider from "@pulumi/pulumi/provider";
import { NixCacheProvider } from "./plugin";

/** The bits of grpc-js's Server and of a Configure call the hook touches. */
interface ConfigureCall {
  request: { getArgs(): { toJavaScript(): Record<string, unknown> } | undefined; getVariablesMap(): { toObject(): [string, string][] } };
}
interface ConfigureResponse {
  setAcceptsecrets(accept: boolean): void;
}
type Callback = (err: unknown, response?: ConfigureResponse) => void;
type Handler = (call: ConfigureCall, callback: Callback) => void;
interface GrpcServer {
  prototype: { addService(service: unknown, implementation: Record<string, Handler>): void };
}

/** The engine's Configure arguments: the typed args when sent, else the older string variables. */
function configureArgs(call: ConfigureCall): Record<string, unknown> {
  const args = call.request.getArgs()?.toJavaScript();
  if (args && Object.keys(args).length > 0) return args;
  return Object.fromEntries(call.request.getVariablesMap().toObject());
}

/** Wraps every Configure handler registered from now on so that `plugin` sees its arguments first. */
function hookConfigure(plugin: NixCacheProvider): void {
  // The grpc-js the SDK itself uses (resolved from @pulumi/pulumi's folder), not a possible second copy.
  const sdkDir = path.dirname(require.resolve("@pulumi/pulumi/package.json"));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const grpc = require(require.resolve("@grpc/grpc-js", { paths: [sdkDir] })) as { Server: GrpcServer };
  const addService = grpc.Server.prototype.addService;
  grpc.Server.prototype.addService = function (this: unknown, service: unknown, implementation: Record<string, Handler>) {
    const configure = implementation.configure;
    if (typeof configure === "function") {
      implementation.configure = function (this: unknown, call, callback) {
        plugin.configure(configureArgs(call));
        // Secrets arrive wrapped (the engine constructs components only with a plugin that takes them); the
        // plugin unwraps them for the implementations and marks the same properties secret in what it returns
        // (keepSecrets), as the engine would for a plugin that does not take them.
        return configure.call(this, call, callback);
      };
    }
    return addService.call(this, service, implementation);
  };
}

/** Serves the plugin; `version` is the package's (the engine shows it, and matches it against the program's). */
export function serve(version: string, args: string[]): Promise<void> {
  const plugin = new NixCacheProvider(version);
  hookConfigure(plugin);
  return provider.main(plugin, args);
}
