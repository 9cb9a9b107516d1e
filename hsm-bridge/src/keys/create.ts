/**
 * Making keys in the token: generation (RSA, EC key pairs; AES keys) and import of a private
 * RSA or EC JWK, each as sensitive, non-extractable token objects (templates.ts), one creation
 * at a time (KeyStore.create).
 */
import * as graphene from 'graphene-pk11';
import type { HsmKeySpec, HsmPublicJwk } from '../../../bridge-protocol/index.js';
import { ckrName } from '../hsm.js';
import { CURVES, ecPublicJwk, importMaterial, rsaPublicJwk } from '../key-material.js';
import { checkId, checkSpec } from './algorithms.js';
import { KeyRequestError } from './errors.js';
import { pkcs11 } from './session.js';
import type { KeyStore } from './store.js';
import {
  RSA_EXPONENT,
  aesKeyTemplate,
  ecPrivateTemplate,
  objectNames,
  publicTemplate,
  rsaPrivateTemplate,
  stagingTemplate,
  transportKeyTemplate,
} from './templates.js';

// C_GenerateKeyPair's answers for a curve the token does not know.
const CURVE_UNSUPPORTED = new Set([
  'CKR_CURVE_NOT_SUPPORTED',
  'CKR_DOMAIN_PARAMS_INVALID',
  'CKR_ATTRIBUTE_VALUE_INVALID',
  'CKR_TEMPLATE_INCONSISTENT',
]);

export async function generateKey(
  store: KeyStore,
  id: string,
  spec: HsmKeySpec,
): Promise<{ handle: string; publicJwk?: HsmPublicJwk }> {
  checkId(id, 'id');
  const checked = checkSpec(spec);
  return store.create(id, 'generate', async (session) => {
    if (checked.kty === 'oct') {
      const key = await pkcs11<graphene.SecretKey>((done) =>
        session.generateKey(graphene.KeyGenMechanism.AES, aesKeyTemplate(id, checked.size / 8), done),
      );
      store.remember(id, { kty: 'oct', key, bytes: checked.size / 8 });
      return { handle: id };
    }

    let pair: graphene.IKeyPair;
    if (checked.kty === 'RSA') {
      pair = await pkcs11<graphene.IKeyPair>((done) =>
        session.generateKeyPair(
          graphene.KeyGenMechanism.RSA,
          { ...publicTemplate(id, graphene.KeyType.RSA), modulusBits: checked.size, publicExponent: RSA_EXPONENT },
          rsaPrivateTemplate(id),
          done,
        ),
      );
    } else {
      const curve = CURVES[checked.crv];
      pair = await pkcs11<graphene.IKeyPair>((done) =>
        session.generateKeyPair(
          graphene.KeyGenMechanism.EC,
          { ...publicTemplate(id, graphene.KeyType.EC), paramsEC: curve.oid },
          ecPrivateTemplate(id),
          done,
        ),
      ).catch((err: unknown) => {
        const ckr = ckrName(err);
        if (ckr && CURVE_UNSUPPORTED.has(ckr)) {
          throw new KeyRequestError(`the HSM cannot generate keys on curve ${checked.crv} (${ckr})`);
        }
        throw err;
      });
    }
    try {
      if (checked.kty === 'RSA') {
        const pub = pair.publicKey.getAttribute({ modulus: null, publicExponent: null }) as {
          modulus: Buffer;
          publicExponent: Buffer;
        };
        store.remember(id, { kty: 'RSA', key: pair.privateKey, bytes: checked.size / 8 });
        return { handle: id, publicJwk: rsaPublicJwk(pub.modulus, pub.publicExponent) };
      }
      const curve = CURVES[checked.crv];
      const publicJwk = ecPublicJwk(curve, pair.publicKey.getAttribute('pointEC') as Buffer);
      store.remember(id, { kty: 'EC', key: pair.privateKey, curve });
      return { handle: id, publicJwk };
    } catch (err) {
      // A key whose public half cannot be read is of no use: do not leave it behind.
      store.forget(id);
      session.destroy(objectNames(id));
      throw err;
    }
  });
}

/**
 * Imports a private RSA or EC JWK. The PKCS#8 encoding enters the token as a staging session
 * object (sensitive: its value cannot be read back), is wrapped inside the token under a
 * one-time AES transport key (CKM_AES_KEY_WRAP_PAD) and C_UnwrapKey'd into a sensitive,
 * non-extractable session key, which C_CopyObject makes the final token object; staging object,
 * transport key and session key are destroyed at once.
 * SoftHSM 2.6 quirks behind the detours: CKM_AES_KEY_WRAP_PAD is offered to C_WrapKey and
 * C_UnwrapKey but not to C_Encrypt (hence the staging object rather than encrypting the blob
 * directly), and C_UnwrapKey straight into a CKA_MODIFIABLE=false token object fails with
 * CKR_ATTRIBUTE_READ_ONLY (hence the copy, which may turn modifiable off).
 */
export async function importKey(
  store: KeyStore,
  id: string,
  jwk: Record<string, unknown>,
): Promise<{ handle: string; publicJwk: HsmPublicJwk }> {
  checkId(id, 'id');
  const material = importMaterial(jwk);
  try {
    return await store.create(id, 'import', async (session) => {
      const transport = session.generateKey(graphene.KeyGenMechanism.AES, transportKeyTemplate());
      let wrapped: Buffer | undefined;
      try {
        const staging = session.create(stagingTemplate(material.pkcs8)).toType<graphene.SecretKey>();
        try {
          wrapped = await pkcs11<Buffer>((done) => session.wrapKey('AES_KEY_WRAP_PAD', transport, staging, done));
        } finally {
          session.destroy(staging);
        }
        const template = material.kty === 'RSA' ? rsaPrivateTemplate(id) : ecPrivateTemplate(id);
        const unwrapped = await pkcs11<graphene.Key>((done) =>
          session.unwrapKey('AES_KEY_WRAP_PAD', transport, wrapped!, { ...template, token: false, modifiable: true }, done),
        );
        let privateKey: graphene.Key;
        try {
          privateKey = session.copy(unwrapped, { token: true, modifiable: false }).toType<graphene.Key>();
        } finally {
          session.destroy(unwrapped);
        }
        try {
          session.create(
            material.kty === 'RSA'
              ? { ...publicTemplate(id, graphene.KeyType.RSA), modulus: material.modulus, publicExponent: material.exponent }
              : { ...publicTemplate(id, graphene.KeyType.EC), paramsEC: material.curve.oid, pointEC: material.point },
          );
        } catch (err) {
          session.destroy(privateKey);
          throw err;
        }
        store.remember(
          id,
          material.kty === 'RSA'
            ? { kty: 'RSA', key: privateKey, bytes: material.bits / 8 }
            : { kty: 'EC', key: privateKey, curve: material.curve },
        );
        return { handle: id, publicJwk: material.publicJwk };
      } finally {
        session.destroy(transport);
        wrapped?.fill(0);
      }
    });
  } finally {
    material.pkcs8.fill(0);
  }
}
