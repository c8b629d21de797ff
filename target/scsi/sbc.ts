// SBC-3 block commands. The dispatcher has already checked LBA range, medium, write protection
// and reservations, and decoded ctx.lba / ctx.blocks from the row's fields.
import type { Ctx } from './dispatch';
import { CheckCondition, Sense, invalidCdbField, invalidParamField } from './sense';
import {
  decodeCompareAndWrite, decodeReadCapacity10, decodeReadDefectData, decodeRw, decodeServiceActionIn16,
  decodeStartStopUnit, decodeUnmap, decodeWriteSame,
} from './cdb';
import { BlockLimits, logicalPerPhysical, maxAtomicTransferBlocks } from './vpd';

/** Blocks written per volume.write() when WRITE SAME expands one block (bounded buffers). */
export const writeSameChunkBytes = 1024 * 1024;
/** LBA status descriptors returned by one GET LBA STATUS. */
export const lbaStatusDescriptorsMax = 64;

function fuaOf(ctx: Ctx, fua: boolean): boolean {
  return fua || !ctx.lu.mode.wce; // WCE=0: every write goes to stable storage
}

/** Whole blocks the initiator actually sent (iSCSI may deliver less than the CDB asks for). */
function blocksSent(ctx: Ctx, want: number): number {
  return Math.min(want, Math.floor(ctx.dataOut.length / ctx.lu.volume.blockSize));
}

async function locked<T>(ctx: Ctx, lba: number, blocks: number, fn: () => Promise<T>): Promise<T> {
  const release = await ctx.lu.locks.acquire(lba, blocks);
  try {
    return await fn();
  } finally {
    release();
  }
}

/** READ(6/10/12/16), SBC-3 5.11-5.14. */
export async function read(ctx: Ctx): Promise<Buffer | void> {
  if (ctx.blocks === 0) return;
  return ctx.lu.volume.read(ctx.lba, ctx.blocks);
}

/** WRITE(6) opcode: its byte 1 holds LBA bits, not FUA. */
const WRITE_6 = 0x0a;

/** WRITE(6/10/12/16), SBC-3 5.32-5.35. */
export async function write(ctx: Ctx): Promise<void> {
  const fua = ctx.cdb[0] !== WRITE_6 && (ctx.cdb[1] & 0x08) !== 0;
  const n = blocksSent(ctx, ctx.blocks);
  if (n === 0) return;
  const data = ctx.dataOut.subarray(0, n * ctx.lu.volume.blockSize);
  await locked(ctx, ctx.lba, n, () => ctx.lu.volume.write(ctx.lba, data, { fua: fuaOf(ctx, fua) }));
}

function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function miscompare(offset: number): CheckCondition {
  // SBC-3 5.2/5.26: INFORMATION = offset in bytes of the first miscompare.
  return new CheckCondition(Sense.MISCOMPARE_DURING_VERIFY, { information: offset });
}

/** Data-Out a VERIFY wants: BYTCHK 00b none, 01b every block, 11b one block (SBC-3 5.26). */
export function verifyDataOut(cdb: Buffer, blockSize: number, size: 10 | 12 | 16): number {
  const c = decodeRw(cdb, size);
  if (c.bytchk === 1) return c.transferLength * blockSize;
  if (c.bytchk === 3) return c.transferLength > 0 ? blockSize : 0;
  return 0;
}

/** VERIFY(10/12/16). */
export async function verify(ctx: Ctx, size: 10 | 12 | 16): Promise<void> {
  const c = decodeRw(ctx.cdb, size);
  if (c.bytchk === 2) throw invalidCdbField(1, 2);
  if (ctx.blocks === 0) return;
  const onMedium = await ctx.lu.volume.read(ctx.lba, ctx.blocks);
  if (c.bytchk === 0) return;
  const bs = ctx.lu.volume.blockSize;
  if (ctx.dataOut.length < (c.bytchk === 1 ? ctx.blocks * bs : bs)) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  const expect = c.bytchk === 1 ? ctx.dataOut : Buffer.concat(Array(ctx.blocks).fill(ctx.dataOut.subarray(0, bs)));
  const at = firstDifference(onMedium, expect);
  if (at >= 0) throw miscompare(at);
}

