/**
 * Listening ports for the benchmark's stack, outside the kernel's ephemeral range.
 *
 * `findFreePort` asks the kernel for a free port, which comes from the ephemeral range; between
 * that moment and wrangler binding it, the port can be taken as the local port of any outgoing
 * connection (a busy machine running other stacks makes thousands), and wrangler then fails with
 * "Address already in use". Ports below the ephemeral range are never handed out that way.
 */
import { readFile } from 'node:fs/promises';
import { randomInt } from 'node:crypto';
import { assertPortFree } from '../../scripts/lib/ports.js';

async function ephemeralStart(): Promise<number> {
  try {
    const [low] = (await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/).map(Number);
    return low && Number.isInteger(low) ? low : 32_768;
  } catch {
    return 32_768; // Linux's default; elsewhere the range differs, but any free port will do
  }
}

/** A port free on 127.0.0.1 right now, from 20000 up to the start of the ephemeral range, not in `avoid`. */
export async function listenPort(avoid: number[] = []): Promise<number> {
  const high = Math.max(20_001, Math.min(await ephemeralStart(), 32_768));
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = randomInt(20_000, high);
    if (avoid.includes(port)) continue;
    try {
      await assertPortFree(port, 'bench');
      return port;
    } catch {
      // taken: try another
    }
  }
  throw new Error('no free port found from 20000 to the ephemeral range');
}
