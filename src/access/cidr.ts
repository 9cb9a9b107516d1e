/**
 * IP addresses and CIDR ranges for the vault firewall: a small, strict parser (no zone ids, no
 * octal or abbreviated IPv4, at most one `::`) and prefix matching.
 *
 * Addresses are kept as 32-bit words: one for IPv4, four for IPv6. An IPv4-mapped IPv6 address
 * (`::ffff:198.51.100.7`) is the IPv4 address it maps, so a client reported either way matches the
 * same IPv4 rules, and a rule inside `::ffff:0:0/96` is the IPv4 rule it spells.
 */

export interface IpAddress {
  version: 4 | 6;
  /** Big-endian 32-bit words: one (IPv4) or four (IPv6), each in 0..2^32-1. */
  words: number[];
}

export interface IpRange {
  version: 4 | 6;
  /** The network address (host bits zero). */
  words: number[];
  /** Prefix length: 0..32 (IPv4) or 0..128 (IPv6). */
  prefix: number;
}

const IPV4_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIpv4Word(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let word = 0;
  for (const part of parts) {
    if (!IPV4_OCTET.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    word = word * 256 + octet;
  }
  return word;
}

/** Eight 16-bit groups, or undefined. Accepts `::` once and a dotted IPv4 tail. */
function parseIpv6Groups(text: string): number[] | undefined {
  if (text.length === 0 || text.length > 45) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const side = (s: string): string[] | undefined => {
    if (s === '') return [];
    const groups = s.split(':');
    return groups.some((g) => g === '') ? undefined : groups;
  };
  const head = side(halves[0]!);
  const tail = halves.length === 2 ? side(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const toGroups = (parts: string[], allowIpv4Last: boolean): number[] | undefined => {
    const out: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (allowIpv4Last && i === parts.length - 1 && part.includes('.')) {
        const v4 = parseIpv4Word(part);
        if (v4 === undefined) return undefined;
        out.push(Math.floor(v4 / 65536), v4 % 65536);
      } else if (HEX_GROUP.test(part)) {
        out.push(parseInt(part, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  // The dotted IPv4 tail may only end the address.
  const headGroups = toGroups(head, halves.length === 1);
  const tailGroups = toGroups(tail, true);
  if (!headGroups || !tailGroups) return undefined;
  const count = headGroups.length + tailGroups.length;
  if (halves.length === 1) return count === 8 ? headGroups : undefined;
  // `::` stands for at least one zero group.
  if (count > 7) return undefined;
  return [...headGroups, ...new Array<number>(8 - count).fill(0), ...tailGroups];
}

function isIpv4Mapped(words: number[]): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
}

/** Parses an IPv4 or IPv6 address (no prefix, no brackets, no zone id). */
export function parseIp(text: string): IpAddress | undefined {
  if (text.includes(':')) {
    const groups = parseIpv6Groups(text);
    if (!groups) return undefined;
    const words = [0, 1, 2, 3].map((i) => groups[2 * i]! * 65536 + groups[2 * i + 1]!);
    if (isIpv4Mapped(words)) return { version: 4, words: [words[3]!] };
    return { version: 6, words };
  }
  const word = parseIpv4Word(text);
  return word === undefined ? undefined : { version: 4, words: [word] };
}

/** The mask of the `n` leading bits of a 32-bit word (n in 0..32), as an unsigned number. */
function leadingMask(n: number): number {
  if (n <= 0) return 0;
  if (n >= 32) return 0xffffffff;
  return (0xffffffff << (32 - n)) >>> 0;
}

function maskWords(words: number[], prefix: number): number[] {
  return words.map((w, i) => (w & leadingMask(prefix - 32 * i)) >>> 0);
}

export type RangeResult = { ok: true; range: IpRange } | { ok: false; reason: string };

/**
 * Parses `address` or `address/prefix`. A bare address is the one-address range (/32 or /128).
 * A range whose host bits are not zero is refused (ambiguous: one host or its network?).
 */
export function parseRange(text: string): RangeResult {
  const slash = text.indexOf('/');
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const address = parseIp(addressText);
  if (!address) return { ok: false, reason: `'${text}' is not an IPv4 or IPv6 address or CIDR range.` };
  // An IPv4-mapped IPv6 range counts its prefix over 128 bits.
  const spelledAsV6 = addressText.includes(':');
  const max = spelledAsV6 ? 128 : 32;
  let prefix = max;
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1);
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(prefixText)) return { ok: false, reason: `'${text}' has an invalid prefix length.` };
    prefix = Number(prefixText);
    if (prefix > max) return { ok: false, reason: `'${text}' has a prefix longer than ${max} bits.` };
  }
  if (spelledAsV6 && address.version === 4) {
    // ::ffff:a.b.c.d/p with p >= 96 is the IPv4 range a.b.c.d/(p-96); shorter prefixes reach
    // outside the mapped block and are IPv6 ranges proper.
    if (prefix >= 96) prefix -= 96;
    else {
      const words = [0, 0, 0xffff, address.words[0]!];
      return checkHostBits(text, { version: 6, words, prefix });
    }
  }
  return checkHostBits(text, { version: address.version, words: address.words, prefix });
}

function checkHostBits(text: string, range: IpRange): RangeResult {
  const masked = maskWords(range.words, range.prefix);
  if (masked.some((w, i) => w !== range.words[i])) {
    return { ok: false, reason: `'${text}' has host bits set; its network is ${formatRange({ ...range, words: masked })}.` };
  }
  return { ok: true, range };
}

/** Whether `address` lies in `range` (IPv4 addresses never match IPv6 ranges, and vice versa). */
export function rangeContains(range: IpRange, address: IpAddress): boolean {
  if (range.version !== address.version) return false;
  const { words, prefix } = range;
  for (let i = 0; i < words.length; i++) {
    const mask = leadingMask(prefix - 32 * i);
    if (mask === 0) return true;
    if ((address.words[i]! & mask) >>> 0 !== words[i]) return false;
  }
  return true;
}

/** The canonical text of a range: dotted IPv4, or RFC 5952 IPv6 (longest zero run compressed). */
export function formatRange(range: IpRange): string {
  return `${formatAddress({ version: range.version, words: range.words })}/${range.prefix}`;
}

export function formatAddress(address: IpAddress): string {
  if (address.version === 4) {
    const w = address.words[0]!;
    return [w >>> 24, (w >>> 16) & 255, (w >>> 8) & 255, w & 255].join('.');
  }
  const groups = address.words.flatMap((w) => [w >>> 16, w & 0xffff]);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
