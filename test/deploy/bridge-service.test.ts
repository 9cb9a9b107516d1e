/**
 * The bridge as operators run it (README "Running the bridge"): built by `npm run bridge:build`,
 * installed with its production dependencies only (hsm-bridge/package.json and its lock) into a
 * directory outside the checkout, started with plain `node` on a fresh SoftHSM2 token, with the
 * environment the systemd unit gives it and through the container image's entrypoint. No container
 * engine or systemd runs here: the unit is checked with `systemd-analyze verify` (when present),
 * the Containerfile statically against its build context.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { access, constants, cp, mkdir, mkdtemp, readFile, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, signRequest, toBase64Url } from '../../bridge-protocol/index.js';
import { ensureSoftHsmToken, findSoftHsmModule, type SoftHsmToken } from '../../hsm-bridge/dev/softhsm.js';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BRIDGE = join(ROOT, 'hsm-bridge');
const NODE_BIN = join(ROOT, 'node_modules/.bin'); // the pinned Node 22 (devDependency `node`)
const SECRET = 'deploy-Test_Secret_7Hq2Lx9Vm4Kp1Wn8Rz3';
const PKCS11_MODULE = findSoftHsmModule();
if (!PKCS11_MODULE) throw new Error('SoftHSM2 is required for the deploy tests (apt-get install softhsm2)');

/** The environment of a child: PATH with Node 22 first, and nothing of npm's or the test runner's. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: `${NODE_BIN}:${process.env.PATH ?? ''}`, HOME: process.env.HOME ?? tmpdir() };
  return { ...env, ...extra };
}

/**
 * `npm ci --omit=dev` of the bridge package, cached outside the checkout by the hash of its
 * package.json and lock (and the Node ABI): compiling pkcs11js takes a while, the result never
 * changes. Outside the checkout, so nothing can fall back to the repository's node_modules.
 */
async function productionModules(): Promise<string> {
  const manifest = await readFile(join(BRIDGE, 'package.json'));
  const lock = await readFile(join(BRIDGE, 'package-lock.json'));
  const key = createHash('sha256')
    .update(manifest)
    .update(lock)
    .update(`${process.platform}-${process.arch}`)
    .digest('hex')
    .slice(0, 16);
  const cacheRoot = process.env.EKV_BRIDGE_INSTALL_CACHE || join(tmpdir(), 'ekv-bridge-production-install');
  const done = join(cacheRoot, key);
  if (existsSync(join(done, 'node_modules', '.package-lock.json'))) return join(done, 'node_modules');
  await mkdir(cacheRoot, { recursive: true });
  const staging = await mkdtemp(join(cacheRoot, `${key}-`));
  await writeFile(join(staging, 'package.json'), manifest);
  await writeFile(join(staging, 'package-lock.json'), lock);
  await run('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: staging,
    env: childEnv({}),
    timeout: 240_000,
  });
  // Another run may have finished first; either copy is the same install.
  await rename(staging, done).catch(() => rm(staging, { recursive: true, force: true }));
  return join(done, 'node_modules');
}

interface Bridge {
  url: string;
  child: ChildProcess;
  output: () => string;
  stop(): Promise<number | null>;
}

