// What `npm run host-config` writes for given outputs, and how it reads its command line.
import { createHash } from "crypto";
import { AWS_CREDENTIALS_FILE_NAME, builderModule, previousSigningKeyFileName, SIGNING_KEY_FILE_NAME } from "../../lib/hosts/builderModule";
import { SetupError, UsageError } from "../../lib/cli/command";
import { awsCredentials, nixosModule } from "../../lib/hosts/hostConfig";
import { netrcLine, PROXY_TOKENS_FILE_NAME, proxyClientModule, READER_CREDENTIALS_FILE_NAME, readerNixosModule } from "../../lib/hosts/privateModules";
import { proxyServiceModule } from "../../lib/hosts/proxyModule";
import { GC_CREDENTIALS_FILE_NAME } from "../../lib/hosts/gcTimerModule";
import {
  BUILDER_MODULE_FILE,
  CLIENT_MODULE_FILE,
  gcTimerInputOf,
  hostFiles,
  nonSecretOutputs,
  Outputs,
  OUTPUTS_JSON_FILE,
  parseHostConfigArgs,
  PROXY_CLIENT_MODULE_FILE,
  PROXY_MODULE_FILE,
  SECRET_MARKER,
  SECRET_OUTPUTS,
  staleNetrcFiles,
  staleSigningKeyFiles,
  trustedPublicKeysOf,
  USAGE,
} from "../../lib/hosts/hostFiles";

const SECRET_KEY = "s3.homelab.local-1:c2VjcmV0LXNlZWQtYnl0ZXMtc2VjcmV0LXNlZWQtYnl0ZXMtcHVibGljLWhhbGYtcHVibGljLWhhbGYtMTIzNA==";
const BUILDER_SECRET = "b3VpbGRlci1zZWNyZXQtdmFsdWUtMTIzNDU2Nzg5MA";
const CREDENTIALS = `[nixbuilder]\naws_access_key_id = nixbuilder\naws_secret_access_key = ${BUILDER_SECRET}\n`;

const revealed: Outputs = {
  substituterUrl: "https://s3.homelab.local/nix-cache",
  publicKey: "s3.homelab.local-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=",
  pushUrl: "s3://nix-cache?profile=nixbuilder&endpoint=https://s3.homelab.local&region=us-east-1&compression=zstd",
  builderAccessKey: "nixbuilder",
  nixosModule: "…",
  secretKey: SECRET_KEY,
  builderSecretKey: BUILDER_SECRET,
  awsCredentials: CREDENTIALS,
};
/** As `pulumi stack output --json` prints them without --show-secrets. */
const plain: Outputs = { ...revealed, secretKey: SECRET_MARKER, builderSecretKey: SECRET_MARKER, awsCredentials: SECRET_MARKER };

