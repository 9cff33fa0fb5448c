// Every bad setting of tests/support/badSettings.ts gets one clear error naming the setting and what is allowed,
// decided before any resource is declared. Two layers refuse them: Pulumi itself for the keys Pulumi.yaml types
// (integer, boolean: "configuration key 'K' must be of type 'T'"), and lib/config/settings.ts for everything
// (typed keys too, for programs that bypass Pulumi.yaml's types). The engine runs of a few of these cases, with
// a relay that counts connections to MinIO, are in tests/integration/badInput.test.ts.
import * as fs from "fs";
import * as path from "path";
import { parseSettings, RawSettings, SettingsError } from "../../lib/config/settings";
import { BAD_SETTINGS, PASTED_KEY } from "../support/badSettings";

const ENDPOINT = "http://127.0.0.1:9000";
/** Pulumi.yaml's declared config types, key → type: each key under `config:` (two spaces) with its `type:` line. */
const declaredTypes: Record<string, string> = Object.fromEntries(
  [...fs.readFileSync(path.join(__dirname, "..", "..", "Pulumi.yaml"), "utf8").matchAll(/^ {2}(\w+):\n {4}type: (\w+)$/gm)].map((m) => [m[1], m[2]]),
);

const label = (value: string) => (value === PASTED_KEY ? "(a private key)" : JSON.stringify(value));

describe("every bad setting is refused by parseSettings with one message naming it and what is allowed", () => {
  test.each(BAD_SETTINGS.map((c) => [c.setting, label(c.value), c] as const))("nix-cache:%s = %s", (_s, _v, c) => {
    const raw: RawSettings = { endpoint: ENDPOINT, [c.setting]: c.value };
    if (c.setting === "endpoint") raw.endpoint = c.value;
    let error: unknown;
    try {
      parseSettings(raw);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SettingsError);
    const { message, problems } = error as SettingsError;
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^nix-cache:${c.setting} (is|holds) `));
    // Pulumi's own type check answers first for the typed keys (asserted below); ours says "allowed is".
    if (/must be of type/.test(c.allowed.source)) expect(message).toMatch(/allowed is (a whole number|true or false)/);
    else expect(message).toMatch(c.allowed);
    expect(message.includes(PASTED_KEY.split("\n")[1])).toBe(false);
  });
});

describe("the keys whose cases expect Pulumi's type check are typed in Pulumi.yaml", () => {
  const typed = BAD_SETTINGS.filter((c) => /must be of type/.test(c.allowed.source));
  test.each(typed.map((c) => [c.setting, label(c.value), c] as const))("nix-cache:%s = %s", (_s, _v, c) => {
    const type = /must be of type '(\w+)'/.exec(c.allowed.source)?.[1];
    expect(declaredTypes[c.setting]).toBe(type);
  });

  test("Pulumi.yaml's types are read (the reader sees every key)", () => {
    expect(declaredTypes).toMatchObject({ endpoint: "string", priority: "integer", anonymousList: "boolean", previousKeyNames: "array" });
  });

  test("and the others are strings, so only our check refuses them", () => {
    const ours = [...new Set(BAD_SETTINGS.filter((c) => !/must be of type/.test(c.allowed.source)).map((c) => c.setting))];
    expect(ours.length).toBeGreaterThan(5);
    for (const setting of ours) {
      const declared = declaredTypes[setting];
      // expireDays, retainDays and priority are integers whose out-of-range values only we refuse.
      expect([setting, ["string", "integer"].includes(declared)]).toEqual([setting, true]);
    }
  });
});
