/** The vault firewall: CIDR parsing, allowed and refused addresses, and its audit records. */
import { beforeAll, describe, expect, it } from 'vitest';
import { formatRange, parseIp, parseRange, rangeContains } from '../../src/access/cidr';
import { assertNetworkAllowed, isNetworkAllowed, MAX_IP_RULES, parseNetworkAcls } from '../../src/access/network';
import { type VaultRecord } from '../../src/core/vault';
import { API, APEX, call, json, setupVault, vaultOrigin } from './helpers';
import { rows, sleep } from './identity-helpers';

const range = (text: string) => {
  const parsed = parseRange(text);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.range;
};
const contains = (rule: string, address: string) => rangeContains(range(rule), parseIp(address)!);

describe('IP addresses', () => {
  it('parses IPv4 strictly', () => {
    expect(parseIp('0.0.0.0')).toEqual({ version: 4, words: [0] });
    expect(parseIp('255.255.255.255')).toEqual({ version: 4, words: [0xffffffff] });
    expect(parseIp('203.0.113.7')).toEqual({ version: 4, words: [(203 * 2 ** 24 + 113 * 256 + 7) >>> 0] });
    for (const bad of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '256.1.1.1',
      '01.2.3.4',
      '1.2.3.-4',
      '1..3.4',
      ' 1.2.3.4',
      '1.2.3.4 ',
      '0x1.2.3.4',
      '1.2.3.4/',
      'a.b.c.d',
    ]) {
      expect(parseIp(bad), bad).toBeUndefined();
    }
  });

  it('parses IPv6 in full, compressed and dotted forms', () => {
    const full = parseIp('2001:0db8:0000:0000:0000:0000:0000:0001')!;
    expect(full.version).toBe(6);
    expect(parseIp('2001:db8::1')).toEqual(full);
    expect(parseIp('2001:DB8::1')).toEqual(full);
    expect(parseIp('::')).toEqual({ version: 6, words: [0, 0, 0, 0] });
    expect(parseIp('::1')).toEqual({ version: 6, words: [0, 0, 0, 1] });
    expect(parseIp('1::')).toEqual({ version: 6, words: [0x10000, 0, 0, 0] });
    expect(parseIp('1:2:3:4:5:6:7::')).toEqual(parseIp('1:2:3:4:5:6:7:0'));
    expect(parseIp('::2:3:4:5:6:7:8')).toEqual(parseIp('0:2:3:4:5:6:7:8'));
    expect(parseIp('64:ff9b::192.0.2.33')).toEqual(parseIp('64:ff9b::c000:221'));
    for (const bad of [
      ':',
      ':::',
      '1::2::3',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:8::',
      '12345::1',
      'g::1',
      '::1:',
      ':1::',
      'fe80::1%eth0',
      '[::1]',
      '1.2.3.4::',
      '::1.2.3',
      '::256.1.1.1',
    ]) {
      expect(parseIp(bad), bad).toBeUndefined();
    }
  });

  it('reads an IPv4-mapped IPv6 address as the IPv4 address', () => {
    expect(parseIp('::ffff:198.51.100.7')).toEqual(parseIp('198.51.100.7'));
    expect(parseIp('::FFFF:c633:6407')).toEqual(parseIp('198.51.100.7'));
    expect(parseIp('0:0:0:0:0:ffff:198.51.100.7')).toEqual(parseIp('198.51.100.7'));
    // Not mapped: the IPv4-compatible and NAT64 forms stay IPv6.
    expect(parseIp('::198.51.100.7')!.version).toBe(6);
  });
});

