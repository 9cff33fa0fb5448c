// The cases of lib/s3/pushTarget.ts's parsers, in one table for two tests: tests/unit/pushTarget.test.ts runs
// parseS3StoreUrl and parseAwsCredentials on them, tests/unit/builderShell.test.ts runs the drain's shell
// versions (lib/hosts/sh/keep-alive.sh: s3_target, s3_credentials) with bash on the same ones.
import { awsCredentials, pushUrl } from "../../../lib/hosts/hostConfig";

export interface StoreUrlTarget {
  bucket: string;
  /** scheme://host[:port]. */
  endpoint: string;
  region: string;
  /** undefined: the URL names none (parseS3StoreUrl leaves it to the SDK's chain, s3_target reads `default`). */
  profile: string | undefined;
}

export interface StoreUrlCase {
  name: string;
  url: string;
  /** What parseS3StoreUrl gives; for an `error` case, what s3_target still reads (none: it refuses too). */
  target?: StoreUrlTarget;
  /** parseS3StoreUrl's NAR compression. */
  compression?: string;
  /** The error parseS3StoreUrl throws. */
  error?: RegExp;
  /** The URL is pushUrl's, built from this endpoint. */
  pushUrlOf?: string;
}

const BUCKET = "nix-cache";
const viaPushUrl = (endpoint: string, origin: string): StoreUrlCase => ({
  name: `pushUrl's URL for ${endpoint}`,
  url: pushUrl({ bucket: BUCKET, endpoint, region: "us-east-1", profile: "nixbuilder" }),
  target: { bucket: BUCKET, endpoint: origin, region: "us-east-1", profile: "nixbuilder" },
  compression: "zstd",
  pushUrlOf: endpoint,
});
const aws = (region: string) => `https://s3.${region}.amazonaws.com`;

export const STORE_URL_CASES: readonly StoreUrlCase[] = [
  viaPushUrl("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
  viaPushUrl("https://s3.homelab.local", "https://s3.homelab.local"),
  viaPushUrl("https://minio.lan:9000", "https://minio.lan:9000"),
  viaPushUrl("http://[::1]:9000", "http://[::1]:9000"),
  {
    name: "a bare endpoint takes its scheme from `scheme`",
    url: "s3://c?endpoint=minio.example.com&scheme=http",
    target: { bucket: "c", endpoint: "http://minio.example.com", region: "us-east-1", profile: undefined },
  },
  {
    name: "a bare endpoint without `scheme` is https",
    url: "s3://c?endpoint=minio.example.com:9000",
    target: { bucket: "c", endpoint: "https://minio.example.com:9000", region: "us-east-1", profile: undefined },
  },
  {
    name: "a percent-encoded endpoint",
    url: "s3://c?endpoint=http%3A%2F%2F10.0.0.1%3A9000",
    target: { bucket: "c", endpoint: "http://10.0.0.1:9000", region: "us-east-1", profile: undefined },
  },
  {
    name: "a percent-encoded bare endpoint with a path, scheme, region and profile",
    url: "s3://my-cache?compression=zstd&endpoint=s3.homelab.local%3A9443%2Fignored&scheme=https&region=eu-west-1&profile=nixbuilder",
    target: { bucket: "my-cache", endpoint: "https://s3.homelab.local:9443", region: "eu-west-1", profile: "nixbuilder" },
    compression: "zstd",
  },
  {
    name: "defaults: AWS's endpoint for us-east-1, xz, no profile",
    url: "s3://c",
    target: { bucket: "c", endpoint: aws("us-east-1"), region: "us-east-1", profile: undefined },
    compression: "xz",
  },
  {
    name: "no endpoint: AWS's endpoint for the region",
    url: "s3://c?region=eu-west-2",
    target: { bucket: "c", endpoint: aws("eu-west-2"), region: "eu-west-2", profile: undefined },
  },
  { name: "not an s3:// URL", url: "https://c", error: /not an s3:\/\/ store URL/ },
  {
    name: "a parameter without a value (Nix ignores it, as s3_target does; parseS3StoreUrl refuses it)",
    url: "s3://c?profile&region=eu-west-2",
    error: /no value/,
    target: { bucket: "c", endpoint: aws("eu-west-2"), region: "eu-west-2", profile: undefined },
  },
  {
    name: "empty parameters are skipped",
    url: "s3://c?&region=eu-west-2&&profile=p&",
    target: { bucket: "c", endpoint: aws("eu-west-2"), region: "eu-west-2", profile: "p" },
  },
  {
    name: "a compression Nix does not know (the refresh never compresses: s3_target reads the rest)",
    url: "s3://c?compression=lzma9",
    error: /compression 'lzma9'/,
    target: { bucket: "c", endpoint: aws("us-east-1"), region: "us-east-1", profile: undefined },
  },
];

export interface Credentials {
  accessKey: string;
  secretKey: string;
}

export interface CredentialsCase {
  name: string;
  text: string;
  /** Every profile with both keys: all parseAwsCredentials returns. */
  profiles: Record<string, Credentials>;
  /** Profiles neither parser gives credentials for: incomplete sections, or none of that name. */
  without: string[];
}

export const CREDENTIALS_CASES: readonly CredentialsCase[] = [
  {
    name: "the profile awsCredentials writes",
    text: awsCredentials("nixbuilder", "nixbuilder", "s3cr3t/+="),
    profiles: { nixbuilder: { accessKey: "nixbuilder", secretKey: "s3cr3t/+=" } },
    without: ["default"],
  },
  {
    name: "profiles apart, an incomplete one dropped, a comment and spaces in a section name",
    text: "# comment\n[default]\naws_access_key_id = a\n\n[ other ]\naws_access_key_id=b\naws_secret_access_key=c\n",
    profiles: { other: { accessKey: "b", secretKey: "c" } },
    without: ["default"],
  },
  {
    name: "indented keys, and a secret with a backslash, quotes, slash and plus",
    text:
      "[other]\naws_access_key_id = other\naws_secret_access_key = other-secret\n\n[ nixbuilder ]\n" +
      '  aws_access_key_id=nixbuilder\naws_secret_access_key = s3cr3t-Key/with+odd\\chars"and-quotes\n',
    profiles: {
      other: { accessKey: "other", secretKey: "other-secret" },
      nixbuilder: { accessKey: "nixbuilder", secretKey: 's3cr3t-Key/with+odd\\chars"and-quotes' },
    },
    without: ["default"],
  },
  {
    name: "CRLF line ends, a ; comment, and no newline at the end",
    text: "; comment\r\n[p]\r\naws_access_key_id = a \r\naws_secret_access_key = b",
    profiles: { p: { accessKey: "a", secretKey: "b" } },
    without: ["default"],
  },
  {
    name: "a key before any section belongs to none",
    text: "aws_access_key_id = x\n[default]\naws_secret_access_key = y\n",
    profiles: {},
    without: ["default"],
  },
];
