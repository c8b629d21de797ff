// Per-row locks of a RAID group. Exclusive: a parity update (host write, rebuild, scrub, media
// repair) owns the row, so no two of them interleave their reads and writes of P and Q.
// Shared: operations that only need the row to hold still (a reconstructing read, a mirror write
// that must not cross a rebuild's copy) and do not mind each other.
// A lock entry exists only while the row is held or awaited. Waiters are served in order, and a
// shared request queues behind a waiting exclusive one, so rebuild and scrub are not starved.
// Deadlock: whoever takes several rows takes them in ascending order.

interface Waiter {
  exclusive: boolean;
  grant: () => void;
}

interface RowLock {
  shared: number;
  exclusive: boolean;
  waiters: Waiter[];
}

export class RowLocks {
  private readonly rows = new Map<number, RowLock>();

  /** Rows held or awaited (for tests and status). */
  get size(): number {
    return this.rows.size;
  }

  /** Take the row now if that needs no waiting (the fast path); false: use acquire(). */
  tryAcquire(row: number, exclusive: boolean): boolean {
    const l = this.rows.get(row);
    if (!l) {
      this.rows.set(row, { shared: exclusive ? 0 : 1, exclusive, waiters: [] });
      return true;
    }
    if (exclusive || l.exclusive || l.waiters.length > 0) return false;
    l.shared++;
    return true;
  }

  acquire(row: number, exclusive: boolean): Promise<void> {
    if (this.tryAcquire(row, exclusive)) return Promise.resolve();
    const l = this.rows.get(row)!;
    return new Promise((grant) => l.waiters.push({ exclusive, grant }));
  }

  release(row: number, exclusive: boolean): void {
    const l = this.rows.get(row)!;
    if (exclusive) l.exclusive = false;
    else l.shared--;
    if (l.exclusive || l.shared > 0) return;
    if (l.waiters.length === 0) {
      this.rows.delete(row);
      return;
    }
    // Grant the next exclusive waiter alone, or every shared waiter up to the next exclusive one.
    if (l.waiters[0].exclusive) {
      l.exclusive = true;
      l.waiters.shift()!.grant();
      return;
    }
    while (l.waiters.length > 0 && !l.waiters[0].exclusive) {
      l.shared++;
      l.waiters.shift()!.grant();
    }
  }

  /** Run fn holding the row. */
  async with<T>(row: number, exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    await this.acquire(row, exclusive);
    try {
      return await fn();
    } finally {
      this.release(row, exclusive);
    }
  }
}
