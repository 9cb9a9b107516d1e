"""
The Azure SDK for Python's CertificateClient (Debian's azure-keyvault-certificates, default
api-version 7.3) against the running stack: a self-signed certificate created through its poller,
read back, listed, and soft-deleted through the delete poller.

Run by test/e2e/certificates-sdk.e2e.test.ts with the stack's coordinates in EKV_* variables and the
development CA in REQUESTS_CA_BUNDLE / SSL_CERT_FILE (verification stays on). Prints one JSON
object of observations for the test to assert; never prints the client secret.
"""
import inspect
import json
import os
import socket
import sys
import uuid
from urllib.parse import parse_qs, urlparse

# *.localhost to loopback for this process only, as sdk_smoke.py and test/support/hosts.ts do.
_getaddrinfo = socket.getaddrinfo


def _loopback_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    name = host.decode() if isinstance(host, bytes) else host
    if isinstance(name, str) and (name.lower().rstrip('.') == 'localhost' or name.lower().rstrip('.').endswith('.localhost')):
        return _getaddrinfo('127.0.0.1', port, socket.AF_INET, type, proto, flags)
    return _getaddrinfo(host, port, family, type, proto, flags)


socket.getaddrinfo = _loopback_getaddrinfo

from azure.core.exceptions import ResourceNotFoundError  # noqa: E402
from azure.identity import ClientSecretCredential  # noqa: E402
from azure.identity._internal.msal_credentials import MsalCredential  # noqa: E402
from azure.keyvault.certificates import CertificateClient, CertificatePolicy  # noqa: E402

env = os.environ
if 'disable_instance_discovery' in inspect.signature(MsalCredential.__init__).parameters:
    discovery = {'disable_instance_discovery': True}
else:
    discovery = {'instance_discovery': False}
credential = ClientSecretCredential(
    env['EKV_TENANT_ID'], env['EKV_CLIENT_ID'], env['EKV_CLIENT_SECRET'], authority=env['EKV_AUTHORITY_HOST'], **discovery
)

sent = []


def record(request):
    url = urlparse(request.http_request.url)
    sent.append(f'{request.http_request.method} {url.path} {parse_qs(url.query).get("api-version", [""])[0]}')


client = CertificateClient(env['EKV_VAULT_URL'], credential, raw_request_hook=record)
name = f'py-cert-{uuid.uuid4().hex[:12]}'
out = {'name': name}

created = client.begin_create_certificate(name, CertificatePolicy.get_default(), _polling_interval=0.1).result()
out['created'] = {'id': created.id, 'version': created.properties.version, 'cerBytes': len(created.cer or b'')}
got = client.get_certificate(name)
out['got'] = {
    'id': got.id,
    'subject': got.policy.subject,
    'issuer': got.policy.issuer_name,
    'keyId': got.key_id,
    'secretId': got.secret_id,
    'sameCer': got.cer == created.cer,
}
out['listed'] = any(p.name == name for p in client.list_properties_of_certificates())
deleted = client.begin_delete_certificate(name, _polling_interval=0.1).result()
out['deleted'] = {'recoveryId': deleted.recovery_id, 'hasPurgeDate': deleted.scheduled_purge_date is not None}
try:
    client.get_certificate(name)
    out['afterDelete'] = 'found'
except ResourceNotFoundError as e:
    out['afterDelete'] = e.error.code if e.error else 'ResourceNotFoundError'
out['requests'] = sent

json.dump(out, sys.stdout)
