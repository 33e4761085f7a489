/** copyInto/copyOf: the same bytes as TypedArray.set, at every relative alignment, to and from shared memory. */
import assert from "node:assert/strict";
import { copyInto, copyOf } from "../../protocol/bytes.ts";

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
