// Narinfo parsing, the signed fingerprint and re-signing: against real cache.nixos.org narinfos (quoted
// verbatim in public repositories, with their Sig lines), the vectors of the shared facts
// (nix-signatures.md), and a real Nix 2.8 accepting a signature this code appended.
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import {
  appendSignatures,
  canonicalNarHash,
  decodeNarHash,
  fingerprint,
  isWellFormedSig,
  nix32,
  nix32Decode,
  NarinfoError,
  parseNarinfo,
  resignDecision,
  signatures,
  verifySignatures,
} from "../../lib/signing/narinfo";
import { generateKeypair, signDetached, verifyDetached } from "../../lib/signing/signingKey";
import { nixEnv } from "../../harness/nix";
import { NIXOS_KEY, REAL } from "./fixtures/realNarinfos";
import { nixOk, nixSandbox } from "./support/nix";

const verifiedBy = (text: string, keys: string[]) => verifySignatures(parseNarinfo(text), keys).verified;
/** Replaces one field's value (first occurrence). */
const withField = (text: string, name: string, value: string) => text.replace(new RegExp(`^${name}: .*$`, "m"), `${name}: ${value}`);

describe("nix32", () => {
  test("nix32(sha256('abc')) is Nix's own test vector", () => {
    expect(nix32(crypto.createHash("sha256").update("abc").digest())).toBe("1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s");
  });

  test("decoding round-trips and refuses bad digits, lengths and overflow", () => {
    for (let i = 0; i < 50; i++) {
      const bytes = crypto.randomBytes(32);
      expect(nix32Decode(nix32(bytes), 32)).toEqual(bytes);
    }
    expect(nix32Decode("1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5e", 32)).toBeUndefined(); // 'e' is no digit
    expect(nix32Decode("1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5", 32)).toBeUndefined();
    expect(nix32Decode(`z${"0".repeat(51)}`, 32)).toBeUndefined(); // 260 bits do not fit in 256
  });
});

describe("NarHash encodings are re-encoded to sha256:<nix32>", () => {
  const digest = crypto.createHash("sha256").update("abc").digest();
  const canonical = "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s";

  test.each([
    ["base16", `sha256:${digest.toString("hex")}`],
    ["base16 upper case", `sha256:${digest.toString("hex").toUpperCase()}`],
    ["nix32", canonical],
    ["base64", `sha256:${digest.toString("base64")}`],
    ["SRI", `sha256-${digest.toString("base64")}`],
  ])("%s", (_what, value) => {
    expect(canonicalNarHash(value)).toBe(canonical);
  });

  test.each([
    ["another algorithm", `sha512:${digest.toString("hex")}`],
    ["no prefix", digest.toString("hex")],
    ["a wrong length", `sha256:${digest.toString("hex").slice(2)}`],
    ["a non-hex digit", `sha256:${"g".repeat(64)}`],
    ["bad base64", `sha256-${"!".repeat(44)}`],
  ])("%s is refused", (_what, value) => {
    expect(() => decodeNarHash(value)).toThrow(NarinfoError);
  });
});

