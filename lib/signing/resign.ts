// The engine of `npm run resign`: every narinfo of the cache gets a Sig line of each of our keys that it lacks,
// when (and only when) one of our keys already signs it (lib/signing/narinfo.ts resignDecision). Each object is
// independent: read with its ETag, decided, written back with If-Match on that ETag, so a narinfo uploaded again
// meanwhile is never overwritten (the write is refused with 412; the object is read and decided again). Killed
// half-way, a second run finishes the rest; a second run after a complete one changes nothing. The NAR of each
// rewritten narinfo is touched first, so the expiry rule never leaves the narinfo behind it. The storage side
// is a ResignStore: the command's is the bucket through lib/s3/client.ts (s3ResignStore), the GC's own client;
// unit tests pass an in-memory one. No Pulumi runtime.
import type { S3Rest } from "../s3/client";
import { binaryCacheContentType } from "../s3/pushTarget";
import { narKeyOf } from "../gc/plan";
import { parseNarinfo, resignDecision, SigningKey } from "./narinfo";

/** One object as read: its bytes, its ETag (what the write's If-Match sends back) and its metadata headers (lower case). */
export interface StoredObject {
  body: Buffer;
  etag: string;
  headers: Record<string, string>;
}

/** What a conditional write came to. */
export type WriteOutcome = "written" | "changed" | "gone";

export interface ResignStore {
  /** Every object key of the bucket. */
  list(): AsyncIterable<string>;
  /** The object, or undefined when it does not exist (any more). */
  read(key: string): Promise<StoredObject | undefined>;
  /**
   * PUT `body` only if the object still has ETag `ifMatch`: "changed" when the server answers 412 (someone wrote
   * it since), "gone" when it no longer exists.
   */
  write(key: string, body: Buffer, ifMatch: string, headers: Record<string, string>): Promise<WriteOutcome>;
  /**
   * Restarts the expiry clock of `key` (a NAR) by rewriting its metadata in place, content and metadata kept
   * (with `dryRun`, only looks): "gone" when it does not exist.
   */
  touch(key: string, dryRun: boolean): Promise<"touched" | "gone">;
}

/** What s3ResignStore needs of the bucket (lib/s3/client.ts S3Rest). */
export type ResignBucket = Pick<S3Rest, "list" | "get" | "head" | "put" | "touch">;

/** The NAR's Content-Type for a touch when its HEAD gave none (S3's default for an object uploaded without one). */
const DEFAULT_CONTENT_TYPE = "application/octet-stream";

/** The bucket as resign sees it, through lib/s3/client.ts. */
export function s3ResignStore(bucket: ResignBucket): ResignStore {
  return {
    async *list() {
      for await (const o of bucket.list()) yield o.key;
    },
    async read(key) {
      const o = await bucket.get(key);
      return o && { body: o.body, etag: o.etag, headers: o.metadata };
    },
    async write(key, body, ifMatch, headers) {
      if (!ifMatch) throw new Error(`no ETag for ${key}: refusing an unconditional write`);
      const { outcome } = await bucket.put(key, body, { ifMatch, metadata: headers });
      if (outcome === "exists") throw new Error(`PUT ${key} with If-Match answered as an If-None-Match`);
      return outcome;
    },
    async touch(key, dryRun) {
      const head = await bucket.head(key);
      if (!head) return "gone";
      if (dryRun) return "touched";
      // A copy onto itself with the metadata replaced by the same metadata: MinIO rewrites only the metadata
      // (content and ETag stay) and the object's age starts again.
      const contentType = head.metadata["content-type"] ?? DEFAULT_CONTENT_TYPE;
      const outcome = await bucket.touch(key, contentType, head.etag, { metadata: head.metadata });
      // "changed": uploaded again since the HEAD, so just as fresh.
      return outcome === "gone" ? "gone" : "touched";
    },
  };
}

/** Headers a re-signed narinfo keeps from the object it replaces (a PUT replaces all of an object's metadata). */
const KEPT_HEADERS = ["cache-control", "content-disposition", "content-language", "expires"];

