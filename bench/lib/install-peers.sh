# shellcheck shell=bash
# The full-image install of our peers, for bench/install-bench.sh (sourced, not run): each peer
# gets the same image into the same target as our client, made and installed as its own project
# recommends for an A/B rootfs update, signature checked.
#
#   peers_prepare DIR IMAGE IMAGE_ZST TARGET SLOT_A
#       server side and device configuration, once per run (SLOT_A: the booted slot, a loop device
#       as TARGET is). PEERS then names the peers; DIR/NAME/reset.sh puts NAME's device state back
#       before a run (not measured) and DIR/NAME/install.sh installs NAME's update into TARGET
#       (what is measured: `sh` of it).
#   peers_cleanup
#       removes what peers_prepare made outside DIR
#
# SWUpdate (Debian's build, CMS signatures): a .swu (cpio: sw-description, its CMS signature, the
# image as the zstd -3 stream the bench makes, OE's default level for .zst images), the raw handler
# streaming into the target (`installed-directly`), sha256 of the stream checked; run standalone
# (`swupdate -i`) with the bootloader's state markers off (-m -M: no bootloader here, and marking
# a transaction is not the install). SWUpdate writes every block. Its standalone mode checks for
# the install's end only once a second (a `sleep(1)` loop, seen with strace), which would round
# every run up to a whole second after the start: the install ends where SWUpdate reports
# "SWUPDATE successful", and the script stops it there (0.65-0.75 s against 1.39-1.40 s for the
# same install waited out).
#
# Mender (Debian's mender-client 3.4, standalone `mender install`): an artifact from
# `mender-artifact write rootfs-image` with its defaults (gzip) of the uncompressed image, signed
# with RSA 3072; RootfsPartA the booted slot, RootfsPartB the target. Mender's dual-rootfs
# installer asks U-Boot's tools for its environment (`fw_printenv`/`fw_setenv` here run on a file
# of their own, made with `mkenvimage`) and `mount` for the partition mounted at /: a `mount` in
# front of the real one on Mender's PATH says that slot a is, as the simulated device's cmdline
# file says so for our client. /etc/mender/artifact_info (where Mender reads the running release,
# a path it does not let one change) is made when missing and removed after. Mender reads each
# 1 MiB of the target before it writes it and skips what is already in place.
#
# RAUC (Debian's 1.8): a bundle of the uncompressed image signed with a CMS certificate, in the
# "plain" format (a squashfs, mksquashfs's default gzip): the "verity" format RAUC recommends
# needs device-mapper, which this machine's kernel lacks. The system bus is a dbus-daemon of its
# own, and RAUC's service runs for the install, both in a mount namespace of their own in which
# /proc/cmdline says `rauc.slot=A` (how RAUC finds the booted slot); a custom bootloader backend
# keeps the boot state in files, the slots' status in one central status file. The service's
# start is measured with the install (DIR/rauc/start.txt says what it costs alone).
#
# Each install ends with `sync TARGET`, as our client ends with fsync.

# shellcheck disable=SC2034 # read by the script that sources this one
PEERS=()
MADE_ARTIFACT_INFO=0

