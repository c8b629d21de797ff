// What a connection's phase handlers need from the server that accepted it.
import type { TargetKeyValues } from './keys';
import type { Session, SessionTable } from './session';
import type { IscsiServerOptions, Portal, TargetDefinition } from './types';

export interface ServerContext {
  readonly options: IscsiServerOptions;
  readonly targets: ReadonlyMap<string, TargetDefinition>;
  readonly sessions: SessionTable;
  readonly keyValues: TargetKeyValues;
  /** True once stop() began: new logins get "target removed" (0x0204). */
  readonly stopping: boolean;
  /** Ends a session: aborts its tasks, removes the nexus, frees the TSIH. */
  endSession(session: Session, reason: string): void;
  /** Every live session of a target (TARGET COLD RESET drops them all). */
  sessionsOf(target: TargetDefinition): Session[];
  /** The address a configured portal is bound to (port 0 resolved). */
  boundPortal(p: Portal): Portal;
}
