// The docs kept true to the code: README.md and docs/*.md against Pulumi.yaml, index.ts, package.json, what
// `host-config --secrets-dir` writes, the builder module's options and verify's checks; and every link stays
// inside the repository and resolves. Reads files and calls pure lib/ functions only, so it is fast.
import * as fs from "fs";
import * as path from "path";
import { builderModule, BUILDER_DEFAULTS, defaultPreviousSigningKeyFiles } from "../../lib/hosts/builderModule";
import { GC_DEFAULTS } from "../../lib/hosts/gcTimerModule";
import { hostFiles, Outputs, SECRET_MARKER, SECRET_OUTPUTS } from "../../lib/hosts/hostFiles";
import { netrcLine } from "../../lib/hosts/privateModules";
import { proxyServiceModule } from "../../lib/hosts/proxyModule";
import { CHECKS } from "../../lib/verify/checks";
import { SETTING_KEYS } from "../../lib/config/settings";
import { keypairFromSeed } from "../../lib/signing/signingKey";

const ROOT = path.resolve(__dirname, "..", "..");
const read = (rel: string) => fs.readFileSync(path.join(ROOT, rel), "utf8");

/** Every doc: the README and each Markdown file of docs/. */
const DOCS = ["README.md", ...fs.readdirSync(path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)];

// ------------------------------------------------------------------------------------------ Markdown helpers

