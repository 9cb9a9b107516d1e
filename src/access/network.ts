/**
 * The vault firewall: Azure's networkAcls (`defaultAction`, `ipRules`), checked against the client
 * address the edge reports (cf-connecting-ip) as soon as the vault is known (after the challenge,
 * the api-version and the vault lookup; see src/http/operation.ts), before authorization and before
 * any object is read.
 *
 * Azure's `bypass: 'AzureServices'` lets trusted Microsoft services through. Here the only trusted
 * services are Workers bound to the vault Worker by the account's own configuration (service-binding
 * RPC, src/rpc/), which have no client address for ip rules to match: `AzureServices` (the default)
 * lets them through, `None` refuses them on a Deny vault (isRpcAllowed). For HTTP callers the
 * firewall is never looser than its ip rules. Virtual network rules have no meaning off Azure and
 * are refused.
 */
import type { Caller } from '../identity/tokens';
import { badParameter, forbidden } from '../core/errors';
import { type VaultRecord } from '../core/vault';
import { parseIp, parseRange, rangeContains, formatRange, type IpRange } from './cidr';

export type DefaultAction = 'Allow' | 'Deny';

export interface NetworkAcls {
  defaultAction: DefaultAction;
  bypass: 'AzureServices' | 'None';
  ipRules: { value: string }[];
  virtualNetworkRules: never[];
}

/** Azure Key Vault's limit of IP rules per vault. */
export const MAX_IP_RULES = 1000;

/**
 * Validates networkAcls as a client sends them (Azure's shape; enum values case-insensitive) and
 * returns them normalized for storage. Throws 400 BadParameter naming what is wrong.
 */
export function parseNetworkAcls(input: unknown): NetworkAcls {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw badParameter('networkAcls must be an object with defaultAction and ipRules.');
  }
  const body = input as Record<string, unknown>;
  for (const key of Object.keys(body)) {
    if (!['defaultAction', 'bypass', 'ipRules', 'virtualNetworkRules'].includes(key)) {
      throw badParameter(`networkAcls has an unknown property '${key.slice(0, 64)}'.`);
    }
  }
  const defaultAction = enumValue(body.defaultAction, ['Allow', 'Deny'] as const, 'networkAcls.defaultAction');
  if (defaultAction === undefined) throw badParameter("networkAcls.defaultAction is required ('Allow' or 'Deny').");
  const bypass = enumValue(body.bypass, ['AzureServices', 'None'] as const, 'networkAcls.bypass') ?? 'AzureServices';
  if (body.virtualNetworkRules !== undefined && body.virtualNetworkRules !== null) {
    if (!Array.isArray(body.virtualNetworkRules)) throw badParameter('networkAcls.virtualNetworkRules must be an array.');
    if (body.virtualNetworkRules.length > 0) {
      throw badParameter('Virtual network rules are not supported by this vault service; use ipRules.');
    }
  }
  const rules = body.ipRules ?? [];
  if (!Array.isArray(rules)) throw badParameter('networkAcls.ipRules must be an array of {value}.');
  if (rules.length > MAX_IP_RULES) throw badParameter(`networkAcls.ipRules may hold at most ${MAX_IP_RULES} rules.`);
  const seen = new Set<string>();
  const ipRules: { value: string }[] = [];
  for (const rule of rules) {
    if (rule === null || typeof rule !== 'object' || Array.isArray(rule)) {
      throw badParameter('Each of networkAcls.ipRules must be an object {value}.');
    }
    const { value, ...rest } = rule as Record<string, unknown>;
    if (Object.keys(rest).length > 0)
      throw badParameter(`An ip rule has an unknown property '${Object.keys(rest)[0]!.slice(0, 64)}'.`);
    if (typeof value !== 'string' || value.length === 0 || value.length > 64) {
      throw badParameter('Each ip rule value must be an IPv4 or IPv6 address or CIDR range.');
    }
    const parsed = parseRange(value);
    if (!parsed.ok) throw badParameter(`Invalid ip rule: ${parsed.reason}`);
    const canonical = formatRange(parsed.range);
    if (seen.has(canonical)) continue;
    seen.add(canonical);
    ipRules.push({ value });
  }
  return { defaultAction, bypass, ipRules, virtualNetworkRules: [] };
}