/** WRITE AND VERIFY(10/12/16): write, then read back (medium verification). */
export async function writeAndVerify(ctx: Ctx): Promise<void> {
  const n = blocksSent(ctx, ctx.blocks);
  if (n === 0) return;
  const data = ctx.dataOut.subarray(0, n * ctx.lu.volume.blockSize);
  await locked(ctx, ctx.lba, n, async () => {
    await ctx.lu.volume.write(ctx.lba, data, { fua: true });
    const back = await ctx.lu.volume.read(ctx.lba, n);
    const at = firstDifference(back, data);
    if (at >= 0) throw miscompare(at);
  });
}

/** ORWRITE(16), SBC-3 5.9: the new data is OR-ed into what is on the medium. */
export async function orWrite(ctx: Ctx): Promise<void> {
  const c = decodeRw(ctx.cdb, 16);
  const n = blocksSent(ctx, ctx.blocks);
  if (n === 0) return;
  await locked(ctx, ctx.lba, n, async () => {
    const old = await ctx.lu.volume.read(ctx.lba, n);
    for (let i = 0; i < old.length; i++) old[i] |= ctx.dataOut[i];
    await ctx.lu.volume.write(ctx.lba, old, { fua: fuaOf(ctx, c.fua) });
  });
}

/**
 * WRITE ATOMIC(16), SBC-4 5.48: the blocks are written as one unit. Every write path takes the
 * LU's range lock, so no other write (nor COMPARE AND WRITE, nor EXTENDED COPY) interleaves; the
 * volume write is one request. ATOMIC BOUNDARY 0 only (MAXIMUM ATOMIC BOUNDARY SIZE 0).
 */
export async function writeAtomic(ctx: Ctx): Promise<void> {
  const fua = (ctx.cdb[1] & 0x08) !== 0;
  if (ctx.cdb.readUInt16BE(10) !== 0) throw invalidCdbField(10, 7);
  if (ctx.blocks > maxAtomicTransferBlocks(ctx.lu.volume.blockSize)) throw invalidCdbField(12, 7);
  if (ctx.blocks === 0) return;
  const bs = ctx.lu.volume.blockSize;
  // Atomic means all or nothing: a short Data-Out writes nothing.
  if (ctx.dataOut.length < ctx.blocks * bs) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  const data = ctx.dataOut.subarray(0, ctx.blocks * bs);
  await locked(ctx, ctx.lba, ctx.blocks, () => ctx.lu.volume.write(ctx.lba, data, { fua: fuaOf(ctx, fua) }));
}

/** COMPARE AND WRITE, SBC-3 5.2: compare and write are atomic against other writes to the range. */
export async function compareAndWrite(ctx: Ctx): Promise<void> {
  const c = decodeCompareAndWrite(ctx.cdb);
  const n = c.numberOfLogicalBlocks;
  if (n > BlockLimits.maxCompareAndWriteBlocks) throw invalidCdbField(13, 7);
  if (n === 0) return; // SBC-3 5.2: not an error
  const bytes = n * ctx.lu.volume.blockSize;
  if (ctx.dataOut.length < 2 * bytes) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  const verifyData = ctx.dataOut.subarray(0, bytes);
  const writeData = ctx.dataOut.subarray(bytes, 2 * bytes);
  await locked(ctx, ctx.lba, n, async () => {
    const onMedium = await ctx.lu.volume.read(ctx.lba, n);
    const at = firstDifference(onMedium, verifyData);
    if (at >= 0) throw miscompare(at);
    await ctx.lu.volume.write(ctx.lba, writeData, { fua: fuaOf(ctx, c.fua) });
  });
}

