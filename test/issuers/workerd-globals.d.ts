// The issuer modules these Node tests import are typechecked for workerd in tsconfig.json; their
// imports reach src/core/encoding.ts, which uses workerd's crypto.subtle.timingSafeEqual. Declared
// here only so the Node typecheck compiles them; nothing on the issuers' path calls it in Node.
interface SubtleCrypto {
  timingSafeEqual(a: ArrayBuffer | ArrayBufferView, b: ArrayBuffer | ArrayBufferView): boolean;
}
