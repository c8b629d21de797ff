// Test-only scripted iSCSI peer for the initiator's tests: logs anyone in (AuthMethod=None,
// answers every offer within its rule), then hands SCSI Commands and Data-Out to the test,
// which answers with Data-In, R2T or SCSI Response at will. It lets a test show behaviour the
// project target never shows (DataSN gaps, a tiny command window, R2Ts outside the data).
import * as net from 'node:net';
import { framePdu, PduReader } from '../../target/iscsi/framing';
import {
  AsyncMessage, DataIn, DataOut, LoginRequest, NopIn, NopOut, Opcode, Pdu, R2t, Reject, RESERVED_TAG, ScsiCommandPdu, ScsiResponsePdu,
  TextRequest, TextResponse,
} from '../../target/iscsi/pdu';
import { decodeText, encodeText, TextPairs } from '../../target/iscsi/text';

const E = Buffer.alloc(0);

export interface PeerOptions {
  window?: number;
  maxRecvDataSegmentLength?: number;
  initialR2T?: boolean;
  immediateData?: boolean;
  /** Answer every login with "target moved temporarily" (0101) to this TargetAddress. */
  redirectTo?: string;
}

export class ScriptedTarget {
  host = '127.0.0.1';
  port = 0;
  window: number;
  onCommand: (cmd: ScsiCommandPdu, send: (p: Pdu) => void) => void = () => undefined;
  onDataOut: (d: DataOut) => void = () => undefined;
  onText: (t: TextRequest, send: (p: Pdu) => void) => void = () => undefined;
  /** NOP-Outs answering our pings (ITT reserved). */
  readonly pingAnswers: NopOut[] = [];
  private statSn = 1;
  private expCmdSn = 1;
  private socket: net.Socket | null = null;
  private readonly sockets = new Set<net.Socket>();

  private constructor(private readonly server: net.Server, private readonly o: PeerOptions) {
    this.window = o.window ?? 32;
  }