peers_prepare() {
    local dir image zst target=$4 slot_a=$5
    local need=() tool
    # Absolute paths: the scripts made here run from anywhere.
    dir=$(realpath -m "$1") image=$(realpath "$2") zst=$(realpath "$3")
    for tool in swupdate:swupdate cpio:cpio mender:mender-client mender-artifact:mender-artifact \
        mkenvimage:u-boot-tools fw_printenv:libubootenv-tool rauc:rauc mksquashfs:squashfs-tools \
        dbus-daemon:dbus; do
        command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
    done
    if ((${#need[@]})); then
        apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    swupdate_prepare "$dir/swupdate" "$zst" "$target"
    mender_prepare "$dir/mender" "$image" "$target" "$slot_a"
    rauc_prepare "$dir/rauc" "$image" "$target" "$slot_a"
    PEERS=(swupdate mender rauc)
}

peers_cleanup() {
    if [[ $MADE_ARTIFACT_INFO == 1 ]]; then
        rm -f /etc/mender/artifact_info
        rmdir /etc/mender 2>/dev/null || true
    fi
}

swupdate_prepare() {
    local dir=$1 zst=$2 target=$3
    mkdir -p "$dir"
    if [[ ! -f $dir/cert.pem || ! -f $dir/key.pem ]]; then
        openssl req -x509 -newkey rsa:3072 -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" \
            -days 3650 -subj /CN=bench-swupdate -addext keyUsage=digitalSignature \
            -addext extendedKeyUsage=emailProtection 2>/dev/null
    fi
    ln -sf "$zst" "$dir/rootfs.ext4.zst"
    cat >"$dir/sw-description" <<EOF
software =
{
	version = "2.0";
	hardware-compatibility = [ "1.0" ];
	images: (
		{
			filename = "rootfs.ext4.zst";
			device = "$target";
			type = "raw";
			compressed = "zstd";
			installed-directly = true;
			sha256 = "$(sha256sum "$zst" | cut -d' ' -f1)";
		}
	);
}
EOF
    openssl cms -sign -in "$dir/sw-description" -out "$dir/sw-description.sig" -signer "$dir/cert.pem" \
        -inkey "$dir/key.pem" -outform DER -nosmimecap -binary
    # sw-description first, as SWUpdate requires; -L stores the stream, not the link.
    (cd "$dir" && printf 'sw-description\nsw-description.sig\nrootfs.ext4.zst\n' | cpio -o -L -H crc --quiet >bench.swu)
    : >"$dir/reset.sh"
    cat >"$dir/install.sh" <<EOF
set -e
rm -f '$dir/out'; mkfifo '$dir/out'
swupdate -k '$dir/cert.pem' -H bench:1.0 -m -M -l 2 -i '$dir/bench.swu' >'$dir/out' 2>&1 &
swupdate=\$!
done=0
while IFS= read -r line; do
    case \$line in *"SWUPDATE successful"*) done=1; kill \$swupdate ;; esac
done <'$dir/out'
wait \$swupdate || true
[ \$done = 1 ] || { echo "SWUpdate did not report success" >&2; exit 1; }
sync '$target'
EOF
}

mender_prepare() {
    local dir=$1 image=$2 target=$3 slot_a=$4 tool
    mkdir -p "$dir/bin" "$dir/data"
    if [[ ! -f $dir/key.pem ]]; then
        openssl genrsa -traditional -out "$dir/key.pem" 3072 2>/dev/null
    fi
    openssl rsa -in "$dir/key.pem" -pubout -out "$dir/pub.pem" 2>/dev/null
    mender-artifact write rootfs-image -t bench -n v2 -f "$image" -o "$dir/v2.mender" -k "$dir/key.pem" >/dev/null
    echo "device_type=bench" >"$dir/data/device_type"
    cat >"$dir/mender.conf" <<EOF
{
  "RootfsPartA": "$slot_a",
  "RootfsPartB": "$target",
  "ArtifactVerifyKey": "$dir/pub.pem",
  "DeviceTypeFile": "$dir/data/device_type"
}
EOF
    # The boot environment on a file of its own.
    echo "$dir/env.bin 0x0 0x4000" >"$dir/fw_env.config"
    for tool in fw_printenv fw_setenv; do
        printf '#!/bin/sh\nexec %s -c %s "$@"\n' "$(command -v "$tool")" "$dir/fw_env.config" >"$dir/bin/$tool"
    done
    printf '#!/bin/sh\n# the simulated device booted slot a\necho "%s on / type ext4 (ro,relatime)"\n' "$slot_a" >"$dir/bin/mount"
    chmod +x "$dir/bin/"*
    if [[ ! -e /etc/mender/artifact_info ]]; then
        mkdir -p /etc/mender
        echo "artifact_name=v1" >/etc/mender/artifact_info
        MADE_ARTIFACT_INFO=1
    fi
    # Mender numbers a slot by its device name's last digits (/dev/loop1: 1).
    local part=${slot_a##*[!0-9]}
    cat >"$dir/reset.sh" <<EOF
set -e
rm -rf '$dir/data/mender-store' '$dir/data/mender-store-lock'
printf 'mender_boot_part=$part\nmender_boot_part_hex=%x\nupgrade_available=0\nbootcount=0\n' $part >'$dir/env.txt'
mkenvimage -s 0x4000 -o '$dir/env.bin' '$dir/env.txt'
EOF
    cat >"$dir/install.sh" <<EOF
set -e
PATH='$dir/bin':\$PATH mender -c '$dir/mender.conf' -d '$dir/data' --no-syslog -l warning install '$dir/v2.mender'
sync '$target'
EOF
}

rauc_prepare() {
    local dir=$1 image=$2 target=$3 slot_a=$4
    mkdir -p "$dir/content" "$dir/mnt" "$dir/state"
    if [[ ! -f $dir/cert.pem || ! -f $dir/key.pem ]]; then
        openssl req -x509 -newkey rsa:3072 -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" \
            -days 3650 -subj /CN=bench-rauc -addext keyUsage=digitalSignature \
            -addext extendedKeyUsage=emailProtection 2>/dev/null
    fi
    ln -f "$image" "$dir/content/rootfs.ext4" 2>/dev/null || cp "$image" "$dir/content/rootfs.ext4"
    printf '[update]\ncompatible=bench\nversion=2\n\n[bundle]\nformat=plain\n\n[image.rootfs]\nfilename=rootfs.ext4\n' \
        >"$dir/content/manifest.raucm"
    rm -f "$dir/bench.raucb"
    rauc bundle --cert="$dir/cert.pem" --key="$dir/key.pem" "$dir/content" "$dir/bench.raucb" >/dev/null 2>&1
    cat >"$dir/backend.sh" <<BACKEND
#!/bin/sh
# RAUC's custom bootloader backend: the simulated device's boot state in files.
case \$1 in
get-primary) cat '$dir/state/primary' 2>/dev/null || echo A ;;
set-primary) echo "\$2" >'$dir/state/primary' ;;
get-state) cat "$dir/state/state.\$2" 2>/dev/null || echo good ;;
set-state) echo "\$3" >"$dir/state/state.\$2" ;;
*) exit 1 ;;
esac
BACKEND
    chmod +x "$dir/backend.sh"
    cat >"$dir/system.conf" <<CONF
