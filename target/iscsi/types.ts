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
  /** NOP-In keep-alive of this target's sessions; the server's options where unset. */
  nopIn?: NopInOptions;
  device: ScsiTargetDevice;
}

/**
 * RFC 7143 11.19: after intervalMs without a PDU from the initiator the target sends a NOP-In
 * ping; a connection whose answer does not come within timeoutMs is dropped. intervalMs 0: no
 * pings (tgt's nop_interval 0; LIO's nopin_timeout and nopin_response_timeout are the pair).
 */
export interface NopInOptions {
  intervalMs?: number;
  timeoutMs?: number;
}

export interface IscsiServerOptions {
  targets: TargetDefinition[];
  /** CHAP for discovery sessions; undefined means discovery needs no authentication. */
  discoveryChap?: ChapSecret;
  /** NOP-In keep-alive where a target has none of its own (default 5000 ms, 30000 ms). */
  nopIn?: NopInOptions;
}
