/**
 * The three Reflect metadata functions tsyringe (a dependency of @peculiar/x509) insists on.
 *
 * tsyringe refuses to load without a `reflect-metadata` polyfill, which is not a dependency here;
 * @peculiar/x509 only needs metadata to exist, so a WeakMap-backed subset is enough.
 * Import this module before '@peculiar/x509'.
 */
type Target = object;
const store = new WeakMap<Target, Map<unknown, unknown>>();
const R = Reflect as unknown as Record<string, unknown>;

if (typeof R.getMetadata !== 'function') {
  const own = (key: unknown, target: Target) => store.get(target)?.get(key);
  R.getOwnMetadata = own;
  R.getMetadata = (key: unknown, target: Target) => {
    for (let t: Target | null = target; t; t = Object.getPrototypeOf(t) as Target | null) {
      const value = own(key, t);
      if (value !== undefined) return value;
    }
    return undefined;
  };
  R.defineMetadata = (key: unknown, value: unknown, target: Target) => {
    let map = store.get(target);
    if (!map) store.set(target, (map = new Map()));
    map.set(key, value);
  };
}
export {};
