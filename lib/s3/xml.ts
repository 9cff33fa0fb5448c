// The XML side of lib/s3/client.ts (pure): a small well-formedness-checking parser for S3's answers (no DTDs, no
// external entities), and the two documents the client reads, a ListObjectsV2 page and an <Error>. Node
// built-ins only, as the client (it is bundled into the builder's GC script).

/** One object of a listing. */
export interface ListedObject {
  key: string;
  /** Server time, millisecond precision in listings (HEAD/GET give whole seconds). */
  lastModified: Date;
  size: number;
  /** quotes stripped */
  etag: string;
}

export interface XmlElement {
  /** Local name (a namespace prefix is dropped). */
  name: string;
  children: XmlElement[];
  /** The element's own text (CDATA included), entities decoded. */
  text: string;
}

const NAMED_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** Decodes the five XML entities and character references; anything else after '&' is malformed XML. */
export function decodeXmlEntities(s: string): string {
  return s.replace(/&([^;&\s]*);?/g, (all, ref: string) => {
    if (!all.endsWith(";")) throw new Error(`XML: '&' not starting an entity near '${all.slice(0, 20)}'`);
    if (ref in NAMED_ENTITIES) return NAMED_ENTITIES[ref];
    const m = /^#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}))$/.exec(ref);
    if (!m) throw new Error(`XML: unknown entity ${all}`);
    const cp = m[1] !== undefined ? parseInt(m[1], 16) : parseInt(m[2], 10);
    if (cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw new Error(`XML: invalid character reference ${all}`);
    return String.fromCodePoint(cp);
  });
}

const localName = (qname: string): string => qname.slice(qname.indexOf(":") + 1);

/** Parses one XML document into its root element. Throws on anything that is not well-formed. */
export function parseXml(xml: string): XmlElement {
  let i = xml.charCodeAt(0) === 0xfeff ? 1 : 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  const fail = (what: string): never => {
    throw new Error(`XML: ${what} at offset ${i}`);
  };
  const skipPast = (end: string) => {
    const j = xml.indexOf(end, i);
    if (j < 0) fail(`unterminated '${xml.slice(i, i + 9)}'`);
    i = j + end.length;
  };
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    const text = xml.slice(i, lt < 0 ? xml.length : lt);
    if (text !== "") {
      const top = stack[stack.length - 1];
      if (top) top.text += decodeXmlEntities(text);
      else if (text.trim() !== "") fail("text outside the root element");
    }
    if (lt < 0) break;
    i = lt;
    if (xml.startsWith("<?", i)) skipPast("?>");
    else if (xml.startsWith("<!--", i)) skipPast("-->");
    else if (xml.startsWith("<![CDATA[", i)) {
      const start = i + 9;
      skipPast("]]>");
      const top = stack[stack.length - 1];
      if (!top) fail("CDATA outside the root element");
      else top.text += xml.slice(start, i - 3);
    } else if (xml.startsWith("<!", i)) fail("DTDs are not accepted");
    else if (xml.startsWith("</", i)) {
      const m = /^<\/([^\s>]+)\s*>/.exec(xml.slice(i, i + 300));
      if (!m) fail("malformed end tag");
      const open = stack.pop();
      const name = localName(m![1]);
      if (!open || open.name !== name) fail(`end tag </${name}> does not match <${open?.name ?? "nothing"}>`);
      i += m![0].length;
    } else {
      // A start tag: name, then attributes whose quoted values may hold '>' and '/'.
      const m = /^<([A-Za-z_][\w.:-]*)((?:\s+[\w.:-]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/.exec(xml.slice(i, i + 4096));
      if (!m) fail("malformed start tag");
      const el: XmlElement = { name: localName(m![1]), children: [], text: "" };
      const parent = stack[stack.length - 1];
      if (parent) parent.children.push(el);
      else if (root) fail("a second root element");
      else root = el;
      if (m![3] !== "/") stack.push(el);
      i += m![0].length;
    }
  }
  if (stack.length > 0) throw new Error(`XML: <${stack[stack.length - 1].name}> is not closed`);
  if (!root) throw new Error("XML: no root element");
  return root;
}

const child = (el: XmlElement, name: string): XmlElement | undefined => el.children.find((c) => c.name === name);
const childText = (el: XmlElement, name: string): string | undefined => child(el, name)?.text;
export const stripQuotes = (etag: string): string => etag.trim().replace(/^"(.*)"$/, "$1");

export interface ListPage {
  objects: ListedObject[];
  isTruncated: boolean;
  nextContinuationToken?: string;
}

/** A string that holds its own characters (not a slice that pins a bigger string in memory). */
export const ownCopy = (s: string): string => Buffer.from(s, "utf8").toString("utf8");

/** One ListObjectsV2 answer. Throws on a document that is not one, or on a <Contents> missing a field. */
export function parseListPage(xml: string): ListPage {
  const root = parseXml(xml);
  if (root.name !== "ListBucketResult") throw new Error(`ListObjectsV2: expected <ListBucketResult>, got <${root.name}>`);
  const objects = root.children
    .filter((c) => c.name === "Contents")
    .map((c): ListedObject => {
      const key = childText(c, "Key");
      if (key === undefined || key === "") throw new Error("ListObjectsV2: <Contents> without a <Key>");
      const lastModified = new Date(childText(c, "LastModified") ?? "");
      if (Number.isNaN(lastModified.getTime())) throw new Error(`ListObjectsV2: ${key}: no valid <LastModified>`);
      const sizeText = childText(c, "Size") ?? "";
      if (!/^\d+$/.test(sizeText.trim())) throw new Error(`ListObjectsV2: ${key}: no valid <Size>`);
      const etag = childText(c, "ETag");
      if (etag === undefined) throw new Error(`ListObjectsV2: ${key}: no <ETag>`);
      // Copies: V8 keeps a sliced string's whole source alive, and a caller keeping a million keys would keep
      // every listing page (the GC's inventory of 100,000 narinfos: 68 MiB of XML) with them.
      return { key: ownCopy(key), lastModified, size: Number(sizeText.trim()), etag: ownCopy(stripQuotes(etag)) };
    });
  const truncated = (childText(root, "IsTruncated") ?? "false").trim();
  if (truncated !== "true" && truncated !== "false") throw new Error(`ListObjectsV2: <IsTruncated> is '${truncated}'`);
  const token = childText(root, "NextContinuationToken");
  return { objects, isTruncated: truncated === "true", ...(token ? { nextContinuationToken: token } : {}) };
}

/** <Code> and <Message> of an S3 error body; empty when the body is not an S3 <Error> document. */
export function parseErrorBody(body: string): { code?: string; message?: string } {
  if (body.trim() === "") return {};
  try {
    const root = parseXml(body);
    if (root.name !== "Error") return {};
    const code = childText(root, "Code")?.trim();
    const message = childText(root, "Message")?.trim();
    return { ...(code ? { code } : {}), ...(message ? { message } : {}) };
  } catch {
    return {};
  }
}
