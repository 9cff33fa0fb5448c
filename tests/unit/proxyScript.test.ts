// `npm run proxy` (scripts/proxy.ts): what it takes from a stack's outputs and settings, its refusal of a public
// stack or missing outputs (exit 2, what to do), and its command line run as npm runs it. Served from a real
// stack: the lead's tests/integration/private.test.ts; the proxy itself: tests/integration/proxy.test.ts.
import { spawnSync } from "child_process";
import { SetupError } from "../../lib/cli/command";
import { tokenHash } from "../../lib/proxy/tokens";
import { proxyFromStack, ProxyStackView } from "../../scripts/proxy";
import { scriptCommand } from "../support/scriptCommand";

const settings = { endpoint: "https://minio.lan:9000", region: "us-east-1", bucket: "nix-cache" };
const outputs = {
  access: "private",
  readerAccessKey: "nixreader",
  readerSecretKey: "reader-secret",
  readerTokens: { laptop: "t-laptop", desk: "t-desk" },
  caCertificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
};
const view = (over: Record<string, unknown> = {}, extra: Partial<ProxyStackView["settings"]> = {}): ProxyStackView => ({
  stackName: "homelab",
  outputs: { ...outputs, ...over },
  settings: { ...settings, ...extra },
});

function refusal(v: ProxyStackView): string {
  try {
    proxyFromStack(v);
  } catch (err) {
    expect(err).toBeInstanceOf(SetupError);
    return (err as Error).message;
  }
  return "no error";
}

test("a private stack: MinIO from the settings, the reader's keys and the CA from the outputs, the tokens' hashes", () => {
  const want = {
    upstream: { endpoint: settings.endpoint, region: "us-east-1", bucket: "nix-cache", accessKey: "nixreader", secretKey: "reader-secret", ca: outputs.caCertificate },
    tokenHashes: new Map([["desk", tokenHash("t-desk")], ["laptop", tokenHash("t-laptop")]]),
  };
  expect(proxyFromStack(view())).toEqual(want);
  // readerTokens as the JSON text of the object; the CA from the setting when the output is empty.
  expect(proxyFromStack(view({ readerTokens: JSON.stringify(outputs.readerTokens), caCertificate: "" }, { caCertificate: "CA" }))).toEqual({
    ...want,
    upstream: { ...want.upstream, ca: "CA" },
  });
  const plain = proxyFromStack(view({ caCertificate: undefined }, { endpoint: "http://127.0.0.1:9000" }));
  expect(plain.upstream).toEqual({ endpoint: "http://127.0.0.1:9000", region: "us-east-1", bucket: "nix-cache", accessKey: "nixreader", secretKey: "reader-secret" });
});

test("a public stack, or one without the reader's outputs: a SetupError saying what to do, never a secret", () => {
  const cases: [ProxyStackView, string][] = [
    [view({ access: "public" }), "stack homelab is not a private cache (its access output is 'public'): the read proxy serves only access=private caches"],
    [view({ access: undefined }), "stack homelab is not a private cache (its access output is missing)"],
    [view({ readerSecretKey: "" }), "stack homelab has no output 'readerSecretKey': run `pulumi up` first"],
    [view({ readerAccessKey: undefined }), "stack homelab has no output 'readerAccessKey'"],
    [view({ readerTokens: undefined }), "stack homelab has no output 'readerTokens' (an object host → token): set nix-cache:readerHosts"],
    [view({ readerTokens: "{not json" }), "stack homelab's output readerTokens is not JSON"],
    [view({ readerTokens: { desk: 1 } }), "has no output 'readerTokens'"],
    [view({ readerTokens: {} }), "stack homelab has no host in readerTokens: set nix-cache:readerHosts and run `pulumi up`"],
    [view({ readerTokens: { "Bad Host": "t" } }), "stack homelab's output readerTokens: tokens: 'Bad Host' is not a host name"],
  ];
  for (const [v, message] of cases) {
    const got = refusal(v);
    expect(got).toContain(message);
    for (const secret of ["reader-secret", "t-desk", "t-laptop"]) expect(got).not.toContain(secret);
  }
});

test("its command line as npm runs it: --help exit 0; no --listen, or a bad one, exit 2 before the stack is read", () => {
  const run = (args: string[]) => {
    const c = scriptCommand("proxy", args);
    return spawnSync(c.file, c.args, { cwd: c.cwd, env: { ...process.env, ...c.env }, encoding: "utf8", timeout: 60_000 });
  };
  const help = run(["--help"]);
  expect([help.status, help.stderr]).toEqual([0, ""]);
  expect(help.stdout).toMatch(/^usage: npm run proxy -- --listen HOST:PORT \[--stack NAME\] \[--tls-cert FILE --tls-key FILE\]\n/);
  const none = run(["--stack", "nowhere"]);
  expect([none.status, none.stderr.split("\n")[0]]).toEqual([2, "proxy: --listen HOST:PORT is required"]);
  const bad = run(["--listen", "8480", "--stack", "nowhere"]);
  expect([bad.status, bad.stderr.split("\n")[0]]).toEqual([2, "proxy: --listen wants HOST:PORT (e.g. 0.0.0.0:8480 or [::]:8480), not '8480'"]);
  const half = run(["--listen", "127.0.0.1:0", "--tls-cert", "c.pem"]);
  expect([half.status, half.stderr.split("\n")[0]]).toEqual([2, "proxy: --tls-cert and --tls-key go together (only --tls-cert given)"]);
});
