import { pushUrl } from "../../lib/hosts/hostConfig";
import { binaryCacheContentType, parseAwsCredentials, parseS3StoreUrl } from "../../lib/s3/pushTarget";
import { CREDENTIALS_CASES, STORE_URL_CASES } from "./support/pushTargetCases";

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

  test.each(STORE_URL_CASES.filter((c) => c.pushUrlOf !== undefined).map((c) => [c.pushUrlOf, c] as const))(
    "puts no separate scheme parameter (Nix 2.33+ warns that it is deprecated): %s",
    (_, c) => {
      expect(parseS3StoreUrl(c.url).params.scheme).toBeUndefined();
    },
  );
});

// The cases live in support/pushTargetCases.ts: builderShell.test.ts holds the drain's shell parsers to them too.
describe("parseS3StoreUrl", () => {
  test.each(STORE_URL_CASES.map((c) => [c.name, c] as const))("%s", (_, c) => {
    if (c.error) {
      expect(() => parseS3StoreUrl(c.url)).toThrow(c.error);
      return;
    }
    if (!c.target) throw new Error(`case ${c.name}: a target or an error`);
    const parsed = parseS3StoreUrl(c.url);
    expect({ bucket: parsed.bucket, endpoint: parsed.endpoint, region: parsed.region, profile: parsed.profile }).toEqual(c.target);
    expect(parsed.compression).toBe(c.compression ?? "xz");
  });
});

describe("parseAwsCredentials", () => {
  test.each(CREDENTIALS_CASES.map((c) => [c.name, c] as const))("%s", (_, c) => {
    const creds = parseAwsCredentials(c.text);
    expect(Object.fromEntries(creds)).toEqual(c.profiles);
    for (const name of c.without) expect(creds.has(name)).toBe(false);
  });
});

test("content types are the ones Nix's binary cache store sends", () => {
  expect(binaryCacheContentType("abc.narinfo")).toBe("text/x-nix-narinfo");
  expect(binaryCacheContentType("nar/abc.nar.zst")).toBe("application/x-nix-nar");
  expect(binaryCacheContentType("abc.ls")).toBe("application/json");
  expect(binaryCacheContentType("log/abc-x.drv")).toBe("text/plain; charset=utf-8");
  expect(binaryCacheContentType("nix-cache-info")).toBe("text/x-nix-cache-info");
});