describe('CIDR ranges', () => {
  it('matches IPv4 prefixes, including /0 and /32', () => {
    expect(contains('203.0.113.0/24', '203.0.113.0')).toBe(true);
    expect(contains('203.0.113.0/24', '203.0.113.255')).toBe(true);
    expect(contains('203.0.113.0/24', '203.0.114.0')).toBe(false);
    expect(contains('203.0.113.0/24', '203.0.112.255')).toBe(false);
    expect(contains('0.0.0.0/0', '255.255.255.255')).toBe(true);
    expect(contains('0.0.0.0/0', '0.0.0.0')).toBe(true);
    expect(contains('198.51.100.7/32', '198.51.100.7')).toBe(true);
    expect(contains('198.51.100.7/32', '198.51.100.6')).toBe(false);
    expect(contains('198.51.100.7', '198.51.100.7')).toBe(true);
    expect(contains('198.51.100.7', '198.51.100.8')).toBe(false);
    expect(contains('128.0.0.0/1', '128.0.0.1')).toBe(true);
    expect(contains('128.0.0.0/1', '127.255.255.255')).toBe(false);
    expect(contains('10.0.0.0/31', '10.0.0.1')).toBe(true);
    expect(contains('10.0.0.0/31', '10.0.0.2')).toBe(false);
  });

  it('matches IPv6 prefixes, including /0, /64 and /128, across word boundaries', () => {
    expect(contains('2001:db8::/32', '2001:db8:ffff::1')).toBe(true);
    expect(contains('2001:db8::/32', '2001:db9::1')).toBe(false);
    expect(contains('::/0', '2001:db8::1')).toBe(true);
    expect(contains('2001:db8::1/128', '2001:db8::1')).toBe(true);
    expect(contains('2001:db8::1/128', '2001:db8::2')).toBe(false);
    expect(contains('2001:db8::1', '2001:db8::1')).toBe(true);
    expect(contains('2001:db8:0:1::/64', '2001:db8:0:1:ffff:ffff:ffff:ffff')).toBe(true);
    expect(contains('2001:db8:0:1::/64', '2001:db8:0:2::')).toBe(false);
    expect(contains('2001:db8:8000::/33', '2001:db8:8000::1')).toBe(true);
    expect(contains('2001:db8:8000::/33', '2001:db8:7fff::1')).toBe(false);
    expect(contains('2001:db8::ff00/120', '2001:db8::ffff')).toBe(true);
    expect(contains('2001:db8::ff00/120', '2001:db8::1:ff00')).toBe(false);
  });

  it('never matches an IPv4 address against an IPv6 range or the reverse', () => {
    expect(contains('::/0', '203.0.113.7')).toBe(false);
    expect(contains('0.0.0.0/0', '2001:db8::1')).toBe(false);
  });

  it('treats an IPv4-mapped rule as the IPv4 rule it spells', () => {
    expect(range('::ffff:203.0.113.0/120')).toEqual(range('203.0.113.0/24'));
    expect(contains('::ffff:203.0.113.0/120', '203.0.113.9')).toBe(true);
    expect(contains('203.0.113.0/24', '::ffff:203.0.113.9')).toBe(true);
    expect(range('::ffff:0.0.0.0/96')).toEqual(range('0.0.0.0/0'));
  });

  it('refuses invalid ranges with a reason', () => {
    for (const bad of [
      '203.0.113.0/33',
      '2001:db8::/129',
      '203.0.113.0/',
      '203.0.113.0/-1',
      '203.0.113.0/08',
      '203.0.113.0/24/1',
      '203.0.113.0/a',
      '203.0.113.0 /24',
      'not-an-ip',
      '',
      '/24',
      '203.0.113.7/24',
      '2001:db8::1/64',
    ]) {
      const parsed = parseRange(bad);
      expect(parsed.ok, bad).toBe(false);
    }
    const hostBits = parseRange('203.0.113.7/24');
    expect(hostBits.ok === false && hostBits.reason).toContain('203.0.113.0/24');
  });

  it('formats ranges canonically', () => {
    expect(formatRange(range('2001:0db8:0000:0000:0000:0000:0000:0000/32'))).toBe('2001:db8::/32');
    // RFC 5952: the longest run of zeros is compressed, the first of equally long ones.
    expect(formatRange(range('2001:db8:0:0:1:0:0:0/80'))).toBe('2001:db8:0:0:1::/80');
    expect(formatRange(range('2001:db8:0:0:1:0:0:1'))).toBe('2001:db8::1:0:0:1/128');
    expect(formatRange(range('198.51.100.7'))).toBe('198.51.100.7/32');
    expect(formatRange(range('::/0'))).toBe('::/0');
  });
});

