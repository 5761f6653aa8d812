#!/usr/bin/env bash
# Writes a boot image to a USB stick, or to a regular file (dry run), and verifies it by reading it back.
#
#   usage: scripts/usb_write.sh IMAGE DRIVE        (what `make usb DRIVE=/dev/sdX` runs)
#
# DRIVE under /dev/ (or any block device) is a device: it must be a whole disk (TYPE disk, not a partition),
# removable (RM 1) and on USB (TRAN usb), with nothing mounted on it or on any of its partitions, and not the disk
# holding `/` (`findmnt -no SOURCE /`, found among the disk and everything under it). The script prints its
# model, size and partitions and asks for `yes` unless YES=1. Any other DRIVE is a regular file (a dry run, no
# checks): created or overwritten.
#
# Then: `dd bs=4M conv=fsync` (plus oflag=direct on a device), read back the image's length (iflag=direct on a
# device, so the page cache cannot answer) and compare SHA-256 sums. Exit status 0 only when the sums match; 1 on a
# refusal (nothing written) or a failed write/verification; 2 on a usage error.
#
# Environment, for the tests (scripts/usb_write_test.sh): LSBLK, FINDMNT and DD name the commands to run instead of
# lsblk, findmnt and dd.
set -euo pipefail

LSBLK=${LSBLK:-lsblk}
FINDMNT=${FINDMNT:-findmnt}
DD=${DD:-dd}
BLOCK=4M
BLOCK_BYTES=$((4 * 1024 * 1024))

die() { # die STATUS MESSAGE: print `usb: MESSAGE` on stderr and exit
    echo "usb: $2" >&2
    exit "$1"
}
refuse() { die 1 "refusing to write $drive: $*"; }

