/**
 * API keys and their redaction.
 *
 * Keys come only from the environment variable a backend names (`api_key_env`) and are read on
 * the main thread, where the drivers run: a guest's worker never holds one, so no hostcall bug
 * can copy one into guest memory. What can still carry a key to a guest is the upstream
 * itself — a reply that echoes the Authorization header in its content, `usage`, `model`, tool
 * arguments or an error, whole or cut short (a 10-character prefix inside a JSON parse error
 * message is enough to narrow a brute force). So every text a credentialed request hands to a
 * guest passes through a `Redactor`, which removes the key and **every fragment of 8 or more
 * characters** of it, replacing each run with `***` (which keeps a JSON string a JSON string).
 *
 * Speed: bodies reach 32 MiB (the chat response cap), so the scan touches most text once,
 * four characters at a time, against a 4 KiB bit filter of the secrets' 4-grams; only around a
 * filter hit does it roll an 8-gram hash, and only a second filter hit is compared exactly
 * (details at `GramTable`). The union of matching 8-character windows is exactly the set of
 * characters inside some fragment of 8 or more, so nothing else is needed for correctness.
 * Measured on this shared 2-core VM: 0.09–0.3 s for a 32 MiB JSON body, text or bytes; about
 * 1 s for the worst case, a body made only of the key's own 4-grams.
 */

/** The smallest key fragment removed on its own; shorter ones are common text (`sk-proj-`). */
export const MIN_FRAGMENT = 8;
export const REDACTED = "***";

const B = 0x01000193; // FNV prime, for the exact 8-gram hash
const B8 = (() => {
  let p = 1;
  for (let i = 0; i < MIN_FRAGMENT; i++) p = Math.imul(p, B);
  return p;
})();
const FILTER_SHIFT = 17; // 2^15-bit filters: 4 KiB each, they stay in L1 during the scan

/** Fibonacci hash of four units: the top bits of the product are well mixed. */
function quad(a: number, b: number, c: number, d: number): number {
  return Math.imul(a ^ (b << 8) ^ (c << 16) ^ (d << 24), 0x9e3779b1) >>> FILTER_SHIFT;
}

function mix(h: number): number {
  return Math.imul(h, 0x9e3779b1) >>> FILTER_SHIFT;
}

type UnitAt = (i: number) => number;

function hash8(at: UnitAt, start: number): number {
  let h = 0;
  for (let i = start; i < start + MIN_FRAGMENT; i++) h = (Math.imul(h, B) + at(i)) | 0;
  return h;
}

/** Where an 8-gram occurs in a secret, so a match can be extended along the secret. */
interface GramSite {
  units: number[];
  offset: number;
}

/**
 * The secrets' grams in one alphabet (UTF-16 units for text, bytes for binary).
 *
 * A matching 8-unit window [s, s+8) always contains the 4-aligned block at 4*ceil(s/4), and
 * that block is a 4-gram of the secret. So the scan tests only every fourth position against
 * a bit filter of the secrets' 4-grams — most text never gets further. Around a hit, windows
 * are checked with a rolling 8-gram hash against a second filter, then exactly; a confirmed
 * match is extended along the secret unit by unit, so a long echo costs one comparison per
 * unit rather than a hash lookup per window.
 */
class GramTable {
  readonly quads = new Int32Array(1 << (32 - FILTER_SHIFT - 5));
  readonly eights = new Int32Array(1 << (32 - FILTER_SHIFT - 5));
  readonly sites = new Map<number, GramSite[]>();
  readonly short: number[][] = [];
  /** A secret containing `*` could re-form after replacement; then scan until stable. */
  hasStar = false;

  add(units: number[]) {
    if (units.includes(42)) this.hasStar = true;
    if (units.length < MIN_FRAGMENT) {
      if (units.length > 0) this.short.push(units);
      return;
    }
    for (let i = 0; i + 4 <= units.length; i++) {
      const q = quad(units[i], units[i + 1], units[i + 2], units[i + 3]);
      this.quads[q >>> 5] |= 1 << (q & 31);
    }
    for (let i = 0; i + MIN_FRAGMENT <= units.length; i++) {
      const h = hash8((k) => units[k], i);
      const f = mix(h);
      this.eights[f >>> 5] |= 1 << (f & 31);
      const list = this.sites.get(h) ?? [];
      list.push({ units, offset: i });
      this.sites.set(h, list);
    }
  }
}

