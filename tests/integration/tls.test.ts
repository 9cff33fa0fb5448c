// HTTPS with the homelab's own CA, against a real MinIO serving TLS with a certificate from a throwaway CA
// (harness/localCa.ts), driven as a user drives it: `up` with nix-cache:caCertificate → real https requests as
// anonymous client, builder and admin → drift check clean → `npm run verify` passes. Then what goes wrong in
// homelabs, each failing with its own message before anything on MinIO changes: a stack without the CA, a
// certificate for another name, an expired certificate. The stacks reach MinIO through a TCP relay that keeps
// the first byte of every connection, so "never plain http" is measured: a TLS ClientHello starts with 0x16.
import * as http from "http";
import * as https from "https";
import * as net from "net";
import { OutputMap } from "@pulumi/pulumi/automation";
import { parseCaCertificate } from "../../lib/config/caCertificate";
import { makeServerCert } from "../../harness/localCa";
import { parseS3StoreUrl } from "../../lib/s3/pushTarget";
import { s3Client } from "../../providers/minioClients";
import { MinioServer, startMinio, TLS_NAMES } from "../../harness/minio";
import { createTestStack, minioConfig, TestStack } from "../../harness/stack";
import { BUCKET, codeOf, driftPreview, errorLines, rootS3, runVerifyCli, serverInventory } from "./helpers";

let minio: MinioServer;
let relay: net.Server;
let relayEndpoint: string;
/** The first byte of every connection through the relay. */
const firstBytes: number[] = [];
/** Open relay connections: closed at the end, or keep-alive clients would keep the relay (and jest) waiting. */
const relayed = new Set<net.Socket>();
/** What MinIO holds before the certificate cases; they must leave it as it was. */
let inventoryBefore: Awaited<ReturnType<typeof serverInventory>>;
let t: TestStack;
let outputs: OutputMap;
const out = (name: string): string => String(outputs[name]?.value);
const TLS_HANDSHAKE = 0x16;

const caPem = () => minio.tls?.ca.certPem ?? "";

/** GET with node's https client, trusting only `ca` (or the system's roots when undefined). */
function httpsGet(url: string, ca: string | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, agent: false, timeout: 10_000 }, (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
  });
}

/** Serves another certificate from the next MinIO start on, and restarts MinIO. */
async function serve(cert: Parameters<NonNullable<MinioServer["tls"]>["useCertificate"]>[0]): Promise<void> {
  minio.tls?.useCertificate(cert);
  await minio.restart();
}