/** The headers of the PUT that replaces `read`: Content-Type text/x-nix-narinfo, plus what KEPT_HEADERS and x-amz-meta-* had. */
export function headersToKeep(read: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = { "Content-Type": binaryCacheContentType("x.narinfo") };
  for (const [name, value] of Object.entries(read)) {
    const lower = name.toLowerCase();
    if (KEPT_HEADERS.includes(lower) || lower.startsWith("x-amz-meta-")) out[lower] = value;
  }
  return out;
}

export const isNarinfoKey = (key: string) => key.endsWith(".narinfo");
export const isRealisationKey = (key: string) => key.startsWith("realisations/") && key.endsWith(".doi");

export interface ResignOptions {
  /** Our keys, the active one first. */
  keys: readonly SigningKey[];
  /** Decide but write nothing. */
  dryRun?: boolean;
  /** How many narinfos are handled at the same time (default 8). */
  concurrency?: number;
  /** How often one narinfo is read again after a 412 before it counts as failed (default 5). */
  maxAttempts?: number;
  /** Called once the listing is done, before any narinfo is read. */
  onListed?(narinfos: number, realisations: number): void;
  /** Called after each narinfo (for a progress line). */
  onProgress?(done: number, total: number, summary: ResignSummary): void;
  /** Called for each narinfo with what happened to it. */
  onResult?(key: string, result: NarinfoResult): void;
  /** Test only: waits this long between reading a narinfo and writing it back, so a test can race an upload. */
  delayBeforeWriteMs?: number;
}

export type NarinfoResult =
  | { kind: "signed"; added: string[]; attempts: number }
  | { kind: "would-sign"; added: string[] }
  | { kind: "already-signed" }
  | { kind: "refused"; reason: string }
  | { kind: "gone" }
  | { kind: "failed"; error: string };

export interface ResignSummary {
  /** Narinfos found by the listing. */
  total: number;
  signed: number;
  /** Dry run: how many would have been signed. */
  wouldSign: number;
  alreadySigned: number;
  refused: { key: string; reason: string }[];
  failed: { key: string; error: string }[];
  /** Listed but deleted before they could be read or written. */
  gone: number;
  /** realisations/*.doi objects (content-addressed derivations): their signatures are not handled. */
  realisations: number;
  /** Writes refused with 412 because the object changed since it was read: each was read and decided again. */
  retried: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Bytes that are exactly UTF-8 text (a BOM kept), else undefined: only such a narinfo can keep every byte. */
function utf8Text(body: Buffer): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    return undefined;
  }
}

/** Reads, decides and (unless dry-run) writes one narinfo, re-reading after a 412. */
export async function resignOne(store: ResignStore, key: string, options: ResignOptions, onChanged: () => void = () => {}): Promise<NarinfoResult> {
  const maxAttempts = options.maxAttempts ?? 5;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (attempt > 1) onChanged();
    const read = await store.read(key);
    if (!read) return { kind: "gone" };
    const encoding = read.headers["content-encoding"];
    if (encoding && encoding !== "identity") {
      return { kind: "refused", reason: `compressed narinfo (Content-Encoding: ${encoding}) is not handled` };
    }
    const text = utf8Text(read.body);
    if (text === undefined) return { kind: "refused", reason: "corrupt narinfo: not UTF-8 text" };
    const decision = resignDecision(text, options.keys);
    if (decision.kind === "already-signed") return decision;
    if (decision.kind === "refused") return decision;
    // The lifecycle rule expires objects by age: a rewritten narinfo starts a new one, so its NAR is touched
    // first, or the narinfo would outlive it and send hosts to a missing NAR. A narinfo whose NAR is gone is not
    // rewritten, so it expires as it would have.
    const narKey = narKeyOf(parseNarinfo(text).url);
    if (narKey !== undefined && (await store.touch(narKey, options.dryRun ?? false)) === "gone") {
      return { kind: "refused", reason: `its NAR ${narKey} is missing (expired or deleted): not rewritten, so it expires as it would have` };
    }
    if (options.dryRun) return { kind: "would-sign", added: decision.added };
    // Every byte read is kept: the new lines go after the body exactly as it came.
    const appended = Buffer.from(decision.newText.slice(text.length), "utf8");
    const body = Buffer.concat([read.body, appended]);
    if (options.delayBeforeWriteMs) await sleep(options.delayBeforeWriteMs);
    const outcome = await store.write(key, body, read.etag, headersToKeep(read.headers));
    if (outcome === "written") return { kind: "signed", added: decision.added, attempts: attempt };
    if (outcome === "gone") return { kind: "gone" };
    // "changed": someone uploaded it again since we read it; decide on what is there now.
  }
  return { kind: "failed", error: `changed by someone else on each of ${maxAttempts} attempts; run resign again` };
}

