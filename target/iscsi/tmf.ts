// Task management (RFC 7143 11.5, 11.6, 4.2.3): the transport aborts the tasks in scope (they
// get no response), waits until the device is done with them, lets the SCSI device apply the
// function's own effects, then answers.
import { TmfFunction, TmfResponse } from '../scsi/types';
import type { FullFeaturePhase } from './ffp';
import { decodeLun, Opcode, snLessThan, TaskMgmtRequest } from './pdu';
import type { Task } from './task';

const EMPTY = Buffer.alloc(0);

export function handleTaskManagement(ffp: FullFeaturePhase, p: TaskMgmtRequest): void {
  void run(ffp, p).catch((e: unknown) => {
    ffp.session.log.error({ err: e, itt: p.itt }, 'task management failed');
    respond(ffp, p, TmfResponse.Rejected);
  });
}

async function run(ffp: FullFeaturePhase, p: TaskMgmtRequest): Promise<void> {
  const s = ffp.session;
  if (s.kind !== 'Normal') return respond(ffp, p, TmfResponse.Rejected);
  const lun = decodeLun(p.lun);
  const device = ffp.device;
  const fn = p.function as TmfFunction;
  switch (fn) {
    case TmfFunction.AbortTask:
      return respond(ffp, p, await abortTask(ffp, p, lun));
    case TmfFunction.AbortTaskSet:
    case TmfFunction.ClearTaskSet:
    case TmfFunction.LogicalUnitReset: {
      if (!device.hasLun(lun)) return respond(ffp, p, TmfResponse.LunDoesNotExist);
      // ABORT TASK SET: this I_T nexus only; CLEAR TASK SET and LU RESET: every nexus (SAM-5 7.4, 7.6).
      const scope = fn === TmfFunction.AbortTaskSet ? sessionTasks(ffp) : targetTasks(ffp);
      await abortAll(scope.filter((t) => t.lun === lun));
      return respond(ffp, p, device.taskManagement(fn, s.nexus!, lun));
    }
    case TmfFunction.TargetWarmReset:
    case TmfFunction.TargetColdReset: {
      await abortAll(targetTasks(ffp));
      const r = device.taskManagement(fn, s.nexus!, lun);
      respond(ffp, p, r);
      // RFC 7143 11.5.1: after a cold reset the target drops every connection of the target.
      if (fn === TmfFunction.TargetColdReset && r === TmfResponse.Complete) {
        for (const other of ffp.conn.server.sessionsOf(s.target!)) ffp.conn.server.endSession(other, 'TARGET COLD RESET');
      }
      return;
    }
    case TmfFunction.ClearAca:
      return respond(ffp, p, TmfResponse.NotSupported);
    case TmfFunction.TaskReassign:
      // RFC 7143 11.6.1: task reassignment needs ErrorRecoveryLevel 2.
      return respond(ffp, p, TmfResponse.ReassignNotSupported);
    default:
      return respond(ffp, p, TmfResponse.NotSupported);
  }
}

/**
 * RFC 7143 11.5.1 ABORT TASK: a live task -> abort it, "function complete"; no such task but
 * RefCmdSN within the window and before this request -> that CmdSN counts as received,
 * "function complete"; otherwise "task does not exist".
 */
async function abortTask(ffp: FullFeaturePhase, p: TaskMgmtRequest, lun: number): Promise<TmfResponse> {
  const s = ffp.session;
  const task = s.tasks.get(p.referencedTaskTag);
  if (task !== undefined && task.state !== 'done') {
    if (task.lun !== lun) return TmfResponse.TaskDoesNotExist;
    await task.owner.abortTask(task);
    ffp.device.taskManagement(TmfFunction.AbortTask, s.nexus!, lun);
    return TmfResponse.Complete;
  }
  const ref = p.refCmdSn >>> 0;
  if (s.inWindow(ref) && snLessThan(ref, p.cmdSn)) {
    // The referenced command never arrived (or waits behind a hole): it will be dropped if it comes.
    s.consume(ref);
    return TmfResponse.Complete;
  }
  return TmfResponse.TaskDoesNotExist;
}

function sessionTasks(ffp: FullFeaturePhase): Task[] {
  return [...ffp.session.tasks.values()];
}

function targetTasks(ffp: FullFeaturePhase): Task[] {
  const out: Task[] = [];
  for (const s of ffp.conn.server.sessionsOf(ffp.session.target!)) out.push(...s.tasks.values());
  return out;
}

async function abortAll(tasks: Task[]): Promise<void> {
  await Promise.allSettled(tasks.filter((t) => t.state !== 'done').map((t) => t.owner.abortTask(t)));
}

function respond(ffp: FullFeaturePhase, p: TaskMgmtRequest, response: TmfResponse): void {
  if (ffp.conn.closed) return;
  ffp.conn.send([{
    opcode: Opcode.TaskMgmtResponse, immediate: false, final: true, response, itt: p.itt, statSn: ffp.conn.takeStatSn(),
    ...ffp.session.window(), ahs: EMPTY, data: EMPTY,
  }]);
}
