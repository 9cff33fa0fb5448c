// The floor for `pulumi up`: the same MinIO calls the providers make, with the same clients, in one node
// process. Reads the target from the environment: BENCH_ENDPOINT, BENCH_ADMIN_USER, BENCH_ADMIN_PASSWORD.
// Prints the in-process time of the calls (ms) on stdout.
import { renderCacheInfo, CACHE_INFO_CONTENT_TYPE, CACHE_INFO_KEY } from "../lib/config/cacheInfo";
import { expiryRule, lifecycleConfiguration } from "../lib/minio/lifecycle";
import { anonymousPolicy, builderPolicy } from "../lib/minio/policies";
import { generateKeypair } from "../lib/signing/signingKey";
import { minioAdmin, s3Client } from "../providers/minioClients";

async function main(): Promise<void> {
  const target = { endpoint: process.env.BENCH_ENDPOINT ?? "", region: "us-east-1" };
  const admin = { accessKey: process.env.BENCH_ADMIN_USER ?? "", secretKey: process.env.BENCH_ADMIN_PASSWORD ?? "" };
  const bucket = "nix-cache";
  const started = process.hrtime.bigint();
  const s3 = s3Client(target, admin);
  const info = renderCacheInfo({ storeDir: "/nix/store", wantMassQuery: true, priority: 40 });
  const password = require("crypto").randomBytes(30).toString("base64url") as string;
  generateKeypair("s3.homelab.local-1");
  // What `up` does, in its dependency order (independent branches run concurrently, as the engine does).
  await Promise.all([
    (async () => {
      if (!(await s3.bucketExists(bucket))) await s3.makeBucket(bucket, target.region);
      await s3.putObject(bucket, CACHE_INFO_KEY, Buffer.from(info), info.length, { "Content-Type": CACHE_INFO_CONTENT_TYPE });
      await Promise.all([
        s3.setBucketPolicy(bucket, JSON.stringify(anonymousPolicy(bucket, false))),
        s3.setBucketLifecycle(bucket, lifecycleConfiguration(expiryRule(7, info)) as never),
        minioAdmin.putPolicy(target, admin, `${bucket}-write`, JSON.stringify(builderPolicy(bucket))),
      ]);
    })(),
    minioAdmin.addUser(target, admin, "nixbuilder", password),
  ]);
  await minioAdmin.attachPolicy(target, admin, "nixbuilder", `${bucket}-write`);
  console.log(Number(process.hrtime.bigint() - started) / 1e6);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
