// The boundary between target/iscsi (transport) and target/scsi (command sets).
// iSCSI knows sessions and PDUs; SCSI knows CDBs, LUs, sense data and reservations.
import type { StateStore, Volume } from '../../firmware/volume';

/** An I_T nexus: one initiator port talking to one target port (SAM-5 4.7). */
export interface Nexus {
  /** Unique per live nexus in this process; used as a map key. */
  readonly id: number;
  /** iSCSI initiator port name: "<InitiatorName>,i,0x<ISID hex 12>" (RFC 7143 13.2.1). */
  readonly initiatorPort: string;
  /** iSCSI target port name: "<TargetName>,t,0x<TPGT hex 4>". */
  readonly targetPort: string;
  /** Relative target port identifier (VPD 83h, PR TRANSPORTID reports), 1-based. */
  readonly relativeTargetPortId: number;
}

export enum TaskAttribute { Simple = 0, Ordered = 1, HeadOfQueue = 2, Aca = 3 }

export interface ScsiCommand {
  nexus: Nexus;
  lun: number;
  cdb: Buffer;
  /** The initiator's Expected Data Transfer Length (bytes). */
  expectedLength: number;
  /** All Data-Out for a write-direction command, gathered by the transport (length <= expectedLength). */
  dataOut: Buffer | null;
  taskTag: number;
  attribute: TaskAttribute;
  /**
   * Signalled when the transport aborts the task (ABORT TASK, ABORT TASK SET, CLEAR TASK SET,
   * LU or target reset, I_T nexus loss). Optional: a handler that never looks at it simply runs to
   * completion, and the transport discards its status (SAM-5 7.2). SANITIZE uses it to end the
   * command at once while the sanitize operation goes on (SBC-3 4.11.2).
   */
  abort?: AbortSignal;
}

export interface ScsiResponse {
  status: number;
  /** Data-In, already trimmed to the allocation length; the transport computes residuals against expectedLength. */
  data?: Buffer;
  /** Sense data (fixed or descriptor format) for CHECK CONDITION. */
  sense?: Buffer;
  /**
   * For write-direction commands: bytes the command wanted from the initiator (CDB transfer
   * length x block size, or parameter list length), so the transport can report over/underflow.
   */
  dataOutWanted?: number;
}

export enum TmfFunction {
  AbortTask = 1, AbortTaskSet = 2, ClearAca = 3, ClearTaskSet = 4,
  LogicalUnitReset = 5, TargetWarmReset = 6, TargetColdReset = 7, TaskReassign = 8,
}

export enum TmfResponse {
  Complete = 0, TaskDoesNotExist = 1, LunDoesNotExist = 2, TaskStillAllegiant = 3,
  ReassignNotSupported = 4, NotSupported = 5, AuthorizationFailed = 6, Rejected = 255,
}

/** One LU's configuration as the rack hands it to the target. */
export interface LuDefinition {
  lun: number;
  /**
   * 'disk': a direct-access block device (peripheral type 00h) on the volume. 'command-device':
   * a storage array controller LU (0Ch) that takes only the pair commands, naming LDEVs
   * (docs/pairs.md); its volume gives it an identity (VPD 80h, 83h) and is never read or written.
   */
  kind: 'disk' | 'command-device';
  volume: Volume;
  /** The volume's LDEV number in its DKC: how pair commands name it. */
  ldev?: number;
  state: StateStore;
  /** Medium is write-protected: writes get DATA PROTECT / WRITE PROTECTED. */
  readOnly?: boolean;
  /**
   * Physical block size in bytes (default: the volume's block size). 4096 on a 512-byte volume
   * makes a 512e LU: READ CAPACITY(16) reports 8 logical blocks per physical block.
   */
  physicalBlockSize?: number;
  /** RMB=1: START STOP UNIT LOEJ and PREVENT ALLOW MEDIUM REMOVAL behave as for a removable medium. */
  removable?: boolean;
  vendor?: string;   // 8 chars in INQUIRY
  product?: string;  // 16 chars
  revision?: string; // 4 chars
}

/**
 * The SCSI target device behind one iSCSI target (one target port group).
 * Everything about LUs, unit attentions and reservations lives behind this interface.
 */
export interface ScsiTargetDevice {
  /** The transport calls this for every new I_T nexus (POWER ON / RESET unit attention is established). */
  nexusAdded(nexus: Nexus): void;
  /** The nexus is gone (session closed): its RESERVE(6/10) reservations are released; PR registrations stay. */
  nexusRemoved(nexus: Nexus): void;
  /** Run one command to completion. Never throws: any failure becomes a status and sense data. */
  execute(cmd: ScsiCommand): Promise<ScsiResponse>;
  /**
   * Task management effects at the SCSI level (reservations released, unit attentions set for
   * other nexuses). Aborting the tasks in flight is the transport's part.
   */
  taskManagement(fn: TmfFunction, nexus: Nexus, lun: number): TmfResponse;
  hasLun(lun: number): boolean;
}
