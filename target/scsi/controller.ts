// The device-type template for a command device: a storage array controller LU (peripheral type
// 0Ch, SCC-2) that answers the SPC commands every LU answers and the vendor pair commands, which
// name their volumes by LDEV number (docs/pairs.md). It has no medium to read or write.
import type { OpTable } from './dispatch';
import { Op, diskOpcodes } from './disk';
import { pairRows } from './pair';

const spcOps = [Op.TEST_UNIT_READY, Op.REQUEST_SENSE, Op.INQUIRY, Op.REPORT_LUNS, Op.MAINTENANCE_IN];

export const controllerOpcodes: OpTable = new Map([
  ...spcOps.map((op) => [op, diskOpcodes.get(op)!] as const),
  ...pairRows('allowed'),
]);