[system]
compatible=bench
bootloader=custom
mountprefix=$dir/mnt
statusfile=$dir/state/status.raucs

[handlers]
bootloader-custom-backend=$dir/backend.sh

[keyring]
path=$dir/cert.pem

[slot.rootfs.0]
device=$slot_a
type=ext4
bootname=A

[slot.rootfs.1]
device=$target
type=ext4
bootname=B
CONF
    cat >"$dir/bus.conf" <<BUS
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$dir/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
BUS
    echo "rauc.slot=A" >"$dir/cmdline"
    # start.sh: the bus and the service, in the namespace; INSTALL=1 (the default) also installs.
    cat >"$dir/start.sh" <<START
set -e
mount --bind '$dir/cmdline' /proc/cmdline
export DBUS_SYSTEM_BUS_ADDRESS=unix:path='$dir/bus'
dbus-daemon --config-file='$dir/bus.conf' --fork --print-pid >'$dir/bus.pid'
rauc service --conf='$dir/system.conf' 2>'$dir/service.log' &
service=\$!
tries=0
until rauc status --conf='$dir/system.conf' >/dev/null 2>&1; do
    tries=\$((tries + 1)); [ \$tries -lt 200 ] || { echo "RAUC's service did not start" >&2; exit 1; }
    sleep 0.05
done
status=0
if [ "\${INSTALL:-1}" = 1 ]; then
    rauc install --conf='$dir/system.conf' '$dir/bench.raucb' >'$dir/install.log' 2>&1 || status=\$?
fi
kill \$service; wait \$service || true
kill "\$(cat '$dir/bus.pid')"
exit \$status
START
    printf 'set -e\nrm -f %s/state/*\n' "'$dir'" >"$dir/reset.sh"
    printf 'set -e\nunshare -m sh %s </dev/null\nsync %s\n' "'$dir/start.sh'" "'$target'" >"$dir/install.sh"
    # What the service's start and stop cost without an install.
    /usr/bin/time -f "RAUC's service started and stopped without an install: %e s wall, %U s user, %S s sys, %M KiB" \
        -o "$dir/start.txt" env INSTALL=0 unshare -m sh "$dir/start.sh" </dev/null
}