describe("real cache.nixos.org narinfos verify under cache.nixos.org-1 with our fingerprint", () => {
  test.each(Object.entries(REAL))("%s", (_name, text) => {
    const info = parseNarinfo(text);
    expect(signatures(info)).toHaveLength(1);
    expect(verifySignatures(info, [NIXOS_KEY])).toEqual({ verified: ["cache.nixos.org-1"], invalid: [], corrupt: [], foreign: [] });
  });

  test("curl: the exact fingerprint (full paths, store dir prefixed, sorted, comma-joined)", () => {
    expect(fingerprint(parseNarinfo(REAL.curl))).toBe(
      "1;/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin;sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0;196040;" +
        "/nix/store/0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0,/nix/store/6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115," +
        "/nix/store/j5jxw3iy7bbz4a57fh9g2xm2gxmyal8h-zlib-1.2.12,/nix/store/yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n",
    );
  });

  test("hello: the self reference is part of the fingerprint", () => {
    const fp = fingerprint(parseNarinfo(REAL.hello));
    expect(fp.endsWith(",/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10")).toBe(true);
    const withoutSelf = withField(REAL.hello, "References", "563528481rvhc5kxwipjmg6rqrl95mdx-glibc-2.33-56");
    expect(verifiedBy(withoutSelf, [NIXOS_KEY])).toEqual([]);
  });

  test("unsorted References still verify (the fingerprint sorts them)", () => {
    const refs = parseNarinfo(REAL.curl).references;
    const shuffled = withField(REAL.curl, "References", [refs[2], refs[0], refs[3], refs[1]].join(" "));
    expect(verifiedBy(shuffled, [NIXOS_KEY])).toEqual(["cache.nixos.org-1"]);
  });

  test("empty References with CA: the fingerprint ends in ';' and fails without it", () => {
    const info = parseNarinfo(REAL.hyphenex);
    const fp = fingerprint(info);
    expect(fp).toBe("1;/nix/store/k20pahypzvr49fy82cw5sx72hdfg3qcr-texlive-hyphenex-37354;sha256:0h1bm4sj1cnfkxgyhvgi8df1qavnnv94sd0v09wcrm971602shfg;22552;");
    expect(info.ca).toBe("fixed:r:sha1:1ak1ymbmsfx7z8kh09jzkr3a4dvkrfjw");
    expect(verifyDetached(NIXOS_KEY, fp, info.sigs[0])).toBe(true);
    expect(verifyDetached(NIXOS_KEY, fp.slice(0, -1), info.sigs[0])).toBe(false);
  });

  test("a NarHash rewritten in base16, base64 or SRI still verifies (re-encoded to nix32 before checking)", () => {
    const bytes = decodeNarHash(parseNarinfo(REAL.ripgrep).narHash);
    for (const form of [`sha256:${bytes.toString("hex")}`, `sha256:${bytes.toString("base64")}`, `sha256-${bytes.toString("base64")}`]) {
      expect(verifiedBy(withField(REAL.ripgrep, "NarHash", form), [NIXOS_KEY])).toEqual(["cache.nixos.org-1"]);
    }
  });

  test("unsigned fields (URL, Compression, FileHash, FileSize, Deriver) can change; signed ones cannot", () => {
    let edited = withField(REAL.curl, "URL", "nar/elsewhere.nar.zst");
    edited = withField(edited, "Compression", "zstd");
    edited = withField(edited, "Deriver", "00000000000000000000000000000000-x.drv");
    expect(verifiedBy(edited, [NIXOS_KEY])).toEqual(["cache.nixos.org-1"]);
    expect(verifiedBy(withField(REAL.curl, "NarSize", "196041"), [NIXOS_KEY])).toEqual([]);
    expect(verifySignatures(parseNarinfo(withField(REAL.curl, "NarSize", "196041")), [NIXOS_KEY]).invalid).toEqual(["cache.nixos.org-1"]);
  });
});

describe("parseNarinfo", () => {
  test("keeps every field in file order, unknown ones included, and the raw text", () => {
    const text = REAL.curl.replace("Deriver:", "X-Custom: kept as is\nDeriver:") + "Zzz: last\n";
    const info = parseNarinfo(text);
    expect(info.raw).toBe(text);
    expect(info.fields.map((f) => f.name)).toEqual([
      "StorePath", "URL", "Compression", "FileHash", "FileSize", "NarHash", "NarSize", "References", "X-Custom", "Deriver", "Sig", "Zzz",
    ]);
    expect(info.fields.find((f) => f.name === "X-Custom")?.value).toBe("kept as is");
    expect(info.fields.map((f) => `${f.name}: ${f.value}\n`).join("")).toBe(text);
    expect(info.storeDir).toBe("/nix/store");
  });

  test("a store dir other than /nix/store prefixes the references", () => {
    const text = REAL.curl.replace("StorePath: /nix/store/", "StorePath: /gnu/store/");
    expect(fingerprint(parseNarinfo(text))).toContain(";/gnu/store/0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0,/gnu/store/");
  });

  test.each<[string, string]>([
    ["no final newline", REAL.curl.slice(0, -1)],
    ["a blank line", REAL.curl.replace("\nURL:", "\n\nURL:")],
    ["a carriage return", REAL.curl.replace(/\n/g, "\r\n")],
    ["a line without ': '", REAL.curl.replace("Compression: xz", "Compression:xz")],
    ["no StorePath", REAL.curl.replace(/^StorePath: .*\n/m, "")],
    ["a relative StorePath", withField(REAL.curl, "StorePath", "syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin")],
    ["no NarHash", REAL.curl.replace(/^NarHash: .*\n/m, "")],
    ["NarSize 0", withField(REAL.curl, "NarSize", "0")],
    ["NarSize not a number", withField(REAL.curl, "NarSize", "12k")],
    ["two NarHash lines", REAL.curl.replace(/^(NarHash: .*\n)/m, "$1$1")],
    ["two non-empty References lines", REAL.curl.replace(/^(References: .*\n)/m, "$1$1")],
    ["a bad reference", withField(REAL.curl, "References", "../etc/passwd")],
    ["empty text", ""],
  ])("refuses %s as corrupt", (_what, text) => {
    expect(() => parseNarinfo(text)).toThrow(NarinfoError);
  });

  test("fingerprint refuses NarSize 0", () => {
    expect(() => fingerprint({ ...parseNarinfo(REAL.curl), narSize: 0 })).toThrow(/NarSize must be > 0/);
  });
});

