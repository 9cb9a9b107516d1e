/**
 * The Worker bundle stays under issue 13's 350 KB gzipped as features are added: built the way
 * `wrangler deploy` builds it (dry run, wrangler.toml's settings), so a new dependency or a
 * non-tree-shakeable import (zod's `z` object once pulled in every locale) fails here, not at the
 * edge. On failure the message lists the largest contributors.
 */
import { describe, expect, it } from 'vitest';
import { BUNDLE_LIMIT_BYTES, describeBundle, measureBundle } from '../../scripts/lib/bundle-size.js';
import { REPO_DIR } from '../../scripts/lib/stack.js';

describe('Worker bundle size', () => {
  it('is under 350 KB gzipped, and the measure sees the real bundle', { timeout: 180_000 }, async () => {
    const size = await measureBundle(REPO_DIR);
    // The measure must be of the Worker: a near-empty output would pass the limit vacuously.
    expect(size.files).toContain('index.js');
    expect(size.bytes).toBeGreaterThan(100 * 1024);
    expect(size.inputs.map((i) => i.name)).toEqual(expect.arrayContaining(['hono', 'src/http']));
    expect(size.gzipBytes, describeBundle(size)).toBeLessThan(BUNDLE_LIMIT_BYTES);
  });
});
