#!/usr/bin/env bash
# Builds the .deb, installs it for real, runs the installed app, removes the package and
# checks the owner's ledger and key survive. Linux (Debian/Ubuntu) as root or with sudo;
# run inside installers/with-keyring.sh (the app wants a session bus). Prints the
# package's size and the time from `dpkg -i` to the dashboard showing as JSON lines.
#
#   installers/with-keyring.sh installers/test-deb.sh [--debug] [path/to/spare.deb]
#
# Without a package path it builds the package first: by default as shipped (`tauri
# build --bundles deb`, the `dist` profile: about 10 minutes from a cold target/ on 2
# cores); with --debug from the debug build `make test` has already made (a minute).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf 'test-deb: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

profile=dist
if [ "${1:-}" = --debug ]; then
  profile=debug
  shift
fi
deb=${1:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/spare-deb-work.XXXXXX")
update_key=
if [ -z "$deb" ]; then
  log "building the .deb ($profile profile)"
  if [ "$profile" = debug ]; then
    # The shipped package's recipe with the debug binaries in it: the same files,
    # dependencies, desktop entry and unit, so dpkg sees what users get. Its updater
    # trusts a release key made here, so this test can sign an update it will install
    # (a debug build also accepts an update server on plain http to this machine).
    update_key=$work/update.key
    CI=true ui/node_modules/.bin/tauri signer generate --ci -p "" -w "$update_key" >/dev/null
    ui/node_modules/.bin/tauri build --debug --bundles deb --config '{
      "build": {"beforeBuildCommand": "npm run build && cargo build --locked -p spare-app -p spare"},
      "bundle": {"linux": {"deb": {"files": {"/usr/bin/spare": "../target/debug/spare"}}}},
      "plugins": {"updater": {"pubkey": "'"$(cat "$update_key.pub")"'"}}
    }' >&2
  else
    ui/node_modules/.bin/tauri build --bundles deb -- --profile dist >&2
  fi
  deb=$(ls -t "target/$profile/bundle/deb/"*.deb | head -1)
fi
[ -f "$deb" ] || fail "no package at $deb"
package=$(dpkg-deb -f "$deb" Package)