describe("appendSignatures", () => {
  const key = generateKeypair("ours-1");
  const sig = signDetached(key.secretKey, "x");

  test("appends one Sig line per signature and keeps every existing byte", () => {
    const out = appendSignatures(REAL.hyphenex, [sig]);
    expect(out.startsWith(REAL.hyphenex)).toBe(true);
    expect(out.slice(REAL.hyphenex.length)).toBe(`Sig: ${sig}\n`);
  });

  test.each([
    ["no colon", "ours-1"],
    ["an empty name", `:${Buffer.alloc(64).toString("base64")}`],
    ["a name with a space", `our key:${Buffer.alloc(64).toString("base64")}`],
    ["empty data", "ours-1:"],
    ["63 bytes", `ours-1:${Buffer.alloc(63).toString("base64")}`],
    ["65 bytes", `ours-1:${Buffer.alloc(65).toString("base64")}`],
    ["a non-base64 character", `ours-1:${Buffer.alloc(64).toString("base64").replace("A", "-")}`],
    ["a newline inside", `${sig}\nStorePath: /nix/store/evil`],
  ])("never writes a malformed Sig (%s)", (_what, bad) => {
    expect(isWellFormedSig(bad)).toBe(false);
    expect(() => appendSignatures(REAL.curl, [sig, bad])).toThrow(/malformed Sig/);
  });

  test("refuses a text without a final newline rather than repairing it", () => {
    expect(() => appendSignatures(REAL.curl.slice(0, -1), [sig])).toThrow(/newline/);
  });
});

describe("resignDecision", () => {
  const active = generateKeypair("homelab-2");
  const previous = generateKeypair("homelab-1");
  const stranger = generateKeypair("someone-else-1");
  /** A narinfo like the builder uploads: the real curl fields, signed by `keys` (Nix's own layout). */
  const signedBy = (...keys: { secretKey: string }[]) => {
    const base = REAL.curl.replace(/^Sig: .*\n/m, "");
    return base + keys.map((k) => `Sig: ${signDetached(k.secretKey, fingerprint(parseNarinfo(base)))}\n`).join("");
  };

  test("signed by the previous key: appends the active key's Sig, every earlier byte kept", () => {
    const text = signedBy(previous);
    const d = resignDecision(text, [active, previous]);
    expect(d.kind).toBe("sign");
    if (d.kind !== "sign") return;
    expect(d.added).toEqual(["homelab-2"]);
    expect(d.newText.startsWith(text)).toBe(true);
    expect(d.newText.slice(text.length)).toMatch(/^Sig: homelab-2:[A-Za-z0-9+/]{86}==\n$/);
    expect(verifiedBy(d.newText, [active.publicKey, previous.publicKey])).toEqual(["homelab-1", "homelab-2"]);
    // Idempotent: the result is already signed by both.
    expect(resignDecision(d.newText, [active, previous])).toEqual({ kind: "already-signed" });
  });

  test("signed by the active key only: adds the previous key's Sig", () => {
    const d = resignDecision(signedBy(active), [active, previous]);
    expect(d).toMatchObject({ kind: "sign", added: ["homelab-1"] });
  });

  test("signed by ours and a stranger: ours added, the stranger's Sig kept", () => {
    const text = signedBy(stranger, previous);
    const d = resignDecision(text, [active, previous]);
    expect(d).toMatchObject({ kind: "sign", added: ["homelab-2"] });
    if (d.kind === "sign") expect(signatures(parseNarinfo(d.newText))[0]).toMatch(/^someone-else-1:/);
  });

  test("several missing keys are added in the order of our keys", () => {
    const third = generateKeypair("homelab-0");
    expect(resignDecision(signedBy(previous), [active, third, previous])).toMatchObject({ kind: "sign", added: ["homelab-2", "homelab-0"] });
  });

  test.each<[string, () => string, RegExp]>([
    ["unsigned", () => signedBy(), /no signature at all/],
    ["foreign (a real cache.nixos.org narinfo)", () => REAL.curl, /signed only by cache.nixos.org-1/],
    ["signed by a stranger", () => signedBy(stranger), /signed only by someone-else-1/],
    ["tampered after signing (NarSize changed)", () => withField(signedBy(previous), "NarSize", "1"), /does not verify/],
    ["tampered after signing (a reference added)", () => withField(signedBy(previous), "References", "0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0"), /does not verify/],
    ["a corrupt Sig under our name next to a good one", () => `${signedBy(previous)}Sig: homelab-2:AAAA\n`, /corrupt signature under our key homelab-2/],
    ["unparsable (no final newline)", () => signedBy(previous).slice(0, -1), /corrupt narinfo/],
    ["unparsable (NarHash not sha256)", () => withField(signedBy(previous), "NarHash", "md5:00"), /NarHash/],
  ])("%s is refused and never written", (_what, make, reason) => {
    const d = resignDecision(make(), [active, previous]);
    expect(d.kind).toBe("refused");
    if (d.kind === "refused") expect(d.reason).toMatch(reason);
  });

  test("our keys must be consistent: matching halves, distinct names", () => {
    expect(() => resignDecision(REAL.curl, [{ secretKey: active.secretKey, publicKey: previous.publicKey }])).toThrow(/public half/);
    const sameName = generateKeypair("homelab-2");
    expect(() => resignDecision(REAL.curl, [active, sameName])).toThrow(/two of our keys are named homelab-2/);
  });
});

