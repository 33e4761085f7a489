/** The JSON checks every hostcall family and the config share. */
import { fail } from "./abi.ts";

export type JsonObject = Record<string, unknown>;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Deepest nesting of arrays and objects a guest's JSON may have: serde_json's default
 * recursion limit, which SPEAR's JSON goes through. JSON.parse itself takes any depth, but a
 * value stored for later (a chat param, a tool) is walked recursively again — JSON.stringify
 * when a request is sent — and a deep enough one overflows the stack there.
 */
export const MAX_JSON_DEPTH = 128;

/** Whether the JSON text nests arrays and objects deeper than `max` (brackets in strings don't count). */
function nestsDeeper(bytes: Uint8Array, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (inString) {
      if (c === 0x5c) i++; // the escaped byte is never a quote that ends the string
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** A plain JSON object (not null, not an array). */
export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Parses JSON a guest passed in; invalid UTF-8 or JSON, or JSON nested deeper than
 * MAX_JSON_DEPTH, is -EINVAL naming `what`.
 */
export function parseGuestJson(bytes: Uint8Array, what: string): unknown {
  if (nestsDeeper(bytes, MAX_JSON_DEPTH)) {
    throw fail("EINVAL", `${what}: JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
  }
  try {
    return JSON.parse(utf8.decode(bytes));
  } catch {
    throw fail("EINVAL", `${what}: invalid JSON`);
  }
}