function enumValue<T extends string>(value: unknown, allowed: readonly T[], name: string): T | undefined {
  if (value === undefined || value === null) return undefined;
  const found = typeof value === 'string' ? allowed.find((a) => a.toLowerCase() === value.toLowerCase()) : undefined;
  if (!found) throw badParameter(`${name} must be one of ${allowed.join(', ')}.`);
  return found;
}

/** Stored networkAcls as the API shows them (null: no firewall). */
export function networkAclsOf(vault: VaultRecord): NetworkAcls | null {
  if (vault.networkAcls === null) return null;
  try {
    return JSON.parse(vault.networkAcls) as NetworkAcls;
  } catch {
    return null;
  }
}

/** The rules in the form the check uses: parsed once per vault record. */
interface CompiledAcls {
  allowAll: boolean;
  v4: IpRange[];
  v6: IpRange[];
}

const DENY_ALL: CompiledAcls = { allowAll: false, v4: [], v6: [] };
const ALLOW_ALL: CompiledAcls = { allowAll: true, v4: [], v6: [] };
// Keyed by the record: the vault cache hands out the same record until it reloads it, so the
// rules are parsed once per reload, and a record's entry goes when the record does.
const compiled = new WeakMap<VaultRecord, CompiledAcls>();

function compile(vault: VaultRecord): CompiledAcls {
  const cached = compiled.get(vault);
  if (cached) return cached;
  let result: CompiledAcls;
  if (vault.networkAcls === null) {
    result = ALLOW_ALL;
  } else {
    try {
      const acls = parseNetworkAcls(JSON.parse(vault.networkAcls));
      if (acls.defaultAction === 'Allow') {
        result = ALLOW_ALL;
      } else {
        result = { allowAll: false, v4: [], v6: [] };
        for (const { value } of acls.ipRules) {
          const parsed = parseRange(value);
          if (parsed.ok) (parsed.range.version === 4 ? result.v4 : result.v6).push(parsed.range);
        }
      }
    } catch {
      // Stored rules that no longer parse (edited by hand?) close the vault rather than open it.
      console.error(`vault ${vault.name}: stored networkAcls are invalid; refusing every address`);
      result = DENY_ALL;
    }
  }
  compiled.set(vault, result);
  return result;
}

/** Whether the vault's firewall lets `clientIp` through (null: the edge reported no address). */
export function isNetworkAllowed(vault: VaultRecord, clientIp: string | null): boolean {
  const acls = compile(vault);
  if (acls.allowAll) return true;
  const address = clientIp === null ? undefined : parseIp(clientIp.trim());
  if (!address) return false;
  const ranges = address.version === 4 ? acls.v4 : acls.v6;
  for (const range of ranges) if (rangeContains(range, address)) return true;
  return false;
}

/**
 * Whether a service-binding (RPC) caller passes the vault's firewall: it has no address, so on a
 * vault that denies by default only `bypass: 'AzureServices'` (trusted services) lets it in.
 */
export function isRpcAllowed(vault: VaultRecord): boolean {
  const acls = compile(vault);
  if (acls.allowAll) return true;
  if (acls === DENY_ALL) return false; // stored rules that do not parse close the vault
  return networkAclsOf(vault)?.bypass === 'AzureServices';
}

/**
 * Refuses a request from an address the vault's firewall does not allow: 403 Forbidden with
 * innererror ForbiddenByFirewall and Azure's message. `caller` (when known) is named as Azure names
 * it; the check itself depends only on the address.
 */
export function assertNetworkAllowed(vault: VaultRecord, clientIp: string | null, caller?: Caller): void {
  if (isNetworkAllowed(vault, clientIp)) return;
  // Only an address is echoed back, never whatever else a header may have carried.
  const address = clientIp !== null && parseIp(clientIp.trim()) ? clientIp.trim() : 'unknown';
  const who = caller ? `appid=${caller.appId};oid=${caller.objectId}` : 'unknown';
  throw forbidden(
    `Client address is not authorized and caller is not a trusted service.\r\nClient address: ${address}\r\nCaller: ${who}\r\nVault: ${vault.name}`,
    'ForbiddenByFirewall',
  );
}
