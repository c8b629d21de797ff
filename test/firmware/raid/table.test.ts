import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { RaidTable } from '../../../firmware/raid/table';
import { tmpDirs } from '../../helpers/common';

const config = { groups: [{ name: 'rg0', drives: ['rg0-0', 'rg0-1', 'rg0-2'] }], spares: ['spare-0'] };

describe('RAID table', () => {
  const tmp = tmpDirs();

  it('starts from the configuration: every slot normal, the spares in the pool', async () => {
    const t = await RaidTable.open(path.join(tmp.make(), 'raid-table.json'), config);
    assert.deepEqual(t.slots('rg0').map((s) => [s.drive, s.state]), [['rg0-0', 'normal'], ['rg0-1', 'normal'], ['rg0-2', 'normal']]);
    assert.deepEqual(t.spares, ['spare-0']);
    assert.deepEqual(t.locate('rg0-1'), { group: 'rg0', slot: 1 });
    assert.equal(t.locate('spare-0'), 'spare');
    assert.equal(t.locate('nowhere'), undefined);
  });

  it('a spare takeover and rebuild cursor survive a reopen; the configuration does not undo them', async () => {
    const file = path.join(tmp.make(), 'raid-table.json');
    const t = await RaidTable.open(file, config);
    await t.removeSpare('spare-0');
    await t.setSlot('rg0', 1, { drive: 'spare-0', state: 'rebuilding', rebuiltRows: 128 });
    const again = await RaidTable.open(file, config);
    assert.deepEqual(again.slots('rg0')[1], { drive: 'spare-0', state: 'rebuilding', rebuiltRows: 128 });
    assert.deepEqual(again.spares, []);
    // rg0-1 was taken out by the takeover: it is nowhere until it is replaced
    assert.equal(again.locate('rg0-1'), undefined);
  });

  it('groups and spares added to the configuration later join the table', async () => {
    const file = path.join(tmp.make(), 'raid-table.json');
    await RaidTable.open(file, config);
    const t = await RaidTable.open(file, { groups: [...config.groups, { name: 'rg1', drives: ['rg1-0', 'rg1-1'] }], spares: ['spare-0', 'spare-1'] });
    assert.equal(t.slots('rg1').length, 2);
    assert.deepEqual(t.spares, ['spare-0', 'spare-1']);
  });

  it('a damaged table is refused with its file named', async () => {
    const file = path.join(tmp.make(), 'raid-table.json');
    await fs.writeFile(file, '{"format":"dkc-emu-raid-table/1","groups":{"rg0":[{"drive":"x","state":"melted","rebuiltRows":0}]},"spares":[]}');
    await assert.rejects(RaidTable.open(file, config), (err: Error) => err.message.includes(file) && /bad slot/.test(err.message));
    await fs.writeFile(file, 'not json');
    await assert.rejects(RaidTable.open(file, config), /not JSON/);
  });
});
