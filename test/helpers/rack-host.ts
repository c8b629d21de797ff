// A rack from YAML serving on 127.0.0.1 for the current describe block, and one host (the
// project's initiator) logged in to one of its targets: the set-up of the tests that drive the
// whole stack through iSCSI.
import { parseConfig } from '../../emulator/rack/config';
import { Rack } from '../../emulator/rack/rack';
import { IscsiInitiator } from '../../target/iscsi/initiator/initiator';
import { silentLog, tmpDirs } from './common';

export interface RackHost {
  rack: Rack;
  ini: IscsiInitiator;
}

/**
 * Registers the hooks: before, the rack starts (data in a temporary directory) and the host logs
 * in to `targetName` and takes each LUN's power-on unit attention with TEST UNIT READY; after,
 * the host and the rack stop, then the directory goes. The fields are set once `before` has run.
 */
export function rackWithHost(yaml: string, o: { file: string; targetName: string; initiatorName: string; luns: number[] }): RackHost {
  const h = {} as RackHost;
  after(async () => {
    h.ini?.close();
    await h.rack?.stop();
  }); // before tmpDirs' own after hook removes the data directory
  const tmp = tmpDirs();
  before(async () => {
    const r = parseConfig(yaml, o.file);
    if (!r.ok) throw new Error(r.errors.join('\n'));
    h.rack = await Rack.open(r.config, { dataDir: tmp.make(o.file.replace(/\.yaml$/, '')), log: silentLog });
    await h.rack.start();
    h.ini = await IscsiInitiator.open('127.0.0.1', h.rack.addresses()[0].port, { targetName: o.targetName }, { initiatorName: o.initiatorName });
    for (const lun of o.luns) await h.ini.command({ lun, cdb: Buffer.alloc(6) });
  });
  return h;
}
