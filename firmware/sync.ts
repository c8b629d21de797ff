// Group commit for fsync-like operations: callers that ask while a sync is running share the
// next one, so N concurrent FUA writes cost at most two syncs, never N.

export class SyncCoalescer {
  private running: Promise<void> | null = null;
  private next: Promise<void> | null = null;

  constructor(private readonly doSync: () => Promise<void>) {}

  /** Resolves once a sync that started after this call has completed. */
  sync(): Promise<void> {
    if (!this.running) return this.start();
    // A sync is in flight: it may have started before our caller's write, so join the next one.
    if (!this.next) {
      this.next = this.running.then(
        () => this.startQueued(),
        () => this.startQueued(),
      );
    }
    return this.next;
  }

  private startQueued(): Promise<void> {
    this.next = null;
    return this.start();
  }

  private start(): Promise<void> {
    const p = this.doSync().finally(() => {
      if (this.running === p) this.running = null;
    });
    this.running = p;
    return p;
  }
}
