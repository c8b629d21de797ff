// Test-only: an IscsiServer on 127.0.0.1:0 with a fake device, and a raw client that writes
// hand-built PDUs (BhsBuilder) and reads answers field by field at RFC 7143 offsets, so the
// tests do not check the codec with itself.
import net from 'net';
import pino from 'pino';
import { BhsBuilder, crc32cSlow } from '../../helpers/bhs-builder';
import { IscsiServer } from '../../../target/iscsi/server';
import type { IscsiServerOptions, TargetDefinition } from '../../../target/iscsi/types';
import { FakeDevice } from './fake-device';

export const IQN = 'iqn.2026-11.dev.dkc-emu:t1';
export const INITIATOR = 'iqn.2026-11.dev.dkc-emu:host1';

export interface Started {
  server: IscsiServer;
  device: FakeDevice;
  port: number;
  target: TargetDefinition;
}

export async function startServer(over: Partial<TargetDefinition> = {}, opts: Partial<IscsiServerOptions> = {}): Promise<Started> {
  const device = new FakeDevice();
  const target: TargetDefinition = { name: IQN, tpgt: 1, portals: [{ host: '127.0.0.1', port: 0 }], device, ...over };
  const server = new IscsiServer({ targets: [target], ...opts }, pino({ level: process.env.LOG_LEVEL ?? 'silent' }));
  await server.start();
  return { server, device, port: server.addresses()[0].port, target };
}

/** A PDU as received: the BHS bytes and the data segment, with field readers by offset. */
export class RawPdu {
  constructor(readonly bhs: Buffer, readonly data: Buffer) {}
  get opcode(): number { return this.bhs[0] & 0x3f; }
  get flags(): number { return this.bhs[1]; }
  u8(o: number): number { return this.bhs[o]; }
  u16(o: number): number { return this.bhs.readUInt16BE(o); }
  u32(o: number): number { return this.bhs.readUInt32BE(o); }
  get itt(): number { return this.u32(16); }
  get statSn(): number { return this.u32(24); }
  get expCmdSn(): number { return this.u32(28); }
  get maxCmdSn(): number { return this.u32(32); }
  /** key=value pairs of a text or login data segment. */
  get pairs(): Map<string, string> {
    const m = new Map<string, string>();
    for (const item of this.data.toString('utf8').split('\0')) {
      if (item === '') continue;
      const eq = item.indexOf('=');
      m.set(item.slice(0, eq), item.slice(eq + 1));
    }
    return m;
  }
  get textList(): Array<[string, string]> {
    return this.data.toString('utf8').split('\0').filter((s) => s !== '').map((s) => [s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)]);
  }
}

export function text(pairs: Array<[string, string]> | Record<string, string>): Buffer {
  const list = Array.isArray(pairs) ? pairs : Object.entries(pairs);
  return Buffer.from(list.map(([k, v]) => `${k}=${v}\0`).join(''), 'utf8');
}