beforeAll(async () => {
  minio = await startMinio({ tls: true });
  relay = net.createServer((client) => {
    const server = net.connect(minio.port, "127.0.0.1");
    for (const socket of [client, server]) {
      relayed.add(socket);
      socket.once("close", () => relayed.delete(socket));
    }
    client.once("data", (chunk: Buffer) => firstBytes.push(chunk[0]));
    client.pipe(server).pipe(client);
    client.on("error", () => server.destroy());
    server.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  // The certificate names localhost (and 127.0.0.1), whatever the port: the relay is the endpoint.
  relayEndpoint = `https://localhost:${(relay.address() as net.AddressInfo).port}`;
  t = await createTestStack("it-tls", minioConfig(minio, { endpoint: relayEndpoint }));
  const up = await t.stack.up();
  expect(up.summary.result).toBe("succeeded");
  outputs = await t.stack.outputs();
});

afterAll(async () => {
  await t?.remove();
  for (const socket of relayed) socket.destroy();
  await new Promise((resolve) => relay?.close(resolve));
  await minio?.destroy();
});

describe("a cache on MinIO over https with the homelab's own CA", () => {
  test("the outputs speak https and carry the CA; the client module trusts it", () => {
    expect(out("substituterUrl")).toBe(`${relayEndpoint}/${BUCKET}`);
    expect(parseS3StoreUrl(out("pushUrl")).endpoint).toBe(relayEndpoint);
    const normalized = parseCaCertificate(caPem());
    expect(normalized.ok).toBe(true);
    expect(out("caCertificate")).toBe((normalized as { pem: string }).pem);
    expect(out("nixosModule")).toContain("security.pki.certificates = [");
    expect(out("nixosModule")).toContain(caPem().split("\n")[1]);
  });

  test("real https requests: anonymous read, builder upload (no delete), admin; no CA, no connection", async () => {
    const info = await httpsGet(`${out("substituterUrl")}/nix-cache-info`, caPem());
    expect(info.status).toBe(200);
    expect(info.body).toContain("StoreDir: /nix/store");
    expect((await httpsGet(`${out("substituterUrl")}/${"e".repeat(32)}.narinfo`, caPem())).status).toBe(404);

    const target = { endpoint: relayEndpoint, region: "us-east-1", ca: caPem() };
    const builder = s3Client(target, { accessKey: out("builderAccessKey"), secretKey: out("builderSecretKey") });
    expect(await codeOf(builder.putObject(BUCKET, "tls-probe.narinfo", Buffer.from("StorePath: /nix/store/probe")))).toBe("ok");
    expect(await codeOf(builder.removeObject(BUCKET, "tls-probe.narinfo"))).toBe("AccessDenied");
    expect(await codeOf(rootS3(minio).removeObject(BUCKET, "tls-probe.narinfo"))).toBe("ok");

    // Without the CA (the system's roots only) the same request is refused: the CA is what makes it work.
    await expect(httpsGet(`${out("substituterUrl")}/nix-cache-info`, undefined)).rejects.toMatchObject({ code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });
  });

  test("the drift check is clean over https", async () => {
    const preview = await driftPreview(t.stack);
    expect(preview.changes).toEqual({});
    expect(preview.failed).toBe(false);
  });

  test("npm run verify passes, checking the certificate against Nix's bundle plus the stack's CA", async () => {
    const run = await runVerifyCli(t);
    expect(run.stdout).toMatch(/^PASS +tls-certificate +localhost:\d+: certificate valid \(issuer CN=nix-cache test CA\)/m);
    expect(run.stdout).toMatch(/^verify: all 12 checks passed$/m);
    expect(run.status).toBe(0);
  });

  test("a stack without caCertificate fails with the unknown-CA message, before anything on MinIO changes", async () => {
    const before = await serverInventory(minio, ["nixbuilder", "noca-builder"]);
    const config = minioConfig(minio, { endpoint: relayEndpoint, bucket: "nix-cache-noca", builderUser: "noca-builder" });
    delete config["nix-cache:caCertificate"];
    const noCa = await createTestStack("it-tls-noca", config);
    try {
      const error = await noCa.stack.up().then(() => "", (err: Error) => err.message);
      const lines = errorLines(error).join("\n");
      expect(lines).toContain(`MinIO's certificate at ${relayEndpoint} is signed by a CA this machine does not trust (UNABLE_TO_VERIFY_LEAF_SIGNATURE`);
      expect(lines).toContain("issued by CN=nix-cache test CA");
      expect(lines).toContain(`set nix-cache:caCertificate to the PEM of that CA (CN=nix-cache test CA): pulumi config set nix-cache:caCertificate -- "$(cat ca.pem)"`);
      expect(await serverInventory(minio, ["nixbuilder", "noca-builder"])).toEqual(before);
    } finally {
      await noCa.remove();
    }
  });

  test("a certificate for another name: the drift check and up --refresh fail saying so", async () => {
    inventoryBefore = await serverInventory(minio);
    await serve(await makeServerCert(minio.tls!.ca, { dnsNames: ["s3.elsewhere.lan"] }));
    const preview = await driftPreview(t.stack);
    expect(preview.failed).toBe(true);
    const message = errorLines(preview.text).join("\n");
    expect(message).toContain(`MinIO's certificate at ${relayEndpoint} does not name localhost (ERR_TLS_CERT_ALTNAME_INVALID`);
    expect(message).toContain("names DNS:s3.elsewhere.lan");
    expect(message).toContain("set nix-cache:endpoint to a name the certificate holds, or reissue public.crt in MinIO's certs directory");
    const up = await t.stack.up({ refresh: true }).then(() => "", (err: Error) => err.message);
    expect(up).toContain("does not name localhost");
  });

  test("an expired certificate: the drift check fails saying it expired and which file to renew", async () => {
    const lastWeek = new Date(Date.now() - 7 * 24 * 3600 * 1000);
    await serve(await makeServerCert(minio.tls!.ca, { ...TLS_NAMES, notAfter: lastWeek }));
    const preview = await driftPreview(t.stack);
    expect(preview.failed).toBe(true);
    const message = errorLines(preview.text).join("\n");
    expect(message).toContain(`MinIO's certificate at ${relayEndpoint} has expired (CERT_HAS_EXPIRED`);
    expect(message).toContain(`valid until ${lastWeek.toISOString().slice(0, 10)}`);
    expect(message).toContain("replace public.crt and private.key in MinIO's certs directory");
  });

  test("a renewed certificate: nothing was changed by the failed runs, and no connection ever went out in plain http", async () => {
    await serve(await makeServerCert(minio.tls!.ca, TLS_NAMES));
    expect(await serverInventory(minio)).toEqual(inventoryBefore);
    const preview = await driftPreview(t.stack);
    expect(preview.changes).toEqual({});
    expect(preview.failed).toBe(false);
    expect(firstBytes.length).toBeGreaterThan(20);
    expect(firstBytes.filter((b) => b !== TLS_HANDSHAKE)).toEqual([]);
  });
});
