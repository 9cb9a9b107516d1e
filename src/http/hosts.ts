/**
 * Vaults are told apart by hostname: `{vault}.{zone}` serves a vault, the zone apex serves the
 * token service, management and health. The port (if any) is kept as the client sent it, because
 * the challenge's resource and token audiences must match the origin the SDK sees.
 */
export type HostTarget =
  | { kind: 'apex'; apexOrigin: string }
  | { kind: 'vault'; vaultName: string; origin: string; apexOrigin: string }
  | { kind: 'unknown' };

/**
 * The host (with port) of a request URL, or null when the URL does not parse: workerd builds the
 * URL from the client's Host header, so `Host: x:99999` or `x:abc` reaches the Worker as a URL
 * that `new URL` refuses.
 */
export function hostOfUrl(url: string): string | null {
  try {
    return new URL(url).host;
  } catch {
    return null;
  }
}

export function classifyHost(hostHeader: string | undefined, zone: string): HostTarget {
  if (!hostHeader) return { kind: 'unknown' };
  const host = hostHeader.toLowerCase();
  const match = /^([^:]+)(:\d+)?$/.exec(host);
  if (!match) return { kind: 'unknown' };
  const hostname = match[1]!.replace(/\.$/, '');
  const port = match[2] ?? '';
  const z = zone.toLowerCase();
  const apexOrigin = `https://${z}${port}`;
  if (hostname === z) return { kind: 'apex', apexOrigin };
  if (hostname.endsWith(`.${z}`)) {
    const label = hostname.slice(0, -(z.length + 1));
    if (!label.includes('.')) return { kind: 'vault', vaultName: label, origin: `https://${hostname}${port}`, apexOrigin };
  }
  return { kind: 'unknown' };
}
