import * as assert from 'assert';
import fc from 'fast-check';
import { diskOpcodes } from '../../../target/scsi/disk';
import { OpRow, cdbUsage, isServiceActionEntry } from '../../../target/scsi/dispatch';
import { Status } from '../../../target/scsi/sense';
import { Harness } from './harness';

const opcodes = [...diskOpcodes.keys()];
const statuses: number[] = [Status.GOOD, Status.CHECK_CONDITION, Status.RESERVATION_CONFLICT];

describe('dispatcher robustness', () => {
  it('random CDBs and Data-Out for every supported opcode never raise an internal failure', async () => {
    const h = new Harness([{ lun: 0, blockCount: 2048 }, { lun: 1, blockCount: 64, blockSize: 4096, removable: true }]);
    const a = await h.login('iqn.x:a');
    const b = await h.login('iqn.x:b');
    const seed = Number(process.env.SEED ?? 20261122);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...opcodes), fc.uint8Array({ minLength: 15, maxLength: 15 }),
        fc.option(fc.uint8Array({ maxLength: 2048 }), { nil: undefined }), fc.boolean(), fc.constantFrom(0, 1, 5),
        async (opcode, rest, dataOut, useB, lun) => {
          const cdb = Buffer.concat([Buffer.from([opcode]), Buffer.from(rest)]);
          const r = await h.run(useB ? b : a, cdb, { lun, dataOut: dataOut ? Buffer.from(dataOut) : undefined });
          assert.ok(statuses.includes(r.status), `status ${r.status}`);
          assert.ok(r.status !== Status.CHECK_CONDITION || (r.sense && r.sense.length >= 8));
          assert.ok((r.data?.length ?? 0) <= 16 * 1024 * 1024);
        },
      ),
      { seed, numRuns: 3000 },
    );
    h.assertNoBugs();
  });

  it('random valid-shaped CDBs (usage mask applied, small LBAs) never raise an internal failure', async () => {
    const rows: { opcode: number; sa?: number; row: OpRow }[] = [];
    for (const [opcode, e] of diskOpcodes) {
      if (isServiceActionEntry(e)) for (const [sa, row] of e.serviceActions) rows.push({ opcode, sa, row });
      else rows.push({ opcode, row: e });
    }
    const h = new Harness([{ lun: 0, blockCount: 2048 }, { lun: 1, blockCount: 64, blockSize: 4096, removable: true }]);
    const a = await h.login('iqn.x:a');
    const b = await h.login('iqn.x:b');
    const seed = Number(process.env.SEED ?? 20261123);
    let goodCount = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...rows), fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.option(fc.uint8Array({ maxLength: 4096 }), { nil: undefined }), fc.boolean(), fc.constantFrom(0, 1),
        async ({ opcode, sa, row }, raw, dataOut, useB, lun) => {
          const usage = cdbUsage(opcode, row, sa);
          const cdb = Buffer.alloc(row.cdbLength);
          for (let i = 1; i < row.cdbLength - 1; i++) cdb[i] = raw[i] & usage[i];
          cdb[0] = opcode;
          if (sa !== undefined) cdb[1] = (cdb[1] & 0xe0) | sa;
          // Keep LBAs and lengths small most of the time so the command reaches its handler.
          if (raw[0] & 1) {
            for (const f of [row.lba, row.length, row.parameterListLength]) {
              if (f && f[1] > 1) cdb.fill(0, f[0], f[0] + f[1] - 1);
            }
          }
          const r = await h.run(useB ? b : a, cdb, { lun, dataOut: dataOut ? Buffer.from(dataOut) : undefined });
          assert.ok(statuses.includes(r.status), `${row.name}: status ${r.status}`);
          if (r.status === Status.GOOD) goodCount++;
        },
      ),
      { seed, numRuns: 3000 },
    );
    assert.ok(goodCount > 300, `only ${goodCount} of 3000 commands reached GOOD: the generator is too narrow`);
    h.assertNoBugs();
  });
});
