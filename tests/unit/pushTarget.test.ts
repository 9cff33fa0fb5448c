import { awsCredentials, pushUrl } from "../../lib/hosts/hostConfig";
import { binaryCacheContentType, parseAwsCredentials, parseS3StoreUrl } from "../../lib/s3/pushTarget";

describe("pushUrl", () => {
  test("puts the endpoint as a full URL, readable, with profile, region and zstd", () => {
    expect(pushUrl({ bucket: "nix-cache", endpoint: "http://127.0.0.1:9000", region: "us-east-1", profile: "nixbuilder" })).toBe(
      "s3://nix-cache?profile=nixbuilder&endpoint=http://127.0.0.1:9000&region=us-east-1&compression=zstd&compression-level=9",
    );
    // Default ports are dropped, as Nix would not need them.
    expect(pushUrl({ bucket: "b", endpoint: "https://s3.homelab.local:443", region: "eu-1", profile: "p" })).toBe(
      "s3://b?profile=p&endpoint=https://s3.homelab.local&region=eu-1&compression=zstd&compression-level=9",
    );
  });

  test.each([
    ["http://127.0.0.1:9000"],
    ["https://s3.homelab.local"],
    ["https://minio.lan:9000"],
    ["http://[::1]:9000"],
  ])("reads back as the same endpoint, bucket, region and profile: %s", (endpoint) => {
    const url = pushUrl({ bucket: "nix-cache", endpoint, region: "us-east-1", profile: "nixbuilder" });
    expect(parseS3StoreUrl(url)).toMatchObject({
      bucket: "nix-cache",
      endpoint: new URL(endpoint).origin,
      region: "us-east-1",
      profile: "nixbuilder",
      compression: "zstd",
    });
    // No separate scheme parameter: Nix 2.33+ warns that it is deprecated.
    expect(parseS3StoreUrl(url).params.scheme).toBeUndefined();
  });
});

describe("parseS3StoreUrl", () => {
  test("resolves a bare endpoint with scheme the way Nix does (https by default)", () => {
    expect(parseS3StoreUrl("s3://c?endpoint=minio.example.com&scheme=http").endpoint).toBe("http://minio.example.com");
    expect(parseS3StoreUrl("s3://c?endpoint=minio.example.com:9000").endpoint).toBe("https://minio.example.com:9000");
    expect(parseS3StoreUrl("s3://c?endpoint=http%3A%2F%2F10.0.0.1%3A9000").endpoint).toBe("http://10.0.0.1:9000");
  });

  test("defaults: AWS endpoint for the region, us-east-1, xz, no profile", () => {
    expect(parseS3StoreUrl("s3://c")).toMatchObject({
      bucket: "c",
      endpoint: "https://s3.us-east-1.amazonaws.com",
      region: "us-east-1",
      compression: "xz",
      profile: undefined,
    });
    expect(parseS3StoreUrl("s3://c?region=eu-west-2").endpoint).toBe("https://s3.eu-west-2.amazonaws.com");
  });

  test("rejects what Nix would not read", () => {
    expect(() => parseS3StoreUrl("https://c")).toThrow(/not an s3:\/\/ store URL/);
    expect(() => parseS3StoreUrl("s3://c?compression=lzma9")).toThrow(/compression 'lzma9'/);
    expect(() => parseS3StoreUrl("s3://c?profile")).toThrow(/no value/);
  });
});

describe("parseAwsCredentials", () => {
  test("reads the profile that awsCredentials writes", () => {
    const creds = parseAwsCredentials(awsCredentials("nixbuilder", "nixbuilder", "s3cr3t/+="));
    expect(creds.get("nixbuilder")).toEqual({ accessKey: "nixbuilder", secretKey: "s3cr3t/+=" });
  });

  test("keeps profiles apart and drops incomplete ones", () => {
    const text = "# comment\n[default]\naws_access_key_id = a\n\n[ other ]\naws_access_key_id=b\naws_secret_access_key=c\n";
    const creds = parseAwsCredentials(text);
    expect(creds.has("default")).toBe(false);
    expect(creds.get("other")).toEqual({ accessKey: "b", secretKey: "c" });
  });
});

test("content types are the ones Nix's binary cache store sends", () => {
  expect(binaryCacheContentType("abc.narinfo")).toBe("text/x-nix-narinfo");
  expect(binaryCacheContentType("nar/abc.nar.zst")).toBe("application/x-nix-nar");
  expect(binaryCacheContentType("abc.ls")).toBe("application/json");
  expect(binaryCacheContentType("log/abc-x.drv")).toBe("text/plain; charset=utf-8");
  expect(binaryCacheContentType("nix-cache-info")).toBe("text/x-nix-cache-info");
});
