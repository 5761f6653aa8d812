# A thin front for the host tools in scripts/ (cellbuild: build pipeline; qemu_harness: QEMU tests).
# `make help` lists the targets. Variables: CMDLINE, UEFI=1, SMP, DRIVE (DEVICE: the old name), YES=1, CORRUPT_CELL,
# RUNS, MATRIX=1, CELL, SEED, N.
SHELL := /bin/bash

TARGET_SPEC  := cfg/x86_64-theseus.json
BUILD_STD    := -Zbuild-std=core,alloc,compiler_builtins -Zbuild-std-features=compiler-builtins-mem
BUILD        := build
ISO          := $(BUILD)/theseus.iso
CELLBUILD    := scripts/target/release/cellbuild
HARNESS      := scripts/target/release/qemu_harness
CMDLINE      ?=
CORRUPT_CELL ?= greeting_v2
SMP          ?= 1
RUNS         ?= 5
# Fault-injection campaign: seed, number of injections, and how points are drawn (`make faults`;
# POINTS=instruction: breakpoints on instructions of the workload's cells, POINTS=time: moments).
SEED         ?= 2026
N            ?= 500
POINTS       ?= instruction
# The guest's COM2 (push_receiver) as a Unix socket: `make push` sends cell objects there.
PUSH_SOCKET  := $(BUILD)/push.sock
OVMF         := /usr/share/ovmf/OVMF.fd
QEMU         := qemu-system-x86_64 -cdrom $(ISO) -m 512M -display none -no-reboot -accel tcg \
                -device isa-debug-exit,iobase=0xf4,iosize=0x04 -smp $(SMP) $(if $(UEFI),-bios $(OVMF))
# Crates whose unit tests run on the host: library root has #![cfg_attr(not(test), no_std)].
HOST_CRATES   = $(shell $(CELLBUILD) host-crates)

.DEFAULT_GOAL := iso
.PHONY: iso run push test usb gdb boot-time bench faults faults-ipc clean help setup tools new-app

iso: setup tools ## Build the kernel, its cells and build/theseus.iso (default)
	$(CELLBUILD) build --cmdline "$(CMDLINE)"

run: iso ## Boot the ISO in QEMU, serial console on this terminal (UEFI=1 for OVMF; Ctrl-a x quits); COM2 on build/push.sock
	$(QEMU) -serial mon:stdio -serial unix:$(PUSH_SOCKET),server=on,wait=off || [ $$? -eq 33 ]

push: setup tools ## Rebuild one cell and send it into the guest of `make run`: make push CELL=greeting_v2
	@if [ -z "$(CELL)" ]; then echo "usage: make push CELL=<cell> (a kernel cell, e.g. greeting_v2)"; exit 1; fi
	$(CELLBUILD) push --cell $(CELL) --socket $(PUSH_SOCKET)

test: setup tools ## Everything: fmt, clippy, host unit tests, tool tests, both ISOs, all QEMU scenarios
	cargo fmt --all --check
	cd scripts && cargo fmt --all --check
	cargo clippy --release --workspace --target $(TARGET_SPEC) $(BUILD_STD) -- -D warnings
	$(if $(HOST_CRATES),cargo clippy $(addprefix -p ,$(HOST_CRATES)) --all-targets -- -D warnings)
	$(if $(HOST_CRATES),cargo test $(addprefix -p ,$(HOST_CRATES)))
	cd scripts && cargo clippy --release --all-targets -- -D warnings
	cd scripts && cargo test --release
	bash scripts/usb_write_test.sh
	$(CELLBUILD) build --cmdline "selfcheck $(CMDLINE)" --corrupt $(CORRUPT_CELL)
	$(HARNESS) test --smp $(SMP) --corrupt-object k-$(CORRUPT_CELL).o
	$(HARNESS) faults --count 10 --seed 1 --smp $(SMP) --out $(BUILD)/faults-smoke

new-app: ## Create applications/NAME from the template (app_io, forbid(unsafe_code), a main): make new-app NAME=x
	bash scripts/new_app.sh "$(NAME)"

boot-time: iso ## Boot RUNS times (default 5) under BIOS and OVMF; print the time to the first prompt (MATRIX=1: per USB matrix configuration)
	$(HARNESS) boot-time --runs $(RUNS) --smp $(SMP) $(if $(MATRIX),--matrix)

bench: iso ## Microbenchmarks and boot times, ours vs Linux in the same QEMU: table, build/bench/results.{csv,svg}
	bash scripts/bench/setup_linux.sh
	$(HARNESS) bench --runs $(RUNS) --smp $(SMP) --out $(BUILD)/bench

faults: iso ## Fault-injection campaign over the gdb stub (N=500 injections, SEED=2026): build/faults/{injections.csv,summary.txt}
	$(HARNESS) faults --count $(N) --seed $(SEED) --smp $(SMP) --points $(POINTS) --out $(BUILD)/faults

faults-ipc: iso ## The 13 hand-placed faults in the channel send/receive paths: build/faults-ipc/{ipc.csv,ipc-summary.txt}
	$(HARNESS) faults --ipc --seed $(SEED) --smp $(SMP) --out $(BUILD)/faults-ipc

usb: ## Write the ISO to a USB stick and verify it: make usb DRIVE=/dev/sdX (erases it; asks first, YES=1 skips); DRIVE=file.img is a dry run
	@if [ -z "$(or $(DRIVE),$(DEVICE))" ]; then echo "usage: make usb DRIVE=/dev/sdX (the whole USB disk; lsblk lists them) or DRIVE=file.img (dry run)"; exit 2; fi
	$(MAKE) iso
	YES=$(YES) bash scripts/usb_write.sh $(ISO) "$(or $(DRIVE),$(DEVICE))"

gdb: iso ## Boot halted with a gdb stub (-s -S) and attach gdb to build/nano_core.elf; serial to build/logs/gdb-serial.log
	@mkdir -p $(BUILD)/logs
	$(QEMU) -serial file:$(BUILD)/logs/gdb-serial.log -s -S & qemu=$$!; \
	gdb -q $(BUILD)/nano_core.elf -ex 'set architecture i386:x86-64' -ex 'target remote localhost:1234'; \
	kill $$qemu 2>/dev/null; wait $$qemu 2>/dev/null || true

clean: ## Remove build/, the kernel's target/ and scripts/target/
	rm -rf $(BUILD)
	cargo clean
	cd scripts && cargo clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  \1\t/' | expand -t 14

setup:
	@bash scripts/setup.sh

tools:
	@cd scripts && cargo build --release --quiet
