// Buffers for read data handed to the host interface. Node's Buffer.allocUnsafe pools only
// requests under 4 KiB, so every 4 KiB or 128 KiB read would get an ArrayBuffer of its own: an
// allocation outside the JS heap per command, each one tracked and finalized by the garbage
// collector (createUnsafeBuffer and GC were ~12% of the main thread at 4 KiB random reads).
// Here reads up to READ_SLAB_PIECE_MAX bytes are carved from a shared slab instead, like Node's
// own pool but larger. Pieces never overlap and a slab is never reused: it is freed when the last
// piece cut from it is dropped, so the host side may keep or change its buffer as it likes.

/** Bytes per slab. */
export const READ_SLAB_BYTES = 1024 * 1024;
/** Larger reads get a buffer of their own (a slab would hold too few of them to pay off). */
export const READ_SLAB_PIECE_MAX = 128 * 1024;
/** Pieces start on 8-byte boundaries, so typed-array views of them stay aligned. */
const ALIGN = 8;

export class ReadBuffers {
  private slab: Buffer = Buffer.allocUnsafeSlow(READ_SLAB_BYTES);
  private used = 0;

  /** An uninitialized buffer of `size` bytes that nothing else will ever write to. */
  alloc(size: number): Buffer {
    if (size > READ_SLAB_PIECE_MAX) return Buffer.allocUnsafeSlow(size);
    if (this.used + size > READ_SLAB_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(READ_SLAB_BYTES);
      this.used = 0;
    }
    const b = this.slab.subarray(this.used, this.used + size);
    this.used += (size + ALIGN - 1) & ~(ALIGN - 1);
    return b;
  }
}
