// The iSCSI target server (RFC 7143): listens on every distinct portal of its targets, owns the
// session table, and shuts down after in-flight commands end.
import net from 'net';
import type { Logger } from 'pino';
import { Connection } from './connection';
import { FullFeaturePhase } from './ffp';
import { TARGET_KEY_VALUES, TargetKeyValues } from './keys';
import { LoginStart } from './login';
import { Session, SessionTable } from './session';
import type { ServerContext } from './server-context';
import type { IscsiServerOptions, Portal, TargetDefinition } from './types';

/** How long stop() lets commands in the device finish before it drops the connections. */
export const stopDrainMs = 5_000;
/** How long stop() waits for initiators to log out after the Async Message asking them to. */
export const stopLogoutWaitMs = 3_000;
/** Connections accepted at once across all portals; more are refused at accept time. */
export const connectionsMax = 1024;

export class IscsiServer implements ServerContext {
  readonly targets: ReadonlyMap<string, TargetDefinition>;
  readonly sessions = new SessionTable();
  readonly keyValues: TargetKeyValues = TARGET_KEY_VALUES;
  stopping = false;
  private readonly listeners: Array<{ portal: Portal; server: net.Server; bound: Portal }> = [];
  private readonly connections = new Set<Connection>();

  constructor(readonly options: IscsiServerOptions, private readonly log: Logger) {
    const m = new Map<string, TargetDefinition>();
    for (const t of options.targets) {
      if (m.has(t.name)) throw new Error(`target ${t.name} is defined twice`);
      m.set(t.name, t);
    }
    this.targets = m;
  }

  /** Listens on every distinct portal (host:port) of the targets. */
  async start(): Promise<void> {
    const seen = new Set<string>();
    try {
      for (const t of this.options.targets) {
        for (const p of t.portals) {
          const key = `${p.host}|${p.port}`;
          if (seen.has(key)) continue;
          seen.add(key);
          await this.listen(p);
        }
      }
    } catch (e) {
      // A portal that cannot be bound (EADDRINUSE, EACCES) leaves none of the others open.
      await Promise.all(this.listeners.map((l) => new Promise<void>((r) => l.server.close(() => r()))));
      this.listeners.length = 0;
      throw e;
    }
  }

  private listen(portal: Portal): Promise<void> {
    const server = net.createServer((socket) => this.accept(socket));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(portal.port, portal.host, () => {
        server.off('error', reject);
        server.on('error', (e) => this.log.error({ err: e }, 'listener error'));
        const a = server.address() as net.AddressInfo;
        const bound = { host: a.address, port: a.port };
        this.listeners.push({ portal, server, bound });
        this.log.info({ portal: `${bound.host}:${bound.port}` }, 'iSCSI portal listening');
        resolve();
      });
    });
  }

  private accept(socket: net.Socket): void {
    if (this.stopping || this.connections.size >= connectionsMax) {
      socket.destroy();
      return;
    }
    const conn = new Connection(socket, this, this.log);
    conn.phase = new LoginStart(conn);
    this.connections.add(conn);
    conn.onClose(() => this.connections.delete(conn));
  }

  addresses(): Portal[] {
    return this.listeners.map((l) => ({ ...l.bound }));
  }

  boundPortal(p: Portal): Portal {
    return this.listeners.find((l) => l.portal.host === p.host && l.portal.port === p.port)?.bound ?? p;
  }

  sessionsOf(target: TargetDefinition): Session[] {
    return this.sessions.all().filter((s) => s.target === target);
  }

  endSession(session: Session, reason: string): void {
    if (session.closed) return;
    session.closed = true;
    this.sessions.remove(session);
    session.log.info({ reason }, 'session ended');
    for (const t of session.tasks.values()) void t.owner.abortTask(t);
    if (session.nexus !== undefined) session.target!.device.nexusRemoved(session.nexus);
    session.connection?.close(reason);
  }

  /**
   * Stops listening, asks every normal session to log out (RFC 7143 11.9.1 AsyncEvent 1), waits
   * for them to go (bounded by stopLogoutWaitMs), lets commands in the device finish (bounded by
   * stopDrainMs), then closes whatever is left.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    // net.Server.close() calls back only once every accepted socket is gone: await it last.
    const closed = this.listeners.map((l) => new Promise<void>((r) => l.server.close(() => r())));
    this.listeners.length = 0;
    const phases = [...this.connections].map((c) => c.phase).filter((p): p is FullFeaturePhase => p instanceof FullFeaturePhase);
    for (const ffp of phases) if (ffp.session.kind === 'Normal') ffp.requestLogout(Math.ceil(stopLogoutWaitMs / 1000));
    await this.until(() => [...this.connections].every((c) => !(c.phase instanceof FullFeaturePhase) || c.phase.session.kind !== 'Normal'), stopLogoutWaitMs);
    const drains = phases.filter((f) => !f.conn.closed).map((f) => f.drainThen(() => undefined));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(drains), new Promise((r) => { timer = setTimeout(r, stopDrainMs); })]);
    if (timer !== undefined) clearTimeout(timer);
    for (const s of this.sessions.all()) this.endSession(s, 'target stopped');
    for (const c of [...this.connections]) c.drop('target stopped');
    await Promise.all(closed);
  }

  private async until(done: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }
}
