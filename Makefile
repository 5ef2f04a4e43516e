# The two commands a newcomer needs (see README.md):
#   make run    set up this machine, build Spare and open the tray app in demo mode
#   make test   set up this machine and run every check and test
# Both call installers/dev-setup.sh first, which installs only what is missing.

CARGO ?= cargo
SETUP := installers/dev-setup.sh
comma := ,

.PHONY: run test bench setup lint ui package appimage test-deb

setup:
	@$(SETUP)

# The tray app in demo mode; on a machine with no display (a server, CI), the same node
# as a daemon in demo mode.
run: setup ui
	$(CARGO) build --release --locked -p spare-app -p spare
	@if [ "$$(uname -s)" = Linux ] && [ -z "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ]; then \
		echo "no display: running the node as a daemon in demo mode (spare daemon --demo)"; \
		./target/release/spare daemon --demo; \
	else \
		./target/release/spare-app --demo; \
	fi

# Benchmarks run first at a small size (so they cannot rot), then every test; both inside
# a private D-Bus session with an unlocked GNOME Keyring and a private XDG_RUNTIME_DIR.
# Last, the debug build is packaged as a .deb, installed with dpkg, run and removed.
test: setup ui lint
	installers/with-keyring.sh $(CARGO) test --workspace --locked --bench '*'
	installers/with-keyring.sh $(CARGO) test --workspace --lib --bins --tests --locked
	npm --prefix ui test
	node --test installers/windows/ installers/make-latest-json.test.mjs
	$(CARGO) build --locked -p spare-app -p spare
	installers/with-keyring.sh node --test src-tauri/tests/e2e/
	installers/with-keyring.sh installers/test-deb.sh --debug

# The dashboard's build (ui/dist), which the tray app embeds when it compiles.
ui:
	npm --prefix ui ci --no-audit --no-fund
	npm --prefix ui run build

lint: ui
	$(CARGO) fmt --all --check
	node .github/check-workflows.mjs
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) deny --log-level error check bans licenses sources

bench: setup ui
	installers/with-keyring.sh $(CARGO) bench --locked -p ledger -p compute -p relay -p spare -p spare-app

# Installers for this OS into target/dist/bundle/, from the `dist` profile: on Linux the
# .deb and .rpm; `make appimage` adds the AppImage, whose tools the bundler downloads from
# GitHub (so it needs that reachable). test-deb builds the .deb, installs it with dpkg,
# runs, quits and removes it (root or sudo).
package: setup ui
	ui/node_modules/.bin/tauri build $(if $(filter Linux,$(shell uname -s)),--bundles deb$(comma)rpm) -- --profile dist

appimage: setup ui
	ui/node_modules/.bin/tauri build --bundles appimage -- --profile dist

test-deb: setup ui
	installers/with-keyring.sh installers/test-deb.sh
