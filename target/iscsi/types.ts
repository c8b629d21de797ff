// What the rack hands to the iSCSI target: targets, their portals, access and the SCSI device behind each.
import type { ScsiTargetDevice } from '../scsi/types';

export interface ChapSecret {
  /** CHAP_N the initiator must send, and the secret it answers with. */
  user: string;
  secret: string;
  /** Mutual CHAP: the name and secret the target answers the initiator's challenge with. */
  mutualUser?: string;
  mutualSecret?: string;
}

export interface Portal {
  host: string;
  port: number;
}

export interface TargetDefinition {
  /** iqn. or eui. name (RFC 7143 4.2.7). */
  name: string;
  alias?: string;
  /** Target portal group tag; all portals of a target form one group here. */
  tpgt: number;
  portals: Portal[];
  /** Initiator names allowed to log in; undefined or empty means any initiator. */
  acl?: string[];
  /** When set, login requires CHAP with these credentials (AuthMethod=None is refused). */
  chap?: ChapSecret;
  device: ScsiTargetDevice;
}

export interface IscsiServerOptions {
  targets: TargetDefinition[];
  /** CHAP for discovery sessions; undefined means discovery needs no authentication. */
  discoveryChap?: ChapSecret;
  /** Idle time after which the target sends a NOP-In ping; a connection that does not answer in time is dropped. */
  nopInIntervalMs?: number;
  nopInTimeoutMs?: number;
}