  static async start(o: PeerOptions = {}): Promise<ScriptedTarget> {
    const server = net.createServer();
    const peer = new ScriptedTarget(server, o);
    server.on('connection', (s) => peer.accept(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    peer.port = (server.address() as net.AddressInfo).port;
    return peer;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private accept(s: net.Socket): void {
    this.sockets.add(s);
    this.socket = s;
    const reader = new PduReader((r) => {
      if (r.kind !== 'pdu') { s.destroy(); return; }
      this.receive(r.pdu);
    });
    reader.maxDataSegmentLength = 1 << 20;
    s.on('data', (c: Buffer) => reader.push(c));
    s.on('error', () => undefined);
    s.on('close', () => this.sockets.delete(s));
  }

  send(p: Pdu): void {
    this.socket?.write(Buffer.concat(framePdu(p, { header: false, data: false })));
  }

  private numbers(status: boolean): { statSn: number; expCmdSn: number; maxCmdSn: number } {
    const statSn = status ? this.statSn++ : this.statSn;
    return { statSn, expCmdSn: this.expCmdSn, maxCmdSn: (this.expCmdSn + this.window - 1) >>> 0 };
  }

  private receive(p: Pdu): void {
    if ('cmdSn' in p && p.opcode !== Opcode.LoginRequest && !p.immediate) this.expCmdSn = (p.cmdSn + 1) >>> 0;
    switch (p.opcode) {
      case Opcode.LoginRequest: return this.login(p);
      case Opcode.ScsiCommand: return this.onCommand(p, (x) => this.send(x));
      case Opcode.DataOut: return this.onDataOut(p);
      case Opcode.NopOut: return this.nop(p);
      case Opcode.TextRequest: return this.onText(p, (x) => this.send(x));
      default: return undefined;
    }
  }

  private nop(p: NopOut): void {
    if (p.itt === RESERVED_TAG) {
      this.pingAnswers.push(p);
      return;
    }
    this.send({ opcode: Opcode.NopIn, immediate: false, final: true, ahs: E, data: p.data, itt: p.itt, lun: p.lun, ttt: RESERVED_TAG, ...this.numbers(true) });
  }

  /** Login Requests seen (a test may count attempts). */
  logins = 0;

  private login(p: LoginRequest): void {
    this.logins++;
    if (this.o.redirectTo !== undefined) {
      this.send({
        opcode: Opcode.LoginResponse, immediate: false, final: false, transit: false, continue: false, csg: p.csg, nsg: 0,
        versionMax: 0, versionActive: 0, isid: p.isid, tsih: 0, ahs: E, data: encodeText([['TargetAddress', this.o.redirectTo]]),
        itt: p.itt, ...this.numbers(true), statusClass: 1, statusDetail: 1,
      });
      return;
    }
    const keys = decodeText(p.data);
    const answers: TextPairs = [];
    if (p.csg === 0) answers.push(['AuthMethod', 'None']);
    for (const [k, v] of keys) {
      if (p.csg !== 1) continue;
      if (k === 'HeaderDigest' || k === 'DataDigest') answers.push([k, 'None']);
      else if (k === 'MaxRecvDataSegmentLength') answers.push([k, String(this.o.maxRecvDataSegmentLength ?? 262144)]);
      else if (k === 'InitialR2T') answers.push([k, v === 'Yes' || this.o.initialR2T ? 'Yes' : 'No']);
      else if (k === 'ImmediateData') answers.push([k, v === 'Yes' && this.o.immediateData !== false ? 'Yes' : 'No']);
      else answers.push([k, v]);
    }
    this.expCmdSn = p.cmdSn;
    this.send({
      opcode: Opcode.LoginResponse, immediate: false, final: p.transit, transit: p.transit, continue: false, csg: p.csg, nsg: p.nsg,
      versionMax: 0, versionActive: 0, isid: p.isid, tsih: p.transit && p.nsg === 3 ? 1 : 0, ahs: E, data: encodeText(answers),
      itt: p.itt, ...this.numbers(true), statusClass: 0, statusDetail: 0,
    });
  }

  dataIn(o: { itt: number; lun: Buffer; dataSn: number; bufferOffset: number; data: Buffer; status?: number }): DataIn {
    const hasStatus = o.status !== undefined;
    return {
      opcode: Opcode.DataIn, immediate: false, final: hasStatus, acknowledge: false, residualOverflow: false, residualUnderflow: false,
      hasStatus, status: o.status ?? 0, ahs: E, data: o.data, itt: o.itt, lun: o.lun, ttt: RESERVED_TAG, ...this.numbers(hasStatus),
      dataSn: o.dataSn, bufferOffset: o.bufferOffset, residualCount: 0,
    };
  }

  response(itt: number, status: number): ScsiResponsePdu {
    return {
      opcode: Opcode.ScsiResponse, immediate: false, final: true, bidiReadResidualOverflow: false, bidiReadResidualUnderflow: false,
      residualOverflow: false, residualUnderflow: false, response: 0, status, ahs: E, data: E, itt, snackTag: 0, ...this.numbers(true),
      expDataSn: 0, bidiReadResidualCount: 0, residualCount: 0,
    };
  }

  text(itt: number, pairs: TextPairs, more: { ttt: number } | null): TextResponse {
    return {
      opcode: Opcode.TextResponse, immediate: false, final: more === null, continue: false, ahs: E, data: encodeText(pairs), itt,
      lun: Buffer.alloc(8), ttt: more?.ttt ?? RESERVED_TAG, ...this.numbers(true),
    };
  }

  asyncMessage(asyncEvent: number, data: Buffer = E): AsyncMessage {
    return {
      opcode: Opcode.AsyncMessage, immediate: false, final: true, ahs: E, data, itt: RESERVED_TAG, lun: Buffer.alloc(8),
      ...this.numbers(true), asyncEvent, asyncVCode: 0, parameter1: 0, parameter2: 0, parameter3: 0,
    };
  }

  reject(header: Buffer, reason: number): Reject {
    return { opcode: Opcode.Reject, immediate: false, final: true, ahs: E, data: header, itt: RESERVED_TAG, reason, ...this.numbers(true), dataSn: 0 };
  }

  /** A target ping: NOP-In with ITT reserved and a TTT that asks for an answer. */
  ping(ttt: number, data: Buffer): NopIn {
    return { opcode: Opcode.NopIn, immediate: false, final: true, ahs: E, data, itt: RESERVED_TAG, lun: Buffer.alloc(8), ttt, ...this.numbers(false) };
  }

  r2t(itt: number, ttt: number, bufferOffset: number, length: number, r2tSn: number): R2t {
    return {
      opcode: Opcode.R2t, immediate: false, final: true, ahs: E, data: E, itt, lun: Buffer.alloc(8), ttt, ...this.numbers(false),
      r2tSn, bufferOffset, desiredDataTransferLength: length,
    };
  }
}