describe("hostFiles", () => {
  test("writes the client module from the lib (the nixosModule output's text), the builder module and the JSON", () => {
    const files = hostFiles(plain);
    expect(files.public.map((f) => f.name)).toEqual([CLIENT_MODULE_FILE, BUILDER_MODULE_FILE, OUTPUTS_JSON_FILE]);
    expect(files.public[0].content).toBe(nixosModule(String(revealed.substituterUrl), String(revealed.publicKey)));
    expect(files.public[1].content).toBe(builderModule({ pushUrl: String(revealed.pushUrl), publicKey: String(revealed.publicKey) }));
    expect(JSON.parse(files.public[2].content)).toEqual({
      builderAccessKey: "nixbuilder",
      nixosModule: "…",
      publicKey: revealed.publicKey,
      pushUrl: revealed.pushUrl,
      substituterUrl: revealed.substituterUrl,
      // A stack deployed before key sets has no trustedPublicKeys output: the JSON has it all the same.
      trustedPublicKeys: [revealed.publicKey],
    });
    expect(files.secret).toEqual([]);
  });

  test("writes the secret files only from the revealed outputs, the key without a trailing newline", () => {
    const files = hostFiles(plain, { ...revealed, secretKey: `${SECRET_KEY}\n` });
    expect(files.secret).toEqual([
      { name: SIGNING_KEY_FILE_NAME, content: SECRET_KEY },
      { name: AWS_CREDENTIALS_FILE_NAME, content: CREDENTIALS },
    ]);
    const publicText = files.public.map((f) => f.content).join("\n");
    expect([SECRET_KEY.split(":")[1], BUILDER_SECRET].map((s) => publicText.includes(s))).toEqual([false, false]);
  });

  test("keeps known secrets out of the public files even when the outputs were not masked", () => {
    const files = hostFiles(revealed);
    const publicText = files.public.map((f) => f.content).join("\n");
    expect([SECRET_KEY.split(":")[1], BUILDER_SECRET].map((s) => publicText.includes(s))).toEqual([false, false]);
  });

  test("names a missing output and what to do", () => {
    const { pushUrl: _, ...withoutPush } = plain;
    expect(() => hostFiles(withoutPush)).toThrow("the stack has no 'pushUrl' output: run `pulumi up` on it first");
    expect(() => hostFiles(plain, { ...revealed, secretKey: SECRET_MARKER })).toThrow("no 'secretKey' output");
    expect(() => hostFiles(withoutPush)).toThrow(SetupError);
  });
});

describe("hostFiles with the GC identity (outputs gcAccessKey, gcSecretKey, gcCredentials, retention, retainDays)", () => {
  const GC_SECRET = "Z2Mtc2VjcmV0LXZhbHVlLTk4NzY1NDMyMTA";
  const GC_CREDENTIALS = `[nixgc]\naws_access_key_id = nixgc\naws_secret_access_key = ${GC_SECRET}\n`;
  const gcRevealed: Outputs = { ...revealed, gcAccessKey: "nixgc", gcSecretKey: GC_SECRET, gcCredentials: GC_CREDENTIALS, retention: "gc", retainDays: 7 };
  const gcPlain: Outputs = { ...plain, gcAccessKey: "nixgc", gcSecretKey: SECRET_MARKER, gcCredentials: SECRET_MARKER, retention: "gc", retainDays: 7 };

  test("--secrets-dir gets the GC identity's credentials file, from the revealed outputs only", () => {
    const files = hostFiles(gcPlain, gcRevealed);
    expect(files.secret).toEqual([
      { name: SIGNING_KEY_FILE_NAME, content: SECRET_KEY },
      { name: AWS_CREDENTIALS_FILE_NAME, content: CREDENTIALS },
      { name: GC_CREDENTIALS_FILE_NAME, content: GC_CREDENTIALS },
    ]);
    expect(files.notes).toEqual([]);
    expect(hostFiles(gcPlain).secret).toEqual([]);
  });

  test("the GC's secrets never reach the public files, even from unmasked outputs", () => {
    expect(SECRET_OUTPUTS).toEqual(expect.arrayContaining(["gcSecretKey", "gcCredentials"]));
    const publicText = hostFiles(gcRevealed).public.map((f) => f.content).join("\n");
    expect(publicText.includes(GC_SECRET)).toBe(false);
    const json = JSON.parse(hostFiles(gcRevealed).public[2].content) as Outputs;
    expect([json.gcAccessKey, json.retention, json.retainDays, "gcSecretKey" in json, "gcCredentials" in json]).toEqual(["nixgc", "gc", 7, false, false]);
  });

  test("a stack from before the GC identity: no GC credentials file, and a note that says what to do", () => {
    const files = hostFiles(plain, revealed);
    expect(files.secret.map((f) => f.name)).toEqual([SIGNING_KEY_FILE_NAME, AWS_CREDENTIALS_FILE_NAME]);
    expect(files.notes).toEqual([
      `no ${GC_CREDENTIALS_FILE_NAME} written: the stack has no 'gcCredentials' output (deployed before the GC identity); ` +
        "run `pulumi up` on it, then host-config again, so the builder's daily GC can run",
    ]);
    expect(hostFiles(plain).notes).toEqual([]);
  });

  test("a masked or empty gcCredentials output is refused, never written", () => {
    expect(() => hostFiles(gcPlain, { ...gcRevealed, gcCredentials: SECRET_MARKER })).toThrow("the stack has no 'gcCredentials' output");
    expect(() => hostFiles(gcPlain, { ...gcRevealed, gcCredentials: "" })).toThrow(SetupError);
  });

  test("gcTimerInputOf: the GC service's settings from the plain outputs (the push URL's endpoint, the GC user as profile)", () => {
    expect(gcTimerInputOf(gcPlain)).toEqual({
      endpoint: "https://s3.homelab.local",
      region: "us-east-1",
      bucket: "nix-cache",
      profile: "nixgc",
      retainDays: 7,
      storeDir: "/nix/store",
    });
    expect(gcTimerInputOf({ ...gcPlain, storeDir: "/gnu/store", retainDays: 30 })).toMatchObject({ storeDir: "/gnu/store", retainDays: 30 });
    // A stack from before the GC identity: no timer input (the module then has no GC).
    expect([gcTimerInputOf(plain), gcTimerInputOf({ ...gcPlain, retainDays: null })]).toEqual([undefined, undefined]);
    expect(() => gcTimerInputOf({ ...gcPlain, gcAccessKey: SECRET_MARKER })).toThrow("'gcAccessKey' output is not the GC user's name");
    expect(() => gcTimerInputOf({ ...gcPlain, retainDays: "7" })).toThrow("'retainDays' output is not a whole number of days");
    expect(() => gcTimerInputOf({ ...gcPlain, retainDays: 0 })).toThrow(SetupError);
  });
});

