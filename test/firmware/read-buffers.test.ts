import assert from 'node:assert/strict';
import { READ_SLAB_BYTES, READ_SLAB_PIECE_MAX, ReadBuffers } from '../../firmware/read-buffers';

describe('read buffers', () => {
  it('pieces of a slab never overlap and start 8-byte aligned', () => {
    const rb = new ReadBuffers();
    const bufs = [512, 4096, 1000, 131072, 4096, 8].map((n) => rb.alloc(n));
    bufs.forEach((b, i) => b.fill(i + 1));
    bufs.forEach((b, i) => {
      assert.ok(b.every((x) => x === i + 1), `piece ${i} was overwritten`);
      assert.equal(b.byteOffset % 8, 0);
    });
  });

  it('a full slab is replaced, never reused; large reads get their own buffer', () => {
    const rb = new ReadBuffers();
    const first = rb.alloc(READ_SLAB_PIECE_MAX);
    const pieces = [first];
    for (let n = READ_SLAB_PIECE_MAX; n <= READ_SLAB_BYTES; n += READ_SLAB_PIECE_MAX) pieces.push(rb.alloc(READ_SLAB_PIECE_MAX));
    assert.notEqual(pieces[pieces.length - 1].buffer, first.buffer);
    const big = rb.alloc(READ_SLAB_PIECE_MAX + 512);
    assert.equal(big.byteLength, big.buffer.byteLength);
  });
});
