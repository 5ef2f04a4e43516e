# The two commands a newcomer needs (see README.md):
#   make run    set up this machine, build Spare and run the node in demo mode
#   make test   set up this machine and run every check and test
# Both call installers/dev-setup.sh first, which installs only what is missing.

CARGO ?= cargo
SETUP := installers/dev-setup.sh

.PHONY: run test bench setup lint

setup:
	@$(SETUP)

run: setup
	$(CARGO) build --release --locked -p agent
	./target/release/spare daemon --demo

# Benchmarks run first at a small size (so they cannot rot), then every test; both inside
# a private D-Bus session with an unlocked GNOME Keyring and a private XDG_RUNTIME_DIR.
test: setup lint
	installers/with-keyring.sh $(CARGO) test --workspace --locked --bench '*'
	installers/with-keyring.sh $(CARGO) test --workspace --lib --bins --tests --locked
	npm --prefix ui ci --no-audit --no-fund
	npm --prefix ui test

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) deny --log-level error check bans licenses sources

bench: setup
	installers/with-keyring.sh $(CARGO) bench --locked -p ledger -p compute -p relay -p agent