describe("hostFiles for a set of keys", () => {
  // Key 2 is active, key 1 kept in nix-cache:previousKeyNames.
  const PUB_2 = "s3.homelab.local-2:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
  const SECRET_2 = "s3.homelab.local-2:a2V5LXR3by1zZWVkLWJ5dGVzLWtleS10d28tc2VlZC1ieXRlcy1wdWJsaWMtaGFsZi10d28tMTIzNDU2Nzg=";
  const rotated: Outputs = {
    ...revealed,
    publicKey: PUB_2,
    trustedPublicKeys: [PUB_2, String(revealed.publicKey)],
    secretKey: SECRET_2,
    secretKeys: [SECRET_2, SECRET_KEY],
  };
  const rotatedPlain: Outputs = { ...rotated, secretKey: SECRET_MARKER, secretKeys: SECRET_MARKER, builderSecretKey: SECRET_MARKER, awsCredentials: SECRET_MARKER };
  const secretParts = [SECRET_KEY, SECRET_2].map((k) => k.split(":")[1]);

  test("the client and builder modules trust every key, the active first; the JSON lists them", () => {
    const files = hostFiles(rotatedPlain);
    const trusted = [PUB_2, String(revealed.publicKey)];
    expect(files.public[0].content).toBe(nixosModule(String(revealed.substituterUrl), trusted));
    expect(files.public[0].content).toContain(`"${PUB_2}"\n      "${revealed.publicKey}"\n`);
    expect(files.public[1].content).toBe(builderModule({ pushUrl: String(revealed.pushUrl), publicKey: PUB_2, trustedPublicKeys: trusted }));
    expect(files.public[1].content).toContain('default = [ "/run/secrets/nix-cache-signing-key-s3.homelab.local-1" ];');
    const json = JSON.parse(files.public[2].content);
    expect(json.trustedPublicKeys).toEqual(trusted);
    expect(json.publicKey).toBe(PUB_2);
    expect(Object.keys(json)).not.toContain("secretKeys");
  });

  test("--secrets-dir: the active key where it always was, each previous key in a file named by its key name", () => {
    const files = hostFiles(rotatedPlain, { ...rotated, secretKeys: [`${SECRET_2}\n`, `${SECRET_KEY}\n`] });
    expect(files.secret).toEqual([
      { name: SIGNING_KEY_FILE_NAME, content: SECRET_2 },
      { name: "nix-cache-signing-key-s3.homelab.local-1", content: SECRET_KEY },
      { name: AWS_CREDENTIALS_FILE_NAME, content: CREDENTIALS },
    ]);
    expect(previousSigningKeyFileName("s3.homelab.local-1")).toBe(files.secret[1].name);
    const publicText = files.public.map((f) => f.content).join("\n");
    expect(secretParts.map((s) => publicText.includes(s))).toEqual([false, false]);
  });

  test("three keys: one secret file per key, in the order of the keys", () => {
    const PUB_3 = "s3.homelab.local-3:6Xqc6rBOEk7fBtqxmTaJhbSDmMQSrd/9MnWOnBbJ6tk=";
    const SECRET_3 = "s3.homelab.local-3:dGhyZWU=";
    const three: Outputs = {
      ...rotated,
      publicKey: PUB_3,
      trustedPublicKeys: [PUB_3, PUB_2, String(revealed.publicKey)],
      secretKey: SECRET_3,
      secretKeys: [SECRET_3, SECRET_2, SECRET_KEY],
    };
    const files = hostFiles({ ...three, secretKey: SECRET_MARKER, secretKeys: SECRET_MARKER }, three);
    expect(files.secret.map((f) => f.name)).toEqual([
      SIGNING_KEY_FILE_NAME, "nix-cache-signing-key-s3.homelab.local-2", "nix-cache-signing-key-s3.homelab.local-1", AWS_CREDENTIALS_FILE_NAME,
    ]);
    expect(files.public[1].content).toContain(
      'default = [ "/run/secrets/nix-cache-signing-key-s3.homelab.local-2" "/run/secrets/nix-cache-signing-key-s3.homelab.local-1" ];',
    );
  });

  test("secretKeys is a known secret: kept out of the public files even when the outputs were not masked", () => {
    expect(SECRET_OUTPUTS).toContain("secretKeys");
    const files = hostFiles(rotated);
    const publicText = files.public.map((f) => f.content).join("\n");
    expect(secretParts.map((s) => publicText.includes(s))).toEqual([false, false]);
  });

  test("key lists that do not fit together are refused, naming keys, never a secret", () => {
    const messages: string[] = [];
    const refused = (plainOut: Outputs, revealedOut?: Outputs) => {
      try {
        hostFiles(plainOut, revealedOut);
      } catch (e) {
        expect(e).toBeInstanceOf(SetupError);
        messages.push((e as Error).message);
        return (e as Error).message;
      }
      throw new Error("not refused");
    };
    expect(refused({ ...rotatedPlain, trustedPublicKeys: [String(revealed.publicKey), PUB_2] })).toContain(
      "'trustedPublicKeys' output does not start with its 'publicKey'",
    );
    expect(refused({ ...rotatedPlain, trustedPublicKeys: [PUB_2, PUB_2.replace("11q", "22q")] })).toContain(
      "has two keys named 's3.homelab.local-2'",
    );
    expect(refused({ ...rotatedPlain, trustedPublicKeys: SECRET_MARKER })).toContain("'trustedPublicKeys' output is secret");
    expect(refused({ ...rotatedPlain, trustedPublicKeys: [] })).toContain("not a list of Nix keys");
    expect(refused({ ...rotatedPlain, trustedPublicKeys: "s3.homelab.local-2:x" })).toContain("not a list of Nix keys");
    const mismatch = "'secretKeys' output does not match its keys (s3.homelab.local-2, s3.homelab.local-1, the active first";
    expect(refused(rotatedPlain, { ...rotated, secretKeys: [SECRET_2] })).toContain(mismatch);
    expect(refused(rotatedPlain, { ...rotated, secretKeys: [SECRET_KEY, SECRET_2] })).toContain(mismatch);
    expect(refused(rotatedPlain, { ...rotated, secretKeys: [SECRET_2, SECRET_2.replace("-2:", "-9:")] })).toContain(mismatch);
    expect(refused(rotatedPlain, { ...rotated, secretKey: SECRET_KEY })).toContain(mismatch);
    // A stack with two trusted keys but no secretKeys output (cannot happen, but never half a key set).
    const { secretKeys: _, ...noSecretKeys } = rotated;
    expect(refused(rotatedPlain, noSecretKeys)).toContain(mismatch);
    expect(secretParts.map((p) => messages.some((m) => m.includes(p)))).toEqual([false, false]);
  });

  test("trustedPublicKeysOf: the output, or [publicKey] for an older stack", () => {
    expect(trustedPublicKeysOf(rotatedPlain)).toEqual([PUB_2, revealed.publicKey]);
    expect(trustedPublicKeysOf(plain)).toEqual([revealed.publicKey]);
    expect(trustedPublicKeysOf({ ...plain, trustedPublicKeys: null })).toEqual([revealed.publicKey]);
  });
});

