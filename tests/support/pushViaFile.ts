// A push command for the builder module's drain (NIX_CACHE_PUSH_CMD) that stands in for Nix's S3 store,
// which Debian's Nix 2.8 lacks: `nix copy --to file://DIR?compression=…` of the given store paths, then an
// upload of what it wrote, signed with the builder's credentials, the way Nix's S3 store would: the bucket,
// endpoint, region, profile, compression and its level come from NIX_CACHE_PUSH_URL (the module's pushUrl),
// the keys from the profile's section of AWS_SHARED_CREDENTIALS_FILE. NARs go up before the narinfos that
// point at them; nix-cache-info is the stack's and is left alone. Like Nix's S3 store, it skips a path whose
// narinfo the bucket already has (uploading neither its NAR nor its narinfo) and a NAR the bucket already has
// (NAR keys are content-addressed), so a test can tell a drain's refresh from a re-upload. Over https it
// trusts the CA file Nix's S3 client would: NIX_SSL_CERT_FILE, else SSL_CERT_FILE, else the system bundle
// (Nix's ssl-cert-file default).
// Usage: node -r ts-node/register/transpile-only tests/support/pushViaFile.ts STORE_PATH...
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { binaryCacheContentType, parseAwsCredentials, parseS3StoreUrl } from "../../lib/s3/pushTarget";
import { s3Client } from "../../providers/minioClients";

function listFiles(dir: string, prefix = ""): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(path.join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  );
}

async function main(): Promise<void> {
  const paths = process.argv.slice(2);
  const url = process.env.NIX_CACHE_PUSH_URL;
  const credentialsFile = process.env.AWS_SHARED_CREDENTIALS_FILE;
  if (!url || !credentialsFile) throw new Error("NIX_CACHE_PUSH_URL and AWS_SHARED_CREDENTIALS_FILE must be set");
  const target = parseS3StoreUrl(url);
  const creds = parseAwsCredentials(fs.readFileSync(credentialsFile, "utf8")).get(target.profile ?? "default");
  if (!creds) throw new Error(`no profile '${target.profile}' in ${credentialsFile}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nix-cache-push-"));
  try {
    const level = target.params["compression-level"];
    const query = `compression=${target.compression}${level === undefined ? "" : `&compression-level=${level}`}`;
    execFileSync("nix", ["copy", "--to", `file://${dir}?${query}`, ...paths], { stdio: "inherit" });
    const caFile = [process.env.NIX_SSL_CERT_FILE, process.env.SSL_CERT_FILE, "/etc/ssl/certs/ca-certificates.crt"].find((f) => f);
    const ca = target.endpoint.startsWith("https:") && caFile && fs.existsSync(caFile) ? fs.readFileSync(caFile, "utf8") : undefined;
    const client = s3Client({ endpoint: target.endpoint, region: target.region, ca }, creds);
    const exists = (key: string) =>
      client.statObject(target.bucket, key).then(
        () => true,
        (e: { code?: string }) => {
          if (e.code === "NotFound" || e.code === "NoSuchKey") return false;
          throw e;
        },
      );

    const keys = listFiles(dir).filter((k) => k !== "nix-cache-info");
    const narinfos = keys.filter((k) => k.endsWith(".narinfo"));
    // A path is cached when its narinfo is (binary-cache-store.cc: Nix checks isValidPath before anything).
    const cached = new Set<string>();
    for (const key of narinfos) if (await exists(key)) cached.add(key);
    const wanted = narinfos.filter((k) => !cached.has(k));
    const nars = new Set<string>();
    for (const key of wanted) {
      const url = /^URL: (.+)$/m.exec(fs.readFileSync(path.join(dir, key), "utf8"))?.[1];
      if (url === undefined) throw new Error(`${key} has no URL line`);
      // Nix uploads a NAR only when its key is missing: NAR keys are content-addressed.
      if (!(await exists(url))) nars.add(url);
    }
    const hashOf = (key: string) => key.replace(/\.(narinfo|ls)$/, "");
    const others = keys.filter((k) => !k.endsWith(".narinfo") && !k.startsWith("nar/") && !(k.endsWith(".ls") && cached.has(`${hashOf(k)}.narinfo`)));
    // NARs (and listings, logs) before the narinfos that point at them.
    const ordered = [...nars, ...others, ...wanted];
    for (const key of ordered) {
      await client.fPutObject(target.bucket, key, path.join(dir, key), { "Content-Type": binaryCacheContentType(key) });
    }
    console.log(`uploaded ${ordered.length} files to ${target.endpoint}/${target.bucket}; ${cached.size} paths were already cached`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  console.error(`pushViaFile: ${e.message}`);
  process.exit(1);
});
