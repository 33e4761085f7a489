/**
 * copyInto/copyOf: the same bytes as TypedArray.set, at every relative alignment, to and from
 * shared memory; utf8Scratch/decodeUtf8: the same text as TextEncoder/TextDecoder.
 */
import assert from "node:assert/strict";
import { copyInto, copyOf, decodeUtf8, utf8Scratch } from "../../protocol/bytes.ts";

const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

Deno.test("bytes: copies into and out of a SharedArrayBuffer match set() at every offset pair", () => {
  for (const n of [0, 1, 511, 512, 4099, 64 * 1024 + 13, 200_000]) {
    for (const srcOff of [0, 3, 4]) {
      for (const dstOff of [0, 1, 4, 7]) {
        const plain = new Uint8Array(n + 16);
        plain.set(pattern(n, srcOff + dstOff), srcOff);
        const src = plain.subarray(srcOff, srcOff + n);
        // into shared
        const ring = new Uint8Array(new SharedArrayBuffer(n + 32));
        copyInto(ring, dstOff, src);
        assert.deepEqual(ring.slice(dstOff, dstOff + n), src.slice(), `in n=${n} ${srcOff}->${dstOff}`);
        assert.equal(ring[dstOff + n], 0, "nothing written past the end");
        // out of shared, into a plain buffer at an offset
        const out = new Uint8Array(n + 16);
        copyInto(out, dstOff, ring.subarray(dstOff, dstOff + n));
        assert.deepEqual(out.slice(dstOff, dstOff + n), src.slice(), `out n=${n} ${dstOff}->${dstOff}`);
        const copy = copyOf(ring.subarray(dstOff, dstOff + n));
        assert.equal(copy.buffer instanceof SharedArrayBuffer, false);
        assert.deepEqual(copy, src.slice());
      }
    }
  }
});

Deno.test("bytes: utf8Scratch and decodeUtf8 agree with TextEncoder/TextDecoder, shared memory and long text included", () => {
  const texts = [
    "",
    "ascii",
    "é ü ß",
    "日本語のテキスト",
    "emoji 🎤🔊",
    "x".repeat(30_000),
    "ü".repeat(40_000),
  ];
  for (const text of texts) {
    const expected = new TextEncoder().encode(text);
    assert.deepEqual(utf8Scratch(text).slice(), expected, `encoded ${text.slice(0, 12)}…`);
    for (const off of [0, 1, 5]) {
      const ring = new Uint8Array(new SharedArrayBuffer(expected.length + 8));
      ring.set(expected, off);
      assert.equal(decodeUtf8(ring.subarray(off, off + expected.length)), text, `decoded at ${off}`);
    }
    assert.equal(decodeUtf8(expected), text, "from plain memory");
  }
  // A view of the scratch is valid until the next call only: callers copy it out at once.
  const first = utf8Scratch("first");
  utf8Scratch("SECOND");
  assert.equal(new TextDecoder().decode(first), "SECON");
  // Lossy, as TextDecoder: a bad byte becomes U+FFFD.
  const bad = new Uint8Array(new SharedArrayBuffer(3));
  bad.set([0x61, 0xff, 0x62]);
  assert.equal(decodeUtf8(bad), "a\ufffdb");
});
