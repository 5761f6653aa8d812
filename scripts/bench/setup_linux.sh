#!/usr/bin/env bash
# The Linux side of `make bench`: installs the Debian kernel and busybox (apt, only if missing), builds the static
# benchmark program and hello (gcc -static -O2), and packs them with two kernel modules into an initramfs
# (cpio newc, gzip). Idempotent: rebuilds only what is missing or older than its sources.
# Output: build/bench/linux/vmlinuz and build/bench/linux/initramfs.gz.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/bench/linux
root=$out/root
# Modules without dependencies, of about the size of our cells (~20 KB and ~100 KB); init_module does little.
small_module=kernel/lib/lz4/lz4hc_compress.ko
large_module=kernel/fs/minix/minix.ko

missing=()
dpkg -s linux-image-amd64 >/dev/null 2>&1 || missing+=(linux-image-amd64)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
dpkg -s cpio >/dev/null 2>&1 || missing+=(cpio)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup_linux: installing ${missing[*]}"
    sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
version=$(dpkg -L linux-image-amd64 >/dev/null 2>&1 && ls /lib/modules | sort -V | tail -1)
modules=/lib/modules/$version
mkdir -p "$root"/{bin,proc,sys,dev,modules} "$out"
cp "/boot/vmlinuz-$version" "$out/vmlinuz"
for source in scripts/bench/linux_bench.c scripts/bench/hello.c; do
    binary=$out/$(basename "$source" .c)
    if [ ! -e "$binary" ] || [ "$source" -nt "$binary" ]; then
        gcc -static -O2 -pthread -Wall -Wextra -o "$binary" "$source"
    fi
done
cp "$out/linux_bench" "$root/bin/bench"
cp "$out/hello" "$root/bin/hello"
cp /bin/busybox "$root/bin/busybox"
for module in "$small_module" "$large_module"; do
    name=$(basename "$module")
    if [ -e "$modules/$module" ]; then cp "$modules/$module" "$root/modules/$name"
    elif [ -e "$modules/$module.xz" ]; then xz -dc "$modules/$module.xz" > "$root/modules/$name"
    else echo "setup_linux: $modules/$module not found" >&2; exit 1; fi
done
cp scripts/bench/init.sh "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -9 > "$out/initramfs.gz"
echo "setup_linux: $out/vmlinuz ($version), $out/initramfs.gz; busybox $(dpkg-query -W -f '${Version}' busybox-static)"
