// Entry of the provider plugin `pulumi-resource-nix-cache` (bin/), bundled to dist/provider.js by scripts/build.js.
import { version } from "../package.json";
import { serve } from "./serve";

void serve(version, process.argv.slice(2));
