// What `npm run verify` reads of a private cache's outputs (readerTokens as an object or as its JSON text; a
// missing output says to run `pulumi up`) and how --proxy / --proxy-host choose the proxy check's token.
import { SetupError, UsageError } from "../../lib/cli/command";
import { privateOutputs, proxyArgs, proxyTarget } from "../../lib/verify/privateOutputs";

const outputs = {
  readerAccessKey: "nixreader",
  readerSecretKey: "reader-secret",
  readerTokens: { laptop: "token-laptop", desktop: "token-desktop" },
  proxyUrl: "http://127.0.0.1:8480",
};

describe("privateOutputs", () => {
  test("reads readerTokens as an object and as the JSON text of one", () => {
    const expected = { ...outputs, readerTokens: { laptop: "token-laptop", desktop: "token-desktop" } };
    expect(privateOutputs(outputs, "dev")).toEqual(expected);
    expect(privateOutputs({ ...outputs, readerTokens: JSON.stringify(outputs.readerTokens) }, "dev")).toEqual(expected);
    expect(privateOutputs({ ...outputs, readerTokens: {} }, "dev").readerTokens).toEqual({});
  });

  test.each(["readerAccessKey", "readerSecretKey", "readerTokens", "proxyUrl"])("without %s: a SetupError naming it that says to run pulumi up", (name) => {
    const rest: Record<string, unknown> = { ...outputs };
    delete rest[name];
    expect(() => privateOutputs(rest, "dev")).toThrow(SetupError);
    expect(() => privateOutputs(rest, "dev")).toThrow(new RegExp(`stack dev has no output '${name}' .*run \`pulumi up\` first`));
    expect(() => privateOutputs({ ...rest, [name]: "" }, "dev")).toThrow(/run `pulumi up` first/);
  });

  test("readerTokens that are no JSON object, or hold a host without a token, are refused without printing a token", () => {
    for (const bad of ["{not json", "[]", "null", 42, ["a"], { laptop: "" }, { laptop: 7 }]) {
      let message = "";
      try {
        privateOutputs({ ...outputs, readerTokens: bad }, "dev");
      } catch (err) {
        expect(err).toBeInstanceOf(SetupError);
        message = (err as Error).message;
      }
      expect(message).toMatch(/'readerTokens'.*run `pulumi up` first/);
    }
  });
});

describe("--proxy and --proxy-host", () => {
  test("no --proxy: no proxy check; --proxy-host alone is a usage error", () => {
    expect(proxyArgs(undefined, undefined)).toBeUndefined();
    expect(() => proxyArgs(undefined, "laptop")).toThrow(UsageError);
  });

  test("--proxy takes an http(s) root URL (a trailing slash dropped), nothing else", () => {
    expect(proxyArgs("http://127.0.0.1:8480/", undefined)).toEqual({ url: "http://127.0.0.1:8480" });
    expect(proxyArgs("https://cache.lan:8480", "desktop")).toEqual({ url: "https://cache.lan:8480", host: "desktop" });
    for (const bad of ["127.0.0.1:8480", "ftp://x", "http://u:p@x:1", "http://x:1/?a=b", "not a url"]) {
      expect(() => proxyArgs(bad, undefined)).toThrow(UsageError);
    }
  });

  test("the token of --proxy-host, default the first host by name; an unknown host names the hosts; no hosts at all is a setup error", () => {
    const tokens = outputs.readerTokens;
    expect(proxyTarget({ url: "http://p:1" }, tokens)).toEqual({ url: "http://p:1", host: "desktop", token: "token-desktop" });
    expect(proxyTarget({ url: "http://p:1", host: "laptop" }, tokens)).toEqual({ url: "http://p:1", host: "laptop", token: "token-laptop" });
    expect(() => proxyTarget({ url: "http://p:1", host: "phone" }, tokens)).toThrow(/--proxy-host phone has no token .*\(hosts: desktop, laptop\)/);
    expect(() => proxyTarget({ url: "http://p:1", host: "phone" }, tokens)).toThrow(UsageError);
    expect(() => proxyTarget({ url: "http://p:1" }, {})).toThrow(SetupError);
    expect(() => proxyTarget({ url: "http://p:1", host: "toString" }, tokens)).toThrow(UsageError);
  });
});
