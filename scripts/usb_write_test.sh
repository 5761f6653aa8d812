#!/usr/bin/env bash
# Tests of scripts/usb_write.sh (run by `make test`): a dry run to a file (verified), a device write through fake
# lsblk/findmnt/dd (the "device" is a file in a scratch directory), a verification that must fail, and every
# refusal: no such device, a partition, the root disk, a mounted partition, not removable, not USB, too small, not
# confirmed. Each refusal must exit 1 with its message and run dd not at all.
set -euo pipefail
cd "$(dirname "$0")/.."
script=scripts/usb_write.sh
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failures=0
pass() { echo "usb_write_test: ok   $1"; }
fail() {
    echo "usb_write_test: FAIL $1" >&2
    failures=$((failures + 1))
}

# A 9 MiB + 2 KiB image (not a multiple of dd's 4 MiB blocks), random contents.
image=$scratch/image.iso
head -c $((9 * 1024 * 1024 + 2048)) /dev/urandom >"$image"

# Fake lsblk: prints $FAKE_LSBLK_JSON, or fails like lsblk on a missing device when it is empty.
cat >"$scratch/lsblk" <<'EOF'
#!/usr/bin/env bash
if [ -z "${FAKE_LSBLK_JSON:-}" ]; then
    echo "lsblk: ${!#}: not a block device" >&2
    exit 32
fi
printf '%s\n' "$FAKE_LSBLK_JSON"
EOF
# Fake findmnt: the root file system's source is $FAKE_ROOT.
cat >"$scratch/findmnt" <<'EOF'
#!/usr/bin/env bash
printf '%s\n' "${FAKE_ROOT:-/dev/vda1}"
EOF
# Fake dd: logs its arguments to $DD_LOG, maps /dev/fakestick to the file $STICK and drops O_DIRECT (which tmpfs
# refuses), then runs the real dd; with CORRUPT=1, flips a byte of what it wrote.
cat >"$scratch/dd" <<'EOF'
#!/usr/bin/env bash
echo "dd $*" >>"$DD_LOG"
arguments=()
for argument in "$@"; do
    case $argument in
    of=/dev/fakestick) output=$STICK; arguments+=("of=$STICK") ;;
    of=*) output=${argument#of=}; arguments+=("$argument") ;;
    if=/dev/fakestick) arguments+=("if=$STICK") ;;
    oflag=direct | iflag=direct) ;;
    *) arguments+=("$argument") ;;
    esac
done
dd "${arguments[@]}" || exit
if [ "${CORRUPT:-0}" = 1 ] && [ -n "${output:-}" ]; then
    printf '\x5a' | dd of="$output" bs=1 seek=4096 conv=notrunc status=none
fi
EOF
chmod +x "$scratch/lsblk" "$scratch/findmnt" "$scratch/dd"
export LSBLK=$scratch/lsblk FINDMNT=$scratch/findmnt DD=$scratch/dd DD_LOG=$scratch/dd.log STICK=$scratch/stick

# An lsblk -J -b answer for /dev/fakestick. disk FIELDS... sets fields of the disk; children as JSON.
disk_json() { # disk_json TYPE RM TRAN SIZE CHILDREN_JSON
    printf '{"blockdevices":[{"name":"fakestick","type":"%s","rm":%s,"tran":%s,"model":"Fake Stick  ","size":%s,' \
        "$1" "$2" "$3" "$4"
    printf '"mountpoints":[null],"children":%s}]}' "$5"
}
two_partitions='[{"name":"fakestick1","type":"part","rm":true,"tran":null,"model":null,"size":1048576,"mountpoints":[null]},
  {"name":"fakestick2","type":"part","rm":true,"tran":null,"model":null,"size":2097152,"mountpoints":[null]}]'
big=$((16 * 1024 * 1024 * 1024))

# run NAME: runs the script on $drive (stdin from $answer), output in $scratch/out, status in $status.
run() {
    rm -f "$DD_LOG" "$STICK"
    set +e
    printf '%s\n' "${answer:-}" | "$script" "$image" "$drive" >"$scratch/out" 2>&1
    status=$?
    set -e
}
# refused NAME MESSAGE: the last run exited 1, said MESSAGE, and never ran dd.
refused() {
    if [ "$status" -ne 1 ]; then
        fail "$1: exit status $status, expected 1; output: $(cat "$scratch/out")"
    elif ! grep -qF -- "$2" "$scratch/out"; then
        fail "$1: no \"$2\" in: $(cat "$scratch/out")"
    elif [ -e "$DD_LOG" ] || [ -e "$STICK" ]; then
        fail "$1: dd ran although the write was refused: $(cat "$DD_LOG")"
    else
        pass "$1: $(grep -F -- "$2" "$scratch/out")"
    fi
}

# Dry run to a regular file: written and verified.
drive=$scratch/out.img
answer=""
DD=dd run
if [ "$status" -eq 0 ] && cmp -s "$image" "$drive" && grep -q "wrote and verified $(stat -c %s "$image") bytes" "$scratch/out"; then
    pass "dry run to a file: $(tail -1 "$scratch/out")"