/** WRITE SAME(10/16), SBC-3 5.41-5.42, with UNMAP (deallocate; LBPRZ=1) and NDOB. */
export async function writeSame(ctx: Ctx, size: 10 | 16): Promise<void> {
  const c = decodeWriteSame(ctx.cdb, size);
  const lengthByte = size === 10 ? 7 : 10;
  if (c.anchor) throw invalidCdbField(1, 4); // ANC_SUP=0
  const capacity = ctx.lu.volume.blockCount;
  // SBC-3 5.42 (WSNZ=0): NUMBER OF LOGICAL BLOCKS 0 writes from the LBA to the last LBA, which
  // must then be within MAXIMUM WRITE SAME LENGTH.
  if (c.numberOfBlocks === 0 && ctx.lba >= capacity) throw new CheckCondition(Sense.LBA_OUT_OF_RANGE, { information: c.lba });
  const blocks = c.numberOfBlocks === 0 ? capacity - ctx.lba : c.numberOfBlocks;
  if (blocks > BlockLimits.maxWriteSameBlocks) throw invalidCdbField(lengthByte, 7);
  const bs = ctx.lu.volume.blockSize;
  let block: Buffer;
  if (c.ndob) block = Buffer.alloc(bs);
  else if (ctx.dataOut.length >= bs) block = ctx.dataOut.subarray(0, bs);
  else return; // no whole block arrived: nothing written, as for WRITE
  await locked(ctx, ctx.lba, blocks, async () => {
    // SBC-3 5.42 (UNMAP=1, ANCHOR=0): a thin LU should deallocate each LBA, whatever the Data-Out
    // block holds; deallocated blocks read as zeros (LBPRZ=1). libiscsi WriteSame10.UnmapUntilEnd.
    if (c.unmap) return ctx.lu.volume.unmap(ctx.lba, blocks);
    await writeRepeated(ctx, block, blocks);
  });
}

async function writeRepeated(ctx: Ctx, block: Buffer, blocks: number): Promise<void> {
  const bs = block.length;
  const chunkBlocks = Math.max(1, Math.min(blocks, Math.floor(writeSameChunkBytes / bs)));
  const chunk = Buffer.alloc(chunkBlocks * bs);
  for (let i = 0; i < chunkBlocks; i++) block.copy(chunk, i * bs);
  for (let done = 0; done < blocks; done += chunkBlocks) {
    const n = Math.min(chunkBlocks, blocks - done);
    await ctx.lu.volume.write(ctx.lba + done, chunk.subarray(0, n * bs), { fua: !ctx.lu.mode.wce });
  }
}

interface UnmapDescriptor { lba: number; blocks: number }

/** Parses and checks the UNMAP parameter list (SBC-3 5.28.2) before anything is deallocated. */
function unmapDescriptors(ctx: Ctx, declared: number): UnmapDescriptor[] {
  const list = ctx.dataOut;
  if (declared < 8 || list.length < 8) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  const bdLength = list.readUInt16BE(2);
  const usable = Math.floor(Math.min(bdLength, list.length - 8) / 16);
  if (usable > BlockLimits.maxUnmapDescriptors) throw invalidParamField(2, 7);
  const out: UnmapDescriptor[] = [];
  const capacity = BigInt(ctx.lu.volume.blockCount);
  for (let i = 0; i < usable; i++) {
    const at = 8 + 16 * i;
    const lba = list.readBigUInt64BE(at);
    const blocks = list.readUInt32BE(at + 8);
    if (blocks > BlockLimits.maxUnmapLbaCount) throw invalidParamField(at + 8, 7);
    if (lba + BigInt(blocks) > capacity) throw new CheckCondition(Sense.LBA_OUT_OF_RANGE, { information: lba });
    if (blocks > 0) out.push({ lba: Number(lba), blocks });
  }
  return out;
}

/** UNMAP, SBC-3 5.28. */
export async function unmap(ctx: Ctx): Promise<void> {
  const c = decodeUnmap(ctx.cdb);
  if (c.anchor) throw invalidCdbField(1, 0); // ANC_SUP=0
  if (c.parameterListLength === 0) return;
  for (const d of unmapDescriptors(ctx, c.parameterListLength)) {
    await locked(ctx, d.lba, d.blocks, () => ctx.lu.volume.unmap(d.lba, d.blocks));
  }
}

