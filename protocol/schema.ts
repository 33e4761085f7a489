/**
 * Runtime-checked types for messages that cross the thread boundary. Both threads are ours,
 * but a message is bytes in a shared ring: decoding without a check turns a protocol bug into
 * a silent wrong value far from its cause. Each message type is declared once as a `Schema`,
 * and its TypeScript type is inferred from it (`Infer<typeof S>`), so the two cannot drift.
 *
 * Deliberately tiny (no dependency): the boundary carries a handful of flat shapes; bulk data
 * (audio, socket bytes) crosses as binary stream frames and never goes through here.
 */
import { decodeUtf8 } from "./bytes.ts";

/** A message did not have the declared shape; names the path of the first bad field. */
export class ProtocolError extends Error {}

export interface Schema<T> {
  /** Returns `value` as T, or throws ProtocolError naming `path`. */
  check(value: unknown, path: string): T;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

function schema<T>(check: (v: unknown, path: string) => T): Schema<T> {
  return { check };
}

function bad(path: string, what: string): never {
  throw new ProtocolError(`${path || "message"}: expected ${what}`);
}

export const string: Schema<string> = schema((v, p) => typeof v === "string" ? v : bad(p, "a string"));
export const number: Schema<number> = schema((v, p) =>
  typeof v === "number" && Number.isFinite(v) ? v : bad(p, "a finite number")
);
export const int: Schema<number> = schema((v, p) =>
  Number.isSafeInteger(v) ? v as number : bad(p, "an integer")
);
export const boolean: Schema<boolean> = schema((v, p) => typeof v === "boolean" ? v : bad(p, "a boolean"));
/** Any JSON value, unchecked inside (bodies relayed from a backend). */
export const json: Schema<unknown> = schema((v) => v);
/** Any JSON object, unchecked inside. */
export const record: Schema<Record<string, unknown>> = schema((v, p) =>
  typeof v === "object" && v !== null && !Array.isArray(v)
    ? v as Record<string, unknown>
    : bad(p, "an object")
);

export function literal<const L extends string | number | boolean>(...values: L[]): Schema<L> {
  return schema((v, p) =>
    values.includes(v as L) ? v as L : bad(p, values.map((x) => JSON.stringify(x)).join(" | "))
  );
}

export function nullable<T>(inner: Schema<T>): Schema<T | null> {
  return schema((v, p) => v === null ? null : inner.check(v, p));
}

export function array<T>(item: Schema<T>): Schema<T[]> {
  return schema((v, p) =>
    Array.isArray(v) ? v.map((x, i) => item.check(x, `${p}[${i}]`)) : bad(p, "an array")
  );
}

/** Marks an object field as optional (absent or undefined). */
export interface Optional<T> extends Schema<T | undefined> {
  readonly optional: true;
}

export function optional<T>(inner: Schema<T>): Optional<T> {
  return { optional: true, check: (v, p) => v === undefined ? undefined : inner.check(v, p) };
}

type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K] extends Optional<unknown> ? K : never }[keyof S];
type RequiredKeys<S extends Shape> = Exclude<keyof S, OptionalKeys<S>>;
export type ObjectOf<S extends Shape> =
  & { [K in RequiredKeys<S>]: Infer<S[K]> }
  & { [K in OptionalKeys<S>]?: Infer<S[K]> };

/** A plain object with these fields; unknown fields are dropped, so a checked value is exact. */
export function object<S extends Shape>(shape: S): Schema<ObjectOf<S>> {
  const keys = Object.keys(shape);
  return schema((v, p) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) bad(p, "an object");
    const src = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      const value = shape[key].check(Object.hasOwn(src, key) ? src[key] : undefined, p ? `${p}.${key}` : key);
      if (value !== undefined) out[key] = value;
    }
    return out as ObjectOf<S>;
  });
}

/** One of several object shapes, chosen by the string field `tag`. */
export function tagged<const K extends string, M extends Record<string, Schema<unknown>>>(
  tag: K,
  variants: M,
): Schema<Infer<M[keyof M]>> {
  return schema((v, p) => {
    const which = typeof v === "object" && v !== null ? (v as Record<string, unknown>)[tag] : undefined;
    const variant = typeof which === "string" && Object.hasOwn(variants, which) ? variants[which] : undefined;
    if (!variant) {
      bad(
        p ? `${p}.${tag}` : tag,
        Object.keys(variants).map((k) => JSON.stringify(k)).join(" | "),
      );
    }
    return variant.check(v, p) as Infer<M[keyof M]>;
  });
}

const encoder = new TextEncoder();

/** JSON bytes of a value of the schema's type. */
export function encode<T>(_schema: Schema<T>, value: T): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** JSON text of a value of the schema's type, for a channel to encode as it sends (Channel.send). */
export function encodeText<T>(_schema: Schema<T>, value: T): string {
  return JSON.stringify(value);
}

/** Parses and checks JSON bytes; throws ProtocolError on either failure. */
export function decode<T>(s: Schema<T>, bytes: Uint8Array, what = ""): T {
  let value: unknown;
  try {
    value = JSON.parse(decodeUtf8(bytes));
  } catch {
    throw new ProtocolError(`${what || "message"}: not JSON`);
  }
  return s.check(value, what);
}