describe('networkAcls validation', () => {
  it('normalizes a valid body', () => {
    expect(
      parseNetworkAcls({ defaultAction: 'deny', ipRules: [{ value: '203.0.113.0/24' }, { value: '2001:db8::/32' }] }),
    ).toEqual({
      defaultAction: 'Deny',
      bypass: 'AzureServices',
      ipRules: [{ value: '203.0.113.0/24' }, { value: '2001:db8::/32' }],
      virtualNetworkRules: [],
    });
    expect(parseNetworkAcls({ defaultAction: 'Allow', bypass: 'None' })).toMatchObject({
      defaultAction: 'Allow',
      bypass: 'None',
      ipRules: [],
    });
    // Duplicates (however spelt) are kept once.
    expect(
      parseNetworkAcls({ defaultAction: 'Deny', ipRules: [{ value: '198.51.100.7' }, { value: '198.51.100.7/32' }] }).ipRules,
    ).toEqual([{ value: '198.51.100.7' }]);
  });

  it('refuses bad bodies with 400 BadParameter', () => {
    const tooMany = Array.from({ length: MAX_IP_RULES + 1 }, (_, i) => ({ value: `10.${i >> 8}.${i & 255}.0/24` }));
    for (const bad of [
      null,
      [],
      'Deny',
      {},
      { defaultAction: 'Block' },
      { defaultAction: 'Deny', ipRules: 'x' },
      { defaultAction: 'Deny', ipRules: [{ value: '300.0.0.0/8' }] },
      { defaultAction: 'Deny', ipRules: [{ value: '10.0.0.0/33' }] },
      { defaultAction: 'Deny', ipRules: [{ value: '2001:db8::/129' }] },
      { defaultAction: 'Deny', ipRules: ['10.0.0.0/8'] },
      { defaultAction: 'Deny', ipRules: [{ value: '10.0.0.0/8', action: 'Allow' }] },
      { defaultAction: 'Deny', bypass: 'Everything' },
      { defaultAction: 'Deny', virtualNetworkRules: [{ id: '/subscriptions/x' }] },
      { defaultAction: 'Deny', ipRules: tooMany },
      { defaultAction: 'Deny', extra: true },
    ]) {
      let thrown: unknown;
      try {
        parseNetworkAcls(bad);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, JSON.stringify(bad)?.slice(0, 80)).toMatchObject({ status: 400, code: 'BadParameter' });
    }
    expect(parseNetworkAcls({ defaultAction: 'Deny', ipRules: tooMany.slice(0, MAX_IP_RULES) }).ipRules).toHaveLength(
      MAX_IP_RULES,
    );
  });

  it("decides from the record, and refuses with Azure's message and innererror", () => {
    const vault = {
      id: 'v',
      name: 'unit',
      networkAcls: JSON.stringify({
        defaultAction: 'Deny',
        bypass: 'AzureServices',
        ipRules: [{ value: '203.0.113.0/24' }],
        virtualNetworkRules: [],
      }),
    } as VaultRecord;
    expect(isNetworkAllowed(vault, '203.0.113.9')).toBe(true);
    expect(isNetworkAllowed(vault, '198.51.100.1')).toBe(false);
    expect(isNetworkAllowed(vault, null)).toBe(false);
    expect(isNetworkAllowed(vault, 'garbage')).toBe(false);
    expect(isNetworkAllowed({ ...vault, networkAcls: null }, null)).toBe(true);
    expect(isNetworkAllowed({ ...vault, networkAcls: JSON.stringify({ defaultAction: 'Allow', ipRules: [] }) }, null)).toBe(true);
    // Stored rules that do not parse close the vault.
    expect(isNetworkAllowed({ ...vault, networkAcls: '{oops' }, '203.0.113.9')).toBe(false);
    const caller = { tenantId: 't', appId: 'app-1', objectId: 'oid-1' };
    expect(() => assertNetworkAllowed(vault, '198.51.100.1', caller)).toThrow(
      expect.objectContaining({
        status: 403,
        code: 'Forbidden',
        innerCode: 'ForbiddenByFirewall',
        message:
          'Client address is not authorized and caller is not a trusted service.\r\nClient address: 198.51.100.1\r\nCaller: appid=app-1;oid=oid-1\r\nVault: unit',
      }),
    );
    expect(() => assertNetworkAllowed(vault, 'x\r\ninjected', caller)).toThrow(/Client address: unknown\r\n/);
    expect(() => assertNetworkAllowed(vault, '203.0.113.1')).not.toThrow();
  });
});

