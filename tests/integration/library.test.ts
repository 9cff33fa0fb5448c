// sequencer: about 70 s
// The package as a library (issue 22): `npm pack` of this project, a user's program made from
// examples/own-program in a temp dir with the tarball installed without network, its own resource next to a
// NixCache; with the real engine on a real MinIO: up → real requests → preview clean → destroy. The engine finds
// the nix-cache plugin through the program's Pulumi.yaml (node_modules/nix-cache/bin): nothing is downloaded.
import * as crypto from "crypto";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as Minio from "minio";
import { LocalWorkspace, OutputMap, Stack } from "@pulumi/pulumi/automation";
import { MinioServer, startMinio } from "../../harness/minio";
import { backendEnv, minioConfig, PROJECT_DIR } from "../../harness/stack";
import { requireTool } from "../../harness/toolchain";
import { layInstalledPackages, npmInstallOffline } from "../support/offlineInstall";

const EXAMPLE_DIR = path.join(PROJECT_DIR, "examples", "own-program");
const VERSION = (JSON.parse(fs.readFileSync(path.join(PROJECT_DIR, "package.json"), "utf8")) as { version: string }).version;
const TARBALL = `nix-cache-${VERSION}.tgz`;
/** The example's bucket and the path of its own resource's file (its Pulumi.yaml defaults). */
const BUCKET = "homelab-nix-cache";
const MODULE_FILE = path.join("hosts", "nix-cache.nix");

interface PackedFile {
  path: string;
  size: number;
  mode: number;
}
interface Packed {
  filename: string;
  size: number;
  files: PackedFile[];
}

let tmp: string;
let consumer: string;
let packed: Packed;
let minio: MinioServer;
let stack: Stack | undefined;
let outputs: OutputMap;
const out = (name: string): string => String(outputs[name]?.value);
const admin = () => {
  const url = new URL(minio.endpoint);
  return new Minio.Client({ endPoint: url.hostname, port: Number(url.port), useSSL: false, accessKey: minio.rootUser, secretKey: minio.rootPassword });
};