/** Spawns a command that starts the bridge; resolves once it prints its listening line. */
function startProcess(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<Bridge> {
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return new Promise((resolveBridge, reject) => {
    const timer = setTimeout(() => (child.kill('SIGKILL'), reject(new Error(`bridge did not start:\n${out}`))), 30_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /hsm-bridge listening on (\S+)/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      resolveBridge({
        url: m[1]!,
        child,
        output: () => out,
        stop: async () => {
          if (child.exitCode === null) child.kill('SIGTERM');
          return exited;
        },
      });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    exited.then((code) => (clearTimeout(timer), reject(new Error(`bridge exited (${code}) before listening:\n${out}`))));
  });
}

async function signedPost(url: string, path: string, payload: unknown): Promise<Response> {
  const body = JSON.stringify(payload);
  const headers = await signRequest(SECRET, 'POST', path, body);
  return fetch(`${url}${path}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body });
}

/** /healthz, then a data key wrapped and unwrapped with signed requests. */
async function expectServing(url: string): Promise<void> {
  const health = await fetch(`${url}/healthz`);
  expect(health.status).toBe(200);
  expect(await health.json()).toEqual({ status: 'ok', kek: true });
  const dataKey = randomBytes(32);
  const context = toBase64Url(new TextEncoder().encode('vault/deploy'));
  const wrapped = await signedPost(url, '/v1/wrap', { plaintext: toBase64Url(dataKey), context });
  expect(wrapped.status).toBe(200);
  const unwrapped = await signedPost(url, '/v1/unwrap', {
    wrapped: ((await wrapped.json()) as { wrapped: string }).wrapped,
    context,
  });
  expect(unwrapped.status).toBe(200);
  expect(Buffer.from(fromBase64Url(((await unwrapped.json()) as { plaintext: string }).plaintext))).toEqual(dataKey);
}

/** The Environment= and LoadCredential= lines of the unit, %d and %S resolved to the given directories. */
function unitSettings(unit: string, credentialsDir: string, stateRoot: string) {
  const env: Record<string, string> = {};
  const credentials: Record<string, string> = {};
  for (const line of unit.split('\n')) {
    const e = /^Environment=([A-Z0-9_]+)=(.*)$/.exec(line);
    if (e) env[e[1]!] = e[2]!.replace('%d', credentialsDir).replace('%S', stateRoot);
    const c = /^LoadCredential=([^:]+):(.+)$/.exec(line);
    if (c) credentials[c[1]!] = c[2]!;
  }
  return { env, credentials };
}

let work: string;
let install: string;
let token: SoftHsmToken & { label: string };

beforeAll(async () => {
  await run('npm', ['run', '--silent', 'bridge:build'], { cwd: ROOT, env: childEnv({}) });
  work = await mkdtemp(join(tmpdir(), 'ekv-deploy-test-'));
  // The bridge package as an operator gets it: manifest, lock, dist/, deploy/, and a production install.
  install = join(work, 'opt/edge-key-vault-hsm-bridge');
  await mkdir(install, { recursive: true });
  for (const name of ['package.json', 'package-lock.json', 'dist', 'deploy'])
    await cp(join(BRIDGE, name), join(install, name), { recursive: true });
  await symlink(await productionModules(), join(install, 'node_modules'), 'dir');
  token = { ...(await ensureSoftHsmToken({ dir: join(work, 'softhsm'), label: 'ekv-deploy-test' })), label: 'ekv-deploy-test' };
}, 300_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the compiled bridge from a production-only install', () => {
  it('holds the run-time dependencies only, and the bundle imports nothing else', async () => {
    const top = (await readdir(join(install, 'node_modules'))).filter((n) => !n.startsWith('.')).sort();
    expect(top).toEqual(['@hono', 'graphene-pk11', 'hono', 'jose', 'pkcs11js', 'tslib', 'zod']);
    const deps = Object.keys(
      (JSON.parse(await readFile(join(install, 'package.json'), 'utf8')) as { dependencies: object }).dependencies,
    );
    const bundle = await readFile(join(install, 'dist/main.js'), 'utf8');
    const imported = new Set(
      [...bundle.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]!).filter((s) => !s.startsWith('node:')),
    );
    const packages = [...imported].map((s) =>
      s
        .split('/')
        .slice(0, s.startsWith('@') ? 2 : 1)
        .join('/'),
    );
    expect(packages.length).toBeGreaterThan(0);
    for (const name of packages) expect(deps).toContain(name);
    expect(bundle).not.toMatch(/from "\.\.?\//); // bridge-protocol/ is bundled in, not imported
  });

  it('runs with the systemd unit`s environment: /healthz and a signed wrap/unwrap, then stops on SIGTERM', async () => {
    const unit = await readFile(join(BRIDGE, 'deploy/hsm-bridge.service'), 'utf8');
    const credentialsDir = join(work, 'credentials');
    const stateRoot = join(work, 'var-lib');
    await mkdir(credentialsDir, { mode: 0o700 });
    const { env, credentials } = unitSettings(unit, credentialsDir, stateRoot);
    expect(Object.keys(credentials).sort()).toEqual(['bridge-hmac-secret', 'hsm-pin']);
    // What systemd's LoadCredential= would have copied in.
    await writeFile(join(credentialsDir, 'hsm-pin'), `${token.pin}\n`, { mode: 0o600 });
    await writeFile(join(credentialsDir, 'bridge-hmac-secret'), `${SECRET}\n`, { mode: 0o600 });
    expect(env.BRIDGE_STATE_DIR).toBe(join(stateRoot, 'hsm-bridge'));

    const execStart = /^ExecStart=\S+ (.*)$/m.exec(unit)![1]!.split(' ');
    const args = execStart.map((a) => a.replace('/opt/edge-key-vault-hsm-bridge', install));
    const bridge = await startProcess(
      'node',
      args,
      install,
      childEnv({
        ...env,
        // This machine's token instead of the unit's defaults.
        PKCS11_MODULE: PKCS11_MODULE!,
        SOFTHSM2_CONF: token.confPath,
        HSM_TOKEN_LABEL: token.label,
        BRIDGE_PORT: '0',
      }),
    );
    try {
      await expectServing(bridge.url);
      expect(bridge.output()).not.toContain(SECRET);
      expect(bridge.output()).not.toContain(token.pin);
    } finally {
      expect(await bridge.stop()).toBe(0);
    }
    expect(existsSync(join(stateRoot, 'hsm-bridge'))).toBe(true); // the replay journal's directory
  });
});

