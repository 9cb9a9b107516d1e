// The floor of the edge figures: a Worker that answers every request with a fixed 200, served by
// `wrangler dev` exactly as the vault is (same flags, HTTPS with the same certificate). Bench only.
export default {
  fetch() {
    return new Response('{"hello":"world"}', { headers: { 'content-type': 'application/json' } });
  },
};