/** GET LBA STATUS, SBC-3 5.6: runs of mapped / deallocated blocks from volume.extent(). */
export async function getLbaStatus(ctx: Ctx): Promise<Buffer> {
  const c = decodeServiceActionIn16(ctx.cdb);
  const v = ctx.lu.volume;
  if (c.lba >= BigInt(v.blockCount)) throw new CheckCondition(Sense.LBA_OUT_OF_RANGE, { information: c.lba });
  const room = Math.max(1, Math.floor((Math.min(c.allocationLength, 8 + 16 * lbaStatusDescriptorsMax) - 8) / 16));
  const descs: Buffer[] = [];
  for (let lba = Number(c.lba); lba < v.blockCount && descs.length < room;) {
    const e = v.extent(lba, Math.min(v.blockCount - lba, 0xffffffff));
    const blocks = Math.max(1, Math.min(e.blocks, v.blockCount - lba));
    const d = Buffer.alloc(16);
    d.writeBigUInt64BE(BigInt(lba), 0);
    d.writeUInt32BE(blocks, 8);
    d[12] = e.mapped ? 0 : 1; // PROVISIONING STATUS: mapped / deallocated
    descs.push(d);
    lba += blocks;
  }
  const h = Buffer.alloc(8);
  h.writeUInt32BE(4 + 16 * descs.length, 0);
  return Buffer.concat([h, ...descs]);
}

/** READ CAPACITY(10), SBC-3 5.15. */
export async function readCapacity10(ctx: Ctx): Promise<Buffer> {
  const c = decodeReadCapacity10(ctx.cdb);
  if (!c.pmi && c.lba !== 0) throw invalidCdbField(2, 7); // SBC-3 5.15: PMI=0 with LBA != 0
  const v = ctx.lu.volume;
  const b = Buffer.alloc(8);
  b.writeUInt32BE(Math.min(v.blockCount - 1, 0xffffffff), 0);
  b.writeUInt32BE(v.blockSize, 4);
  return b;
}

/** READ CAPACITY(16), SBC-3 5.16: LBPME, LBPRZ, 4 KiB physical blocks. */
export async function readCapacity16(ctx: Ctx): Promise<Buffer> {
  const c = decodeServiceActionIn16(ctx.cdb);
  if (!c.pmi && c.lba !== 0n) throw invalidCdbField(2, 7);
  const v = ctx.lu.volume;
  const b = Buffer.alloc(32);
  b.writeBigUInt64BE(BigInt(v.blockCount - 1), 0);
  b.writeUInt32BE(v.blockSize, 8);
  // LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT: 3 for a 512e LU (4096-byte physical blocks);
  // LOWEST ALIGNED LOGICAL BLOCK ADDRESS 0.
  b[13] = Math.log2(logicalPerPhysical(ctx.lu)) & 0x0f;
  b[14] = 0x80 | 0x40; // LBPME, LBPRZ
  return b;
}

/** SYNCHRONIZE CACHE(10/16), SBC-3 5.22-5.23. */
export async function synchronizeCache(ctx: Ctx): Promise<void> {
  await ctx.lu.volume.flush();
}

/** PRE-FETCH(10/16), SBC-3 5.9-5.10: nothing to stage; GOOD (not CONDITION MET) per 5.9. */
export async function preFetch(): Promise<void> {
  // Range and medium checks are the dispatcher's; the volume has no separate cache to fill.
}

/** READ DEFECT DATA(10/12), SBC-3 5.17-5.18: the defect lists are empty. */
export async function readDefectData(ctx: Ctx, size: 10 | 12): Promise<Buffer> {
  const c = decodeReadDefectData(ctx.cdb, size);
  const f = (c.reqPlist ? 0x10 : 0) | (c.reqGlist ? 0x08 : 0) | c.defectListFormat;
  return size === 10 ? Buffer.from([0, f, 0, 0]) : Buffer.from([0, f, 0, 0, 0, 0, 0, 0]);
}

/**
 * START STOP UNIT, SBC-3 5.25: LOEJ loads or ejects a removable medium; otherwise no effect.
 * Any POWER CONDITION is accepted and ignored (the volume has no power states; libiscsi
 * StartStopUnit.PwrCnd expects GOOD for every value), and then START and LOEJ are ignored.
 */
