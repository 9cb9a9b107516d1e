"""
The Azure SDK for Python against the running stack, unmodified and at its default api-versions
(Debian's azure-keyvault-keys 4.8 sends 7.4-preview.1, azure-keyvault-secrets 4.7 sends 7.3):
token via ClientSecretCredential from the stack's token service, secrets set/get/list versions,
an RSA key created and read, and a CryptographyClient sign/verify.

Run by test/e2e/python-sdk.e2e.test.ts, which passes the stack's coordinates in EKV_* variables
and the development CA in REQUESTS_CA_BUNDLE / SSL_CERT_FILE (verification stays on). Prints one
JSON object of observations on stdout for the test to assert; never prints the client secret.
"""
import hashlib
import inspect
import json
import os
import socket
import sys
import uuid
from urllib.parse import parse_qs, urlparse

# Python's resolver, like Node's, does not send *.localhost to loopback: map those names here,
# as test/support/hosts.ts does for Node. Every other name resolves as before; the hostname still
# drives SNI, the certificate check and the Host header.
_getaddrinfo = socket.getaddrinfo


def _loopback_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    name = host.decode() if isinstance(host, bytes) else host
    if isinstance(name, str) and (name.lower().rstrip('.') == 'localhost' or name.lower().rstrip('.').endswith('.localhost')):
        # wrangler dev listens on 127.0.0.1 only.
        return _getaddrinfo('127.0.0.1', port, socket.AF_INET, type, proto, flags)
    return _getaddrinfo(host, port, family, type, proto, flags)


socket.getaddrinfo = _loopback_getaddrinfo

from azure.core.exceptions import HttpResponseError  # noqa: E402
from azure.identity import ClientSecretCredential  # noqa: E402
from azure.identity._internal.msal_credentials import MsalCredential  # noqa: E402
from azure.keyvault.keys import KeyClient  # noqa: E402
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm  # noqa: E402
from azure.keyvault.secrets import SecretClient  # noqa: E402

env = os.environ
vault_url = env['EKV_VAULT_URL']

# MSAL's instance discovery asks login.microsoftonline.com about unknown authorities; a user of a
# private authority turns it off. The keyword changed name across azure-identity releases.
if 'disable_instance_discovery' in inspect.signature(MsalCredential.__init__).parameters:
    discovery = {'disable_instance_discovery': True}
else:
    discovery = {'instance_discovery': False}
credential = ClientSecretCredential(
    env['EKV_TENANT_ID'], env['EKV_CLIENT_ID'], env['EKV_CLIENT_SECRET'], authority=env['EKV_AUTHORITY_HOST'], **discovery
)

# Every request the clients send, as "METHOD /path api-version", to show which versions went out.
sent = []


def record(request):
    url = urlparse(request.http_request.url)
    version = parse_qs(url.query).get('api-version', [''])[0]
    sent.append(f'{request.http_request.method} {url.path} {version}')


out = {}
suffix = uuid.uuid4().hex[:12]

secrets = SecretClient(vault_url, credential, raw_request_hook=record)
name = f'py-secret-{suffix}'
value = f'python value {suffix}'
created = secrets.set_secret(name, value, content_type='text/plain')
fetched = secrets.get_secret(name)
out['secret'] = {
    'id': created.id,
    'name': created.name,
    'valueRoundTrips': fetched.value == value,
    'sameVersion': fetched.properties.version == created.properties.version,
    'versions': [p.version for p in secrets.list_properties_of_secret_versions(name)],
}
missing = f'py-missing-{suffix}'
try:
    out['missingVersions'] = {'items': [p.version for p in secrets.list_properties_of_secret_versions(missing)]}
except HttpResponseError as e:
    out['missingVersions'] = {'status': e.status_code, 'error': type(e).__name__, 'code': e.error.code if e.error else None}

keys = KeyClient(vault_url, credential, raw_request_hook=record)
key_name = f'py-key-{suffix}'
key = keys.create_rsa_key(key_name, size=2048)
got = keys.get_key(key_name)
out['key'] = {
    'id': key.id,
    'kty': str(got.key_type.value if hasattr(got.key_type, 'value') else got.key_type),
    'bits': len(got.key.n) * 8,
    'sameVersion': got.properties.version == key.properties.version,
}

crypto = CryptographyClient(key.id, credential, raw_request_hook=record)
digest = hashlib.sha256(b'signed by the Python SDK').digest()
signed = crypto.sign(SignatureAlgorithm.rs256, digest)
tampered = hashlib.sha256(b'something else').digest()
out['signature'] = {
    'keyId': signed.key_id,
    'bytes': len(signed.signature),
    'valid': crypto.verify(SignatureAlgorithm.rs256, digest, signed.signature).is_valid,
    'tamperedValid': crypto.verify(SignatureAlgorithm.rs256, tampered, signed.signature).is_valid,
}
out['requests'] = sent

json.dump(out, sys.stdout)
