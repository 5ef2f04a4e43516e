#!/usr/bin/env bash
# Runs a command inside a private D-Bus session with an unlocked GNOME Keyring, so
# tests use a real Secret Service without touching the owner's keyrings.
#
#   installers/with-keyring.sh cargo test --workspace
#
# The keyring's files live in a temporary folder removed afterwards; the session bus
# and the keyring daemon end with the command (dbus-run-session stops them).
set -euo pipefail

if [ "$(uname -s)" != Linux ]; then
  exec "$@" # macOS and Windows tests use the user's own keychain / credential store.
fi

keyring_home=$(mktemp -d "${TMPDIR:-/tmp}/spare-keyring.XXXXXX")
# WebKit (the tray app's tests) may start xdg-document-portal, which mounts a FUSE folder
# in the runtime folder: unmount it before removing the folder.
# (`|| true`: under `set -e` a failing command in the trap would become the exit status.)
trap 'fusermount -u -q "$keyring_home/runtime/doc" 2>/dev/null || true; rm -rf "$keyring_home"' EXIT

# Vulkan loaders and Mesa want a private runtime folder; headless machines have none.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
  export XDG_RUNTIME_DIR="$keyring_home/runtime"
  mkdir -m 0700 "$XDG_RUNTIME_DIR"
fi

# The daemon keeps its keyrings under $XDG_DATA_HOME/keyrings; only it sees this one.
# shellcheck disable=SC2016
dbus-run-session -- bash -c '
  set -euo pipefail
  printf spare-test | XDG_DATA_HOME="$0" gnome-keyring-daemon --unlock --components=secrets >/dev/null
  exec "$@"
' "$keyring_home" "$@"
