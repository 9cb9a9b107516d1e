/**
 * `npm run check:bundle`: fails when the gzipped Worker bundle reaches issue 13's 350 KB, and says
 * which packages take the most of it, so whoever grows it sees what to cut (the same measure runs
 * as test/scripts/bundle-size.test.ts and in `npm run bench -- --only edge`).
 */
import { BUNDLE_LIMIT_BYTES, describeBundle, measureBundle } from './lib/bundle-size.js';
import { REPO_DIR } from './lib/stack.js';

const size = await measureBundle(REPO_DIR);
console.log(describeBundle(size));
if (size.gzipBytes >= BUNDLE_LIMIT_BYTES) {
  console.error(`check:bundle: the gzipped bundle is ${size.gzipBytes} bytes, at or over the limit of ${BUNDLE_LIMIT_BYTES}`);
  process.exit(1);
}