describe("real Nix 2.8 accepts a signature appended by resignDecision", () => {
  const sandbox = nixSandbox();
  afterAll(() => sandbox.cleanup());

  test("nix copy --from file:// trusting only the new key: refused before, accepted after (hex NarHash too)", () => {
    const dir = sandbox.dir;
    const env = nixEnv(path.join(dir, "host"));
    const run = (args: string[], tool = "nix") => spawnSync(tool, args, { env, cwd: dir, encoding: "utf8", timeout: 60_000 });
    const ok = (args: string[], tool = "nix") => {
      const r = run(args, tool);
      if (r.status !== 0) throw new Error(`${tool} ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
      return r.stdout;
    };
    nixOk(sandbox, "nix", ["--version"]);
    fs.writeFileSync(
      path.join(dir, "p.nix"),
      `derivation { name = "resign-probe"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${crypto.randomBytes(8).toString("hex")} > $out" ]; }`,
    );
    const store = path.join(dir, "store");
    const storePath = ok(["--store", store, "--no-out-link", "p.nix"], "nix-build").trim();
    const cache = path.join(dir, "cache");
    ok(["copy", "--store", store, "--to", `file://${cache}`, storePath]);

    // Key 1 signs as Nix does (nix store sign on the binary cache); key 2 is the new key of a rotation.
    const key1 = generateKeypair("rotate-1");
    const key2 = generateKeypair("rotate-2");
    fs.writeFileSync(path.join(dir, "key1.sec"), key1.secretKey, { mode: 0o600 });
    ok(["store", "sign", "--store", `file://${cache}`, "--key-file", path.join(dir, "key1.sec"), storePath]);
    const narinfoFile = path.join(cache, `${path.basename(storePath).slice(0, 32)}.narinfo`);
    let text = fs.readFileSync(narinfoFile, "utf8");
    expect(text).toMatch(/\nSig: rotate-1:[^\n]+\n$/);
    // NarHash in base16: Nix parses it, our fingerprint re-encodes it.
    const info = parseNarinfo(text);
    text = withField(text, "NarHash", `sha256:${decodeNarHash(info.narHash).toString("hex")}`);
    fs.writeFileSync(narinfoFile, text);

    const copy = (name: string, trusted: string) =>
      run(["copy", "--from", `file://${cache}`, "--to", path.join(dir, name), "--option", "trusted-public-keys", trusted, storePath]);
    const before = copy("store-before", key2.publicKey);
    expect(before.status).not.toBe(0);
    expect(before.stderr).toContain("lacks a valid signature");
    expect(copy("store-key1", key1.publicKey).status).toBe(0);

    const d = resignDecision(text, [key2, key1]);
    expect(d).toMatchObject({ kind: "sign", added: ["rotate-2"] });
    if (d.kind !== "sign") return;
    expect(d.newText.startsWith(text)).toBe(true);
    fs.writeFileSync(narinfoFile, d.newText);

    const after = copy("store-after", key2.publicKey);
    expect(after.stderr).not.toContain("lacks a valid signature");
    expect(after.status).toBe(0);
    expect(fs.existsSync(path.join(dir, "store-after", storePath))).toBe(true);
    // Nix itself sees both signatures.
    const shown = JSON.parse(ok(["path-info", "--store", `file://${cache}`, "--json", "--sigs", storePath])) as { signatures?: string[] }[];
    expect(shown[0].signatures?.map((s) => s.split(":")[0]).sort()).toEqual(["rotate-1", "rotate-2"]);
  });
});
