# knockd-rs developer entry points.
#
#   make run        build (release) and run knockd on loopback with the sample
#   make test       fmt, clippy and the tests; as root also the root-only tests
#   make assets     man page and shell completions from the CLI (target/assets)
#   make deb        the Debian package (cargo-deb); prints its path
#   make deb-check  build the package and check it (scripts/deb-check.sh)
#   make msrv       check everything with the declared rust-version's rustc
#
# Both first install missing system packages (scripts/deps.sh): as root via
# apt-get, otherwise by printing the command to run.

CARGO      ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
KNOCKD     := $(TARGET_DIR)/release/knockd
SAMPLE     := knockd.conf.sample

# Generated packaging assets live under the crate, not CARGO_TARGET_DIR:
# the cargo-deb asset list in Cargo.toml names them by a fixed path.
ASSETS     := target/assets
DEB_DIR    := $(TARGET_DIR)/debian

.PHONY: run test deps test-deps deb-deps assets deb deb-check msrv

deps:
	scripts/deps.sh build

test-deps:
	scripts/deps.sh test

deb-deps:
	scripts/deps.sh deb

# Capturing packets needs root (or CAP_NET_RAW): build as the invoking
# user, then run only the daemon as root (through sudo when not root).
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# Root trusts only a config root owns, in directories only root can write
# (knockd.conf(5), "Files knockd trusts"); a checkout is usually yours. So
# the daemon runs a root-owned copy of the sample (mode 0600) in a private
# directory mktemp makes as root, removed when knockd exits (Ctrl-C).
run: deps
	$(CARGO) build --release
	@set -e; \
	dir=$$($(SUDO) mktemp -d /tmp/knockd-run.XXXXXX); \
	trap '$(SUDO) rm -rf "$$dir"' EXIT INT TERM; \
	$(SUDO) install -m 600 $(SAMPLE) "$$dir/knockd.conf"; \
	echo "$(SUDO) $(KNOCKD) --check -c $$dir/knockd.conf"; \
	$(SUDO) $(KNOCKD) --check -c "$$dir/knockd.conf"; \
	echo "knockd: listening on lo; knock from another terminal: $(TARGET_DIR)/release/knock -v 127.0.0.1 7000 8000 9000"; \
	$(SUDO) $(KNOCKD) -i lo -c "$$dir/knockd.conf" -v

# Root runs the privileged tests too (#[ignore]d by default, so a normal
# user sees them reported as ignored rather than failing), and then the
# package check: cold about 2 min (installing cargo-deb ~1 min, the release
# build ~35 s), warm a few seconds. `make test DEB_CHECK=0` leaves it out.
DEB_CHECK ?= 1
test: test-deps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	if [ "$$(id -u)" -eq 0 ]; then \
		$(CARGO) test -- --include-ignored; \
	else \
		$(CARGO) test; \
	fi
	@if [ "$(DEB_CHECK)" != 1 ]; then \
		echo "make test: package check skipped (DEB_CHECK=$(DEB_CHECK))"; \
	elif [ "$$(id -u)" -ne 0 ]; then \
		echo "make test: package check (make deb-check) runs as root only; run it with sudo make deb-check"; \
	else \
		$(MAKE) --no-print-directory deb-check; \
	fi

# The compiler Cargo.toml promises (Debian 13's), on the locked tree:
# tests/deps.rs (in `make test`) checks the lock's declared needs in a
# second; this compiles everything with that rustc, which also catches
# newer language features in our own code. Its own target dir, so the
# usual build stays warm. Needs `rustup toolchain install <version>`.
MSRV := $(shell sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
msrv:
	$(CARGO) +$(MSRV) check --locked --all-targets --target-dir $(TARGET_DIR)/msrv

# SOURCE_DATE_EPOCH from the last commit makes the man page date, and so
# the files, reproducible. --release reuses the release build of the crate.
assets:
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 0) \
		$(CARGO) run --release --quiet --example gen-assets -- $(ASSETS) >/dev/null

# cargo deb --no-build packages exactly the binaries built here; it prints
# the .deb path on stdout (progress goes to stderr). The old .deb is removed
# first so deb-check always finds the one just built. --strip: the release
# profile keeps line tables (debug = 1) for profiling; the package does not
# need them (20 MB -> ~2 MB).
deb: deb-deps
	$(CARGO) build --release --bins
	$(MAKE) --no-print-directory assets
	rm -f $(DEB_DIR)/*.deb
	$(CARGO) deb --no-build --strip --output $(DEB_DIR)/

deb-check: deb
	scripts/deb-check.sh $$(ls $(DEB_DIR)/*.deb)
