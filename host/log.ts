/**
 * Printing guest-controlled text. A guest's log message ends up on the host's stderr next to
 * the host's own `spear: …` lines, so a newline in it could forge such a line and an escape
 * sequence could rewrite the terminal. `escapeLogText` makes every such character visible:
 *
 * - `\n`, `\r`, `\t` as those two-character escapes;
 * - other C0 controls (U+0000–U+001F) and DEL (U+007F) as `\xHH`;
 * - C1 controls (U+0080–U+009F, e.g. CSI U+009B, NEL U+0085) and the Unicode line and
 *   paragraph separators (U+2028, U+2029) as `\uHHHH`.
 *
 * Everything else, backslashes included, is printed as is: the result is for reading, not for
 * parsing back (a guest that logs a literal `\n` looks the same as one that logs a newline).
 */

// deno-lint-ignore no-control-regex -- matching control characters is the point
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/g;

const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function escapeOne(c: string): string {
  const named = NAMED[c];
  if (named) return named;
  const code = c.charCodeAt(0);
  return code <= 0x7f
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
}

/** `text` with every control character and line break replaced by a visible escape. */
export function escapeLogText(text: string): string {
  return text.replace(UNSAFE, escapeOne);
}
