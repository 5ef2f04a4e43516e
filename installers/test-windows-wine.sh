#!/usr/bin/env bash
# Runs the Windows build's tests on Linux, under Wine (target x86_64-pc-windows-gnu): the
# closest check of the Windows code paths short of a Windows machine. It is not part of
# `make test`: it builds the workspace a second time, for Windows (about 10 minutes on
# 2 cores). The GitHub workflow's Windows job runs the real thing (.github/workflows/ci.yml).
#
#   installers/test-windows-wine.sh
#
# It installs what it needs on Debian or Ubuntu (wine64, the MinGW-w64 C compiler, the
# Rust target). Wine 8 cannot run some parts, which are left out rather than reported as
# failures:
#   - quinn-udp's Windows socket options (IP_PKTINFO, ECN) are refused by Wine
#     (WSAEOPNOTSUPP), so no QUIC endpoint binds: relay's and spare's integration tests,
#     and the node's router tests (node::router::tests);
#   - Wine has no PDH (sysinfo's CPU load): signals' reads_this_machine_without_panicking;
#   - Wine offers no Vulkan or D3D12 adapter: compute's integration tests run kernels;
#   - spare's integration tests keep each test's files apart through XDG folders and a
#     D-Bus keyring, which are Linux's.
set -euo pipefail

cd "$(dirname "$0")/.."
target=x86_64-pc-windows-gnu
log() { printf 'test-windows-wine: %s\n' "$*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}

# Debian's wine64 package puts its loader outside PATH.
wine=$(command -v wine64 || true)
if [ -z "$wine" ] && [ -x /usr/lib/wine/wine64 ]; then wine=/usr/lib/wine/wine64; fi
missing=()
[ -n "$wine" ] || missing+=(wine64)
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(gcc-mingw-w64-x86-64)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || fail "install ${missing[*]} (Debian names), then run this again"
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  log "installing ${missing[*]}"
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
    fail "apt-get could not install ${missing[*]}"
  wine=$(command -v wine64 || echo /usr/lib/wine/wine64)
fi
if ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target" || fail "rustup could not add $target: add it by hand"
fi

# A Wine prefix of its own, removed afterwards; Wine's chatter off.
work=$(mktemp -d "${TMPDIR:-/tmp}/spare-wine.XXXXXX")
wineserver=$(dirname "$wine")/wineserver
trap 'WINEPREFIX="$work/prefix" "$wineserver" -k 2>/dev/null || true; rm -rf "$work"' EXIT
export WINEPREFIX="$work/prefix" WINEDEBUG=-all
log "creating a Wine prefix"
"$wine" wineboot --init >/dev/null 2>&1 || true
"$wineserver" -w
[ -d "$WINEPREFIX/drive_c/windows/system32" ] || fail "wineboot made no prefix in $WINEPREFIX"
# Rust's standard library (1.78 and later) draws random bytes from ProcessPrng in
# bcryptprimitives.dll, which Wine 8 lacks: every test binary would exit 53 at load,
# printing nothing. A stand-in over RtlGenRandom (SystemFunction036, Wine has it).
cat >"$work/prng.c" <<'C'
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG len);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
  while (len) {
    ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
    if (!SystemFunction036(data, n)) return FALSE;
    data += n;
    len -= n;
  }
  return TRUE;
}
C
system32="$WINEPREFIX/drive_c/windows/system32"
if [ ! -e "$system32/bcryptprimitives.dll" ]; then
  x86_64-w64-mingw32-gcc -shared -O2 -o "$system32/bcryptprimitives.dll" "$work/prng.c" -ladvapi32 ||
    fail "cannot build the bcryptprimitives.dll stand-in"
fi
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$wine"
cargo=(cargo test --locked --target "$target")

log "receipt and ledger (all their tests)"
"${cargo[@]}" -p receipt -p ledger
log "relay, compute, signals, job-protocol and node (unit tests)"
"${cargo[@]}" -p relay -p compute --lib
"${cargo[@]}" -p signals -p job-protocol -p node --lib -- \
  --skip reads_this_machine_without_panicking --skip router::tests
log "the tray app (unit tests)"
"${cargo[@]}" -p spare-app --bins --no-run
# The tray app's test binary loads WebView2Loader.dll, which cargo leaves beside the app.
out="${CARGO_TARGET_DIR:-target}/$target/debug"
cp "$out/WebView2Loader.dll" "$out/deps/"
"${cargo[@]}" -p spare-app --bins
log "PASS"
