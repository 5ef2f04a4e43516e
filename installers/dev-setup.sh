#!/usr/bin/env bash
# Installs everything Spare needs to build, run and test on a development or CI machine.
#
# Idempotent: a second run installs nothing and takes about a second. Called by
# `make run` and `make test`; safe to run by hand. Debian and Ubuntu are handled
# here; macOS and Windows prerequisites are listed in README.md.
set -euo pipefail

log() { printf 'dev-setup: %s\n' "$*" >&2; }

# Debian packages:
#   gnome-keyring, libsecret-1-0  a real Secret Service for the node key (tests run it
#                                 unlocked inside dbus-run-session)
#   dbus-daemon, dbus-bin         the session bus and dbus-run-session
#   keyutils                      the kernel keyring tools (diagnostics)
#   pkg-config, build-essential   C toolchain for bundled SQLite
#   curl                          a real HTTP client through the relay's SOCKS5 proxy
#   mesa-vulkan-drivers, libvulkan1  Mesa's software Vulkan (lavapipe): a real wgpu
#                                 device for the GPU runner's tests on machines without a GPU
#   xvfb, xauth, xdotool          a real X server and real input events for the idle
#                                 signal's tests and the input-to-yield benchmark
#   util-linux                    setpriv: the control-channel test acts as another user
#   kwin-wayland                  a real headless Wayland compositor with ext-idle-notify-v1
#                                 for the Wayland idle signal's test (Debian 12's Sway 1.7
#                                 and Weston 10 lack the protocol)
#   chromium                      a real browser for the dashboard's tests (ui/, driven by
#                                 playwright-core; browser downloads do not work on CI)
#   libwebkit2gtk-4.1-dev, libayatana-appindicator3-dev, librsvg2-dev, libxdo-dev
#                                 what the tray app (src-tauri/, Tauri v2) builds against
#   webkit2gtk-driver             WebKitWebDriver: the real app's end-to-end tests drive its
#                                 window through tauri-driver
#   trayer                        an X11 system tray on the test display, so the tray menu
#                                 is clicked for real
#   imagemagick                   `import`: screenshots of the tray menu
#   dunst                         a real notification server (D-Bus activated) for the
#                                 test that the app notifies the owner
#   libglib2.0-bin                gio: GLib's own launcher runs the start-at-login entry
#                                 in a test (src-tauri/src/login.rs)
#   osslsigncode, openssl         the Windows signing script's test signs a real .exe
#                                 (installers/windows/sign.test.mjs)
#   sudo                          how the updater installs a .deb when there is no pkexec
#                                 (test-deb.sh updates the installed app)
# Never dbus-x11: it makes GLib autostart session buses that outlive the tests.
APT_PACKAGES=(gnome-keyring libsecret-1-0 dbus-daemon dbus-bin keyutils pkg-config build-essential
  mesa-vulkan-drivers libvulkan1 curl xvfb xauth xdotool util-linux kwin-wayland chromium
  libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
  webkit2gtk-driver trayer imagemagick dunst libglib2.0-bin osslsigncode openssl sudo)

missing_apt_packages() {
  local pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      printf '%s\n' "$pkg"
    fi
  done
}

install_apt_packages() {
  local missing
  missing=$(missing_apt_packages)
  [ -z "$missing" ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { log "need root or sudo to install: $missing"; exit 1; }
    sudo=(sudo)
  fi
  log "installing Debian packages: $(echo $missing | tr '\n' ' ')"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  # shellcheck disable=SC2086
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
    install -y -qq --no-install-recommends $missing >/dev/null
}

# Node and npm build and test the dashboard (ui/). Debian 12 ships Node 18.19, which every
# package ui/package.json pins supports; a newer Node already on PATH is used as it is.
install_node() {
  command -v node >/dev/null && command -v npm >/dev/null && return 0
  if ! command -v apt-get >/dev/null; then
    log "node and npm not found: install Node.js 18 or newer (https://nodejs.org), then run this again"
    exit 1
  fi
  # install_apt_packages reads APT_PACKAGES; a local one (bash scopes it dynamically)
  # makes it install just these two.
  local APT_PACKAGES=(nodejs npm)
  install_apt_packages
}

install_rust_components() {
  if ! command -v cargo >/dev/null; then
    log "cargo not found: install Rust with rustup (https://rustup.rs), then run this again"
    exit 1
  fi
  if command -v rustup >/dev/null; then
    local installed
    installed=$(rustup component list --installed 2>/dev/null || true)
    for component in rustfmt clippy; do
      if ! grep -q "^$component" <<<"$installed"; then
        log "adding rustup component $component"
        rustup component add "$component"
      fi
    done
  fi
}

install_cargo_tools() {
  # cargo-deny checks licenses, bans (openssl) and sources; built once into ~/.cargo/bin.
  if ! command -v cargo-deny >/dev/null; then
    log "installing cargo-deny (one-time build, a few minutes)"
    cargo install --locked --quiet cargo-deny@0.20.2
  fi
  # tauri-driver: the WebDriver server the real app's end-to-end tests talk to (Linux and
  # Windows; macOS has no WebDriver for WKWebView).
  if [ "$(uname -s)" != Darwin ] && ! command -v tauri-driver >/dev/null; then
    log "installing tauri-driver (one-time build, about a minute)"
    cargo install --locked --quiet tauri-driver@2.0.6
  fi
}

case "$(uname -s)" in
  Linux)
    if command -v apt-get >/dev/null; then
      install_apt_packages
      install_node
    else
      log "not a Debian/Ubuntu system: install the equivalents of: ${APT_PACKAGES[*]}"
    fi
    ;;
  Darwin) ;; # Keychain and the Xcode command-line tools are all Spare needs.
  *) log "unsupported OS $(uname -s): see README.md for prerequisites" ;;
esac
install_rust_components
install_cargo_tools
