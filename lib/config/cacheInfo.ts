// The `nix-cache-info` object: the file Nix reads first to decide that a URL is a binary cache.

export const CACHE_INFO_KEY = "nix-cache-info";
export const CACHE_INFO_CONTENT_TYPE = "text/x-nix-cache-info";

export interface CacheInfo {
  storeDir: string;
  wantMassQuery: boolean;
  priority: number;
}

/** The text Nix expects, one `Key: value` per line (as `nix copy --to file://` writes it). */
export function renderCacheInfo(info: CacheInfo): string {
  return `StoreDir: ${info.storeDir}\nWantMassQuery: ${info.wantMassQuery ? 1 : 0}\nPriority: ${info.priority}\n`;
}

/** Reads the fields back (for checks of what a server serves). */
export function parseCacheInfo(text: string): Partial<CacheInfo> {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z]+):\s*(.*?)\s*$/.exec(line);
    if (m) fields.set(m[1], m[2]);
  }
  const out: Partial<CacheInfo> = {};
  if (fields.has("StoreDir")) out.storeDir = fields.get("StoreDir");
  if (fields.has("WantMassQuery")) out.wantMassQuery = fields.get("WantMassQuery") === "1";
  if (fields.has("Priority")) out.priority = Number(fields.get("Priority"));
  return out;
}
