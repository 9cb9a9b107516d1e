#!/bin/sh
# Entrypoint of the bridge's container image (hsm-bridge/Containerfile).
# With HSM_SOFTHSM_DEMO=1 it first makes a SoftHSM2 token in the state volume, once, with a random
# PIN kept beside it (mode 0600): a stand-in for an HSM, for trying the image out. Otherwise it
# only starts the bridge, on the PKCS#11 module mounted at PKCS11_MODULE. The bridge replaces
# this shell (exec), so it receives the engine's SIGTERM itself and shuts down cleanly.
set -eu
app=$(cd "$(dirname "$0")/.." && pwd)

if [ "${HSM_SOFTHSM_DEMO:-0}" = 1 ]; then
  demo=${HSM_SOFTHSM_DIR:-/var/lib/hsm-bridge/softhsm}
  label=${HSM_TOKEN_LABEL:-edge-key-vault}
  umask 077
  mkdir -p "$demo/tokens"
  SOFTHSM2_CONF=$demo/softhsm2.conf
  export SOFTHSM2_CONF
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$demo/tokens" >"$SOFTHSM2_CONF"
  random() { head -c 24 /dev/urandom | base64 | tr '+/' '-_'; }
  # PINs are written before the token exists: a crash in between never leaves a token nobody can open.
  [ -s "$demo/pin" ] || random >"$demo/pin"
  [ -s "$demo/so-pin" ] || random >"$demo/so-pin"
  if ! softhsm2-util --show-slots | grep -Eq "^[[:space:]]*Label:[[:space:]]*$label[[:space:]]*\$"; then
    # softhsm2-util takes PINs only as arguments; this is the demo token.
    softhsm2-util --init-token --free --label "$label" --pin "$(cat "$demo/pin")" --so-pin "$(cat "$demo/so-pin")" >/dev/null
    echo "hsm-bridge: demo SoftHSM2 token '$label' created in $demo" >&2
  fi
  HSM_PIN_FILE=$demo/pin
  export HSM_PIN_FILE
fi

exec node --enable-source-maps "$app/dist/main.js"
