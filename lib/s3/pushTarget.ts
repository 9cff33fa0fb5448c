// What a builder's `nix copy --to s3://…` does with our pushUrl and awsCredentials outputs, read back the way
// Nix reads them: the tests and `npm run verify` push through exactly these values, so a wrong output fails there.

/** NAR compressions every Nix since 2.4 reads and writes (the binary cache store's `compression` setting). */
export const NIX_COMPRESSIONS = ["none", "xz", "bzip2", "gzip", "zstd", "br"] as const;

/** An `s3://` binary cache store URL, resolved as Nix resolves it. */
export interface S3StoreUrl {
  bucket: string;
  /** scheme://host[:port] that Nix sends S3 requests to (path-style: /BUCKET/KEY). */
  endpoint: string;
  region: string;
  /** The AWS profile whose credentials sign the requests; undefined = the SDK's default chain. */
  profile: string | undefined;
  /** NAR compression (Nix's default is xz). */
  compression: string;
  /** Every query parameter, decoded. */
  params: Record<string, string>;
}

/**
 * Parses an `s3://BUCKET?…` store URL. `endpoint` may be a full URL (the form every Nix reads: 2.8–2.32 through
 * the AWS SDK, 2.33+ natively) or a bare host[:port] combined with `scheme` (default https). Throws on anything
 * that is not an s3 store URL.
 */
export function parseS3StoreUrl(url: string): S3StoreUrl {
  const m = /^s3:\/\/([^/?#]+)(?:\?([^#]*))?$/.exec(url);
  if (!m) throw new Error(`not an s3:// store URL: ${url}`);
  const params: Record<string, string> = {};
  for (const part of (m[2] ?? "").split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    if (eq < 0) throw new Error(`store URL parameter '${part}' has no value: ${url}`);
    params[decodeURIComponent(part.slice(0, eq))] = decodeURIComponent(part.slice(eq + 1));
  }
  const region = params.region ?? "us-east-1";
  let endpoint: string;
  if (params.endpoint === undefined || params.endpoint === "") {
    endpoint = `https://s3.${region}.amazonaws.com`;
  } else if (params.endpoint.includes("://")) {
    endpoint = new URL(params.endpoint).origin;
  } else {
    endpoint = new URL(`${params.scheme ?? "https"}://${params.endpoint}`).origin;
  }
  const compression = params.compression ?? "xz";
  if (!(NIX_COMPRESSIONS as readonly string[]).includes(compression)) {
    throw new Error(`store URL compression '${compression}' is not one Nix knows (${NIX_COMPRESSIONS.join(", ")})`);
  }
  return { bucket: m[1], endpoint, region, profile: params.profile, compression, params };
}

export interface AwsProfileCredentials {
  accessKey: string;
  secretKey: string;
}

/** Reads `[profile]` sections of an AWS credentials file (what the AWS SDK and Nix's S3 store read). */
export function parseAwsCredentials(text: string): Map<string, AwsProfileCredentials> {
  const profiles = new Map<string, Partial<AwsProfileCredentials>>();
  let current: Partial<AwsProfileCredentials> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const section = /^\[\s*([^\]]+?)\s*\]$/.exec(line);
    if (section) {
      current = {};
      profiles.set(section[1], current);
      continue;
    }
    const kv = /^([A-Za-z_]+)\s*=\s*(.*)$/.exec(line);
    if (!kv || !current) continue;
    if (kv[1] === "aws_access_key_id") current.accessKey = kv[2];
    if (kv[1] === "aws_secret_access_key") current.secretKey = kv[2];
  }
  const complete = new Map<string, AwsProfileCredentials>();
  for (const [name, c] of profiles) {
    if (c.accessKey && c.secretKey) complete.set(name, { accessKey: c.accessKey, secretKey: c.secretKey });
  }
  return complete;
}

/** The Content-Type Nix's binary cache store gives each kind of file it uploads. */
export function binaryCacheContentType(key: string): string {
  if (key.endsWith(".narinfo")) return "text/x-nix-narinfo";
  if (key.startsWith("nar/")) return "application/x-nix-nar";
  if (key.endsWith(".ls")) return "application/json";
  if (key.startsWith("log/")) return "text/plain; charset=utf-8";
  if (key === "nix-cache-info") return "text/x-nix-cache-info";
  return "application/octet-stream";
}
