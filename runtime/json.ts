/** The JSON checks every hostcall family and the config share. */
import { fail } from "./abi.ts";

export type JsonObject = Record<string, unknown>;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A plain JSON object (not null, not an array). */
export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Parses JSON a guest passed in; invalid UTF-8 or JSON is -EINVAL naming `what`. */
export function parseGuestJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(utf8.decode(bytes));
  } catch {
    throw fail("EINVAL", `${what}: invalid JSON`);
  }
}
