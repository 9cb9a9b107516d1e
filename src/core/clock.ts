/**
 * The service's clock in Azure's unit: Key Vault's REST API gives times as Unix seconds. One
 * function so that every stored and returned time is taken the same way.
 */
export const now = (): number => Math.floor(Date.now() / 1000);