home=$(mktemp -d "${TMPDIR:-/tmp}/spare-deb.XXXXXX")
xvfb_pid=
app_pid=
cleanup() {
  [ -n "$app_pid" ] && kill "$app_pid" 2>/dev/null || true
  [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null || true
  if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    "${sudo[@]}" dpkg -r "$package" >/dev/null 2>&1 || true
  fi
  rm -rf "$home" "$work"
}
trap cleanup EXIT

# The owner's files: a key file and a config with a port of its own, in a private home.
export HOME=$home XDG_CONFIG_HOME=$home/.config XDG_DATA_HOME=$home/.local/share \
  XDG_CACHE_HOME=$home/.cache XDG_STATE_HOME=$home/.local/state
mkdir -p "$XDG_CONFIG_HOME/spare" "$XDG_DATA_HOME/spare"
chmod 700 "$XDG_DATA_HOME/spare"
port=$((30000 + RANDOM % 20000))
printf '[node]\nkey_file = "%s"\n\n[relay]\nport = %d\n\n[updates]\ncheck = false\n' \
  "$XDG_DATA_HOME/spare/node.key" "$port" >"$XDG_CONFIG_HOME/spare/config.toml"

exec 3< <(Xvfb -displayfd 1 -screen 0 1280x800x24 -nolisten tcp -noreset 2>"$home/xvfb.log" & echo "pid $!")
read -r _ xvfb_pid <&3
read -r display <&3 || fail "Xvfb did not start: $(cat "$home/xvfb.log")"
export DISPLAY=":$display"

if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
  fail "$package is already installed here: remove it first (dpkg -r $package)"
fi
size_bytes=$(stat -c %s "$deb")
log "installing $deb ($((size_bytes / 1024 / 1024)) MiB)"
start=$(date +%s.%N)
"${sudo[@]}" dpkg -i "$deb" >/dev/null
[ -x /usr/bin/spare-app ] && [ -x /usr/bin/spare ] || fail "the package installed no /usr/bin/spare-app or /usr/bin/spare"
[ -f /usr/lib/systemd/user/spare.service ] || fail "the package installed no systemd user unit"
[ -f /usr/share/applications/Spare.desktop ] || fail "the package installed no desktop entry"
# No test switch ships: the packaged command refuses the one the tests use.
for command in "relay serve" daemon; do
  # shellcheck disable=SC2086
  if refused=$(/usr/bin/spare $command --allow-loopback-for-tests --help 2>&1); then
    fail "the packaged spare accepts --allow-loopback-for-tests ($command)"
  fi
  echo "$refused" | grep -q "unexpected argument '--allow-loopback-for-tests'" ||
    fail "the packaged spare $command did not name the refused switch: $refused"
done

/usr/bin/spare-app --demo >"$home/app.log" 2>&1 &
app_pid=$!
# The dashboard shows: its window is mapped, and the node it shows answers.
window=
for _ in $(seq 1 600); do
  window=$(xdotool search --onlyvisible --name '^Spare$' 2>/dev/null | head -1 || true)
  [ -n "$window" ] && break
  kill -0 "$app_pid" 2>/dev/null || fail "the installed app exited: $(tail -20 "$home/app.log")"
  sleep 0.1
done
[ -n "$window" ] || fail "no dashboard window within 60 s: $(tail -20 "$home/app.log")"
for _ in $(seq 1 300); do
  /usr/bin/spare status --json >"$home/status.json" 2>/dev/null && break
  sleep 0.1
done
shown=$(date +%s.%N)
grep -q '"node_id"' "$home/status.json" || fail "the installed app's node does not answer"
node_id=$(sed -n 's/.*"node_id": *"\([0-9a-f]*\)".*/\1/p' "$home/status.json" | head -1)
log "dashboard showing $(awk "BEGIN{printf \"%.2f\", $shown - $start}") s after dpkg -i; node $node_id"

# Demo work reaches the ledger, then the app quits on request (SIGTERM, as a session
# manager or package removal asks).
entries=0
for _ in $(seq 1 120); do
  entries=$(/usr/bin/spare ledger verify 2>/dev/null | sed -n 's/.*intact: \([0-9]*\) entries.*/\1/p')
  [ "${entries:-0}" -gt 0 ] && break
  sleep 0.5
done
[ "${entries:-0}" -gt 0 ] || fail "no demo work reached the ledger within 60 s"
/usr/bin/spare ledger verify >&2 || fail "the ledger does not verify"
kill -TERM "$app_pid"
for _ in $(seq 1 100); do kill -0 "$app_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$app_pid" 2>/dev/null; then fail "the app did not quit within 10 s of SIGTERM"; fi
wait "$app_pid" || fail "the app exited with status $? on SIGTERM"
grep -q "node stopped" "$XDG_STATE_HOME/spare/logs/app.log" ||
  fail "the installed app's log ($XDG_STATE_HOME/spare/logs/app.log) does not say the node stopped"
app_pid=

# The installed app updates itself: Settings, Check now, Install; dpkg replaces it and
# it restarts into the new binary (the end-to-end test's last case, on this package).
if [ -n "$update_key" ]; then
  version=$(dpkg-deb -f "$deb" Version)
  next=${version%.*}.$((${version##*.} + 1))
  log "updating the installed app to $next (the same package, signed as $next)"
  SPARE_APP=/usr/bin/spare-app SPARE_CLI=/usr/bin/spare SPARE_UPDATE_KEY=$update_key \
    SPARE_UPDATE_PACKAGE=$deb SPARE_UPDATE_VERSION=$next \
    node --test --test-name-pattern "updates itself" src-tauri/tests/e2e/ >"$work/update.log" 2>&1 \
    || fail "the installed app did not update itself: $(tail -60 "$work/update.log")"
  grep -q '^# pass 1$' "$work/update.log" || fail "the update test did not run: $(tail -30 "$work/update.log")"
  [ -x /usr/bin/spare-app ] || fail "the update left no /usr/bin/spare-app"
else
  log "not testing the update: it needs the package this script builds with --debug"
fi

"${sudo[@]}" dpkg -r "$package" >/dev/null
[ ! -e /usr/bin/spare-app ] && [ ! -e /usr/bin/spare ] || fail "dpkg -r left the binaries"
# The owner's ledger, key and config are theirs: removal keeps them.
[ -s "$XDG_DATA_HOME/spare/ledger.sqlite3" ] || fail "the ledger did not survive removal"
[ -s "$XDG_DATA_HOME/spare/node.key" ] || fail "the node key did not survive removal"
[ -s "$XDG_CONFIG_HOME/spare/config.toml" ] || fail "the config did not survive removal"
after=$(target/debug/spare id 2>/dev/null || true)
[ -z "$after" ] || [ "$after" = "$node_id" ] || fail "the key changed: $node_id became $after"

printf '{"bench":"installers","metric":"deb_size","value":%s,"unit":"MiB","baseline":"none","baseline_value":0,"ratio":null,"target":"report"}\n' \
  "$(awk "BEGIN{printf \"%.2f\", $size_bytes / 1048576}")"
printf '{"bench":"installers","metric":"deb_install_to_dashboard","value":%s,"unit":"s","baseline":"none","baseline_value":0,"ratio":null,"target":"report"}\n' \
  "$(awk "BEGIN{printf \"%.2f\", $shown - $start}")"
log "PASS: installed, ran, quit on request, removed; ledger and key kept"