describe('the container image', () => {
  it('the entrypoint makes a demo token once, then starts the bridge from the image layout', async () => {
    const volume = join(work, 'volume');
    const secretFile = join(work, 'secret');
    await writeFile(secretFile, `${SECRET}\n`, { mode: 0o600 });
    const env = childEnv({
      HSM_SOFTHSM_DEMO: '1',
      HSM_SOFTHSM_DIR: join(volume, 'softhsm'),
      HSM_TOKEN_LABEL: 'edge-key-vault',
      PKCS11_MODULE: PKCS11_MODULE!,
      BRIDGE_HMAC_SECRET_FILE: secretFile,
      BRIDGE_STATE_DIR: join(volume, 'state'),
      BRIDGE_HOST: '127.0.0.1',
      BRIDGE_PORT: '0',
    });
    const entrypoint = join(install, 'deploy/container-entrypoint.sh');
    await access(entrypoint, constants.X_OK);
    const first = await startProcess(entrypoint, [], install, env);
    let pin: string;
    try {
      expect(first.output()).toContain("demo SoftHSM2 token 'edge-key-vault' created");
      await expectServing(first.url);
      pin = (await readFile(join(volume, 'softhsm/pin'), 'utf8')).trim();
      expect(pin.length).toBeGreaterThanOrEqual(32);
      expect(first.output()).not.toContain(pin);
    } finally {
      expect(await first.stop()).toBe(0);
    }
    // A restart (same volume) reuses the token, its PIN and its KEK.
    const second = await startProcess(entrypoint, [], install, env);
    try {
      expect(second.output()).not.toContain('created');
      await expectServing(second.url);
      expect((await readFile(join(volume, 'softhsm/pin'), 'utf8')).trim()).toBe(pin);
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });

  it('Containerfile: Debian slim, non-root, state volume, and every COPY source in the build context', async () => {
    const file = await readFile(join(BRIDGE, 'Containerfile'), 'utf8');
    expect(file).toMatch(/^ARG NODE_IMAGE=node:\d+-bookworm-slim$/m);
    expect(file).toMatch(/apt-get install -y --no-install-recommends softhsm2/);
    const user = /^USER (\S+)$/m.exec(file)?.[1];
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    const volume = JSON.parse(/^VOLUME (\[.*\])$/m.exec(file)![1]!) as string[];
    const stateDir = /BRIDGE_STATE_DIR=(\S+)/.exec(file)![1]!;
    expect(volume.some((v) => stateDir.startsWith(`${v}/`))).toBe(true);
    expect(file).toMatch(/HSM_PIN_FILE=\/run\/secrets\//);
    expect(file).toMatch(/BRIDGE_HMAC_SECRET_FILE=\/run\/secrets\//);
    expect(file).toMatch(/RUN npm ci --omit=dev/);
    const sources = [...file.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(' '));
    expect(sources).toEqual(
      expect.arrayContaining(['package.json', 'package-lock.json', 'dist', 'deploy/container-entrypoint.sh']),
    );
    for (const source of sources) expect(existsSync(join(BRIDGE, source)), source).toBe(true);
    // The context ignores everything the COPY lines do not name.
    const ignore = await readFile(join(BRIDGE, '.dockerignore'), 'utf8');
    for (const source of sources) expect(ignore).toContain(`!${source}`);
    const entry = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(file)![1]!) as string[];
    expect(entry).toEqual(['/app/deploy/container-entrypoint.sh']);
  });
});

describe('the systemd unit', () => {
  it('is hardened', async () => {
    const unit = await readFile(join(BRIDGE, 'deploy/hsm-bridge.service'), 'utf8');
    for (const line of [
      'DynamicUser=yes',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'StateDirectory=hsm-bridge',
      'CapabilityBoundingSet=',
      'RestartPreventExitStatus=1',
      'LimitCORE=0',
    ]) {
      expect(unit.split('\n')).toContain(line);
    }
    // Secrets only as credentials, never as values in the unit.
    expect(unit).not.toMatch(/^Environment=(HSM_PIN|BRIDGE_HMAC_SECRET)=/m);
  });

  it('passes systemd-analyze verify', async (ctx) => {
    const found = await run('systemd-analyze', ['--version']).then(
      () => true,
      () => false,
    );
    if (!found) return ctx.skip('systemd-analyze is not installed here');
    let unit = await readFile(join(BRIDGE, 'deploy/hsm-bridge.service'), 'utf8');
    // verify checks that ExecStart's binary exists; a machine without /usr/bin/node checks with its own.
    if (!existsSync('/usr/bin/node')) unit = unit.replace('ExecStart=/usr/bin/node', `ExecStart=${process.execPath}`);
    const path = join(work, 'hsm-bridge.service');
    await writeFile(path, unit);
    const { stdout, stderr } = await run('systemd-analyze', ['verify', path]);
    // verify exits 0 on settings it ignores; those lines name the file.
    expect(`${stdout}${stderr}`).not.toContain('hsm-bridge.service');
  });
});