export async function startStopUnit(ctx: Ctx): Promise<void> {
  const c = decodeStartStopUnit(ctx.cdb);
  if (c.powerCondition !== 0 || !c.loej) return;
  const lu = ctx.lu;
  if (!lu.def.removable) throw invalidCdbField(4, 1);
  // SBC-3 5.25: while removal is prevented, LOEJ=1 fails whether it loads or ejects.
  if (lu.preventers.size > 0) throw new CheckCondition(Sense.MEDIUM_REMOVAL_PREVENTED);
  if (c.start) {
    // No NOT READY TO READY CHANGE unit attention for the other nexuses: the medium that comes
    // back is always the same volume, and libiscsi's suite cleanup on its second session fails
    // on one (NoMedia, StartStopUnit).
    lu.mediumPresent = true;
    return;
  }
  if (!c.noFlush && lu.mediumPresent) await lu.volume.flush();
  lu.mediumPresent = false;
}

// ---------------------------------------------------------------- SANITIZE (SBC-3 5.19, 4.11)

export const SanitizeAction = Object.freeze({ OVERWRITE: 0x01, BLOCK_ERASE: 0x02, CRYPTOGRAPHIC_ERASE: 0x03, EXIT_FAILURE_MODE: 0x1f });
/** Bytes written per volume.write() in an OVERWRITE pass, and blocks per volume.unmap() in an erase. */
export const sanitizeChunkBytes = 1024 * 1024;
export const sanitizeUnmapBlocks = 1 << 20;

interface OverwriteParams { invert: boolean; passes: number; pattern: Buffer }

/** SBC-3 5.19.3: the OVERWRITE parameter list, checked before the LU is touched. */
function overwriteParams(ctx: Ctx, listLength: number): OverwriteParams {
  const bs = ctx.lu.volume.blockSize;
  // PARAMETER LIST LENGTH must be > 4 and < block size + 5.
  if (listLength <= 4 || listLength > bs + 4) throw invalidCdbField(7, 7);
  const p = ctx.dataOut;
  if (p.length < listLength) throw new CheckCondition(Sense.PARAMETER_LIST_LENGTH_ERROR);
  if (p[0] & 0x60) throw invalidParamField(0, 6); // TEST 00b only
  const passes = p[0] & 0x1f;
  if (passes === 0) throw invalidParamField(0, 4);
  const patternLength = p.readUInt16BE(2);
  if (patternLength === 0 || patternLength > bs || patternLength > listLength - 4) throw invalidParamField(2, 7);
  return { invert: (p[0] & 0x80) !== 0, passes, pattern: Buffer.from(p.subarray(4, 4 + patternLength)) };
}

/** SPC-4 4.5.2.4.4: PROGRESS INDICATION is the fraction done of 65536. */
function setProgress(lu: Ctx['lu'], done: number, total: number): void {
  lu.sanitizeProgress = Math.min(65535, Math.floor((done / total) * 65536));
}

async function overwriteAll(lu: Ctx['lu'], o: OverwriteParams): Promise<void> {
  const v = lu.volume;
  const block = Buffer.alloc(v.blockSize);
  for (let i = 0; i < block.length; i += o.pattern.length) o.pattern.copy(block, i);
  const chunkBlocks = Math.max(1, Math.floor(sanitizeChunkBytes / v.blockSize));
  const chunk = Buffer.alloc(chunkBlocks * v.blockSize);
  for (let pass = 0; pass < o.passes; pass++) {
    // SBC-3 5.19.3: INVERT=1 inverts the pattern between passes; the last pass writes it as given.
    const inverted = o.invert && (o.passes - 1 - pass) % 2 === 1;
    for (let i = 0; i < chunkBlocks; i++) block.copy(chunk, i * v.blockSize);
    if (inverted) for (let i = 0; i < chunk.length; i++) chunk[i] ^= 0xff;
    for (let lba = 0; lba < v.blockCount; lba += chunkBlocks) {
      const n = Math.min(chunkBlocks, v.blockCount - lba);
      const release = await lu.locks.acquire(lba, n);
      try {
        await v.write(lba, chunk.subarray(0, n * v.blockSize), { fua: false });
      } finally {
        release();
      }
      setProgress(lu, pass * v.blockCount + lba + n, o.passes * v.blockCount);
    }
  }
  await v.flush();
}

