// Text requests in full feature phase (RFC 7143 11.10, 11.11) and SendTargets (Appendix C):
// requests continued with the C bit, responses split at the initiator's MaxRecvDataSegmentLength.
import type { FullFeaturePhase } from './ffp';
import { KEYS } from './keys';
import { encodeBhs, Opcode, RejectReason, RESERVED_TAG, TextRequest } from './pdu';
import { decodeText, encodeText, TEXT_EXCHANGE_BYTES_MAX, TextPairs } from './text';
import type { Portal, TargetDefinition } from './types';
import type { ServerContext } from './server-context';

/** A text exchange in progress on a connection. */
export interface TextExchange {
  itt: number;
  /** Our TTT for the exchange (RFC 7143 11.11.4). */
  ttt: number;
  /** Request data received with C=1. */
  partial: Buffer[];
  partialBytes: number;
  /** Response text not yet sent. */
  outgoing: Buffer | undefined;
}

const EMPTY = Buffer.alloc(0);
let nextTextTtt = 0x40000000;

export function handleText(ffp: FullFeaturePhase, p: TextRequest): void {
  let ex = ffp.textExchange;
  if (p.ttt !== RESERVED_TAG) {
    if (ex === undefined || ex.ttt !== p.ttt || ex.itt !== p.itt) {
      return ffp.reject(headerOf(p), RejectReason.InvalidPduField, 'Text Request with an unknown TTT');
    }
  } else {
    // RFC 7143 11.10.4: TTT 0xffffffff starts a new exchange and resets any in progress.
    ex = { itt: p.itt, ttt: allocTtt(), partial: [], partialBytes: 0, outgoing: undefined };
    ffp.textExchange = ex;
  }
  if (ex.outgoing !== undefined) return sendPiece(ffp, p, ex);
  ex.partialBytes += p.data.length;
  if (ex.partialBytes > TEXT_EXCHANGE_BYTES_MAX) {
    ffp.textExchange = undefined;
    return ffp.reject(headerOf(p), RejectReason.ProtocolError, 'text request too long');
  }
  ex.partial.push(p.data);
  if (p.continue) return sendPiece(ffp, p, ex, EMPTY, true);
  let pairs: TextPairs;
  try {
    pairs = decodeText(ex.partial.length === 1 ? ex.partial[0] : Buffer.concat(ex.partial));
  } catch {
    ffp.textExchange = undefined;
    return ffp.reject(headerOf(p), RejectReason.ProtocolError, 'malformed text');
  }
  ex.partial = [];
  ex.outgoing = encodeText(answer(ffp, pairs));
  sendPiece(ffp, p, ex);
}

function answer(ffp: FullFeaturePhase, pairs: TextPairs): TextPairs {
  const out: TextPairs = [];
  for (const [k, v] of pairs) {
    if (k === 'SendTargets') out.push(...sendTargets(ffp, v));
    // Operational keys are negotiated at login only here; renegotiation in FFP is refused.
    else if (KEYS[k] !== undefined) out.push([k, 'Reject']);
    else out.push([k, 'NotUnderstood']);
  }
  return out;
}

/** RFC 7143 Appendix C: the targets this initiator may log in to, with every portal. */
function sendTargets(ffp: FullFeaturePhase, value: string): TextPairs {
  const s = ffp.session;
  const server = ffp.conn.server;
  let targets: TargetDefinition[];
  if (s.kind === 'Normal') {
    // In a normal session only the session's own target is reported (empty, All or its name).
    targets = value === '' || value === 'All' || value === s.target!.name ? [s.target!] : [];
  } else if (value === 'All') {
    targets = [...server.targets.values()];
  } else {
    const t = server.targets.get(value);
    targets = t === undefined ? [] : [t];
  }
  const out: TextPairs = [];
  for (const t of targets) {
    if (!visible(t, s.initiatorName)) continue;
    out.push(['TargetName', t.name]);
    for (const portal of t.portals) {
      const a = advertised(server, portal, ffp.conn.localAddress);
      out.push(['TargetAddress', `${a.host}:${a.port},${t.tpgt}`]);
    }
  }
  return out;
}

/**
 * A target is listed when its ACL admits the initiator. Targets that need CHAP are listed too:
 * the initiator may hold the secret, and the login (not discovery) is where that is checked.
 */
function visible(t: TargetDefinition, initiatorName: string): boolean {
  return t.acl === undefined || t.acl.length === 0 || t.acl.includes(initiatorName);
}

/** The address an initiator can reach a portal at: the arrival address for a wildcard listener. */
export function advertised(server: Pick<ServerContext, 'boundPortal'>, portal: Portal, local: Portal): Portal {
  const bound = server.boundPortal(portal);
  const wildcard = bound.host === '0.0.0.0' || bound.host === '::' || bound.host === '';
  const host = wildcard ? local.host.replace(/^::ffff:/, '') : bound.host;
  return { host: host.includes(':') ? `[${host}]` : host, port: bound.port };
}

function sendPiece(ffp: FullFeaturePhase, p: TextRequest, ex: TextExchange, forced?: Buffer, more?: boolean): void {
  let data = forced ?? ex.outgoing ?? EMPTY;
  let cont = more ?? false;
  if (forced === undefined) {
    const limit = ffp.conn.params.initiatorMaxRecvDataSegmentLength;
    if (data.length > limit) {
      ex.outgoing = data.subarray(limit);
      data = data.subarray(0, limit);
      cont = true;
    } else {
      ex.outgoing = undefined;
    }
  }
  if (!cont) ffp.textExchange = undefined;
  ffp.conn.send([{
    opcode: Opcode.TextResponse, immediate: false, final: !cont, continue: cont && forced === undefined, lun: p.lun, itt: p.itt,
    ttt: cont ? ex.ttt : RESERVED_TAG, statSn: ffp.conn.takeStatSn(), ...ffp.session.window(), ahs: EMPTY, data,
  }]);
}

function allocTtt(): number {
  nextTextTtt = nextTextTtt >= 0x7ffffffe ? 0x40000000 : nextTextTtt + 1;
  return nextTextTtt;
}

function headerOf(p: TextRequest): Buffer {
  return encodeBhs(p);
}
