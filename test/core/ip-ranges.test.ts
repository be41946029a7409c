import assert from 'node:assert/strict';
import { isIPv4, isIPv6 } from 'node:net';
import { test } from 'node:test';
import {
  ALWAYS_BLACKLISTED,
  DEFAULT_IP_RANGE_BLACKLIST,
  IpAccessPolicy,
  IpRangeError,
  IpRangeSet,
  cidrContains,
  embeddedIPv4,
  formatCidr,
  formatIpAddress,
  ipVersionOf,
  parseCidr,
  parseIPv4,
  parseIPv6,
  parseIpAddress,
  parseIpRangeList,
} from '../../src/core/ip-ranges.js';

const v6 = (text: string) => {
  const parsed = parseIPv6(text);
  assert.ok(parsed, text);
  return formatIpAddress(parsed);
};

test('IPv4: dotted quads only, no leading zeros', () => {
  assert.equal(parseIPv4('10.0.0.1')?.value, 0x0a000001n);
  assert.equal(parseIPv4('255.255.255.255')?.value, 0xffffffffn);
  assert.equal(parseIPv4('0.0.0.0')?.value, 0n);
  for (const bad of [
    '256.0.0.1',
    '1.2.3',
    '1.2.3.4.5',
    '010.0.0.1',
    '1.2.3.-4',
    '1..2.3',
    '',
    ' 1.2.3.4',
    '1.2.3.4 ',
    '0x7f.0.0.1',
    '1.2.3.4/8',
  ]) {
    assert.equal(parseIPv4(bad), undefined, bad);
  }
});

