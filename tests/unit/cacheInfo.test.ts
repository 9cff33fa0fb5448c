// The nix-cache-info text: exact rendering, parsing back, and acceptance by the real Nix.
import * as fs from "fs";
import * as path from "path";
import { CACHE_INFO_CONTENT_TYPE, CACHE_INFO_KEY, parseCacheInfo, renderCacheInfo } from "../../lib/config/cacheInfo";
import { DEFAULTS } from "../../lib/config/settings";
import { nixSandbox } from "./support/nix";

const defaults = { storeDir: DEFAULTS.storeDir, wantMassQuery: DEFAULTS.wantMassQuery, priority: DEFAULTS.priority };

describe("renderCacheInfo", () => {
  test("renders the defaults exactly", () => {
    expect(renderCacheInfo(defaults)).toBe("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n");
  });

  test("renders custom values exactly", () => {
    expect(renderCacheInfo({ storeDir: "/gnu/store", wantMassQuery: false, priority: 10 })).toBe(
      "StoreDir: /gnu/store\nWantMassQuery: 0\nPriority: 10\n",
    );
  });

  test("lives at the key Nix asks for", () => {
    expect(CACHE_INFO_KEY).toBe("nix-cache-info");
    expect(CACHE_INFO_CONTENT_TYPE).toBe("text/x-nix-cache-info");
  });
});

describe("parseCacheInfo", () => {
  test.each([
    defaults,
    { storeDir: "/gnu/store", wantMassQuery: false, priority: 0 },
    { storeDir: "/opt/nix/store", wantMassQuery: true, priority: 1000 },
  ])("round-trips %j", (info) => {
    expect(parseCacheInfo(renderCacheInfo(info))).toEqual(info);
  });

  test("reads what Nix itself writes (StoreDir only) and tolerates CRLF and unknown lines", () => {
    expect(parseCacheInfo("StoreDir: /nix/store\n")).toEqual({ storeDir: "/nix/store" });
    expect(parseCacheInfo("StoreDir: /nix/store\r\nPriority: 30\r\nSomethingNew: x\n")).toEqual({
      storeDir: "/nix/store",
      priority: 30,
    });
    expect(parseCacheInfo("")).toEqual({});
  });
});

describe("the real Nix reads our nix-cache-info", () => {
  const nix = nixSandbox();
  afterAll(() => nix.cleanup());

  function cacheWith(name: string, text: string): string {
    const dir = path.join(nix.dir, name);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, CACHE_INFO_KEY), text);
    return `file://${dir}`;
  }

  test("accepts the default text as a binary cache for /nix/store", () => {
    const r = nix.run("nix", ["store", "ping", "--store", cacheWith("good", renderCacheInfo(defaults))]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.status).toBe(0);
  });

  test("reads StoreDir from it (another store dir is refused)", () => {
    const text = renderCacheInfo({ ...defaults, storeDir: "/other/store" });
    const r = nix.run("nix", ["store", "ping", "--store", cacheWith("other", text)]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("is for Nix stores with prefix '/other/store'");
  });
});
