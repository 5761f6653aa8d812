#!/bin/busybox sh
# PID 1 of the benchmark initramfs. With `benchmode=ITERS,SPAWN_ITERS,LOAD_ITERS` on the kernel command line it
# runs the benchmark program and powers off; otherwise it starts a busybox shell on the console (boot-time runs).
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for word in $(cat /proc/cmdline); do
    case "$word" in
        benchmode=*) counts=${word#benchmode=} ;;
    esac
done
if [ -n "$counts" ]; then
    IFS=, read -r iters spawn loads <<EOC
$counts
EOC
    /bin/bench "$iters" "$spawn" "$loads" /modules/lz4hc_compress.ko /modules/minix.ko
    poweroff -f
fi
export PS1='/ # '
exec setsid cttyhack sh
