// provider/schema.ts: the package schema the plugin answers GetSchema with. It is valid JSON, names every type the
// plugin serves, flags NixCache as a component whose inputs are NixCacheArgs (descriptions from its TSDoc) and whose
// outputs are what index.ts exports, with every secret output marked secret.
import * as fs from "fs";
import * as path from "path";
import * as ts from "typescript";
import { NIX_CACHE_TOKEN, nixCacheSchema, PRIVATE_ONLY, SchemaProperty, SchemaResource } from "../../provider/schema";
import { RESOURCE_KINDS, tokenOf } from "../../resources/kinds";

const ROOT = path.resolve(__dirname, "..", "..");

interface Schema {
  name: string;
  version: string;
  resources: Record<string, SchemaResource>;
  types: Record<string, { type: string; properties: Record<string, SchemaProperty>; required: string[] }>;
  config: { variables: Record<string, SchemaProperty> };
}

const schema = JSON.parse(nixCacheSchema("0.1.0")) as Schema;
const component = schema.resources[NIX_CACHE_TOKEN];

/** An interface's or class's members in a source file: name → [TSDoc text (one line), type text]. */
function members(file: string, name: string): Map<string, [string, string]> {
  const source = ts.createSourceFile(file, fs.readFileSync(path.join(ROOT, file), "utf8"), ts.ScriptTarget.ES2022, true);
  const found = new Map<string, [string, string]>();
  const visit = (node: ts.Node): void => {
    if ((ts.isInterfaceDeclaration(node) || ts.isClassDeclaration(node)) && node.name?.text === name) {
      for (const member of node.members) {
        if (!(ts.isPropertySignature(member) || ts.isPropertyDeclaration(member)) || !ts.isIdentifier(member.name)) continue;
        const doc = ts
          .getJSDocCommentsAndTags(member)
          .map((d) => (typeof d.comment === "string" ? d.comment : ""))
          .join(" ")
          .replace(/\s+/g, " ")
          .trim();
        found.set(member.name.text, [doc, member.type?.getText(source) ?? ""]);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The schema type a TypeScript type of NixCacheArgs / NixCache maps to. */
function schemaTypeOf(tsType: string): string {
  if (/\[\]|string\[\]>/.test(tsType)) return "array";
  if (/Record</.test(tsType)) return "object";
  if (/boolean/.test(tsType)) return "boolean";
  if (/number/.test(tsType)) return "integer";
  return "string";
}

test("valid JSON with the package's name and the version it is given", () => {
  expect(schema.name).toBe("nix-cache");
  expect(schema.version).toBe("0.1.0");
  expect(JSON.parse(nixCacheSchema("1.2.3")).version).toBe("1.2.3");
});

test("every type the plugin serves is there, and nothing else; only NixCache is a component", () => {
  const tokens = [NIX_CACHE_TOKEN, ...RESOURCE_KINDS.map(tokenOf)];
  expect(Object.keys(schema.resources).sort()).toEqual([...tokens].sort());
  expect(Object.keys(schema.resources)).toHaveLength(13);
  expect(component.isComponent).toBe(true);
  for (const kind of RESOURCE_KINDS) expect(schema.resources[tokenOf(kind)].isComponent).toBeUndefined();
});

test("NixCache's inputs are NixCacheArgs' fields, typed, described by their TSDoc; only endpoint is required", () => {
  const args = members("components/nixCache.ts", "NixCacheArgs");
  expect(args.size).toBeGreaterThan(20);
  expect(Object.keys(component.inputProperties)).toEqual([...args.keys()]);
  for (const [name, [doc, type]] of args) {
    const p = component.inputProperties[name];
    expect({ name, description: p.description, type: p.type }).toEqual({ name, description: doc, type: schemaTypeOf(type) });
  }
  expect(component.requiredInputs).toEqual(["endpoint"]);
  // The two secret settings are secret inputs too.
  const secretInputs = Object.entries(component.inputProperties).filter(([, p]) => p.secret).map(([n]) => n);
  expect(secretInputs.sort()).toEqual(["builderPassword", "importKeys"]);
});

test("NixCache's outputs are index.ts's exports, described by NixCache's TSDoc, each secret one marked secret", () => {
  const exported = [...fs.readFileSync(path.join(ROOT, "index.ts"), "utf8").matchAll(/^export const (\w+) =/gm)].map((m) => m[1]);
  expect(Object.keys(component.properties)).toEqual(exported);
  const fields = members("components/nixCache.ts", "NixCache");
  const reader = members("components/nixCache.ts", "PrivateReadOutputs");
  const readerField: Record<string, string> = {
    readerAccessKey: "accessKey",
    readerSecretKey: "secretKey",
    readerCredentials: "credentials",
    readerSubstituterUrl: "substituterUrl",
    readerTokens: "tokens",
    netrc: "netrc",
    proxyUrl: "proxyUrl",
    proxyTokenHashes: "proxyTokenHashes",
    proxyClientModule: "proxyClientModule",
  };
  for (const name of exported) {
    const p = component.properties[name];
    const [doc, type] = readerField[name] ? (reader.get(readerField[name]) ?? ["", ""]) : (fields.get(name) ?? ["", ""]);
    const description = readerField[name] ? `${doc}${PRIVATE_ONLY}` : doc;
    // A TSDoc that says "(secret)" is a secret output, and only those.
    expect({ name, description: p.description, type: p.type, secret: p.secret ?? false }).toEqual({
      name,
      description,
      type: schemaTypeOf(type),
      secret: doc.includes("(secret)"),
    });
  }
  const secrets = Object.entries(component.properties).filter(([, p]) => p.secret).map(([n]) => n);
  expect(secrets.sort()).toEqual(
    ["awsCredentials", "builderSecretKey", "gcCredentials", "gcSecretKey", "netrc", "readerCredentials", "readerSecretKey", "readerTokens", "secretKey", "secretKeys"].sort(),
  );
  // A public cache has no reader: those outputs are not required.
  expect(component.required).toEqual(exported.filter((n) => !readerField[n]));
});

test("the resources' secret outputs are the ones resources/*.ts marks (additionalSecretOutputs)", () => {
  const marked: Record<string, string[]> = {};
  for (const file of fs.readdirSync(path.join(ROOT, "resources"))) {
    const text = fs.readFileSync(path.join(ROOT, "resources", file), "utf8");
    for (const m of text.matchAll(/super\(\s*"(\w+)",[\s\S]*?additionalSecretOutputs: \[([^\]]*)\]/g)) {
      marked[m[1]] = [...m[2].matchAll(/"(\w+)"/g)].map((s) => s[1]);
    }
  }
  expect(Object.keys(marked).sort()).toEqual(["MinioUser", "NixSigningKeypair", "RandomPassword"]);
  for (const kind of RESOURCE_KINDS) {
    const r = schema.resources[tokenOf(kind)];
    const secretOutputs = Object.entries(r.properties).filter(([, p]) => p.secret).map(([n]) => n);
    const secretInputs = Object.entries(r.inputProperties).filter(([, p]) => p.secret).map(([n]) => n);
    // Secret outputs: the marked ones, and the secret inputs (a password, imported keys), which stay secret.
    const expected = [...new Set([...(marked[kind] ?? []), ...secretInputs])].sort();
    expect({ kind, secrets: secretOutputs.sort() }).toEqual({ kind, secrets: expected });
  }
});

test("each resource's required inputs are inputs, its outputs include its inputs, and every $ref resolves", () => {
  const refs: string[] = [];
  const collect = (p: SchemaProperty | undefined): void => {
    if (!p) return;
    if (p.$ref) refs.push(p.$ref);
    collect(p.items);
    collect(p.additionalProperties);
  };
  for (const [token, r] of Object.entries(schema.resources)) {
    for (const name of r.requiredInputs) expect({ token, name, input: name in r.inputProperties }).toEqual({ token, name, input: true });
    if (!r.isComponent) for (const name of Object.keys(r.inputProperties)) expect(r.properties[name]).toEqual(r.inputProperties[name]);
    for (const p of [...Object.values(r.inputProperties), ...Object.values(r.properties)]) collect(p);
  }
  expect(refs.length).toBeGreaterThan(0);
  for (const ref of refs) expect(Object.keys(schema.types)).toContain(ref.replace("#/types/", ""));
  expect(schema.config.variables.adminPassword.secret).toBe(true);
});
