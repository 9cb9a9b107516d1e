/**
 * The wire protocol between the Worker and the HSM bridge: the one module both programs import
 * (the Worker never imports the bridge's source, nor the bridge the Worker's). It imports nothing
 * of either, only web-standard APIs, jose and zod, so it runs in workerd and in Node alike.
 */
export * from './encoding';
export * from './errors';
export * from './schemas';
export * from './signing';
