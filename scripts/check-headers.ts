/**
 * `npm run check:headers` (part of `npm test`): every source file opens with a short comment
 * saying what it is for, so someone new can tell a file's purpose before reading its code.
 * A shebang line may come first.
 */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const ROOTS = ['src', 'hsm-bridge', 'bridge-protocol', 'scripts', 'bench', 'test', 'packages', 'examples'];
const SOURCE = /\.(ts|mts|cts|js|mjs|cjs)$/;

const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '--', ...ROOTS], {
  encoding: 'utf8',
})
  .split('\n')
  .filter((f) => SOURCE.test(f) && !f.endsWith('.d.ts') && !f.includes('/node_modules/'));

const missing = files.filter((file) => {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return false; // deleted in the work tree
  }
  const lines = text.split('\n');
  let i = 0;
  if (lines[0]?.startsWith('#!')) i++;
  while (i < lines.length && lines[i]!.trim() === '') i++;
  const first = lines[i]?.trim() ?? '';
  return !(first.startsWith('/**') || first.startsWith('/*') || first.startsWith('//'));
});

if (missing.length > 0) {
  console.error(`${missing.length} source file(s) do not open with a comment saying what they are for:`);
  for (const f of missing) console.error(`  ${f}`);
  process.exit(1);
}
console.log(`headers: ${files.length} source files, each opens with its purpose`);