else
    fail "dry run to a file: status $status: $(cat "$scratch/out")"
fi

# Dry run whose written copy differs: verification fails.
drive=$scratch/corrupt.img
CORRUPT=1 run
if [ "$status" -eq 1 ] && grep -q "verification FAILED" "$scratch/out"; then
    pass "corrupted write: $(grep FAILED "$scratch/out")"
else
    fail "corrupted write not detected: status $status: $(cat "$scratch/out")"
fi
unset CORRUPT

# A removable USB disk, confirmed with YES=1: written through the fake dd (to $STICK, with O_DIRECT asked) and
# verified.
drive=/dev/fakestick
export FAKE_ROOT=/dev/vda1
FAKE_LSBLK_JSON=$(disk_json disk true '"usb"' "$big" "$two_partitions") YES=1 run
# (Assignments before a function call last only for the call.)
if [ "$status" -eq 0 ] && cmp -s "$image" "$STICK" && grep -q "oflag=direct" "$DD_LOG" &&
    grep -q "iflag=direct" "$DD_LOG" && grep -q "Fake Stick, 16GiB" "$scratch/out" &&
    grep -q "fakestick2  2097152 bytes  part" "$scratch/out"; then
    pass "USB disk with YES=1: $(tail -1 "$scratch/out")"
else
    fail "USB disk with YES=1: status $status: $(cat "$scratch/out") dd: $(cat "$DD_LOG" 2>/dev/null)"
fi

# The same disk without YES: `no` is refused, `yes` writes.
export FAKE_LSBLK_JSON
FAKE_LSBLK_JSON=$(disk_json disk true '"usb"' "$big" "$two_partitions")
answer=no run
refused "answer no" "not confirmed"
answer=yes run
if [ "$status" -eq 0 ] && cmp -s "$image" "$STICK"; then pass "answer yes: written"; else fail "answer yes: $(cat "$scratch/out")"; fi
answer=""

# Refusals.
FAKE_LSBLK_JSON="" run
refused "missing device" "no such block device (lsblk: /dev/fakestick: not a block device)"
FAKE_LSBLK_JSON=$(disk_json part true '"usb"' "$big" '[]') run
refused "a partition" "it is a part, not a whole disk"
FAKE_LSBLK_JSON=$(disk_json disk true '"usb"' "$big" \
    '[{"name":"fakestick2","type":"part","rm":true,"size":1,"mountpoints":["/"]}]')
FAKE_ROOT=/dev/fakestick2 run
refused "the root disk" "it holds the running system's root file system (/ is on /dev/fakestick2)"
FAKE_ROOT='/dev/mapper/vg-root[/@]' FAKE_LSBLK_JSON=$(disk_json disk true '"usb"' "$big" \
    '[{"name":"fakestick1","type":"part","rm":true,"size":1,"mountpoints":[null],"children":[{"name":"vg-root","type":"lvm","rm":true,"size":1,"mountpoints":["/"]}]}]') run
refused "the root disk under LVM, btrfs subvolume" "/ is on /dev/mapper/vg-root[/@]"
FAKE_LSBLK_JSON=$(disk_json disk true '"usb"' "$big" \
    '[{"name":"fakestick1","type":"part","rm":true,"size":1,"mountpoints":["/media/me/STICK"]}]') run
refused "a mounted partition" "it is mounted (at /media/me/STICK)"
# util-linux before 2.37: `mountpoint` strings, `rm` as "1".
FAKE_LSBLK_JSON='{"blockdevices":[{"name":"fakestick","type":"disk","rm":"1","tran":"usb","model":"Old","size":'$big',"mountpoint":null,"children":[{"name":"fakestick1","type":"part","rm":"1","size":1,"mountpoint":"/mnt"}]}]}' run
refused "a mounted partition (old lsblk)" "it is mounted (at /mnt)"
FAKE_LSBLK_JSON=$(disk_json disk false '"usb"' "$big" '[]') run
refused "not removable" "it is not a removable disk (lsblk RM=false): Fake Stick"
FAKE_LSBLK_JSON=$(disk_json disk true '"sata"' "$big" '[]') run
refused "not USB" "it is not on USB (lsblk TRAN=sata): Fake Stick"
FAKE_LSBLK_JSON=$(disk_json disk true null "$big" '[]') run
refused "no transport" "it is not on USB (lsblk TRAN=none)"
FAKE_LSBLK_JSON=$(disk_json disk true '"usb"' 1048576 '[]') run
refused "too small" "it holds 1048576 bytes, the image $(stat -c %s "$image")"
drive=$scratch
unset FAKE_LSBLK_JSON
run
refused "a directory as the dry-run file" "it exists and is not a regular file"

if [ "$failures" -gt 0 ]; then
    echo "usb_write_test: $failures failed" >&2
    exit 1
fi
echo "usb_write_test: all passed"