/** The text without fenced code blocks (their lines become empty, so line numbers stay). */
const withoutFences = (text: string): string => {
  let inFence = false;
  return text
    .split("\n")
    .map((line) => {
      if (/^\s*```/.test(line)) {
        inFence = !inFence;
        return "";
      }
      return inFence ? "" : line;
    })
    .join("\n");
};

/** Prose only: no fenced blocks and no inline code spans. */
const prose = (text: string): string => withoutFences(text).replace(/`[^`\n]*`/g, "");

/** The headings of a document (outside fenced blocks): level and text. */
const headings = (text: string): { level: number; title: string }[] =>
  withoutFences(text)
    .split("\n")
    .map((l) => /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ level: m[1].length, title: m[2] }));

/** GitHub's anchors for a document's headings: lower case, punctuation dropped, spaces to '-', repeats numbered. */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const { title } of headings(text)) {
    const base = title
      .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/ /g, "-");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** The text of the section under the heading `title` (any level), up to the next heading of that level or higher. */
function section(text: string, title: string): string {
  const lines = text.split("\n");
  let inFence = false;
  let start = -1;
  let level = 0;
  for (let i = 0; i < lines.length; i++) {
    if (/^\s*```/.test(lines[i])) inFence = !inFence;
    if (inFence) continue;
    const m = /^(#{1,6})\s+(.*?)\s*$/.exec(lines[i]);
    if (!m) continue;
    if (start < 0 && m[2] === title) {
      start = i;
      level = m[1].length;
    } else if (start >= 0 && m[1].length <= level) {
      return lines.slice(start, i).join("\n");
    }
  }
  if (start < 0) throw new Error(`no section "${title}"`);
  return lines.slice(start).join("\n");
}

/** The cells of a table row, split on '|' outside code spans. */
function cells(row: string): string[] {
  const out: string[] = [];
  let cell = "";
  let code = false;
  for (const ch of row.trim().replace(/^\|/, "").replace(/\|$/, "")) {
    if (ch === "`") code = !code;
    if (ch === "|" && !code) {
      out.push(cell.trim());
      cell = "";
    } else cell += ch;
  }
  out.push(cell.trim());
  return out;
}

/** The body rows of the first table in `text` whose header's first cell is `firstHeader`. */
function table(text: string, firstHeader: string): string[][] {
  const lines = withoutFences(text).split("\n");
  const at = lines.findIndex((l, i) => l.trim().startsWith("|") && cells(l)[0] === firstHeader && /^\s*\|[\s|:-]+\|\s*$/.test(lines[i + 1] ?? ""));
  if (at < 0) throw new Error(`no table with the header "${firstHeader}"`);
  const rows: string[][] = [];
  for (let i = at + 2; i < lines.length && lines[i].trim().startsWith("|"); i++) rows.push(cells(lines[i]));
  return rows;
}

/** The code-span names of a cell: "`a`, `b`" -> ["a", "b"]. */
const codeNames = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);

// ---------------------------------------------------------------------------------------------- Pulumi.yaml

/** Pulumi.yaml's `config:` block: each setting with its default as written (undefined: none). */
function pulumiYamlSettings(): Map<string, string | undefined> {
  const lines = read("Pulumi.yaml").split("\n");
  const start = lines.indexOf("config:");
  if (start < 0) throw new Error("Pulumi.yaml has no top-level config:");
  const settings = new Map<string, string | undefined>();
  let current: string | undefined;
  for (const line of lines.slice(start + 1)) {
    if (/^\S/.test(line)) break;
    const key = /^ {2}([A-Za-z][\w]*):\s*$/.exec(line);
    if (key) {
      current = key[1];
      settings.set(current, undefined);
      continue;
    }
    const dflt = /^ {4}default:\s*(.*?)\s*$/.exec(line);
    if (dflt && current) settings.set(current, dflt[1].replace(/^"(.*)"$/, "$1"));
  }
  return settings;
}

describe("settings: docs/settings.md's table is Pulumi.yaml's config", () => {
  const yaml = pulumiYamlSettings();
  const rows = table(read("docs/settings.md"), "setting");
  const documented = new Map(rows.map((r) => [codeNames(r[0])[0], r[1]]));

  test("Pulumi.yaml declares what the program reads (the settings and the admin credentials)", () => {
    expect([...yaml.keys()].sort()).toEqual([...SETTING_KEYS, "adminUser", "adminPassword"].sort());
  });

  test("one row per setting, each naming one setting", () => {
    for (const r of rows) expect([r[0], codeNames(r[0]).length]).toEqual([r[0], 1]);
    expect(documented.size).toBe(rows.length);
  });

  test("every setting of Pulumi.yaml is in the table, and the table has no other", () => {
    expect([...documented.keys()].sort()).toEqual([...yaml.keys()].sort());
  });

  test("each default is Pulumi.yaml's: `value`, 'none: …' for an empty default, 'required' for none", () => {
    for (const [name, dflt] of yaml) {
      const cell = documented.get(name) ?? "";
      if (dflt === undefined) expect([name, cell]).toEqual([name, "required"]);
      else if (dflt === "") expect([name, cell.startsWith("none: ")]).toEqual([name, true]);
      else expect([name, cell]).toEqual([name, `\`${dflt}\``]);
    }
  });

  test("the README sends readers to the one settings table", () => {
    expect(read("README.md")).toContain("[docs/settings.md](docs/settings.md)");
  });
});

// ------------------------------------------------------------------------------------------------- outputs

describe("outputs: the README's table is index.ts's exports", () => {
  const exported = [...read("index.ts").matchAll(/^export const (\w+)/gm)].map((m) => m[1]);
  const rows = table(section(read("README.md"), "The outputs"), "output");

  test("index.ts exports outputs (the pattern finds them)", () => {
    expect(exported).toContain("substituterUrl");
    expect(exported.length).toBeGreaterThan(10);
  });

  test("every stack output is in the table, once, and the table has no other", () => {
    const documented = rows.flatMap((r) => codeNames(r[0]));
    expect([...documented].sort()).toEqual([...exported].sort());
  });

  test("the secret column marks exactly the outputs host-config treats as secret", () => {
    for (const r of rows) {
      for (const name of codeNames(r[0])) expect([name, r[1] === "yes"]).toEqual([name, SECRET_OUTPUTS.includes(name)]);
    }
  });
});

// --------------------------------------------------------------------------------------------- npm scripts

describe("npm run: every command the docs name is a package.json script", () => {
  const scripts = Object.keys((JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts);
  for (const doc of DOCS) {
    test(doc, () => {
      const named = [...read(doc).matchAll(/\bnpm run(?: (?:-s|--silent))? ([a-z][\w:-]*)/g)].map((m) => m[1]);
      expect(named.filter((n) => !scripts.includes(n))).toEqual([]);
    });
  }
  test("the docs name some (the pattern finds them)", () => {
    expect(read("README.md")).toMatch(/npm run demo:pulumi/);
  });
});

// ----------------------------------------------------------------------------------------- host-config files

/** Outputs of a stack in a rotation: KEY_2 active, KEY_1 kept (the key names the docs' examples use). */
const KEY_1 = keypairFromSeed("s3.homelab.local-1", Buffer.alloc(32, 1));
const KEY_2 = keypairFromSeed("s3.homelab.local-2", Buffer.alloc(32, 2));
const CREDS = (profile: string) => `[${profile}]\naws_access_key_id = ${profile}\naws_secret_access_key = secret-of-${profile}\n`;
const REVEALED: Outputs = {
  substituterUrl: "https://s3.homelab.local/nix-cache",
  publicKey: KEY_2.publicKey,
  trustedPublicKeys: [KEY_2.publicKey, KEY_1.publicKey],
  pushUrl: "s3://nix-cache?profile=nixbuilder&endpoint=https://s3.homelab.local&region=us-east-1&compression=zstd&compression-level=9",
  builderAccessKey: "nixbuilder",
  secretKey: KEY_2.secretKey,
  secretKeys: [KEY_2.secretKey, KEY_1.secretKey],
  builderSecretKey: "secret-of-nixbuilder",
  awsCredentials: CREDS("nixbuilder"),
  gcAccessKey: "nixgc",
  gcSecretKey: "secret-of-nixgc",
  gcCredentials: CREDS("nixgc"),
};
const PLAIN: Outputs = Object.fromEntries(Object.entries(REVEALED).map(([k, v]) => [k, SECRET_OUTPUTS.includes(k) ? SECRET_MARKER : v]));
const FILES = hostFiles(PLAIN, REVEALED);
const SECRET_FILES = FILES.secret.map((f) => f.name);

/**
 * The builder module's options that name a secret file, with the file each defaults to under /run/secrets
 * (where sops-nix puts a secret of that name).
 */
const SECRET_OPTIONS: [option: string, file: string][] = [
  ["signingKeyFile", BUILDER_DEFAULTS.signingKeyFile],
  ["awsCredentialsFile", BUILDER_DEFAULTS.awsCredentialsFile],
  ["gc.credentialsFile", GC_DEFAULTS.credentialsFile],
  ["previousSigningKeyFiles", defaultPreviousSigningKeyFiles([KEY_1.publicKey])[0]],
];

describe("secrets: every file host-config --secrets-dir writes is documented and provisioned", () => {
  const hosts = read("docs/hosts.md");
  const secrets = section(hosts, "Secrets: sops-nix or agenix");
  const nixBlocks = (text: string) => [...text.matchAll(/```nix\n([\s\S]*?)```/g)].map((m) => m[1]).join("\n");
  const sops = nixBlocks(section(secrets, "sops-nix"));
  const agenix = nixBlocks(section(secrets, "agenix"));
  const attr = (name: string) => `(?:${name.replace(/[.]/g, "\\.")}|"${name.replace(/[.]/g, "\\.")}")`;

  test("the fixture writes the files of a rotation: the two keys and both credentials files", () => {
    expect(SECRET_FILES.sort()).toEqual(
      ["nix-cache-aws-credentials", "nix-cache-gc-credentials", "nix-cache-signing-key", "nix-cache-signing-key-s3.homelab.local-1"].sort(),
    );
  });

  test("each secret option of the builder module defaults to one of those files under /run/secrets, and every file has one", () => {
    for (const [option, file] of SECRET_OPTIONS) expect([option, path.dirname(file)]).toEqual([option, "/run/secrets"]);
    expect(SECRET_OPTIONS.map(([, f]) => path.basename(f)).sort()).toEqual([...SECRET_FILES].sort());
  });

  test("host-config's file table names every file it writes (a previous key as nix-cache-signing-key-NAME)", () => {
    const named = table(section(hosts, "The files: `npm run host-config`"), "file").flatMap((r) => codeNames(r[0]));
    for (const f of FILES.public) expect(named).toContain(f.name);
    for (const f of SECRET_FILES) expect(named).toContain(`SECRETS_DIR/${f.replace(/s3\.homelab\.local-1$/, "NAME")}`);
  });

  test.each(SECRET_FILES)("the secrets section names %s", (file) => {
    expect(secrets).toContain(file);
  });

  test.each(SECRET_FILES)("the sops-nix example provisions %s (sops-nix's path is the module's default)", (file) => {
    expect(sops).toMatch(new RegExp(`sops\\.secrets\\.${attr(file)}\\s*=`));
    expect(sops).toContain(`./secrets/${file}.bin`);
  });

  test.each(SECRET_OPTIONS)("the agenix example provisions the file of %s and points the option at it", (option, file) => {
    const name = path.basename(file);
    expect(agenix).toMatch(new RegExp(`age\\.secrets\\.${attr(name)}\\.file\\s*=\\s*\\./secrets/${name.replace(/[.]/g, "\\.")}\\.age;`));
    expect(agenix).toMatch(new RegExp(`services\\.nix-cache-builder\\.${option.replace(".", "\\.")}\\s*=.*config\\.age\\.secrets\\.${attr(name)}\\.path`));
  });

  test("every builder module option is in the options table, and the table has no other", () => {
    const module = builderModule({
      pushUrl: String(REVEALED.pushUrl),
      publicKey: KEY_2.publicKey,
      trustedPublicKeys: [KEY_2.publicKey, KEY_1.publicKey],
      // A stand-in script: the option list does not depend on it, and bundling the real one takes time.
      gc: { endpoint: "https://s3.homelab.local", region: "us-east-1", bucket: "nix-cache", profile: "nixgc", retainDays: 7, storeDir: "/nix/store", script: "x\n" },
    });
    const options: string[] = [];
    let group: string | undefined;
    for (const line of module.split("\n")) {
      const open = /^ {4}(\w+) = \{$/.exec(line);
      if (open) group = open[1];
      else if (group && /^ {4}\};$/.test(line)) group = undefined;
      const opt = /^ {4}( {2})?([\w]+) = lib\.mkOption \{$/.exec(line);
      if (opt) options.push(opt[1] && group ? `${group}.${opt[2]}` : opt[2]);
    }
    expect(options).toContain("gc.credentialsFile");
    const documented = table(section(hosts, "The builder host"), "option").flatMap((r) => codeNames(r[0]));
    expect([...documented].sort()).toEqual([...options].sort());
  });
});

// ------------------------------------------------------------------------------------------- private cache

describe("private: docs/private.md and hosts.md name what host-config writes for a private cache, and the proxy's options", () => {
  const hosts = read("docs/hosts.md");
  const priv = read("docs/private.md");
  const tokens = { "web-1": "a".repeat(40) };
  const revealed: Outputs = {
    ...REVEALED,
    access: "private",
    readerAccessKey: "nixreader",
    readerSecretKey: "secret-of-nixreader",
    readerCredentials: CREDS("nixreader"),
    readerSubstituterUrl: "s3://nix-cache?endpoint=https://s3.homelab.local&region=us-east-1&profile=nixreader",
    readerTokens: tokens,
    netrc: { "web-1": netrcLine("https://s3.homelab.local:8480", "web-1", tokens["web-1"]) },
    proxyUrl: "https://s3.homelab.local:8480",
    proxyTokenHashes: "web-1 sha256:00\n",
  };
  const plain: Outputs = Object.fromEntries(Object.entries(revealed).map(([k, v]) => [k, SECRET_OUTPUTS.includes(k) ? SECRET_MARKER : v]));
  // A stand-in script: the file names and options do not depend on it, and bundling the real one takes time.
  const files = hostFiles(plain, revealed, { proxyScript: "x\n" });
  const asDocumented = (name: string) => name.replace(/^nix-cache-netrc-web-1$/, "nix-cache-netrc-HOST");
  const privateOnly = [...files.public, ...files.secret].map((f) => f.name).filter((n) => !FILES.public.concat(FILES.secret).some((f) => f.name === n));

  test("the fixture writes the private files", () => {
    expect(privateOnly.sort()).toEqual(
      ["nix-cache-netrc-web-1", "nix-cache-proxy-client.nix", "nix-cache-proxy-tokens", "nix-cache-proxy.nix", "nix-cache-reader-credentials"].sort(),
    );
  });

  test("hosts.md's file table and private.md name each of them (a host's netrc file as nix-cache-netrc-HOST)", () => {
    const named = table(section(hosts, "The files: `npm run host-config`"), "file").flatMap((r) => codeNames(r[0]));
    for (const f of files.public) expect(named).toContain(f.name);
    for (const f of files.secret) expect(named).toContain(`SECRETS_DIR/${asDocumented(f.name).replace(/s3\.homelab\.local-1$/, "NAME")}`);
    for (const name of privateOnly) expect([name, priv.includes(`\`${asDocumented(name)}\``)]).toEqual([name, true]);
  });

  test("private.md's outputs table marks exactly the outputs host-config treats as secret", () => {
    const rows = table(section(priv, "Outputs"), "output");
    expect(rows.length).toBeGreaterThan(8);
    for (const r of rows) {
      for (const name of codeNames(r[0])) expect([name, r[1] === "yes"]).toEqual([name, SECRET_OUTPUTS.includes(name)]);
    }
  });

  test("every option of the proxy's module is in private.md's options table, and the table has no other", () => {
    const module = proxyServiceModule({ endpoint: "https://s3.homelab.local", region: "us-east-1", bucket: "nix-cache", profile: "nixreader", listen: "0.0.0.0:8480", script: "x\n" });
    const options = [...module.matchAll(/^ {4}(\w+) = lib\.mkOption \{$/gm)].map((m) => m[1]);
    expect(options).toContain("tokensFile");
    const documented = table(section(priv, "For real: the proxy's NixOS module"), "option").flatMap((r) => codeNames(r[0]));
    expect([...documented].sort()).toEqual([...options].sort());
  });

  test("private.md says plainly that a real s3:// pull is not proven here", () => {
    expect(priv).toContain("A real `s3://` pull is not tested");
  });
});

// ------------------------------------------------------------------------------------------------- verify

test("verify: every check is in operations.md's table, and the table has no other", () => {
  const rows = table(section(read("docs/operations.md"), "Check your cache: `npm run verify`"), "check");
  expect(rows.map((r) => codeNames(r[0])[0]).sort()).toEqual([...CHECKS].sort());
});

// --------------------------------------------------------------------------------------------------- links

describe("links: none leaves the repository, each relative one resolves", () => {
  const isInside = (abs: string) => abs === ROOT || abs.startsWith(ROOT + path.sep);

  test("README's map lists every file of docs/", () => {
    const readme = read("README.md");
    for (const doc of DOCS.filter((d) => d !== "README.md")) expect([doc, readme.includes(`](${doc})`)]).toEqual([doc, true]);
  });

  for (const doc of DOCS) {
    describe(doc, () => {
      const text = read(doc);
      const dir = path.dirname(path.join(ROOT, doc));
      const links = [...prose(text).matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]);

      test("no link or bare URL leaves the repository", () => {
        expect(links.filter((l) => /^[a-z][a-z0-9+.-]*:/i.test(l) || l.startsWith("//"))).toEqual([]);
        // GitHub turns a bare URL in prose into a link.
        expect(prose(text).match(/\b(?:https?|ftp):\/\/\S*/g) ?? []).toEqual([]);
        // Nor does the text point at a path outside it (a link in a code span is a link to follow too).
        const escapes = [...text.matchAll(/(?:\.\.\/)+[\w.-][\w./-]*/g)].map((m) => m[0]).filter((p) => !isInside(path.resolve(dir, p)));
        expect(escapes).toEqual([]);
      });

      test("every relative link names a file of the repository, and its #anchor a heading there", () => {
        const broken: string[] = [];
        for (const link of links) {
          const [file, anchor] = link.split("#", 2);
          const target = file === "" ? path.join(ROOT, doc) : path.resolve(dir, decodeURIComponent(file));
          const rel = path.relative(ROOT, target);
          if (!isInside(target)) {
            broken.push(`${link}: outside the repository`);
            continue;
          }
          if (!fs.existsSync(target)) {
            broken.push(`${link}: no such file`);
            continue;
          }
          if (anchor !== undefined && target.endsWith(".md") && !anchors(fs.readFileSync(target, "utf8")).has(anchor)) {
            broken.push(`${link}: no heading with that anchor in ${rel}`);
          }
        }
        expect(broken).toEqual([]);
      });
    });
  }
});