describe('the firewall through the Worker', () => {
  // The administrator that created the latest vault (and so may use it).
  let token: string;

  beforeAll(async () => {
    ({ token } = await setupVault());
  });

  /** A vault with these rules and a secret `present` in it (set from an allowed address). */
  async function vaultWith(networkAcls: unknown) {
    const created = await setupVault({ networkAcls });
    token = created.token;
    await call('PUT', `${created.origin}/secrets/present?${API}`, {
      token,
      body: { value: 'v' },
      headers: { 'cf-connecting-ip': '203.0.113.10' },
    });
    return created;
  }

  const getSecret = (origin: string, ip: string | undefined, name = 'present', headers: Record<string, string> = {}) =>
    call('GET', `${origin}/secrets/${name}?${API}`, {
      token,
      headers: { ...(ip ? { 'cf-connecting-ip': ip } : {}), ...headers },
    });

  async function expectFirewall(res: Response, ip: string) {
    expect(res.status).toBe(403);
    const body = await json(res);
    expect(body.error.code).toBe('Forbidden');
    expect(body.error.innererror).toEqual({ code: 'ForbiddenByFirewall' });
    expect(body.error.message).toMatch(
      /^Client address is not authorized and caller is not a trusted service\.\r\nClient address: /,
    );
    expect(body.error.message).toContain(`Client address: ${ip}\r\n`);
  }

  it('lets an address in an allowed range through when the default is Deny', async () => {
    const { origin } = await vaultWith({ defaultAction: 'Deny', ipRules: [{ value: '203.0.113.0/24' }] });
    const res = await getSecret(origin, '203.0.113.77');
    expect(res.status).toBe(200);
    expect((await json(res)).value).toBe('v');
  });

  it('refuses another address with 403 ForbiddenByFirewall, audited as such', { timeout: 20_000 }, async () => {
    const { origin } = await vaultWith({ defaultAction: 'Deny', ipRules: [{ value: '203.0.113.0/24' }] });
    const correlationId = crypto.randomUUID();
    const res = await getSecret(origin, '198.51.100.20', 'present', { 'x-ms-client-request-id': correlationId });
    await expectFirewall(res, '198.51.100.20');
    const audited = await pollAudit(correlationId);
    expect(audited).toMatchObject({
      operation: 'SecretGet',
      status: 403,
      result: 'denied',
      client_ip: '198.51.100.20',
      error_code: 'ForbiddenByFirewall',
    });
  });

  it('lets every address through when the default is Allow', async () => {
    const { origin } = await vaultWith({ defaultAction: 'Allow', ipRules: [{ value: '203.0.113.0/24' }] });
    expect((await getSecret(origin, '198.51.100.20')).status).toBe(200);
    expect((await getSecret(origin, undefined)).status).toBe(200);
  });

  it('matches IPv6 rules, compressed or not, and IPv4-mapped client addresses', async () => {
    const { origin } = await vaultWith({
      defaultAction: 'Deny',
      ipRules: [{ value: '2001:db8:abcd::/48' }, { value: '203.0.113.0/24' }],
    });
    expect((await getSecret(origin, '2001:db8:abcd:12::1')).status).toBe(200);
    expect((await getSecret(origin, '2001:0db8:abcd:0000:0000:0000:0000:0001')).status).toBe(200);
    expect((await getSecret(origin, '::ffff:203.0.113.5')).status).toBe(200);
    await expectFirewall(await getSecret(origin, '2001:db8:abce::1'), '2001:db8:abce::1');
  });

  it('refuses a request without a client address when the default is Deny', async () => {
    const { origin } = await vaultWith({ defaultAction: 'Deny', ipRules: [{ value: '0.0.0.0/0' }] });
    const res = await getSecret(origin, undefined);
    await expectFirewall(res, 'unknown');
    expect((await getSecret(origin, 'not-an-address')).status).toBe(403);
  });

  it('refuses before any data is looked at: a missing secret is 403, not 404, and the bridge is not needed', async () => {
    const { origin } = await vaultWith({ defaultAction: 'Deny', ipRules: [{ value: '203.0.113.0/24' }] });
    await expectFirewall(await getSecret(origin, '198.51.100.20', 'does-not-exist'), '198.51.100.20');
    expect((await getSecret(origin, '203.0.113.1', 'does-not-exist')).status).toBe(404);
    const down = await call('GET', `${origin}/secrets/present?${API}`, {
      token,
      headers: { 'cf-connecting-ip': '198.51.100.20' },
      env: { BRIDGE_URL: 'http://127.0.0.1:9' },
    });
    await expectFirewall(down, '198.51.100.20');
    // Writes are refused too, and nothing is written.
    const write = await call('PUT', `${origin}/secrets/intruder?${API}`, {
      token,
      body: { value: 'x' },
      headers: { 'cf-connecting-ip': '198.51.100.20' },
    });
    expect(write.status).toBe(403);
    expect((await getSecret(origin, '203.0.113.1', 'intruder')).status).toBe(404);
  });

  it('still answers an unauthenticated request with the challenge, not the firewall', async () => {
    const { origin } = await vaultWith({ defaultAction: 'Deny', ipRules: [] });
    const res = await call('GET', `${origin}/secrets/present?${API}`, { headers: { 'cf-connecting-ip': '198.51.100.20' } });
    expect(res.status).toBe(401);
  });

  it('applies a change of the rules at once, through PATCH', async () => {
    const { origin, vault } = await vaultWith({ defaultAction: 'Deny', ipRules: [{ value: '203.0.113.0/24' }] });
    expect((await getSecret(origin, '198.51.100.20')).status).toBe(403);
    const patched = await call('PATCH', `${APEX}/management/vaults/${vault}`, {
      token,
      body: { networkAcls: { defaultAction: 'Deny', ipRules: [{ value: '198.51.100.0/24' }] } },
    });
    expect(patched.status).toBe(200);
    expect((await json(patched)).properties.networkAcls).toEqual({
      defaultAction: 'Deny',
      bypass: 'AzureServices',
      ipRules: [{ value: '198.51.100.0/24' }],
      virtualNetworkRules: [],
    });
    expect((await getSecret(origin, '198.51.100.20')).status).toBe(200);
    expect((await getSecret(origin, '203.0.113.1')).status).toBe(403);
    // null removes the firewall.
    expect((await call('PATCH', `${APEX}/management/vaults/${vault}`, { token, body: { networkAcls: null } })).status).toBe(200);
    expect((await getSecret(origin, '203.0.113.1')).status).toBe(200);
  });

  it('refuses invalid rules on create and on PATCH with 400, changing nothing', async () => {
    const name = `n${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`.slice(0, 24);
    const created = await call('PUT', `${APEX}/management/vaults/${name}`, {
      token,
      body: { networkAcls: { defaultAction: 'Deny', ipRules: [{ value: '10.0.0.0/33' }] } },
    });
    expect(created.status).toBe(400);
    expect((await json(created)).error.code).toBe('BadParameter');
    expect((await call('GET', `${APEX}/management/vaults/${name}`, { token })).status).toBe(404);

    const { vault, origin } = await vaultWith({ defaultAction: 'Deny', ipRules: [{ value: '203.0.113.0/24' }] });
    for (const networkAcls of [
      { defaultAction: 'Deny', ipRules: [{ value: '2001:db8::/129' }] },
      { defaultAction: 'Sometimes' },
      'Deny',
    ]) {
      const res = await call('PATCH', `${APEX}/management/vaults/${vault}`, { token, body: { networkAcls } });
      expect(res.status, JSON.stringify(networkAcls)).toBe(400);
    }
    expect((await getSecret(origin, '203.0.113.1')).status).toBe(200);
    expect((await getSecret(origin, '198.51.100.1')).status).toBe(403);
  });

  it('does not guard the management API on the apex (administrators reach a vault they locked)', async () => {
    const { vault } = await vaultWith({ defaultAction: 'Deny', ipRules: [] });
    expect(
      (await call('GET', `${APEX}/management/vaults/${vault}`, { token, headers: { 'cf-connecting-ip': '198.51.100.1' } }))
        .status,
    ).toBe(200);
    expect(vaultOrigin(vault)).toContain(vault);
  });
});

/**
 * Waits for the queue to deliver a request's audit event to the consumer (about a second), in
 * whichever audit table this schema has (audit_records, or the older audit_events).
 */
async function pollAudit(correlationId: string, timeoutMs = 15_000): Promise<Record<string, unknown> | undefined> {
  const [table] = await rows<{ name: string }>(
    "select name from sqlite_master where type = 'table' and name in ('audit_records', 'audit_events') order by name = 'audit_records' desc limit 1",
  );
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await rows(`select * from ${table!.name} where correlation_id = ?`, correlationId);
    if (row || Date.now() > deadline) return row;
    await sleep(100);
  }
}