test('IPv6: full, compressed and IPv4-suffixed forms, canonical output (RFC 5952)', () => {
  assert.equal(v6('::'), '::');
  assert.equal(v6('::1'), '::1');
  assert.equal(v6('1::'), '1::');
  assert.equal(v6('2001:0db8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
  assert.equal(v6('2001:DB8::1'), '2001:db8::1');
  assert.equal(v6('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1'); // first of two equal runs
  assert.equal(v6('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1'); // one zero group stays
  assert.equal(v6('::ffff:1.2.3.4'), '::ffff:102:304');
  assert.equal(v6('::1.2.3.4'), '::102:304');
  assert.equal(v6('1:2:3:4:5:6:1.2.3.4'), '1:2:3:4:5:6:102:304');
  assert.equal(v6('1::6:1.2.3.4'), '1::6:102:304');
  assert.equal(v6('[::1]'), '::1');
  assert.equal(v6('fe80::1%eth0'), 'fe80::1');
  for (const bad of [
    '',
    ':',
    ':::',
    '1:::2',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8',
    '12345::',
    'g::',
    ':1::',
    '1:2:3:4:5:6:7:1.2.3.4',
    '::1.2.3',
    '::256.1.1.1',
    '1.2.3.4',
    'fe80::1%',
    '[::1',
  ]) {
    assert.equal(parseIPv6(bad), undefined, bad);
  }
});

test('IPv6 parsing agrees with node:net on a spread of inputs', () => {
  const samples = [
    '::',
    '::1',
    '1::',
    '1::1',
    '1:2::3:4',
    'a:b:c:d:e:f:0:1',
    'a:b:c:d:e:f:0:1:2',
    'abcd::ef01',
    '::ffff:10.0.0.1',
    '::ffff:300.0.0.1',
    '64:ff9b::192.0.2.33',
    '1:2:3:4:5::1.2.3.4',
    '1:2:3:4:5:6::1.2.3.4',
    ':1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:',
    'fffff::',
    '::fffff',
    '0:0:0:0:0:0:0:0',
    '1::2:3:4:5:6:7',
    '1::2:3:4:5:6:7:8',
    'x::',
    '::x',
    '1:2',
    '::1.2.3.04',
  ];
  for (const sample of samples) {
    assert.equal(parseIPv6(sample) !== undefined, isIPv6(sample), sample);
  }
  for (const sample of ['1.2.3.4', '255.255.255.255', '256.1.1.1', '1.2.3', '01.2.3.4', 'a.b.c.d']) {
    assert.equal(parseIPv4(sample) !== undefined, isIPv4(sample), sample);
  }
});

test('parseIpAddress and ipVersionOf pick the family from the text', () => {
  assert.equal(parseIpAddress('127.0.0.1')?.version, 4);
  assert.equal(parseIpAddress('::1')?.version, 6);
  assert.equal(parseIpAddress('[::1]')?.version, 6);
  assert.equal(ipVersionOf('example.org'), undefined);
  assert.equal(ipVersionOf('1.2.3.4'), 4);
  assert.equal(ipVersionOf('[2001:db8::1]'), 6);
  assert.equal(parseIpAddress(42 as unknown as string), undefined);
});

test('CIDR ranges: bare addresses, host bits cleared, bad prefixes refused', () => {
  assert.equal(formatCidr(parseCidr('10.1.2.3/8')!), '10.0.0.0/8');
  assert.equal(formatCidr(parseCidr('192.168.1.1')!), '192.168.1.1/32');
  assert.equal(formatCidr(parseCidr('::1')!), '::1/128');
  assert.equal(formatCidr(parseCidr('fe80::1234/10')!), 'fe80::/10');
  assert.equal(formatCidr(parseCidr('0.0.0.0/0')!), '0.0.0.0/0');
  assert.equal(formatCidr(parseCidr(' ::/0 ')!), '::/0');
  for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/08', '10.0.0.0/-1', 'a/8', 'fe80::1%eth0/64', '10.0.0.0/8/8']) {
    assert.equal(parseCidr(bad), undefined, bad);
  }
  const range = parseCidr('172.16.0.0/12')!;
  assert.ok(cidrContains(range, parseIPv4('172.31.255.255')!));
  assert.ok(!cidrContains(range, parseIPv4('172.32.0.0')!));
  assert.ok(!cidrContains(range, parseIPv6('::ffff:172.16.0.1')!), 'a range of the other family never matches directly');
});

test('embedded IPv4: mapped, compatible, 6to4 and NAT64 forms', () => {
  const inner = (text: string) => {
    const e = embeddedIPv4(parseIPv6(text)!);
    return e && formatIpAddress(e);
  };
  assert.equal(inner('::ffff:127.0.0.1'), '127.0.0.1');
  assert.equal(inner('::ffff:7f00:1'), '127.0.0.1');
  assert.equal(inner('::10.0.0.1'), '10.0.0.1');
  assert.equal(inner('2002:c0a8:0101::1'), '192.168.1.1');
  assert.equal(inner('64:ff9b::10.1.2.3'), '10.1.2.3');
  assert.equal(inner('2001:db8::1'), undefined);
  assert.equal(embeddedIPv4(parseIPv4('1.2.3.4')!), undefined);
});

test('a range set matches IPv4 ranges through the IPv6 forms of their addresses', () => {
  const set = new IpRangeSet([parseCidr('127.0.0.0/8')!, parseCidr('fc00::/7')!]);
  assert.equal(set.size, 2);
  assert.ok(set.contains('127.0.0.1'));
  assert.ok(set.contains('::ffff:127.0.0.1'));
  assert.ok(set.contains('::127.0.0.1'));
  assert.ok(set.contains('2002:7f00:1::'));
  assert.ok(set.contains('64:ff9b::127.0.0.1'));
  assert.ok(set.contains('fd00::1'));
  assert.ok(!set.contains('128.0.0.1'));
  assert.ok(!set.contains('::ffff:8.8.8.8'));
  assert.ok(!set.contains('2001:4860::8888'));
  assert.ok(!set.contains('not an address'));
});

test('parseIpRangeList reports every bad entry', () => {
  const good = parseIpRangeList(['10.0.0.0/8', '::1']);
  assert.ok(good.ok && good.set.size === 2);
  const bad = parseIpRangeList(['10.0.0.0/8', 'nope', '1.2.3.4/40']);
  assert.deepEqual(bad, { ok: false, invalid: ['nope', '1.2.3.4/40'] });
});

test("the default blacklist is Synapse's list and every entry parses", () => {
  assert.equal(DEFAULT_IP_RANGE_BLACKLIST.length, 19);
  const parsed = parseIpRangeList(DEFAULT_IP_RANGE_BLACKLIST);
  assert.ok(parsed.ok);
  assert.deepEqual([...ALWAYS_BLACKLISTED], ['0.0.0.0', '::']);
});

test('the default policy refuses private, loopback, link-local, CGNAT, documentation and multicast addresses', () => {
  const policy = IpAccessPolicy.fromConfig();
  const refused = [
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.0.1',
    '100.64.0.1',
    '100.127.255.255',
    '192.0.0.8',
    '169.254.169.254',
    '192.88.99.1',
    '198.18.0.1',
    '198.19.255.255',
    '192.0.2.1',
    '198.51.100.7',
    '203.0.113.9',
    '224.0.0.1',
    '239.255.255.250',
    '0.0.0.0',
    '::',
    '::1',
    'fe80::1',
    'fe80::1%eth0',
    'fc00::1',
    'fd12:3456::1',
    '2001:db8::1',
    'ff02::1',
    'fec0::1',
    // IPv6 forms of blacklisted IPv4 addresses
    '::ffff:127.0.0.1',
    '::ffff:169.254.169.254',
    '::10.0.0.1',
    '2002:0a00:0001::',
    '64:ff9b::192.168.1.1',
    // what cannot be parsed is refused
    'localhost',
    '',
    '1.2.3.4.5',
  ];
  for (const address of refused) assert.equal(policy.isAllowed(address), false, address);
  const allowed = [
    '8.8.8.8',
    '1.1.1.1',
    '172.32.0.1',
    '100.128.0.1',
    '2001:4860:4860::8888',
    '::ffff:8.8.8.8',
    '2606:4700::1111',
    '64:ff9b::8.8.8.8',
  ];
  for (const address of allowed) assert.equal(policy.isAllowed(address), true, address);
});

test('the whitelist overrides the blacklist, also for the IPv6 forms', () => {
  const policy = IpAccessPolicy.fromConfig({ whitelist: ['127.0.0.0/8', '192.168.1.1'] });
  assert.ok(policy.isAllowed('127.0.0.1'));
  assert.ok(policy.isAllowed('::ffff:127.0.0.1'));
  assert.ok(policy.isAllowed('192.168.1.1'));
  assert.ok(!policy.isAllowed('192.168.1.2'));
  assert.ok(!policy.isAllowed('::1'), 'an IPv4 whitelist entry does not cover IPv6 loopback');
});

test('a configured blacklist replaces the default, but 0.0.0.0 and :: stay blacklisted', () => {
  const policy = IpAccessPolicy.fromConfig({ blacklist: ['203.0.113.0/24'] });
  assert.ok(policy.isAllowed('127.0.0.1'));
  assert.ok(!policy.isAllowed('203.0.113.5'));
  assert.ok(!policy.isAllowed('0.0.0.0'));
  assert.ok(!policy.isAllowed('::'));
  assert.ok(!policy.isAllowed('::ffff:0.0.0.0'));
  const empty = IpAccessPolicy.fromConfig({ blacklist: [] });
  assert.ok(empty.isAllowed('10.0.0.1'));
  assert.ok(!empty.isAllowed('0.0.0.0'));
});

test('invalid configured ranges throw, naming each', () => {
  assert.throws(
    () => IpAccessPolicy.fromConfig({ blacklist: ['10.0.0.0/8', 'bad'], whitelist: ['also bad'] }),
    (err: unknown) => err instanceof IpRangeError && err.invalid.join('|') === 'bad|also bad',
  );
});