export class RawClient {
  readonly socket: net.Socket;
  private buf = Buffer.alloc(0);
  private readonly queue: RawPdu[] = [];
  private waiters: Array<() => void> = [];
  closed = false;
  cmdSn = 1;
  statSn = 0;
  itt = 0x100;
  headerDigest = false;
  dataDigest = false;
  /** Received PDUs whose CRC32C (least significant byte first) did not match. */
  digestErrors = 0;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => { this.buf = Buffer.concat([this.buf, d]); this.parse(); });
    socket.on('close', () => { this.closed = true; this.wake(); });
    socket.on('error', () => undefined);
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private parse(): void {
    for (;;) {
      if (this.buf.length < 48) return;
      const ahs = this.buf[4] * 4;
      const dsl = this.buf.readUIntBE(5, 3);
      const hd = this.headerDigest ? 4 : 0;
      const dd = this.dataDigest && dsl > 0 ? 4 : 0;
      const total = 48 + ahs + hd + ((dsl + 3) & ~3) + dd;
      if (this.buf.length < total) return;
      const bhs = Buffer.from(this.buf.subarray(0, 48));
      const data = Buffer.from(this.buf.subarray(48 + ahs + hd, 48 + ahs + hd + dsl));
      if (hd > 0 && this.buf.readUInt32LE(48 + ahs) !== crc32cSlow([this.buf.subarray(0, 48 + ahs)])) this.digestErrors++;
      const padded = (dsl + 3) & ~3;
      if (dd > 0 && this.buf.readUInt32LE(48 + ahs + hd + padded) !== crc32cSlow([this.buf.subarray(48 + ahs + hd, 48 + ahs + hd + padded)])) this.digestErrors++;
      this.buf = this.buf.subarray(total);
      this.queue.push(new RawPdu(bhs, data));
      this.wake();
    }
  }

  /** Sends a BHS with its data segment, padded to 4 bytes. */
  send(bhs: Buffer, data: Buffer = Buffer.alloc(0)): void {
    bhs[5] = (data.length >> 16) & 0xff; bhs[6] = (data.length >> 8) & 0xff; bhs[7] = data.length & 0xff;
    const pad = Buffer.alloc(((data.length + 3) & ~3) - data.length);
    const parts = [bhs];
    if (this.headerDigest) parts.push(le32(crc32cSlow([bhs])));
    if (data.length > 0) {
      parts.push(data, pad);
      if (this.dataDigest) parts.push(le32(crc32cSlow([data, pad])));
    }
    this.socket.write(Buffer.concat(parts));
  }

  /** The next PDU, or undefined after timeoutMs (or when the connection closed). */
  async next(timeoutMs = 2000): Promise<RawPdu | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (this.closed) return undefined;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
    return this.queue.shift();
  }

  async expect(timeoutMs = 2000): Promise<RawPdu> {
    const p = await this.next(timeoutMs);
    if (p === undefined) throw new Error(this.closed ? 'connection closed' : 'no PDU in time');
    if (p.opcode !== 0x20 || p.itt !== 0xffffffff) this.statSn = p.statSn;
    return p;
  }

  /** Waits for the connection to close (true) or not within timeoutMs (false). */
  async waitClosed(timeoutMs = 2000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      this.queue.length = 0;
      await this.next(deadline - Date.now());
    }
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }

  // ---- login

  isid = Buffer.from([0x80, 0x12, 0x34, 0x56, 0x00, 0x01]);
  tsih = 0;

  loginPdu(o: { csg: number; nsg: number; transit: boolean; cont?: boolean; itt?: number; tsih?: number; cid?: number; versionMin?: number; versionMax?: number }): Buffer {
    const flags = (o.transit ? 0x80 : 0) | (o.cont ? 0x40 : 0) | (o.csg << 2) | o.nsg;
    return new BhsBuilder(0x03, true).u8(1, flags).u8(2, o.versionMax ?? 0).u8(3, o.versionMin ?? 0).raw(8, this.isid)
      .u16(14, o.tsih ?? this.tsih).itt(o.itt ?? 1).u16(20, o.cid ?? 0).u32(24, this.cmdSn).u32(28, this.statSn + 1).build();
  }

  async login(pairs: Array<[string, string]> | Record<string, string>, o: { csg: number; nsg: number; transit: boolean; cont?: boolean; tsih?: number; cid?: number; versionMin?: number }): Promise<RawPdu> {
    this.send(this.loginPdu(o), text(pairs));
    const r = await this.expect();
    return r;
  }

  /** One-PDU login straight to full feature phase (no authentication). */
  async loginNormal(extra: Record<string, string> = {}, initiator = INITIATOR): Promise<RawPdu> {
    const r = await this.login({ InitiatorName: initiator, TargetName: IQN, SessionType: 'Normal', ...extra }, { csg: 1, nsg: 3, transit: true });
    if (r.u8(36) !== 0) throw new Error(`login failed 0x${r.u16(36).toString(16)}`);
    this.tsih = r.u16(14);
    this.cmdSn = r.expCmdSn;
    return r;
  }

  // ---- full feature phase

  scsi(o: { cdb: number[]; read?: boolean; write?: boolean; edtl: number; final?: boolean; immediate?: boolean; lun?: number; itt?: number; cmdSn?: number; data?: Buffer; attr?: number }): number {
    const itt = o.itt ?? this.itt++;
    const flags = ((o.final ?? true) ? 0x80 : 0) | (o.read ? 0x40 : 0) | (o.write ? 0x20 : 0) | (o.attr ?? 1);
    const cmdSn = o.cmdSn ?? this.cmdSn;
    if (o.cmdSn === undefined && !o.immediate) this.cmdSn++;
    const lun = [0, o.lun ?? 0, 0, 0, 0, 0, 0, 0];
    const b = new BhsBuilder(0x01, o.immediate ?? false).u8(1, flags).lun(lun).itt(itt).u32(20, o.edtl).u32(24, cmdSn).u32(28, this.statSn + 1)
      .raw(32, o.cdb).build();
    this.send(b, o.data);
    return itt;
  }

  dataOut(o: { itt: number; ttt: number; dataSn: number; offset: number; data: Buffer; final: boolean; lun?: number }): void {
    const b = new BhsBuilder(0x05).u8(1, o.final ? 0x80 : 0).lun([0, o.lun ?? 0, 0, 0, 0, 0, 0, 0]).itt(o.itt).u32(20, o.ttt)
      .u32(28, this.statSn + 1).u32(36, o.dataSn).u32(40, o.offset).build();
    this.send(b, o.data);
  }

  nopOut(o: { itt: number; ttt?: number; immediate?: boolean; data?: Buffer; cmdSn?: number }): void {
    const imm = o.immediate ?? true;
    const cmdSn = o.cmdSn ?? this.cmdSn;
    if (o.cmdSn === undefined && !imm) this.cmdSn++;
    const b = new BhsBuilder(0x00, imm).u8(1, 0x80).itt(o.itt).u32(20, o.ttt ?? 0xffffffff).u32(24, cmdSn).u32(28, this.statSn + 1).build();
    this.send(b, o.data);
  }

  tmf(o: { fn: number; lun?: number; ref?: number; refCmdSn?: number; itt?: number; immediate?: boolean }): number {
    const itt = o.itt ?? this.itt++;
    const imm = o.immediate ?? true;
    const cmdSn = this.cmdSn;
    if (!imm) this.cmdSn++;
    const b = new BhsBuilder(0x02, imm).u8(1, 0x80 | o.fn).lun([0, o.lun ?? 0, 0, 0, 0, 0, 0, 0]).itt(itt).u32(20, o.ref ?? 0xffffffff)
      .u32(24, cmdSn).u32(28, this.statSn + 1).u32(32, o.refCmdSn ?? 0).build();
    this.send(b);
    return itt;
  }

  textReq(pairs: Array<[string, string]>, o: { itt?: number; ttt?: number; cont?: boolean; final?: boolean } = {}): number {
    const itt = o.itt ?? this.itt++;
    const flags = ((o.final ?? !o.cont) ? 0x80 : 0) | (o.cont ? 0x40 : 0);
    const b = new BhsBuilder(0x04, false).u8(1, flags).itt(itt).u32(20, o.ttt ?? 0xffffffff).u32(24, this.cmdSn++).u32(28, this.statSn + 1).build();
    this.send(b, text(pairs));
    return itt;
  }

  logout(reason = 0, cid = 0): number {
    const itt = this.itt++;
    const b = new BhsBuilder(0x06, true).u8(1, 0x80 | reason).itt(itt).u16(20, cid).u32(24, this.cmdSn).u32(28, this.statSn + 1).build();
    this.send(b);
    return itt;
  }
}

function le32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
}

export function read10(lba: number, blocks: number): number[] {
  return [0x28, 0, (lba >>> 24) & 0xff, (lba >> 16) & 0xff, (lba >> 8) & 0xff, lba & 0xff, 0, (blocks >> 8) & 0xff, blocks & 0xff, 0];
}

export function write10(lba: number, blocks: number): number[] {
  return [0x2a, 0, (lba >>> 24) & 0xff, (lba >> 16) & 0xff, (lba >> 8) & 0xff, lba & 0xff, 0, (blocks >> 8) & 0xff, blocks & 0xff, 0];
}

export const Op = Object.freeze({
  NOP_IN: 0x20, SCSI_RESPONSE: 0x21, TMF_RESPONSE: 0x22, LOGIN_RESPONSE: 0x23, TEXT_RESPONSE: 0x24, DATA_IN: 0x25,
  LOGOUT_RESPONSE: 0x26, R2T: 0x31, ASYNC: 0x32, REJECT: 0x3f,
});
