# knockd-rs developer entry points.
#
#   make run    build (release) and run knockd on loopback with the sample
#   make test   fmt, clippy and the tests; as root also the root-only tests
#
# Both first install missing system packages (scripts/deps.sh): as root via
# apt-get, otherwise by printing the command to run.

CARGO      ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
KNOCKD     := $(TARGET_DIR)/release/knockd
SAMPLE     := knockd.conf.sample

.PHONY: run test deps test-deps

deps:
	scripts/deps.sh build

test-deps:
	scripts/deps.sh test

# Capturing packets needs root (or CAP_NET_RAW): build as the invoking
# user, then run only the daemon as root (through sudo when not root).
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

run: deps
	$(CARGO) build --release
	@# git checks files out 0644; knockd rightly warns about a world-readable
	@# config (sequences are secrets), so tighten the sample's mode first.
	chmod go-rwx $(SAMPLE)
	$(KNOCKD) --check -c $(SAMPLE)
	@echo "knockd: listening on lo; knock from another terminal: $(TARGET_DIR)/release/knock -v 127.0.0.1 7000 8000 9000"
	$(SUDO) $(KNOCKD) -i lo -c $(SAMPLE) -v

# Root runs the privileged tests too (#[ignore]d by default, so a normal
# user sees them reported as ignored rather than failing).
test: test-deps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	if [ "$$(id -u)" -eq 0 ]; then \
		$(CARGO) test -- --include-ignored; \
	else \
		$(CARGO) test; \
	fi
