#!/usr/bin/env bash
# Checks the host prerequisites of the build and the QEMU tests and, on Debian/Ubuntu as root, installs what is
# missing. Idempotent and fast when everything is present. Run by `make` before building and by .ci/run.
#
#   needs: cc (host tools), make, ld/objcopy/ar (binutils), grub-mkrescue + BIOS and EFI GRUB modules,
#          xorriso, mformat (mtools), qemu-system-x86_64, OVMF, jq (make usb and its tests), rustup (the toolchain itself comes from
#          rust-toolchain.toml: `rustup toolchain install`, needed because RUSTUP_AUTO_INSTALL may be 0).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
need() { # need <package> <test...>: add the Debian package if the test fails
    local package=$1
    shift
    if ! "$@" >/dev/null 2>&1; then
        case " ${packages[*]-} " in *" $package "*) ;; *) packages+=("$package") ;; esac
    fi
}
need gcc command -v cc
need make command -v make
need binutils command -v ld
need binutils command -v objcopy
need binutils command -v ar
need grub-common command -v grub-mkrescue
need grub-pc-bin test -d /usr/lib/grub/i386-pc
need grub-efi-amd64-bin test -d /usr/lib/grub/x86_64-efi
need xorriso command -v xorriso
need mtools command -v mformat
need qemu-system-x86 command -v qemu-system-x86_64
need ovmf test -f /usr/share/ovmf/OVMF.fd
need jq command -v jq

if [ "${#packages[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing ${packages[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${packages[@]}"
    else
        echo "setup: missing prerequisites. Install them with:" >&2
        echo "    sudo apt-get install --no-install-recommends ${packages[*]}" >&2
        exit 1
    fi
fi

if ! command -v rustup >/dev/null 2>&1; then
    echo "setup: rustup is missing. Install it from https://rustup.rs, then run this again." >&2
    exit 1
fi
# Installs the toolchain and components pinned in rust-toolchain.toml (instant when present).
if ! output=$(rustup toolchain install 2>&1); then
    echo "$output" >&2
    echo "setup: \`rustup toolchain install\` failed" >&2
    exit 1
fi