/** Runs a command to its end; throws with its output when it fails. */
function run(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(file, args, { cwd, env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${file} ${args.join(" ")} exited ${r.status ?? r.signal}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** The example's files, as a user copies them (no node_modules, tarball, written file or stack file of a run in place). */
function copyExample(dest: string): void {
  fs.cpSync(EXAMPLE_DIR, dest, {
    recursive: true,
    filter: (src) => {
      const rel = path.relative(EXAMPLE_DIR, src);
      return !/^(node_modules|hosts)(\/|$)|\.tgz$|^Pulumi\..+\.yaml$/.test(rel);
    },
  });
}

beforeAll(async () => {
  requireTool("pulumi");
  requireTool("pulumi-language-nodejs");
  // The example's own resource is a dynamic one: the engine runs it with Pulumi's nodejs dynamic provider.
  requireTool("pulumi-resource-pulumi-nodejs");
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-library-"));
  consumer = path.join(tmp, "homelab");
  copyExample(consumer);

  // npm pack runs the build first (prepack): the plugin's bundle and the library's bundle and declarations.
  const json = run("npm", ["pack", "--json", "--pack-destination", consumer, "--loglevel=error"], PROJECT_DIR);
  [packed] = JSON.parse(json.slice(json.search(/^\[/m))) as Packed[];

  // The user's npm install, without network: what it shares with this project is laid in first.
  layInstalledPackages(PROJECT_DIR, consumer, ["@pulumi/pulumi", "typescript", "@types/node"]);
  npmInstallOffline(consumer);

  minio = await startMinio();
  const backendDir = path.join(tmp, "backend");
  fs.mkdirSync(path.join(backendDir, "home"), { recursive: true });
  // ts-node transpiles only: the program's types are checked once below with tsc, as a user's build would.
  const env = { ...backendEnv(backendDir, path.join(backendDir, "home"), { text: "library-test-passphrase" }), PULUMI_NODEJS_TRANSPILE_ONLY: "true" };
  stack = await LocalWorkspace.createOrSelectStack({ stackName: `it-lib-${crypto.randomBytes(3).toString("hex")}`, workDir: consumer }, { envVars: env });
  // The nix-cache namespace: MinIO's endpoint and admin credentials, which the plugin's default provider reads.
  await stack.setAllConfig(minioConfig(minio));
  const up = await stack.up();
  expect(up.summary.result).toBe("succeeded");
  outputs = await stack.outputs();
});

afterAll(async () => {
  if (stack) {
    await stack.destroy().catch(() => undefined);
    await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
  }
  await minio?.destroy();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe("the npm pack tarball", () => {
  test("holds the library (bundle and declarations), the plugin (launcher and bundle), the README and docs/library.md; no source", () => {
    expect(packed.filename).toBe(TARBALL);
    expect(packed.files.map((f) => f.path).sort()).toEqual(
      [
        "README.md",
        "bin/pulumi-resource-nix-cache",
        "dist/lib/index.js",
        "dist/provider.js",
        "dist/types/components/index.d.ts",
        "dist/types/components/nixCache.d.ts",
        "dist/types/lib/config/settings.d.ts",
        "docs/library.md",
        "package.json",
      ].sort(),
    );
    // The launcher is executable as installed.
    expect(fs.statSync(path.join(consumer, "node_modules", "nix-cache", "bin", "pulumi-resource-nix-cache")).mode & 0o111).toBe(0o111);
  });

  test("its package.json: the library as main, types and exports; no dependency to install; @pulumi/pulumi a peer", () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(consumer, "node_modules", "nix-cache", "package.json"), "utf8")) as Record<string, unknown>;
    expect(manifest.main).toBe("dist/lib/index.js");
    expect(manifest.types).toBe("dist/types/components/index.d.ts");
    expect(manifest.exports).toEqual({ ".": { types: "./dist/types/components/index.d.ts", default: "./dist/lib/index.js" }, "./package.json": "./package.json" });
    expect(manifest.dependencies).toBeUndefined();
    expect(manifest.peerDependencies).toEqual({ "@pulumi/pulumi": expect.stringMatching(/^\^3\./) });
  });

  test("the example installs it by that file name, and finds the plugin in it", () => {
    const example = JSON.parse(fs.readFileSync(path.join(EXAMPLE_DIR, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    expect(example.dependencies["nix-cache"]).toBe(`file:${TARBALL}`);
    expect(fs.readFileSync(path.join(EXAMPLE_DIR, "Pulumi.yaml"), "utf8")).toContain("path: ./node_modules/nix-cache/bin\n");
  });

  test("the program type-checks against the declarations (tsc, the example's strict tsconfig; the declarations come from checked sources)", () => {
    const tsc = path.join(consumer, "node_modules", ".bin", "tsc");
    run(tsc, ["--noEmit", "-p", "tsconfig.json"], consumer);
    // The types are the component's, not `any`: a retention NixCache does not know is an error.
    fs.writeFileSync(path.join(consumer, "wrong.ts"), 'import { NixCache } from "nix-cache";\nnew NixCache("c", { endpoint: "http://m:9000", retention: "weekly" });\n');
    const flags = ["--noEmit", "--strict", "--skipLibCheck", "--module", "commonjs", "--moduleResolution", "node", "--target", "es2022"];
    const wrong = spawnSync(tsc, [...flags, "wrong.ts"], { cwd: consumer, encoding: "utf8" });
    fs.rmSync(path.join(consumer, "wrong.ts"));
    expect([wrong.status, wrong.stdout]).toEqual([2, expect.stringContaining(`Type '"weekly"' is not assignable to type`)]);
  });

  test("loading the library outside a Pulumi run declares nothing (a resource would need the engine) and exports the public API", () => {
    const script = 'const m = require("nix-cache"); console.log(JSON.stringify(Object.keys(m).sort()))';
    expect(JSON.parse(run(process.execPath, ["-e", script], consumer))).toEqual(
      ["ACCESS_MODES", "CONFIG_NAMESPACE", "DEFAULTS", "NixCache", "RETENTIONS", "SETTING_KEYS", "SettingsError", "parseSettings"].sort(),
    );
  });
});

describe("a user's program with a NixCache and its own resource: up", () => {
  test("the cache works: anonymous clients read nix-cache-info, the builder uploads and anyone downloads", async () => {
    expect(out("substituterUrl")).toBe(`${minio.endpoint}/${BUCKET}`);
    const info = await fetch(`${out("substituterUrl")}/nix-cache-info`);
    expect(info.status).toBe(200);
    expect(await info.text()).toContain("StoreDir: /nix/store\n");
    expect(out("publicKey")).toMatch(/^cache\.homelab\.local-1:[A-Za-z0-9+/]{43}=$/);

    const url = new URL(minio.endpoint);
    const builder = new Minio.Client({ endPoint: url.hostname, port: Number(url.port), useSSL: false, accessKey: out("builderAccessKey"), secretKey: out("builderSecretKey") });
    await builder.putObject(BUCKET, "nar/library-test.nar", Buffer.from("a nar"));
    const nar = await fetch(`${out("substituterUrl")}/nar/library-test.nar`);
    expect([nar.status, await nar.text()]).toEqual([200, "a nar"]);
    // Destroy refuses a bucket that holds cached objects; this test's object goes again.
    await admin().removeObject(BUCKET, "nar/library-test.nar");
  });

  test("its own resource exists: the clients' NixOS module, written with the cache's URL and key", () => {
    expect(out("moduleFile")).toBe(path.join(fs.realpathSync(consumer), MODULE_FILE));
    const text = fs.readFileSync(out("moduleFile"), "utf8");
    expect(text).toContain(out("substituterUrl"));
    expect(text).toContain(out("publicKey"));
  });

  test("the state: the cache's resources are the plugin's types under a nix-cache provider, the program's own its own", async () => {
    const state = (await stack!.exportStack()).deployment as { resources: { type: string }[] };
    const types = state.resources.map((r) => r.type);
    expect(types).toContain("nix-cache:index:NixCache");
    expect(types).toContain("pulumi:providers:nix-cache");
    expect(types).toContain("nix-cache:index:MinioBucket");
    expect(types.filter((t) => t.startsWith("pulumi-nodejs:dynamic"))).toEqual(["pulumi-nodejs:dynamic/homelab:HostFile"]);
  });
});

describe("then", () => {
  test("preview: no changes", async () => {
    const preview = await stack!.preview({ expectNoChanges: true });
    expect(Object.keys(preview.changeSummary).filter((k) => k !== "same")).toEqual([]);
  });

  test("destroy: the bucket and the program's file are gone", async () => {
    const destroy = await stack!.destroy();
    expect(destroy.summary.result).toBe("succeeded");
    expect(await admin().bucketExists(BUCKET)).toBe(false);
    expect(fs.existsSync(path.join(consumer, MODULE_FILE))).toBe(false);
  });
});
