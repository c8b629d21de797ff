// Stable identities of an LDEV as the host sees them (VPD 80h unit serial, VPD 83h NAA),
// derived only from the DKC serial and the LDEV number, so they survive restarts and
// re-creation of the data directory from the same configuration.
import assert from 'node:assert';

/**
 * IEEE company id used in NAA identifiers. dkc-emu has no registered OUI, so this is a
 * locally administered CID (bit 0x02 of the first octet set, multicast bit clear): it cannot
 * collide with any vendor's registered OUI.
 */
export const DKC_EMU_COMPANY_ID = 0x0adce0;

/** Largest DKC serial: the 36-bit vendor specific identifier holds it in its low 32 bits. */
export const DKC_SERIAL_MAX = 0xffffffff;
/** LDEV numbers are CU:LDEV style 16-bit numbers. */
export const LDEV_NUMBER_MAX = 0xffff;

/**
 * NAA IEEE Registered Extended designator (SPC-4 7.8.6.6.5, NAA 6h), 16 bytes:
 * NAA(4) | IEEE company id(24) | vendor specific identifier(36) | extension(64).
 * Vendor specific identifier = DKC serial; extension = 'DKC' tag (0x444b43) << 16 | LDEV number.
 */
export function ldevNaa(dkcSerial: number, ldev: number): Buffer {
  checkIds(dkcSerial, ldev);
  const b = Buffer.alloc(16);
  const id = DKC_EMU_COMPANY_ID;
  b[0] = 0x60 | (id >>> 20);
  b[1] = (id >>> 12) & 0xff;
  b[2] = (id >>> 4) & 0xff;
  // Low nibble of byte 3 = bits 35..32 of the vendor specific identifier (0: serial is 32-bit).
  b[3] = (id & 0x0f) << 4;
  b.writeUInt32BE(dkcSerial, 4);
  b.writeUInt32BE(0x00444b43, 8);
  b.writeUInt32BE(ldev, 12);
  return b;
}

/** Unit serial number (VPD 80h): DKC serial in decimal and the LDEV number as 4 hex digits. */
export function ldevSerial(dkcSerial: number, ldev: number): string {
  checkIds(dkcSerial, ldev);
  return `${dkcSerial}${ldevHex(ldev)}`;
}

/** "00:2A"-style LDEV number is shown as 4 hex digits, e.g. 002A. */
export function ldevHex(ldev: number): string {
  return ldev.toString(16).toUpperCase().padStart(4, '0');
}

/** Rack-wide LDEV id, e.g. "dkc0:ldev:0001". */
export function ldevId(dkcName: string, ldev: number): string {
  return `${dkcName}:ldev:${ldevHex(ldev)}`;
}

function checkIds(dkcSerial: number, ldev: number): void {
  assert(Number.isInteger(dkcSerial) && dkcSerial >= 0 && dkcSerial <= DKC_SERIAL_MAX, `bad DKC serial ${dkcSerial}`);
  assert(Number.isInteger(ldev) && ldev >= 0 && ldev <= LDEV_NUMBER_MAX, `bad LDEV number ${ldev}`);
}
