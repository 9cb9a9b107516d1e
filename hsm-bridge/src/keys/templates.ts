/**
 * PKCS#11 attribute templates of the key objects: what makes private and secret keys sensitive,
 * non-extractable, non-modifiable token objects, which usages each key type gets, and the short-
 * lived session objects that carry bytes into and out of C_WrapKey and C_UnwrapKey.
 */
import * as graphene from 'graphene-pk11';
import { hsmKeyLabel } from '../../../bridge-protocol/index.js';

export const RSA_EXPONENT = Buffer.from([0x01, 0x00, 0x01]);

// Protection of every private and secret key object; usages are added per key type.
export const PROTECTED = {
  token: true,
  private: true,
  sensitive: true,
  extractable: false,
  modifiable: false,
  derive: false,
} as const;

export function objectNames(id: string) {
  return { id: Buffer.from(id, 'hex'), label: hsmKeyLabel(id) };
}

export function rsaPrivateTemplate(id: string): graphene.ITemplate {
  return {
    class: graphene.ObjectClass.PRIVATE_KEY,
    keyType: graphene.KeyType.RSA,
    ...objectNames(id),
    ...PROTECTED,
    sign: true,
    decrypt: true,
    unwrap: true,
    signRecover: false,
  };
}

export function ecPrivateTemplate(id: string): graphene.ITemplate {
  return {
    class: graphene.ObjectClass.PRIVATE_KEY,
    keyType: graphene.KeyType.EC,
    ...objectNames(id),
    ...PROTECTED,
    sign: true,
    decrypt: false,
    unwrap: false,
    signRecover: false,
  };
}

export function publicTemplate(id: string, keyType: graphene.KeyType): graphene.ITemplate {
  const rsa = keyType === graphene.KeyType.RSA;
  return {
    class: graphene.ObjectClass.PUBLIC_KEY,
    keyType,
    ...objectNames(id),
    token: true,
    private: false,
    modifiable: false,
    verify: true,
    encrypt: rsa,
    wrap: rsa,
    derive: false,
  };
}

/** A session object holding bytes for C_WrapKey: wrappable, but its value cannot be read. */
export function stagingTemplate(value: Buffer): graphene.ITemplate {
  return {
    class: graphene.ObjectClass.SECRET_KEY,
    keyType: graphene.KeyType.GENERIC_SECRET,
    token: false,
    private: true,
    sensitive: true,
    extractable: true,
    value,
    encrypt: false,
    decrypt: false,
    sign: false,
    verify: false,
    wrap: false,
    unwrap: false,
    derive: false,
  };
}

/** A generated AES key of `bytes` bytes: for cipher and key wrap, never for MACs. */
export function aesKeyTemplate(id: string, bytes: number): graphene.ITemplate {
  return {
    keyType: graphene.KeyType.AES,
    valueLen: bytes,
    ...objectNames(id),
    ...PROTECTED,
    encrypt: true,
    decrypt: true,
    wrap: true,
    unwrap: true,
    sign: false,
    verify: false,
  };
}

/** The one-time AES key an import wraps the PKCS#8 bytes under, inside the token. */
export function transportKeyTemplate(): graphene.ITemplate {
  return {
    keyType: graphene.KeyType.AES,
    valueLen: 32,
    token: false,
    private: true,
    sensitive: true,
    extractable: false,
    wrap: true,
    unwrap: true,
    encrypt: false,
    decrypt: false,
    sign: false,
    verify: false,
    derive: false,
  };
}

/** A session object that receives A*KW-unwrapped bytes, readable once, then destroyed. */
export function unwrappedBytesTemplate(): graphene.ITemplate {
  return {
    class: graphene.ObjectClass.SECRET_KEY,
    keyType: graphene.KeyType.GENERIC_SECRET,
    token: false,
    private: true,
    sensitive: false,
    extractable: true,
    encrypt: false,
    decrypt: false,
    sign: false,
    verify: false,
    wrap: false,
    unwrap: false,
    derive: false,
  };
}
