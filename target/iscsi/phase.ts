// The base of every phase handler: each PDU kind is refused unless a phase accepts it.
import type { Connection } from './connection';
import type { DataOut, LoginRequest, LogoutRequest, NopOut, PduError, ScsiCommandPdu, SnackRequest, TaskMgmtRequest, TextRequest } from './pdu';

/**
 * Handles the PDUs of one phase of a connection. Every method refuses by default: a phase
 * overrides only what it accepts.
 */
export abstract class PhaseHandler {
  constructor(readonly conn: Connection) {}

  /** Answers a PDU this phase does not accept. */
  protected abstract refuse(bhs: Buffer | undefined, why: string, error?: PduError): void;

  login(p: LoginRequest): void { this.refuse(undefined, 'Login Request', undefined); void p; }
  scsiCommand(p: ScsiCommandPdu): void { this.refuse(undefined, 'SCSI Command'); void p; }
  dataOut(p: DataOut): void { this.refuse(undefined, 'SCSI Data-Out'); void p; }
  nopOut(p: NopOut): void { this.refuse(undefined, 'NOP-Out'); void p; }
  taskMgmt(p: TaskMgmtRequest): void { this.refuse(undefined, 'Task Management Request'); void p; }
  text(p: TextRequest): void { this.refuse(undefined, 'Text Request'); void p; }
  logout(p: LogoutRequest): void { this.refuse(undefined, 'Logout Request'); void p; }
  snack(p: SnackRequest): void { this.refuse(undefined, 'SNACK Request'); void p; }
  /** A PDU that failed to decode, or a fault the framer found. */
  malformed(bhs: Buffer, error: PduError): void { this.refuse(bhs, error.message, error); }
}