function sameUnits(at: UnitAt, start: number, site: GramSite): boolean {
  for (let k = 0; k < MIN_FRAGMENT; k++) if (at(start + k) !== site.units[site.offset + k]) return false;
  return true;
}

function codeUnits(s: string): number[] {
  const out = new Array<number>(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** [start, end) runs to replace: the union of every window equal to a secret's 8-gram. */
function findRuns(n: number, quadAt: (i: number) => number, t: GramTable, at: UnitAt): number[] {
  const runs: number[] = [];
  let runStart = -1;
  let runEnd = -1;
  /** Windows starting before this are decided. */
  let nextStart = 0;
  /** The rolling 8-gram hash `h` is that of the window starting at `hAt`. */
  let h = 0;
  let hAt = -2;
  const { quads, eights, sites } = t;
  for (let q = 0; q + 4 <= n; q += 4) {
    const f = quadAt(q);
    if ((quads[f >>> 5] & (1 << (f & 31))) === 0) continue;
    const last = Math.min(q, n - MIN_FRAGMENT);
    for (let s = Math.max(q - 4, nextStart); s <= last; s++) {
      if (hAt === s - 1) h = (Math.imul(h, B) - Math.imul(at(s - 1), B8) + at(s + MIN_FRAGMENT - 1)) | 0;
      else h = hash8(at, s);
      hAt = s;
      const e8 = mix(h);
      if ((eights[e8 >>> 5] & (1 << (e8 & 31))) === 0) continue;
      const list = sites.get(h);
      if (list === undefined) continue;
      let site: GramSite | undefined;
      for (let i = 0; i < list.length && site === undefined; i++) {
        if (sameUnits(at, s, list[i])) site = list[i];
      }
      if (site === undefined) continue;
      let end = s + MIN_FRAGMENT;
      const { units, offset } = site;
      while (end < n && offset + (end - s) < units.length && at(end) === units[offset + (end - s)]) end++;
      if (s <= runEnd) runEnd = Math.max(runEnd, end);
      else {
        if (runStart >= 0) runs.push(runStart, runEnd);
        runStart = s;
        runEnd = end;
      }
      // Windows inside [s, end) all match; the ones overlapping its tail may start a new one.
      nextStart = end - MIN_FRAGMENT + 1;
      const resume = Math.ceil(nextStart / 4) * 4;
      if (resume > q) {
        q = resume - 4;
        break;
      }
      s = nextStart - 1;
    }
    nextStart = Math.max(nextStart, last + 1);
  }
  if (runStart >= 0) runs.push(runStart, runEnd);
  return runs;
}

function findRunsText(text: string, t: GramTable): number[] {
  return findRuns(
    text.length,
    (i) => quad(text.charCodeAt(i), text.charCodeAt(i + 1), text.charCodeAt(i + 2), text.charCodeAt(i + 3)),
    t,
    (i) => text.charCodeAt(i),
  );
}

function findRunsBytes(bytes: Uint8Array, t: GramTable): number[] {
  return findRuns(
    bytes.length,
    (i) => quad(bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]),
    t,
    (i) => bytes[i],
  );
}

/** Adds runs for every occurrence of a secret too short to have an 8-gram, keeping runs sorted and merged. */
function withShortRuns(
  runs: number[],
  shorts: readonly ArrayLike<number>[],
  find: (s: ArrayLike<number>, from: number) => number,
): number[] {
  if (shorts.length === 0) return runs;
  const pairs: [number, number][] = [];
  for (let i = 0; i < runs.length; i += 2) pairs.push([runs[i], runs[i + 1]]);
  for (const s of shorts) {
    for (let at = find(s, 0); at >= 0; at = find(s, at + s.length)) pairs.push([at, at + s.length]);
  }
  pairs.sort((x, y) => x[0] - y[0]);
  const merged: number[] = [];
  for (const [start, end] of pairs) {
    if (merged.length > 0 && start <= merged[merged.length - 1]) {
      merged[merged.length - 1] = Math.max(merged[merged.length - 1], end);
    } else merged.push(start, end);
  }
  return merged;
}

const encoder = new TextEncoder();
const REDACTED_BYTES = encoder.encode(REDACTED);

/**
 * Removes secrets, and every fragment of 8 or more characters of them, from text, bytes and
 * parsed JSON. Also catches the JSON-escaped spelling of a secret (`\"`, `\\`, `\/`), so a
 * key with such characters is found in a raw body too.
 */
export class Redactor {
  readonly #text = new GramTable();
  readonly #bytes = new GramTable();
  /** Every secret is JSON text as it is (no `"`, `\`, controls) and has no `/` (which some escape). */
  readonly #plain: boolean;
  readonly active: boolean;

  constructor(secrets: Iterable<string>) {
    const variants = new Set<string>();
    let plain = true;
    for (const s of secrets) {
      if (typeof s !== "string" || s === "") continue;
      variants.add(s);
      const escaped = JSON.stringify(s).slice(1, -1);
      plain &&= escaped === s && !s.includes("/");
      variants.add(escaped);
      variants.add(escaped.replaceAll("/", "\\/"));
    }
    for (const v of variants) {
      this.#text.add(codeUnits(v));
      this.#bytes.add(Array.from(encoder.encode(v)));
    }
    this.#plain = plain;
    this.active = variants.size > 0;
  }

  /** A redactor with nothing to remove. */
  static readonly NONE: Redactor = new Redactor([]);

  redact(text: string): string {
    if (!this.active || typeof text !== "string") return text;
    for (let round = 0; round < 8; round++) {
      const t = text;
      const runs = withShortRuns(
        findRunsText(t, this.#text),
        this.#text.short,
        (s, from) => t.indexOf(String.fromCharCode(...Array.from(s)), from),
      );
      if (runs.length === 0) return text;
      const parts: string[] = [];
      let at = 0;
      for (let i = 0; i < runs.length; i += 2) {
        parts.push(text.slice(at, runs[i]), REDACTED);
        at = runs[i + 1];
      }
      parts.push(text.slice(at));
      text = parts.join("");
      if (!this.#text.hasStar) return text;
    }
    return text;
  }

  redactBytes(bytes: Uint8Array): Uint8Array {
    if (!this.active) return bytes;
    for (let round = 0; round < 8; round++) {
      const b = bytes;
      const runs = withShortRuns(
        findRunsBytes(b, this.#bytes),
        this.#bytes.short,
        (s, from) => indexOfBytes(b, s, from),
      );
      if (runs.length === 0) return bytes;
      let removed = 0;
      for (let i = 0; i < runs.length; i += 2) removed += runs[i + 1] - runs[i] - REDACTED_BYTES.length;
      const out = new Uint8Array(bytes.length - removed);
      let src = 0;
      let dst = 0;
      for (let i = 0; i < runs.length; i += 2) {
        out.set(bytes.subarray(src, runs[i]), dst);
        dst += runs[i] - src;
        out.set(REDACTED_BYTES, dst);
        dst += REDACTED_BYTES.length;
        src = runs[i + 1];
      }
      out.set(bytes.subarray(src), dst);
      bytes = out;
      if (!this.#bytes.hasStar) return bytes;
    }
    return bytes;
  }

  /**
   * A JSON value with every string and object key redacted. Parts without a secret are shared,
   * not copied (a 32 MiB body is mostly such parts).
   */
  redactJson<T>(value: T): T {
    if (!this.active) return value;
    const walk = (v: unknown): unknown => {
      if (typeof v === "string") return this.redact(v);
      if (Array.isArray(v)) {
        let out: unknown[] | undefined;
        for (let i = 0; i < v.length; i++) {
          const x = walk(v[i]);
          if (x !== v[i]) (out ??= v.slice())[i] = x;
        }
        return out ?? v;
      }
      if (v !== null && typeof v === "object") {
        const entries = Object.entries(v);
        const next = entries.map(([k, x]) => [this.redact(k), walk(x)] as const);
        if (next.every(([k, x], i) => k === entries[i][0] && x === entries[i][1])) return v;
        const out: Record<string, unknown> = {};
        // defineProperty, so a "__proto__" key stays a key (as JSON.parse made it).
        for (const [k, x] of next) {
          Object.defineProperty(out, k, { value: x, enumerable: true, writable: true, configurable: true });
        }
        return out;
      }
      return v;
    };
    return walk(value) as T;
  }

  /**
   * JSON.parse of an untrusted body with the secrets gone from the result and from any parse
   * error message (V8 quotes the text around the error). Redacting the raw text first keeps
   * the error clean; decoding then walking the value catches `\u`-escaped spellings; if a
   * replacement ever broke the JSON (a secret with a backslash), the original is parsed and
   * walked instead, so a valid body never turns invalid.
   */
  parseJson(text: string): unknown {
    const clean = this.redact(text);
    let value: unknown;
    try {
      value = JSON.parse(clean);
    } catch (e) {
      if (clean === text) throw new SyntaxError(this.redact((e as Error).message));
      try {
        value = JSON.parse(text);
      } catch {
        throw new SyntaxError(this.redact((e as Error).message));
      }
      return this.redactJson(value);
    }
    // Without a \u escape, and with secrets JSON writes as they are, every string of the value
    // is its text's characters with other escapes decoded to characters no secret has: a
    // fragment in it was in the text, and is gone. The walk would find nothing, at a cost of
    // more than half of the whole (bench/redact_bench.ts: 4.9 → 2.2 µs for a short completion,
    // 107 → 52 µs for 23 KB of tool calls, beside JSON.parse's 1.4 and 15 µs).
    return this.#plain && !clean.includes("\\u") ? value : this.redactJson(value);
  }
}

function indexOfBytes(hay: Uint8Array, needle: ArrayLike<number>, from: number): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let k = 0; k < needle.length; k++) if (hay[i + k] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}

/** What a backend's key lookup found. `redactor` covers the key (and is NONE without one). */
export type ApiKey =
  | { ok: true; key?: string; redactor: Redactor }
  | { ok: false; error: string };

/**
 * Reads the key a backend names. Refuses inside a Worker: guests run in workers, and keeping
 * keys out of their threads entirely is what makes "a guest can never read a key" hold.
 */
export function readApiKey(backend: { name: string; api_key_env?: string }): ApiKey {
  if (!backend.api_key_env) return { ok: true, redactor: Redactor.NONE };
  if ("WorkerGlobalScope" in globalThis) {
    return { ok: false, error: "API keys are read on the main thread only" };
  }
  let raw: string | undefined;
  try {
    raw = Deno.env.get(backend.api_key_env);
  } catch (e) {
    return { ok: false, error: `cannot read API key variable ${backend.api_key_env}: ${(e as Error).name}` };
  }
  if (raw === undefined || raw.trim() === "") return { ok: true, redactor: Redactor.NONE };
  return { ok: true, key: raw.trim(), redactor: redactorFor(raw) };
}

/**
 * Redactors by the raw variable value. Building one costs 50-70 µs for an OpenAI-sized key
 * (every fragment's grams, in text and bytes), which every request on the main thread paid;
 * the variable is still read per request, so a rotated key gets a redactor of its own.
 */
const redactors = new Map<string, Redactor>();
const MAX_REDACTORS = 16; // keys in use at once: one per backend, and a few while they rotate

function redactorFor(raw: string): Redactor {
  let redactor = redactors.get(raw);
  if (!redactor) {
    if (redactors.size >= MAX_REDACTORS) redactors.clear();
    redactor = new Redactor([raw, raw.trim()]);
    redactors.set(raw, redactor);
  }
  return redactor;
}