[ $# -eq 2 ] || die 2 "usage: $0 IMAGE DRIVE (DRIVE: a USB disk such as /dev/sdb, or a file for a dry run)"
image=$1
drive=$2
[ -n "$drive" ] || die 2 "no drive given: make usb DRIVE=/dev/sdX (the whole USB disk) or DRIVE=file.img (dry run)"
[ -f "$image" ] || die 2 "image $image does not exist (run \`make iso\`)"
command -v jq >/dev/null || die 2 "jq is needed to read lsblk's JSON (apt-get install jq)"
image_bytes=$(stat -c %s "$image")

# Every name in the lsblk tree `$1` (the disk and its partitions, LVM/crypt devices on them, ...), one a line.
tree_names() { jq -r '.blockdevices[0] | .. | objects | select(has("name")) | .name' <<<"$1"; }
# Every mount point in the tree (lsblk >= 2.37 `mountpoints` lists, older `mountpoint` strings), one a line.
tree_mounts() {
    jq -r '.blockdevices[0] | .. | objects | (.mountpoints // [.mountpoint]) | .[]? | select(. != null)' <<<"$1"
}

# Refuses unless `$drive` is a removable, unmounted USB disk that does not hold `/`; prints what it is.
check_device() {
    local json name type rm tran model size root root_name names mounted
    local errors
    errors=$(mktemp)
    if ! json=$("$LSBLK" -J -b -o NAME,TYPE,RM,TRAN,MODEL,SIZE,MOUNTPOINTS "$drive" 2>"$errors"); then
        local message
        message=$(tr '\n' ' ' <"$errors")
        rm -f "$errors"
        refuse "no such block device (${message% })"
    fi
    rm -f "$errors"
    jq -e '.blockdevices | length == 1' >/dev/null 2>&1 <<<"$json" || refuse "lsblk did not describe one device: $json"
    name=$(jq -r '.blockdevices[0].name' <<<"$json")
    type=$(jq -r '.blockdevices[0].type' <<<"$json")
    # `rm` is a JSON boolean since util-linux 2.33 and a "0"/"1" string before.
    rm=$(jq -r '.blockdevices[0].rm | tostring' <<<"$json")
    tran=$(jq -r '.blockdevices[0].tran // "none"' <<<"$json")
    model=$(jq -r '.blockdevices[0].model // "unknown model" | gsub("^\\s+|\\s+$"; "")' <<<"$json")
    size=$(jq -r '.blockdevices[0].size' <<<"$json")
    [ "$type" = disk ] || refuse "it is a $type, not a whole disk (give the disk, e.g. /dev/sdb rather than /dev/sdb1)"
    # The disk holding `/`: findmnt's source (e.g. /dev/sda2, /dev/mapper/vg-root, /dev/sda2[/@] for a btrfs
    # subvolume) is the disk or anything under it.
    root=$("$FINDMNT" -no SOURCE / 2>/dev/null) || refuse "cannot find the device holding / (findmnt failed)"
    root_name=${root%%\[*}
    root_name=${root_name##*/}
    names=$(tree_names "$json") # not piped into grep -q, which could end jq with SIGPIPE and fail the pipeline
    if grep -qxF -- "$root_name" <<<"$names"; then
        refuse "it holds the running system's root file system (/ is on $root)"
    fi
    mounted=$(tree_mounts "$json" | paste -sd, -)
    [ -z "$mounted" ] || refuse "it is mounted (at $mounted); unmount it and its partitions first (umount ${drive}?*)"
    [ "$rm" = true ] || [ "$rm" = 1 ] || refuse "it is not a removable disk (lsblk RM=$rm): $model"
    [ "$tran" = usb ] || refuse "it is not on USB (lsblk TRAN=$tran): $model"
    [[ $size =~ ^[0-9]+$ ]] || refuse "lsblk gave no size in bytes ($size)"
    [ "$size" -ge "$image_bytes" ] || refuse "it holds $size bytes, the image $image_bytes"
    echo "usb: $drive ($name): $model, $(numfmt --to=iec-i --suffix=B "$size")"
    echo "usb: current partitions (all will be lost):"
    jq -r '.blockdevices[0].children // [] | .[] | "  \(.name)  \(.size) bytes  \(.type)"' <<<"$json" | grep . ||
        echo "  (none)"
}

confirm() {
    [ "${YES:-}" = 1 ] && return 0
    local answer=""
    read -r -p "usb: erase everything on $drive and write $image? Type yes: " answer || true
    [ "$answer" = yes ] || refuse "not confirmed (typed \"$answer\"; YES=1 skips the question)"
}

if [[ $drive == /dev/* ]] || [ -b "$drive" ]; then
    device=1
    check_device
    confirm
    write_flags=(oflag=direct)
    read_flags=(iflag=direct)
else
    device=0
    [ ! -e "$drive" ] || [ -f "$drive" ] || die 1 "refusing to write $drive: it exists and is not a regular file"
    echo "usb: dry run: writing to the regular file $drive (no device checks)"
    write_flags=()
    read_flags=()
fi

"$DD" if="$image" of="$drive" bs=$BLOCK conv=fsync "${write_flags[@]}" status=progress ||
    die 1 "dd failed writing $drive"
[ "$device" = 0 ] || sync

# Read back whole blocks (O_DIRECT needs them aligned) and keep the image's length. `head` stops reading there, so
# dd may end with SIGPIPE: pipefail is off for this pipeline, and a failed read shows as a wrong sum below.
blocks=$(((image_bytes + BLOCK_BYTES - 1) / BLOCK_BYTES))
expected=$(sha256sum <"$image" | cut -d' ' -f1)
set +o pipefail
actual=$("$DD" if="$drive" bs=$BLOCK count="$blocks" "${read_flags[@]}" status=none | head -c "$image_bytes" |
    sha256sum | cut -d' ' -f1)
set -o pipefail
if [ "$expected" != "$actual" ]; then
    die 1 "verification FAILED: the first $image_bytes bytes of $drive have SHA-256 $actual, the image $expected"
fi
echo "usb: wrote and verified $image_bytes bytes (SHA-256 $expected) on $drive"
