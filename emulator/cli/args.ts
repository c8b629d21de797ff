// Argument parsers the dkc commands share (commander calls them; a bad value is a usage error).
import { InvalidArgumentError } from 'commander';
import type { Portal } from '../../target/iscsi/types';
import { parsePortal } from '../rack/config';
import { PORTAL_RE } from '../rack/schema';

export function intArg(name: string, min: number, max: number): (text: string) => number {
  return (text) => {
    const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

/** HOST:PORT; port 0 (any free port) only where the rack listens, not where the CLI connects. */
export function portalArg(lowestPort: 0 | 1): (text: string) => Portal {
  return (text) => {
    if (!PORTAL_RE.test(text)) throw new InvalidArgumentError('must be HOST:PORT, e.g. 127.0.0.1:3260');
    const p = parsePortal(text);
    if (p.port < lowestPort || p.port > 65535) throw new InvalidArgumentError(`port must be from ${lowestPort} to 65535`);
    return p;
  };
}
