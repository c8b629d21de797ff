// An emulated disk drive: a sparse file of a fixed capacity. Unwritten sectors take no space
// and read as zeros. FUA writes are on stable storage (fdatasync) before they resolve;
// flush() (SYNCHRONIZE CACHE) is an fsync. Concurrent syncs coalesce (group commit).
// Writes go through a WriteMerger: while one batch is being written, new writes queue and
// writes that touch end to end leave as one pwritev (emulator/hardware/write-merge.ts).
import assert from 'node:assert';
import { promises as fs, read as fsRead, write as fsWrite, writev as fsWritev } from 'node:fs';
import * as path from 'node:path';
import { fsyncDir } from '../../firmware/durable';
import { SyncCoalescer } from '../../firmware/sync';
import type { Drive } from '../../firmware/drive';
import { MergeStats, WriteIo, WriteMerger } from './write-merge';

export const SECTOR_BYTES = 512;

export class FileDisk implements Drive {
  private readonly datasyncs: SyncCoalescer;
  private readonly fsyncs: SyncCoalescer;
  private readonly merger: WriteMerger;

  private constructor(
    readonly file: string,
    readonly sizeBytes: number,
    private readonly fh: fs.FileHandle,
    /** Its name in the DKC (Drive.name); the file's base name without extension unless given. */
    readonly name: string,
  ) {
    this.datasyncs = new SyncCoalescer(() => this.fh.datasync());
    this.fsyncs = new SyncCoalescer(() => this.fh.sync());
    const io: WriteIo = {
      write: (offset, data, dataOffset, length) => this.pwrite(offset, data, dataOffset, length),
      writev: (offset, buffers, length) => this.pwritev(offset, buffers, length),
      datasync: () => this.datasyncs.sync(),
    };
    this.merger = new WriteMerger(io);
  }

  /** Writes submitted and disk writes issued (how well merging works). */
  get writeStats(): MergeStats {
    return this.merger.stats;
  }

  /**
   * Open a disk file. With create, a missing file is made as a sparse file of sizeBytes;
   * an existing file of another size is refused (the data directory belongs to another layout).
   */
  static async open(file: string, sizeBytes: number, opts: { create: boolean; name?: string }): Promise<FileDisk> {
    assert(sizeBytes > 0 && sizeBytes % SECTOR_BYTES === 0, `disk size ${sizeBytes} is not whole sectors`);
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(file, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !opts.create) throw err;
      fh = await fs.open(file, 'wx+');
      await fh.truncate(sizeBytes);
      await fh.sync();
      await fsyncDir(path.dirname(file)); // the new name is durable too
    }
    const { size } = await fh.stat();
    if (size !== sizeBytes) {
      await fh.close();
      throw new Error(`${file}: disk is ${size} bytes, the configuration says ${sizeBytes}`);
    }
    return new FileDisk(file, sizeBytes, fh, opts.name ?? path.basename(file, path.extname(file)));
  }

  /**
   * A blank drive in place of the file (a drive replaced in its bay): the old file is removed and
   * a new sparse one made; the directory is fsynced by open(), so the swap is durable.
   */
  static async recreate(file: string, sizeBytes: number, name?: string): Promise<FileDisk> {
    await fs.rm(file, { force: true });
    return FileDisk.open(file, sizeBytes, { create: true, name });
  }

  /** Fill buf[bufOffset, +length) from the disk at offset: one pread (more only on a short read). */
  readInto(offset: number, buf: Buffer, bufOffset: number, length: number): Promise<void> {
    this.check(offset, length);
    // fs.read with a callback on the raw fd: about 1.5x the rate of FileHandle.read at queue
    // depth 32 (no FileHandle promise bookkeeping per call); this is the 4 KiB random read path.
    return new Promise((resolve, reject) => {
      fsRead(this.fh.fd, buf, bufOffset, length, offset, (err, bytesRead) => {
        if (err) reject(err);
        else if (bytesRead === length) resolve();
        else this.finishRead(offset, buf, bufOffset, length, bytesRead).then(resolve, reject);
      });
    });
  }

  private async finishRead(offset: number, buf: Buffer, bufOffset: number, length: number, done: number): Promise<void> {
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, bufOffset + done, length - done, offset + done);
      if (bytesRead === 0) throw new Error(`${this.file}: unexpected end of file at ${offset + done}`);
      done += bytesRead;
    }
  }

  /** Scatter read: buffers filled one after the other from offset (one preadv). */
  async readv(offset: number, buffers: Buffer[], length: number): Promise<void> {
    this.check(offset, length);
    const { bytesRead } = await this.fh.readv(buffers, offset);
    if (bytesRead < length) await this.finishVector(offset, buffers, bytesRead, 'read');
  }

  /** Queued for the next merged write; FUA: fdatasync before resolving. */
  write(offset: number, data: Buffer, dataOffset: number, length: number, fua: boolean): Promise<void> {
    this.check(offset, length);
    return this.merger.write(offset, data, dataOffset, length, fua);
  }

  /** Gather write: buffers written one after the other at offset (queued like write()). */
  writev(offset: number, buffers: Buffer[], length: number, fua: boolean): Promise<void> {
    this.check(offset, length);
    return this.merger.writev(offset, buffers, length, fua);
  }

  /** One pwrite on the raw fd (more only on a short write). */
  private pwrite(offset: number, data: Buffer, dataOffset: number, length: number): Promise<void> {
    return new Promise((resolve, reject) => {
      fsWrite(this.fh.fd, data, dataOffset, length, offset, (err, written) => {
        if (err) reject(err);
        else if (written === length) resolve();
        else this.finishWrite(offset, data, dataOffset, length, written).then(resolve, reject);
      });
    });
  }

  private async finishWrite(offset: number, data: Buffer, dataOffset: number, length: number, done: number): Promise<void> {
    while (done < length) {
      const { bytesWritten } = await this.fh.write(data, dataOffset + done, length - done, offset + done);
      done += bytesWritten;
    }
  }

  /** One pwritev on the raw fd (more only on a short write). */
  private pwritev(offset: number, buffers: Buffer[], length: number): Promise<void> {
    return new Promise((resolve, reject) => {
      fsWritev(this.fh.fd, buffers, offset, (err, written) => {
        if (err) reject(err);
        else if (written === length) resolve();
        else this.finishVector(offset, buffers, written, 'write').then(resolve, reject);
      });
    });
  }

  async flush(): Promise<void> {
    await this.fsyncs.sync();
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  /** Finish a short vectored transfer buffer by buffer. */
  private async finishVector(offset: number, buffers: Buffer[], done: number, kind: 'read' | 'write'): Promise<void> {
    let pos = 0;
    for (const b of buffers) {
      const skip = Math.max(0, Math.min(b.length, done - pos));
      if (skip < b.length) {
        if (kind === 'read') await this.readInto(offset + pos + skip, b, skip, b.length - skip);
        else await this.finishWrite(offset + pos + skip, b, skip, b.length - skip, 0);
      }
      pos += b.length;
    }
  }

  private check(offset: number, length: number): void {
    // The message is built only on failure: this runs on every I/O.
    if (!(offset % SECTOR_BYTES === 0 && length % SECTOR_BYTES === 0 && offset >= 0 && offset + length <= this.sizeBytes)) {
      assert.fail(`${this.file}: I/O [${offset}, +${length}) is not whole sectors inside ${this.sizeBytes} bytes`);
    }
  }
}