describe("hostFiles for a private cache (access=private: the reader, the proxy and its hosts)", () => {
  const READER_SECRET = "cmVhZGVyLXNlY3JldC12YWx1ZS0xMjM0NTY3ODkw";
  const TOKENS = { "web-1": "Zq3xV9kLmN2pR7sT1uW4yA6bC8dE0fG5hJ1kL3mN", "db.lan": "Pp0oO9iI8uU7yY6tT5rR4eE3wW2qQ1aAsSdDfFgG" };
  const PROXY_URL = "https://s3.homelab.local:8480";
  const READER_URL = "s3://nix-cache?endpoint=https://s3.homelab.local&region=us-east-1&profile=nixreader";
  const CA = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2hlY2tlZA==\n-----END CERTIFICATE-----\n";
  const SCRIPT = "// the proxy's script, a stand-in\n";
  const sha256 = (t: string) => createHash("sha256").update(t, "utf8").digest("hex");
  const hashes = Object.keys(TOKENS).sort().map((h) => `${h} sha256:${sha256(TOKENS[h as keyof typeof TOKENS])}\n`).join("");
  const netrc = Object.fromEntries(Object.entries(TOKENS).map(([h, t]) => [h, netrcLine(PROXY_URL, h, t)]));
  /** The outputs of the contract (docs: private-contract.md), secrets shown. */
  const privRevealed: Outputs = {
    ...revealed,
    caCertificate: CA,
    access: "private",
    readerAccessKey: "nixreader",
    readerSecretKey: READER_SECRET,
    readerCredentials: awsCredentials("nixreader", "nixreader", READER_SECRET),
    readerSubstituterUrl: READER_URL,
    readerTokens: TOKENS,
    netrc,
    proxyUrl: PROXY_URL,
    proxyTokenHashes: hashes,
    proxyClientModule: "…",
  };
  const privPlain: Outputs = Object.fromEntries(Object.entries(privRevealed).map(([k, v]) => [k, SECRET_OUTPUTS.includes(k) ? SECRET_MARKER : v]));
  const files = (p: Outputs, r?: Outputs) => hostFiles(p, r, { proxyScript: SCRIPT });
  const secretValues = [READER_SECRET, ...Object.values(TOKENS), SECRET_KEY.split(":")[1], BUILDER_SECRET];

  test("the four reader outputs are known secrets", () => {
    expect(SECRET_OUTPUTS).toEqual(expect.arrayContaining(["readerSecretKey", "readerCredentials", "readerTokens", "netrc"]));
    expect(privPlain).toMatchObject({ readerSecretKey: SECRET_MARKER, readerCredentials: SECRET_MARKER, readerTokens: SECRET_MARKER, netrc: SECRET_MARKER });
  });

  test("--out: the reader's S3 module as nix-cache.nix, the builder's, the JSON, the proxy's and its clients' modules", () => {
    const f = files(privPlain);
    expect(f.public.map((x) => x.name)).toEqual([CLIENT_MODULE_FILE, BUILDER_MODULE_FILE, OUTPUTS_JSON_FILE, PROXY_MODULE_FILE, PROXY_CLIENT_MODULE_FILE]);
    const keys = [String(revealed.publicKey)];
    expect(f.public[0].content).toBe(readerNixosModule({ substituter: READER_URL, publicKeys: keys, caCertificate: CA }));
    expect(f.public[3].content).toBe(
      proxyServiceModule({
        endpoint: "https://s3.homelab.local",
        region: "us-east-1",
        bucket: "nix-cache",
        profile: "nixreader",
        listen: "0.0.0.0:8480",
        script: SCRIPT,
        caCertificate: CA,
      }),
    );
    expect(f.public[4].content).toBe(proxyClientModule({ proxyUrl: PROXY_URL, publicKeys: keys, caCertificate: CA }));
    const json = JSON.parse(f.public[2].content) as Outputs;
    expect([json.access, json.readerAccessKey, json.readerSubstituterUrl, json.proxyUrl, json.proxyTokenHashes]).toEqual([
      "private", "nixreader", READER_URL, PROXY_URL, hashes,
    ]);
    expect(["readerSecretKey", "readerCredentials", "readerTokens", "netrc"].filter((k) => k in json)).toEqual([]);
    expect(f.secret).toEqual([]);
  });

  test("--secrets-dir: the reader's credentials, the tokens file and one netrc file per host, from the revealed outputs", () => {
    const f = files(privPlain, privRevealed);
    expect(f.secret.slice(2)).toEqual([
      { name: READER_CREDENTIALS_FILE_NAME, content: `[nixreader]\naws_access_key_id = nixreader\naws_secret_access_key = ${READER_SECRET}\n` },
      { name: PROXY_TOKENS_FILE_NAME, content: hashes },
      { name: "nix-cache-netrc-db.lan", content: `machine s3.homelab.local login db.lan password ${TOKENS["db.lan"]}\n` },
      { name: "nix-cache-netrc-web-1", content: `machine s3.homelab.local login web-1 password ${TOKENS["web-1"]}\n` },
    ]);
    expect(f.secret.slice(0, 2).map((x) => x.name)).toEqual([SIGNING_KEY_FILE_NAME, AWS_CREDENTIALS_FILE_NAME]);
  });

  test("no secret reaches --out, even from unmasked outputs (the secrets do reach --secrets-dir)", () => {
    for (const f of [files(privPlain, privRevealed), files(privRevealed, privRevealed)]) {
      const publicText = f.public.map((x) => x.content).join("\n");
      expect(secretValues.map((v) => publicText.includes(v))).toEqual(secretValues.map(() => false));
      const secretText = f.secret.map((x) => x.content).join("\n");
      expect(secretValues.slice(0, 3).map((v) => secretText.includes(v))).toEqual([true, true, true]);
    }
  });

  test("an http endpoint in the bare form (endpoint=HOST:PORT&scheme=http), a proxy URL without a port", () => {
    const p = { ...privPlain, readerSubstituterUrl: "s3://c?endpoint=127.0.0.1:9000&region=eu-west-1&profile=c-reader&scheme=http", proxyUrl: "https://cache.lan" };
    const proxy = files(p).public[3].content;
    expect(proxy).toBe(
      proxyServiceModule({ endpoint: "http://127.0.0.1:9000", region: "eu-west-1", bucket: "c", profile: "nixreader", listen: "0.0.0.0:443", script: SCRIPT, caCertificate: CA }),
    );
    expect(proxy).not.toContain("BEGIN CERTIFICATE");
    expect(files({ ...p, proxyUrl: "http://cache.lan" }).public[3].content).toContain('default = "0.0.0.0:80";');
  });

  test("no readerHosts: no netrc file, the rest as ever", () => {
    const f = files({ ...privPlain, proxyTokenHashes: "" }, { ...privRevealed, readerTokens: {}, netrc: {}, proxyTokenHashes: "" });
    expect(f.secret.slice(2)).toEqual([
      { name: READER_CREDENTIALS_FILE_NAME, content: privRevealed.readerCredentials },
      { name: PROXY_TOKENS_FILE_NAME, content: "" },
    ]);
    const { proxyTokenHashes: _, ...noHashes } = privPlain;
    expect(() => files(noHashes, privRevealed)).toThrow("the stack has no 'proxyTokenHashes' output");
  });

  test("a missing, masked or malformed output is named, with what to do, never with a secret", () => {
    const { readerSubstituterUrl: _, ...noUrl } = privPlain;
    expect(() => files(noUrl)).toThrow("the stack has no 'readerSubstituterUrl' output: run `pulumi up` on it first");
    expect(() => files({ ...privPlain, proxyUrl: SECRET_MARKER })).toThrow("no 'proxyUrl' output");
    expect(() => files({ ...privPlain, proxyUrl: "ftp://x" })).toThrow("'proxyUrl' output is not an http(s) URL");
    expect(() => files({ ...privPlain, readerSubstituterUrl: "https://x/nix-cache" })).toThrow("'readerSubstituterUrl' output is not an s3:// store URL");
    expect(() => files({ ...privPlain, access: "secret" })).toThrow(`'access' output is neither "public" nor "private"`);
    expect(() => files(privPlain, { ...privRevealed, netrc: SECRET_MARKER })).toThrow("the stack has no 'netrc' output");
    expect(() => files(privPlain, { ...privRevealed, readerCredentials: SECRET_MARKER })).toThrow("no 'readerCredentials' output");
    expect(() => files(privPlain, { ...privRevealed, netrc: ["x"] })).toThrow("'netrc' output is not an object of host names");
    const bads: Outputs[] = [{ "../etc": netrc["web-1"] }, { "web-1": `password ${TOKENS["web-1"]}` }, { "web-1": `${netrc["web-1"]}\nmachine x` }];
    for (const bad of bads) {
      let message = "";
      try {
        files(privPlain, { ...privRevealed, netrc: bad });
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toMatch(/^the stack's 'netrc' output has no netrc line for host '(\.\.\/etc|web-1)' that host-config can write/);
      expect(message.includes(TOKENS["web-1"])).toBe(false);
    }
  });

  test("access=public (or no access output, a stack from before the setting): exactly the public files", () => {
    const asPublic = hostFiles({ ...plain, access: "public" }, { ...revealed, access: "public" });
    const before = hostFiles(plain, revealed);
    expect(asPublic.secret).toEqual(before.secret);
    expect(asPublic.public.filter((f) => f.name !== OUTPUTS_JSON_FILE)).toEqual(before.public.filter((f) => f.name !== OUTPUTS_JSON_FILE));
    expect(JSON.parse(asPublic.public[2].content)).toEqual({ ...JSON.parse(before.public[2].content), access: "public" });
    expect(hostFiles({ ...plain, access: "public" }).public.map((f) => f.name)).toEqual([CLIENT_MODULE_FILE, BUILDER_MODULE_FILE, OUTPUTS_JSON_FILE]);
  });

  test("--help names the private files", () => {
    for (const name of [PROXY_MODULE_FILE, PROXY_CLIENT_MODULE_FILE, READER_CREDENTIALS_FILE_NAME, PROXY_TOKENS_FILE_NAME, "nix-cache-netrc-HOST"]) {
      expect([name, USAGE.includes(name)]).toEqual([name, true]);
    }
  });
});

describe("staleNetrcFiles", () => {
  test("names netrc files of hosts no longer in readerHosts, and nothing else", () => {
    const written = [{ name: READER_CREDENTIALS_FILE_NAME, content: "" }, { name: "nix-cache-netrc-web-1", content: "" }];
    const existing = [READER_CREDENTIALS_FILE_NAME, "nix-cache-netrc-web-1", "nix-cache-netrc-old", "nix-cache-netrc-db.lan", SIGNING_KEY_FILE_NAME];
    expect(staleNetrcFiles(existing, written)).toEqual(["nix-cache-netrc-db.lan", "nix-cache-netrc-old"]);
    expect(staleNetrcFiles(existing.slice(0, 2), written)).toEqual([]);
  });
});

describe("staleSigningKeyFiles", () => {
  test("names signing-key files of keys the stack no longer has, and nothing else", () => {
    const written = [
      { name: SIGNING_KEY_FILE_NAME, content: "" },
      { name: "nix-cache-signing-key-s3.homelab.local-2", content: "" },
      { name: AWS_CREDENTIALS_FILE_NAME, content: "" },
    ];
    const existing = [
      SIGNING_KEY_FILE_NAME, AWS_CREDENTIALS_FILE_NAME, "nix-cache-signing-key-s3.homelab.local-2",
      "nix-cache-signing-key-s3.homelab.local-1", "notes.txt", "nix-cache-signing-key-s3.homelab.local-0",
    ];
    expect(staleSigningKeyFiles(existing, written)).toEqual(["nix-cache-signing-key-s3.homelab.local-0", "nix-cache-signing-key-s3.homelab.local-1"]);
    expect(staleSigningKeyFiles(existing.slice(0, 3), written)).toEqual([]);
  });
});

describe("nonSecretOutputs", () => {
  test("drops masked values and known secret names, and sorts by name", () => {
    expect(nonSecretOutputs({ z: 1, awsCredentials: "x", a: SECRET_MARKER, m: true, b: "ok" })).toEqual({ b: "ok", m: true, z: 1 });
    expect(Object.keys(nonSecretOutputs({ z: 1, b: "ok" }))).toEqual(["b", "z"]);
  });
});

describe("parseHostConfigArgs", () => {
  test("reads --stack, --out and --secrets-dir in both forms, relative to the user's directory", () => {
    expect(parseHostConfigArgs(["--stack", "homelab", "--out", "hosts", "--secrets-dir=/root/secrets"], "/home/me")).toEqual({
      stack: "homelab",
      out: "/home/me/hosts",
      secretsDir: "/root/secrets",
    });
    expect(parseHostConfigArgs(["--out=/etc/nixos/nix-cache"], "/x")).toEqual({ stack: undefined, out: "/etc/nixos/nix-cache", secretsDir: undefined });
    expect(parseHostConfigArgs(["--out", "x", "--help"], "/x")).toBe("help");
  });

  test("rejects bad command lines with one clear message", () => {
    expect(() => parseHostConfigArgs([], "/x")).toThrow("--out DIR is required");
    expect(() => parseHostConfigArgs(["--out"], "/x")).toThrow("--out needs a value");
    expect(() => parseHostConfigArgs(["--out", "--stack", "s"], "/x")).toThrow("--out needs a value");
    expect(() => parseHostConfigArgs(["--out", "x", "--secret-dir", "y"], "/x")).toThrow(
      "unknown argument '--secret-dir' (allowed: --stack NAME, --out DIR, --secrets-dir DIR)",
    );
    expect(() => parseHostConfigArgs(["--out", "x", "extra"], "/x")).toThrow("unknown argument 'extra'");
    // Usage errors: the command prints the usage after the message and exits 2.
    for (const argv of [[], ["--out"], ["--out", "x", "--bogus"], ["--out", "x", "--secrets-dir", "x/s"]]) {
      expect(() => parseHostConfigArgs(argv, "/x")).toThrow(UsageError);
    }
  });

  test("refuses a secrets directory that is the output directory or inside it", () => {
    expect(() => parseHostConfigArgs(["--out", "flake/hosts", "--secrets-dir", "flake/hosts"], "/x")).toThrow(
      "--secrets-dir (/x/flake/hosts) must not be --out or inside it",
    );
    expect(() => parseHostConfigArgs(["--out", "flake", "--secrets-dir", "flake/secrets"], "/x")).toThrow("must not be --out or inside it");
    expect(parseHostConfigArgs(["--out", "flake", "--secrets-dir", "flake-secrets"], "/x")).toMatchObject({ secretsDir: "/x/flake-secrets" });
  });
});
