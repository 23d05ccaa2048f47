# keel: `make run` boots the demo image under QEMU, `make test` runs every test, `make bench` prints the figures.
# Each target installs what it needs (Debian 12, as root) and builds only what changed.

BUILD      ?= build
MUSL       := x86_64-unknown-linux-musl
KEEL_BIN   := target/$(MUSL)/release/keel
KEEL_BUILD := target/release/keel-build
RECIPE     := os-image/keel.toml
# Reproducible builds: the same commit gives the same image bytes.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 1764374400)
export SOURCE_DATE_EPOCH

.PHONY: all deps init builder image bundle kernel-update run test lint bench clean

all: image

deps:
	@./scripts/install-deps.sh

# PID 1 (`keel`) and the container init (`keel-container-init`) it runs for `init = true`.
init: deps
	cargo build --release --locked --target $(MUSL) -p keel-init -p keel-runtime --bins

builder: deps
	cargo build --release --locked -p keel-image-builder
	cargo build --release --locked -p keelctl

# The demo and test image the OS image carries, imported at boot without any network.
PRELOAD := $(BUILD)/images/busybox.tar
$(PRELOAD): scripts/make-busybox-image.sh
	./scripts/make-busybox-image.sh $@

# No update key is committed, so the image trusts none unless given one: `make image UPDATE_KEY=keys/update.pub`
# (`keel-build keygen --out keys` makes a pair; docs/update.md).
image: init builder $(PRELOAD)
	$(KEEL_BUILD) image --recipe $(RECIPE) --out $(BUILD)/keel.img --init $(KEEL_BIN) \
		--container-init target/$(MUSL)/release/keel-container-init \
		--cache $(BUILD)/cache --boot-dir $(BUILD)/boot --preload $(PRELOAD) \
		$(if $(UPDATE_KEY),--update-key $(UPDATE_KEY))

# The same recipe as a signed update bundle: `make bundle KEY=keys/update.key` writes $(BUILD)/keel.bundle.
bundle: init builder $(PRELOAD)
	@test -n "$(KEY)" || { echo "make bundle needs KEY=<secret key file>; keel-build keygen --out DIR makes one"; exit 2; }
	$(KEEL_BUILD) bundle --recipe $(RECIPE) --out $(BUILD)/keel.bundle --key $(KEY) --init $(KEEL_BIN) \
		--container-init target/$(MUSL)/release/keel-container-init \
		--cache $(BUILD)/cache --preload $(PRELOAD) $(if $(UPDATE_KEY),--update-key $(UPDATE_KEY))

# Moves the recipe's kernel lock (os-image/keel.lock) to Debian's current kernel; commit the lock afterwards.
# `make image` moves it by itself only when the locked package has left the mirror.
kernel-update: builder
	$(KEEL_BUILD) kernel --recipe $(RECIPE) --cache $(BUILD)/cache --update

run: image
	./scripts/run-qemu.sh $(BUILD)

lint: deps
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

# QEMU tests boot one TCG VM per test thread; two at once is what a 2-core machine carries.
test: image lint
	KEEL_BUILD_DIR=$(abspath $(BUILD)) cargo test --locked --workspace --no-fail-fast -- --test-threads=2

# Each bench prints a table with the peer measured side by side in the same run, and one line per side saying
# exactly what was timed. keel-bench builds the peer host (Debian 12 + systemd + Docker, scripts/make-peer-image.sh:
# mmdebstrap from Debian's mirror) once per recipe under $(BUILD)/bench/peer/, and boots each side four times under
# TCG: 10–30 minutes. The start bench times the shipped static binary (`keel run`) against `runc run`; the API bench
# times `GET /containers/json` with 50 containers beside `GET /_ping` of the same server (`keel supervise`, no VM); the
# relay bench sends 1,000,000 container lines through `keel supervise` to rsyslogd beside direct socket writes.
# The log bench times the json-file writer against `cat` of the same bytes.
bench: image
	KEEL_BUILD_DIR=$(abspath $(BUILD)) cargo run --locked --release -p keel-qemu-tests --bin keel-bench
	KEEL_BUILD_DIR=$(abspath $(BUILD)) cargo run --locked --release -p keel-qemu-tests --bin keel-image-bench
	KEEL_BUILD_DIR=$(abspath $(BUILD)) cargo run --locked --release -p keel-qemu-tests --bin keel-update-bench
	KEEL_BUILD_DIR=$(abspath $(BUILD)) KEEL_BIN=$(abspath $(KEEL_BIN)) \
		cargo run --locked --release -p keel-qemu-tests --bin keel-start-bench
	KEEL_BUILD_DIR=$(abspath $(BUILD)) KEEL_BIN=$(abspath $(KEEL_BIN)) \
		cargo run --locked --release -p keel-qemu-tests --bin keel-api-bench
	KEEL_BUILD_DIR=$(abspath $(BUILD)) KEEL_BIN=$(abspath $(KEEL_BIN)) \
		cargo run --locked --release -p keel-qemu-tests --bin keel-relay-bench
	KEEL_BUILD_DIR=$(abspath $(BUILD)) cargo run --locked --release -p keel-qemu-tests --bin keel-log-bench

clean:
	rm -rf $(BUILD)/keel.img $(BUILD)/keel.qcow2 $(BUILD)/boot
