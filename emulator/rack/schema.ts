// JSON schema of a rack YAML file (docs/config.md describes it for people).
// `x-message` is our annotation: when a keyword under that schema fails, the error says this
// instead of ajv's generic text ("must match pattern ...").

export const SIZE_RE = /^([1-9][0-9]*)(B|KiB|MiB|GiB|TiB)$/;
export const IQN_RE = /^iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[a-z0-9.:_-]+)?$/;
export const EUI_RE = /^eui\.[0-9A-F]{16}$/;
export const PORTAL_RE = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/;
const NAME_RE = '^[A-Za-z][A-Za-z0-9_-]{0,31}$';
const ISCSI_NAME_MESSAGE = 'must be an iSCSI name like iqn.2026-11.dev.dkc-emu:dkc0.main (RFC 7143 4.2.7; lower case) or eui. and 16 hex digits';

const size = { type: 'string', pattern: SIZE_RE.source, 'x-message': 'must be a size like 10GiB' };
const name = { type: 'string', pattern: NAME_RE, 'x-message': 'must be a name of letters, digits, - and _ (at most 32, starting with a letter)' };
const iscsiName = { type: 'string', pattern: `${IQN_RE.source}|${EUI_RE.source}`, 'x-message': ISCSI_NAME_MESSAGE };
const chapSecret = { type: 'string', minLength: 12, maxLength: 16, 'x-message': 'must be a string of 12 to 16 characters' };
const chapUser = { type: 'string', minLength: 1, maxLength: 255, 'x-message': 'must be a non-empty string' };
const inquiryText = (max: number) => ({
  type: 'string',
  pattern: `^[\\x20-\\x7e]{1,${max}}$`,
  'x-message': `must be 1 to ${max} printable ASCII characters`,
});

const chap = {
  type: 'object',
  additionalProperties: false,
  required: ['user', 'secret'],
  properties: {
    user: chapUser,
    secret: chapSecret,
    mutual: {
      type: 'object',
      additionalProperties: false,
      required: ['user', 'secret'],
      properties: { user: chapUser, secret: chapSecret },
    },
  },
};

const timing = { enum: ['none', 'hdd', 'ssd'], 'x-message': 'must be none, hdd or ssd' };

const disks = {
  type: 'object',
  additionalProperties: false,
  required: ['count', 'size'],
  properties: {
    count: { type: 'integer', minimum: 1, maximum: 32, 'x-message': 'must be a whole number of disks from 1 to 32' },
    size,
    timing,
  },
};

const raidGroup = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'level', 'disks'],
  properties: {
    name,
    level: { enum: [0, 1, 5, 6, 10], 'x-message': 'must be 0, 1, 5, 6 or 10 (the RAID levels emulated)' },
    stripeSize: size,
    disks,
  },
};

const spares = {
  type: 'object',
  additionalProperties: false,
  required: ['count', 'size'],
  properties: {
    count: { type: 'integer', minimum: 1, maximum: 16, 'x-message': 'must be a whole number of spare disks from 1 to 16' },
    size,
    timing,
  },
};

const volume = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'group', 'size'],
  properties: {
    name,
    group: name,
    size,
    blockSize: { enum: [512, 4096], 'x-message': 'must be 512 or 4096' },
    physicalBlockSize: { enum: [512, 4096], 'x-message': 'must be 512 or 4096' },
  },
};

const lun = {
  type: 'object',
  additionalProperties: false,
  required: ['lun', 'volume'],
  properties: {
    lun: { type: 'integer', minimum: 0, maximum: 16383, 'x-message': 'must be a LUN from 0 to 16383' },
    volume: name,
    readOnly: { type: 'boolean', 'x-message': 'must be true or false' },
    removable: { type: 'boolean', 'x-message': 'must be true or false' },
    commandDevice: { type: 'boolean', 'x-message': 'must be true or false' },
    vendor: inquiryText(8),
    product: inquiryText(16),
    revision: inquiryText(4),
  },
};

const target = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'portals', 'luns'],
  properties: {
    name: iscsiName,
    alias: { type: 'string', maxLength: 255, 'x-message': 'must be a string' },
    portals: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', pattern: PORTAL_RE.source, 'x-message': 'must be HOST:PORT, e.g. 127.0.0.1:3260 or [::1]:3260' },
    },
    acl: { type: 'array', items: iscsiName },
    chap,
    nopIn: {
      type: 'object',
      additionalProperties: false,
      properties: {
        intervalMs: { type: 'integer', minimum: 0, maximum: 3_600_000, 'x-message': 'must be a whole number of milliseconds from 0 (no pings) to 3600000' },
        timeoutMs: { type: 'integer', minimum: 1000, maximum: 3_600_000, 'x-message': 'must be a whole number of milliseconds from 1000 to 3600000' },
      },
    },
    luns: { type: 'array', items: lun },
  },
};

const cache = {
  type: 'object',
  additionalProperties: false,
  properties: {
    size,
    mode: { enum: ['write-back', 'write-through', 'off'], 'x-message': 'must be write-back, write-through or off' },
  },
};

const rebuild = {
  type: 'object',
  additionalProperties: false,
  properties: {
    paceMs: { type: 'integer', minimum: 0, maximum: 60_000, 'x-message': 'must be a whole number of milliseconds from 0 to 60000' },
  },
};

const scrub = {
  type: 'object',
  additionalProperties: false,
  properties: {
    intervalMinutes: { type: 'integer', minimum: 1, maximum: 525_600, 'x-message': 'must be a whole number of minutes from 1 to 525600 (a year)' },
  },
};

/** RFC 6750 2.1 b64token characters, so the token goes into an Authorization header as it is. */
export const TOKEN_RE = /^[A-Za-z0-9._~+/=-]{16,256}$/;

const management = {
  type: 'object',
  additionalProperties: false,
  required: ['listen'],
  properties: {
    listen: { type: 'string', pattern: PORTAL_RE.source, 'x-message': 'must be HOST:PORT on a loopback address, e.g. 127.0.0.1:8080' },
    token: { type: 'string', pattern: TOKEN_RE.source, 'x-message': 'must be 16 to 256 characters of A-Z a-z 0-9 - . _ ~ + / = (RFC 6750 b64token)' },
  },
};

const dkc = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'serial', 'raidGroups', 'volumes', 'targets'],
  properties: {
    name,
    serial: { type: 'integer', minimum: 1, maximum: 0xffffffff, 'x-message': 'must be a whole number from 1 to 4294967295' },
    cache,
    raidGroups: { type: 'array', minItems: 1, items: raidGroup },
    spares,
    rebuild,
    scrub,
    seed: { type: 'integer', minimum: 0, maximum: 0xffffffff, 'x-message': 'must be a whole number from 0 to 4294967295' },
    volumes: { type: 'array', items: volume },
    targets: { type: 'array', items: target },
  },
};

export const rackSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['dkcs'],
  properties: {
    dkcs: { type: 'array', minItems: 1, items: dkc },
    discovery: {
      type: 'object',
      additionalProperties: false,
      properties: { chap },
    },
    management,
  },
};