async function eraseAll(lu: Ctx['lu']): Promise<void> {
  // Thin volume: deallocated blocks read as zeros (LBPRZ=1), so erase = deallocate everything.
  const v = lu.volume;
  for (let lba = 0; lba < v.blockCount; lba += sanitizeUnmapBlocks) {
    const n = Math.min(sanitizeUnmapBlocks, v.blockCount - lba);
    const release = await lu.locks.acquire(lba, n);
    try {
      await v.unmap(lba, n);
    } finally {
      release();
    }
    setProgress(lu, lba + n, v.blockCount);
  }
  await v.flush();
}

/**
 * SANITIZE, SBC-3 5.19. While it runs the dispatcher answers NOT READY, SANITIZE IN PROGRESS to
 * everything but INQUIRY, REPORT LUNS and REQUEST SENSE, on every I_T nexus; it goes on through
 * task management and I_T nexus loss (SBC-3 4.11.2). IMMED=1 returns GOOD once it has started.
 * If the task is aborted (ABORT TASK, a reset, the session ending: `cmd.abort`), the command ends
 * at once and the transport sends no status (SAM-5 7.2), but the sanitize operation goes on.
 */
export async function sanitize(ctx: Ctx): Promise<void> {
  const sa = ctx.cdb[1] & 0x1f;
  const immed = (ctx.cdb[1] & 0x80) !== 0;
  const listLength = ctx.cdb.readUInt16BE(7);
  const lu = ctx.lu;
  let work: () => Promise<void>;
  if (sa === SanitizeAction.OVERWRITE) {
    const o = overwriteParams(ctx, listLength);
    work = () => overwriteAll(lu, o);
  } else {
    if (listLength !== 0) throw invalidCdbField(7, 7); // SBC-3 5.19.1: no parameter list
    if (sa === SanitizeAction.EXIT_FAILURE_MODE) {
      lu.sanitizeFailed = false; // SBC-3 4.11.3: completes without sanitizing
      return;
    }
    work = () => eraseAll(lu);
  }
  // A task aborted before it got here never started a sanitize (SAM-5 7.2: no status is sent).
  if (ctx.cmd.abort?.aborted) return;
  const done = startSanitize(ctx, work);
  if (immed) return;
  if (await endedOrAborted(done, ctx.cmd.abort)) return;
  if (lu.sanitizeFailed) throw new CheckCondition(Sense.SANITIZE_COMMAND_FAILED);
}

/** Runs the operation detached from the command: only its own end clears SANITIZE IN PROGRESS. */
function startSanitize(ctx: Ctx, work: () => Promise<void>): Promise<void> {
  const lu = ctx.lu;
  lu.sanitizing = true;
  lu.sanitizeFailed = false;
  lu.sanitizeProgress = 0;
  const run = work().then(() => { lu.sanitizeFailed = false; }, (e: unknown) => {
    lu.sanitizeFailed = true;
    ctx.log.error({ err: e, lun: ctx.cmd.lun, itt: ctx.cmd.taskTag }, 'SANITIZE failed');
  }).finally(() => {
    lu.sanitizing = false;
    lu.sanitizeRun = null;
  });
  lu.sanitizeRun = run;
  return run;
}

/** True if the task was aborted before the operation ended (the operation itself goes on). */
function endedOrAborted(done: Promise<void>, abort: AbortSignal | undefined): Promise<boolean> {
  if (!abort) return done.then(() => false);
  if (abort.aborted) return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    const onAbort = (): void => resolve(true);
    abort.addEventListener('abort', onAbort, { once: true });
    void done.then(() => {
      abort.removeEventListener('abort', onAbort);
      resolve(false);
    });
  });
}
