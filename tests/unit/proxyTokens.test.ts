// The read proxy's tokens (lib/proxy/tokens.ts): the tokens file's text (hashes only, sorted, one line per host),
// its parser (comments, blank lines, a bad line named by number without quoting a hash), and HTTP Basic checks
// against it (right token, wrong token, another host's token, unknown host, malformed headers).
import * as crypto from "crypto";
import { checkBasicAuth, isHostName, parseTokenHashes, tokenHash, tokenHashesText } from "../../lib/proxy/tokens";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`, "utf8").toString("base64")}`;
const token = () => crypto.randomBytes(30).toString("base64url").slice(0, 40);

describe("tokenHash and tokenHashesText", () => {
  test("tokenHash is sha256: and the lower-case hex of the UTF-8 bytes", () => {
    expect(tokenHash("abc")).toBe("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(tokenHash("é")).toBe(`sha256:${crypto.createHash("sha256").update(Buffer.from([0xc3, 0xa9])).digest("hex")}`);
  });

  test("one line per host, sorted by host, from a record or a map; the tokens themselves never appear", () => {
    const tokens = { laptop: token(), desk: token(), "build-1.lan": token() };
    const text = tokenHashesText(tokens);
    expect(text).toBe(`build-1.lan ${tokenHash(tokens["build-1.lan"])}\ndesk ${tokenHash(tokens.desk)}\nlaptop ${tokenHash(tokens.laptop)}\n`);
    expect(tokenHashesText(new Map(Object.entries(tokens)))).toBe(text);
    for (const t of Object.values(tokens)) expect(text).not.toContain(t);
    expect(tokenHashesText({})).toBe("");
  });

  test("refuses a host the file cannot hold and an empty token", () => {
    for (const bad of ["Desk", "a b", "a:b", "", "-a", "a_b", "a..b"]) {
      expect(isHostName(bad)).toBe(false);
      expect(() => tokenHashesText({ [bad]: "t" })).toThrow("is not a host name");
    }
    expect(() => tokenHashesText({ desk: "" })).toThrow("the token of desk is empty");
  });
});

describe("parseTokenHashes", () => {
  test("reads what tokenHashesText writes, and skips comments and blank lines (CRLF too)", () => {
    const tokens = { desk: token(), laptop: token() };
    const text = tokenHashesText(tokens);
    expect(parseTokenHashes(text)).toEqual(new Map([["desk", tokenHash(tokens.desk)], ["laptop", tokenHash(tokens.laptop)]]));
    const commented = `# written by host-config\r\n\r\n  ${text.replace("\n", "\r\n")}\n# end\n`;
    expect(parseTokenHashes(commented)).toEqual(parseTokenHashes(text));
    expect(parseTokenHashes("")).toEqual(new Map());
  });

  test("a bad line throws naming its number, never quoting the hash", () => {
    const good = `desk ${tokenHash("x")}`;
    const hash = "sha256:" + "A".repeat(64);
    const cases: [string, string][] = [
      [`${good}\ndesk`, "tokens file line 2: want 'HOST sha256:HEX', found 1 field(s)"],
      [`${good}\nlaptop ${tokenHash("y")} extra`, "tokens file line 2: want 'HOST sha256:HEX', found 3 field(s)"],
      [`Laptop ${tokenHash("y")}`, "tokens file line 1: 'Laptop' is not a host name"],
      [`\n\nlaptop ${hash}`, "tokens file line 3: the hash of laptop is not sha256: and 64 lower-case hex digits"],
      [`laptop md5:${"a".repeat(32)}`, "tokens file line 1: the hash of laptop is not sha256:"],
      [`${good}\n${good}`, "tokens file line 2: desk appears a second time"],
    ];
    for (const [text, message] of cases) {
      let thrown: Error | undefined;
      try {
        parseTokenHashes(text);
      } catch (err) {
        thrown = err as Error;
      }
      expect(thrown?.message).toContain(message);
      expect(thrown?.message).not.toContain(hash);
      expect(thrown?.message).not.toMatch(/[0-9a-f]{64}/);
    }
  });
});

describe("checkBasicAuth", () => {
  const desk = token();
  const laptop = token();
  const hashes = parseTokenHashes(tokenHashesText({ desk, laptop }));

  test("the right host and token: that host", () => {
    expect(checkBasicAuth(basic("desk", desk), hashes)).toEqual({ host: "desk" });
    expect(checkBasicAuth(basic("laptop", laptop), hashes)).toEqual({ host: "laptop" });
    // The scheme is case-insensitive (RFC 7617); a token may hold ':'.
    expect(checkBasicAuth(basic("desk", desk).replace("Basic", "bAsIc"), hashes)).toEqual({ host: "desk" });
    const colon = parseTokenHashes(tokenHashesText({ odd: "a:b:c" }));
    expect(checkBasicAuth(basic("odd", "a:b:c"), colon)).toEqual({ host: "odd" });
  });

  test("no header, another scheme, a wrong or another host's token, an unknown host, malformed: undefined", () => {
    const refused = [
      undefined,
      "",
      "Basic",
      "Basic ",
      `Bearer ${desk}`,
      basic("desk", laptop),
      basic("laptop", desk),
      basic("desk", desk.slice(0, -1)),
      basic("desk", `${desk} `),
      basic("desk", ""),
      basic("", desk),
      basic("printer", desk),
      basic("DESK", desk),
      `Basic ${Buffer.from(`desk${desk}`).toString("base64")}`,
      `Basic ${Buffer.from(`desk:${desk}`).toString("base64")}!`,
      `Basic ${Buffer.from(`desk:${desk}`).toString("base64")} extra`,
    ];
    for (const header of refused) expect([header, checkBasicAuth(header, hashes)]).toEqual([header, undefined]);
    expect(checkBasicAuth(basic("desk", desk), new Map())).toBeUndefined();
  });
});
