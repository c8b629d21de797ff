// One SCSI task as the transport sees it (RFC 7143 4.2.5): its Data-Out state (immediate,
// unsolicited, R2T bursts), and the Data-In / SCSI Response PDUs that end it.
import type { ScsiResponse } from '../scsi/types';
import { DataIn, Opcode, Pdu, RESERVED_TAG, ScsiResponsePdu } from './pdu';
import type { SenseCode } from '../scsi/sense';

/** One outstanding R2T: the burst it solicits and what has arrived of it. */
export interface R2tState {
  ttt: number;
  offset: number;
  length: number;
  received: number;
  nextDataSn: number;
}

export interface TaskOwner {
  /** Stops a task: no response will be sent; resolves once the device is done with it. */
  abortTask(task: Task): Promise<void>;
}

export interface Task {
  readonly itt: number;
  readonly cmdSn: number;
  readonly immediate: boolean;
  readonly lun: number;
  readonly lunField: Buffer;
  readonly cdb: Buffer;
  readonly attr: number;
  readonly read: boolean;
  readonly write: boolean;
  readonly expectedLength: number;
  readonly owner: TaskOwner;
  /** data: gathering Data-Out; ready: waiting its turn; running: in the device; done: answered or aborted. */
  state: 'data' | 'ready' | 'running' | 'done';
  aborted: boolean;
  /** Write data, allocated for the expected length (bounded by taskWriteBytesMax). */
  buffer: Buffer | null;
  received: number;
  /** Unsolicited Data-Out (TTT 0xffffffff) may still come: the command's F bit was 0. */
  unsolicitedOpen: boolean;
  unsolicitedLimit: number;
  unsolicitedDataSn: number;
  r2ts: Map<number, R2tState>;
  nextR2tOffset: number;
  r2tSn: number;
  /** The transport answers CHECK CONDITION with this sense instead of running the command. */
  refusal: SenseCode | undefined;
  /** Settles when the device has finished with the task. */
  execution: Promise<void> | undefined;
  /**
   * Signals ScsiCommand.abort; made only when the device asks for the signal (most commands
   * never do), and made already aborted if the task was aborted first.
   */
  abortController: AbortController | undefined;
}

const EMPTY = Buffer.alloc(0);

export interface ResponseContext {
  /** The initiator's MaxRecvDataSegmentLength. */
  maxSegment: number;
  maxBurst: number;
  takeStatSn(): number;
  peekStatSn(): number;
  window: { expCmdSn: number; maxCmdSn: number };
}

interface Residual { overflow: boolean; underflow: boolean; count: number }

/** RFC 7143 11.4.5: residuals against the Expected Data Transfer Length. */
export function residualOf(task: Task, resp: ScsiResponse): Residual {
  const edtl = task.expectedLength;
  let spdtl: number;
  if (task.write) spdtl = resp.dataOutWanted ?? edtl;
  else if (task.read) spdtl = resp.data?.length ?? 0;
  else spdtl = resp.data?.length ?? 0;
  if (spdtl > edtl) return { overflow: true, underflow: false, count: spdtl - edtl };
  if (spdtl < edtl && (task.read || task.write)) return { overflow: false, underflow: true, count: edtl - spdtl };
  return { overflow: false, underflow: false, count: 0 };
}

/**
 * The PDUs that end a task: Data-In split at the initiator's MaxRecvDataSegmentLength with F at
 * every MaxBurstLength, status in the last Data-In (S bit) when there is no sense, a SCSI
 * Response otherwise (RFC 7143 11.7.1, 11.4).
 */
export function responsePdus(task: Task, resp: ScsiResponse, ctx: ResponseContext): Pdu[] {
  const data = task.read ? resp.data ?? EMPTY : EMPTY;
  const send = Math.min(data.length, task.expectedLength);
  const residual = residualOf(task, resp);
  const statusInData = send > 0 && (resp.sense === undefined || resp.sense.length === 0);
  const pdus: Pdu[] = [];
  let offset = 0;
  let dataSn = 0;
  let burst = 0;
  while (offset < send) {
    const len = Math.min(ctx.maxSegment, send - offset, ctx.maxBurst - burst);
    const last = offset + len === send;
    burst += len;
    const endBurst = last || burst === ctx.maxBurst;
    if (endBurst) burst = 0;
    const withStatus = last && statusInData;
    const pdu: DataIn = {
      opcode: Opcode.DataIn, immediate: false, final: endBurst, acknowledge: false,
      residualOverflow: withStatus && residual.overflow, residualUnderflow: withStatus && residual.underflow,
      hasStatus: withStatus, status: withStatus ? resp.status : 0, lun: task.lunField, itt: task.itt, ttt: RESERVED_TAG,
      statSn: withStatus ? ctx.takeStatSn() : ctx.peekStatSn(), ...ctx.window,
      dataSn: dataSn++, bufferOffset: offset, residualCount: withStatus ? residual.count : 0,
      ahs: EMPTY, data: data.subarray(offset, offset + len),
    };
    pdus.push(pdu);
    offset += len;
  }
  if (statusInData) return pdus;
  pdus.push(scsiResponse(task, resp.status, resp.sense, residual, dataSn + task.r2tSn, ctx));
  return pdus;
}

function scsiResponse(task: Task, status: number, sense: Buffer | undefined, r: Residual, expDataSn: number, ctx: ResponseContext): ScsiResponsePdu {
  let data = EMPTY;
  if (sense !== undefined && sense.length > 0) {
    // RFC 7143 11.4.7.2: SenseLength (2 bytes) then the sense data.
    data = Buffer.allocUnsafe(2 + sense.length);
    data.writeUInt16BE(sense.length, 0);
    sense.copy(data, 2);
  }
  return {
    opcode: Opcode.ScsiResponse, immediate: false, final: true, bidiReadResidualOverflow: false, bidiReadResidualUnderflow: false,
    residualOverflow: r.overflow, residualUnderflow: r.underflow, response: 0x00, status, itt: task.itt, snackTag: 0,
    statSn: ctx.takeStatSn(), ...ctx.window, expDataSn, bidiReadResidualCount: 0, residualCount: r.count,
    ahs: EMPTY, data,
  };
}