/** Lists the bucket and re-signs every narinfo, `concurrency` at a time. */
export async function resignCache(store: ResignStore, options: ResignOptions): Promise<ResignSummary> {
  const summary: ResignSummary = {
    total: 0, signed: 0, wouldSign: 0, alreadySigned: 0, refused: [], failed: [], gone: 0, realisations: 0, retried: 0,
  };
  const narinfos: string[] = [];
  for await (const key of store.list()) {
    if (isNarinfoKey(key)) narinfos.push(key);
    else if (isRealisationKey(key)) summary.realisations++;
  }
  summary.total = narinfos.length;
  options.onListed?.(narinfos.length, summary.realisations);
  const concurrency = Math.max(1, options.concurrency ?? 8);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < narinfos.length) {
      const key = narinfos[next++];
      let result: NarinfoResult;
      try {
        result = await resignOne(store, key, options, () => summary.retried++);
      } catch (err) {
        result = { kind: "failed", error: err instanceof Error ? err.message : String(err) };
      }
      switch (result.kind) {
        case "signed":
          summary.signed++;
          break;
        case "would-sign":
          summary.wouldSign++;
          break;
        case "already-signed":
          summary.alreadySigned++;
          break;
        case "refused":
          summary.refused.push({ key, reason: result.reason });
          break;
        case "gone":
          summary.gone++;
          break;
        case "failed":
          summary.failed.push({ key, error: result.error });
          break;
      }
      done++;
      options.onResult?.(key, result);
      options.onProgress?.(done, narinfos.length, summary);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, narinfos.length)) }, worker));
  summary.refused.sort((a, b) => a.key.localeCompare(b.key));
  summary.failed.sort((a, b) => a.key.localeCompare(b.key));
  return summary;
}

/** The summary line: `resign: N signed, M already signed, K refused` (+ what else happened). */
export function summaryLine(s: ResignSummary, dryRun = false): string {
  const parts = dryRun
    ? [`${s.wouldSign} would be signed (dry run: nothing written)`]
    : [`${s.signed} signed`];
  parts.push(`${s.alreadySigned} already signed`, `${s.refused.length} refused`);
  if (s.failed.length > 0) parts.push(`${s.failed.length} failed`);
  if (s.gone > 0) parts.push(`${s.gone} deleted meanwhile`);
  if (s.retried > 0) parts.push(`${s.retried} uploaded again meanwhile (read again, not overwritten)`);
  if (s.realisations > 0) parts.push(`${s.realisations} realisations not handled`);
  return `resign: ${parts.join(", ")}`;
}

/** The whole report: refused and failed narinfos by name (with why), then the summary line. */
export function formatResignReport(s: ResignSummary, dryRun = false): string {
  const lines: string[] = [];
  for (const r of s.refused) lines.push(`refused ${r.key}: ${r.reason}`);
  for (const f of s.failed) lines.push(`failed  ${f.key}: ${f.error}`);
  if (s.realisations > 0) {
    lines.push(
      `note: ${s.realisations} realisations/*.doi (content-addressed derivations) carry their own signatures, which resign does not handle`,
    );
  }
  lines.push(summaryLine(s, dryRun));
  return lines.join("\n");
}
