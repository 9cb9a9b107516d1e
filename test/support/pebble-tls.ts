/**
 * pebble's HTTPS listener certificate, made when vitest.config.ts loads, before miniflare does:
 * workerd's outbound TLS trusts a private CA only through NODE_EXTRA_CA_CERTS as it stands when
 * miniflare is first imported, so this is the one moment the Worker suite can be told to trust
 * pebble the honest way (verification on, no pass-through). The pebble global setups serve with
 * this certificate (EKV_PEBBLE_TLS_DIR); Node clients trust it per call (fetch-trusting.ts).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function preparePebbleTls(): void {
  if (process.env.EKV_PEBBLE_TLS_DIR) return;
  const dir = mkdtempSync(join(tmpdir(), 'ekv-pebble-tls-'));
  const cert = join(dir, 'cert.pem');
  // Self-signed, so the certificate is its own trust anchor for the clients.
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=pebble test listener',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  // Whatever was trusted that way before stays trusted.
  const previous = process.env.NODE_EXTRA_CA_CERTS ? readFileSync(process.env.NODE_EXTRA_CA_CERTS, 'utf8') : '';
  const bundle = join(dir, 'trust.pem');
  writeFileSync(bundle, `${previous}\n${readFileSync(cert, 'utf8')}`);
  process.env.NODE_EXTRA_CA_CERTS = bundle;
  process.env.EKV_PEBBLE_TLS_DIR = dir;
}
