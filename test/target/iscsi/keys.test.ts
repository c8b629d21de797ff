import assert from 'assert';
import { KEYS, Negotiation, NegotiationContext, NegotiationFailure, parseNumber, TARGET_KEY_VALUES } from '../../../target/iscsi/keys';

const normal = { stage: 'operational' as const, sessionType: 'Normal' as const, leading: true };
const discovery = { ...normal, sessionType: 'Discovery' as const };

function answer(pairs: Array<[string, string]>, ctx: NegotiationContext = normal): Map<string, string> {
  return new Map(new Negotiation().answer(pairs, ctx));
}

describe('iSCSI keys (RFC 7143 13)', () => {
  describe('numerical values (RFC 7143 6.1)', () => {
    it('decimal and 0x hex', () => {
      assert.strictEqual(parseNumber('8192'), 8192);
      assert.strictEqual(parseNumber('0x2000'), 8192);
      assert.strictEqual(parseNumber('0X2000'), 8192);
    });
    it('signs, blanks, empty and junk are not numbers', () => {
      for (const v of ['', '-1', '+1', ' 1', '1 ', '0x', '12a', '1.5', '0b1234']) assert.strictEqual(parseNumber(v), undefined, v);
    });
  });

  describe('MaxBurstLength (min, 512..16777215)', () => {
    it('valid: the smaller of offer and ours', () => {
      assert.strictEqual(answer([['MaxBurstLength', '16776192']]).get('MaxBurstLength'), String(TARGET_KEY_VALUES.maxBurstLength));
      const n = new Negotiation();
      assert.deepStrictEqual(n.answer([['MaxBurstLength', '4096']], normal).find(([k]) => k === 'MaxBurstLength'), ['MaxBurstLength', '4096']);
      assert.strictEqual(n.session.maxBurstLength, 4096);
    });
    it('out of range -> Reject, value unchanged', () => {
      const n = new Negotiation();
      assert.deepStrictEqual(n.answer([['MaxBurstLength', '511']], normal)[0], ['MaxBurstLength', 'Reject']);
      assert.deepStrictEqual(n.answer([['MaxBurstLength', '16777216']], normal)[0], ['MaxBurstLength', 'Reject']);
      assert.strictEqual(n.session.maxBurstLength, 262144);
    });
    it('malformed -> Reject', () => {
      assert.strictEqual(answer([['MaxBurstLength', 'lots']]).get('MaxBurstLength'), 'Reject');
    });
    it('discovery session -> Irrelevant', () => {
      assert.strictEqual(answer([['MaxBurstLength', '4096']], discovery).get('MaxBurstLength'), 'Irrelevant');
    });
  });

  describe('FirstBurstLength', () => {
    it('never above MaxBurstLength (RFC 7143 13.14)', () => {
      const n = new Negotiation();
      const r = new Map(n.answer([['MaxBurstLength', '8192'], ['FirstBurstLength', '65536']], normal));
      assert.strictEqual(r.get('FirstBurstLength'), '8192');
      assert.strictEqual(n.session.firstBurstLength, 8192);
    });
  });

  describe('boolean keys', () => {
    it('InitialR2T is OR: our No gives the offer', () => {
      assert.strictEqual(answer([['InitialR2T', 'No']]).get('InitialR2T'), 'No');
      assert.strictEqual(answer([['InitialR2T', 'Yes']]).get('InitialR2T'), 'Yes');
    });
    it('ImmediateData is AND', () => {
      assert.strictEqual(answer([['ImmediateData', 'Yes']]).get('ImmediateData'), 'Yes');
      assert.strictEqual(answer([['ImmediateData', 'No']]).get('ImmediateData'), 'No');
    });
    it('DataPDUInOrder and DataSequenceInOrder are OR: we keep Yes', () => {
      const r = answer([['DataPDUInOrder', 'No'], ['DataSequenceInOrder', 'No']]);
      assert.strictEqual(r.get('DataPDUInOrder'), 'Yes');
      assert.strictEqual(r.get('DataSequenceInOrder'), 'Yes');
    });
    it('malformed boolean -> Reject', () => {
      assert.strictEqual(answer([['ImmediateData', 'yes']]).get('ImmediateData'), 'Reject');
      assert.strictEqual(answer([['InitialR2T', '1']]).get('InitialR2T'), 'Reject');
    });
    it('irrelevant in discovery', () => {
      assert.strictEqual(answer([['ImmediateData', 'Yes']], discovery).get('ImmediateData'), 'Irrelevant');
    });
  });

  describe('numeric keys', () => {
    it('ErrorRecoveryLevel: we offer 0', () => {
      assert.strictEqual(answer([['ErrorRecoveryLevel', '2']]).get('ErrorRecoveryLevel'), '0');
      assert.strictEqual(answer([['ErrorRecoveryLevel', '3']]).get('ErrorRecoveryLevel'), 'Reject');
    });
    it('MaxConnections: 1 at ERL0', () => {
      assert.strictEqual(answer([['MaxConnections', '8']]).get('MaxConnections'), '1');
      assert.strictEqual(answer([['MaxConnections', '0']]).get('MaxConnections'), 'Reject');
    });
    it('DefaultTime2Wait is max, DefaultTime2Retain min, both 0..3600', () => {
      const r = answer([['DefaultTime2Wait', '0'], ['DefaultTime2Retain', '20']]);
      assert.strictEqual(r.get('DefaultTime2Wait'), String(TARGET_KEY_VALUES.defaultTime2Wait));
      assert.strictEqual(r.get('DefaultTime2Retain'), String(TARGET_KEY_VALUES.defaultTime2Retain));
      assert.strictEqual(answer([['DefaultTime2Wait', '3601']]).get('DefaultTime2Wait'), 'Reject');
    });
    it('MaxOutstandingR2T: 1..65535', () => {
      assert.strictEqual(answer([['MaxOutstandingR2T', '1']]).get('MaxOutstandingR2T'), '1');
      assert.strictEqual(answer([['MaxOutstandingR2T', '0']]).get('MaxOutstandingR2T'), 'Reject');
    });
  });

  describe('list keys', () => {
    it('HeaderDigest: first supported value of the offer', () => {
      const n = new Negotiation();
      const r = new Map(n.answer([['HeaderDigest', 'CRC32C,None'], ['DataDigest', 'None,CRC32C']], normal));
      assert.strictEqual(r.get('HeaderDigest'), 'CRC32C');
      assert.strictEqual(r.get('DataDigest'), 'None');
      assert.strictEqual(n.connection.headerDigest, true);
      assert.strictEqual(n.connection.dataDigest, false);
    });
    it('unknown values are skipped; nothing supported -> Reject', () => {
      assert.strictEqual(answer([['DataDigest', 'MD5,CRC32C']]).get('DataDigest'), 'CRC32C');
      assert.strictEqual(answer([['DataDigest', 'MD5']]).get('DataDigest'), 'Reject');
      assert.strictEqual(answer([['DataDigest', 'None,,CRC32C']]).get('DataDigest'), 'Reject');
    });
  });

  describe('declarative keys', () => {
    it('MaxRecvDataSegmentLength: stored, and ours is declared once', () => {
      const n = new Negotiation();
      const r = n.answer([['MaxRecvDataSegmentLength', '65536']], normal);
      assert.deepStrictEqual(r, [['MaxRecvDataSegmentLength', String(TARGET_KEY_VALUES.maxRecvDataSegmentLength)]]);
      assert.strictEqual(n.connection.initiatorMaxRecvDataSegmentLength, 65536);
      assert.deepStrictEqual(n.answer([], normal), []);
    });
    it('MaxRecvDataSegmentLength out of range or malformed fails the login (a declaration has no Reject)', () => {
      assert.throws(() => answer([['MaxRecvDataSegmentLength', '511']]), NegotiationFailure);
      assert.throws(() => answer([['MaxRecvDataSegmentLength', '0x']]), NegotiationFailure);
    });
    it('target-only declaratives sent by the initiator -> Reject', () => {
      assert.strictEqual(answer([['TargetPortalGroupTag', '1']]).get('TargetPortalGroupTag'), 'Reject');
    });
    it('InitiatorAlias: no answer', () => {
      assert.strictEqual(answer([['InitiatorAlias', 'host']]).has('InitiatorAlias'), false);
    });
  });

  describe('other keys', () => {
    it('unknown and X- keys -> NotUnderstood', () => {
      const r = answer([['X-com.example.Foo', '1'], ['Bogus', 'x']]);
      assert.strictEqual(r.get('X-com.example.Foo'), 'NotUnderstood');
      assert.strictEqual(r.get('Bogus'), 'NotUnderstood');
    });
    it('obsolete markers (RFC 7143 13.25): IFMarker -> No, IFMarkInt -> Reject', () => {
      const r = answer([['IFMarker', 'Yes'], ['OFMarker', 'No'], ['IFMarkInt', '2048~8192']]);
      assert.strictEqual(r.get('IFMarker'), 'No');
      assert.strictEqual(r.get('OFMarker'), 'No');
      assert.strictEqual(r.get('IFMarkInt'), 'Reject');
    });
    it('an operational key in the security stage fails the login', () => {
      assert.throws(() => new Negotiation().answer([['MaxBurstLength', '512']], { ...normal, stage: 'security' }), NegotiationFailure);
    });
    it('a leading-only key on a non-leading login fails it', () => {
      assert.throws(() => new Negotiation().answer([['MaxBurstLength', '512']], { ...normal, leading: false }), NegotiationFailure);
    });
    it('a key sent twice in one login fails it (RFC 7143 6.2)', () => {
      const n = new Negotiation();
      n.noteSeen('MaxBurstLength');
      assert.throws(() => n.noteSeen('MaxBurstLength'), NegotiationFailure);
    });
    it('every key has a stage and scope', () => {
      for (const [k, d] of Object.entries(KEYS)) assert.ok(d.stage && d.scope, k);
    });
  });
});
