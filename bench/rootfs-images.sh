#!/usr/bin/env bash
# Builds a realistic, reproducible pair of root filesystem images for the benchmarks:
#
#   build/bench/rootfs-v1.ext4   Debian bookworm minbase + systemd-sysv, openssl, ca-certificates,
#                                curl (about 190 MB used), ext4, sparse file of ROOTFS_SIZE
#   build/bench/rootfs-v2.ext4   v1 after a small "security update": the packages in
#                                ROOTFS_UPGRADE moved to the newest version any bookworm pocket
#                                offers, the packages in ROOTFS_ADD installed, two config files
#                                changed (journald.conf, login.defs)
#
# v1 gets the second-newest version of each ROOTFS_UPGRADE package that bookworm, bookworm-updates
# and bookworm-security offer, v2 the newest, so the pair is a real upgrade with real Debian
# binaries whatever the mirrors hold on the day (when only one version exists, the package stays
# as it is and a warning says so). The versions used are written to build/bench/rootfs-images.txt.
#
# Reproducible images (see shared notes on rootfs deltas): every mtime is clamped to
# SOURCE_DATE_EPOCH, mkfs.ext4 runs with a fixed UUID and hash seed (the same for v1 and v2, as a
# reproducible build would: metadata checksums are seeded from the UUID), E2FSPROGS_FAKE_TIME and
# lazy_itable_init=0, then debugfs rewrites the times mke2fs takes from the clock or the staging
# tree (atime, ctime, crtime of every inode; superblock times). Re-running mkfs on the same tree
# gives a byte-identical image.
#
# Cache: when both images exist and build/bench/rootfs.stamp matches the hash of this script and
# its settings, nothing is done (the benchmarks call this script on every run). FORCE=1 rebuilds.
# Concurrent callers are serialised with a lock file.
#
# Runs as root on Debian 12 (installs debootstrap and e2fsprogs with apt-get when missing) and needs
# the Debian mirrors. Settings (environment):
#   ROOTFS_SIZE       image size for truncate(1), default 512M
#   ROOTFS_OUT        output directory, default <repo>/build/bench
#   ROOTFS_UPGRADE    packages upgraded in v2, default "openssl libssl3 ca-certificates"; may be
#                     set empty (no upgrade: v1 then has the newest version of everything)
#   ROOTFS_ADD        packages added in v2, default "jq"; may be set empty
#   ROOTFS_BASE       packages installed in both v1 and v2 on top of the base, default none
#   ROOTFS_EDITS      1 (default): v2 gets the two config edits; 0: no edits
#   ROOTFS_HOOK       an executable run as `HOOK v1 TREE` once v1's packages are in (before v2 is
#                     copied from v1) and as `HOOK v2 TREE` once v2's are; its stdout goes into
#                     the summary, its content into the stamp (bench/delta-pairs.sh uses it to
#                     install an application); default none
#   ROOTFS_DEBOOTSTRAP_CACHE  debootstrap's .deb cache, default <ROOTFS_OUT>/debootstrap-cache
#   DEBIAN_MIRROR     default http://deb.debian.org/debian
#   DEBIAN_SECURITY_MIRROR  default http://deb.debian.org/debian-security
#   SOURCE_DATE_EPOCH default 1735689600 (2025-01-01T00:00:00Z)
#   FORCE=1           rebuild even when the cache is current
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
script="$here/$(basename "${BASH_SOURCE[0]}")"

out=$(realpath -m "${ROOTFS_OUT:-$repo/build/bench}")
size=${ROOTFS_SIZE:-512M}
upgrade_pkgs=${ROOTFS_UPGRADE-openssl libssl3 ca-certificates}
add_pkgs=${ROOTFS_ADD-jq}
base_pkgs=${ROOTFS_BASE:-}
edits=${ROOTFS_EDITS:-1}
hook=${ROOTFS_HOOK:-}
[[ -z $hook ]] || hook=$(realpath "$hook")
deb_cache=$(realpath -m "${ROOTFS_DEBOOTSTRAP_CACHE:-$out/debootstrap-cache}")
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1735689600}
suite=bookworm
base_include=systemd-sysv,openssl,ca-certificates,curl
# Fixed identity of the filesystem; shared by v1 and v2.
fs_uuid=5f6c1c4e-8a57-4a43-9b0e-2d9c7b1e0a01
fs_hash_seed=0c1a7e52-3f1d-4e2b-8d55-6b3e9f2a7c10
fs_label=rootfs

v1_img="$out/rootfs-v1.ext4"
v2_img="$out/rootfs-v2.ext4"
stamp="$out/rootfs.stamp"
summary="$out/rootfs-images.txt"
work="$out/rootfs-work"

log() { printf '[rootfs-images %4ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Everything that determines the images' content.
stamp_key() {
    {
        sha256sum <"$script"
        printf '%s\n' "size=$size" "upgrade=$upgrade_pkgs" "add=$add_pkgs" "mirror=$mirror" \
            "security_mirror=$security_mirror" "sde=$SOURCE_DATE_EPOCH"
        # Only when set, so that the default pair's stamp depends on the same lines as before.
        [[ -z $base_pkgs ]] || echo "base=$base_pkgs"
        [[ $edits == 1 ]] || echo "edits=$edits"
        [[ -z $hook ]] || echo "hook=$(sha256sum <"$hook")"
    } | sha256sum | cut -d' ' -f1
}

# --- cache check --------------------------------------------------------------------------------

mkdir -p "$out"
exec 9>"$out/.rootfs-images.lock"
flock 9
key=$(stamp_key)
if [[ ${FORCE:-0} != 1 && -f $v1_img && -f $v2_img && -f $stamp && $(cat "$stamp") == "$key" ]]; then
    log "up to date: $v1_img, $v2_img (stamp $key; FORCE=1 rebuilds)"
    exit 0
fi

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot, device nodes in the tree)"
log "building images (size $size, stamp $key)"

# --- tools --------------------------------------------------------------------------------------

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null && command -v debugfs >/dev/null || need+=(e2fsprogs)
command -v flock >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# sed reads to the end: with head, mke2fs could die of SIGPIPE on its second line (pipefail).
mke2fs_version=$(mke2fs -V 2>&1 | sed -n 1p)

# --- work area, with mounts cleaned up on any exit ---------------------------------------------

# Unmounts anything mounted below $1 (debootstrap mounts /proc and /sys in the target; a failed run
# can leave them behind), deepest first, so that rm -rf never descends into a live /proc or /sys.
unmount_below() {
    local m
    findmnt -rn -o TARGET | { grep -F "$1/" || true; } | sort -r | while read -r m; do
        umount -l "$m" || true
    done
}
cleanup() {
    unmount_below "$work"
}
trap cleanup EXIT

unmount_below "$work"
rm -rf --one-file-system "$work"
mkdir -p "$work" "$deb_cache"
v1="$work/v1"
v2="$work/v2"

in_root() {
    local root=$1
    shift
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" "$@"
}
apt_in() {
    local root=$1
    shift
    in_root "$root" apt-get -y -q -o Dpkg::Use-Pty=0 -o APT::Install-Recommends=false "$@"
}

# --- v1 -----------------------------------------------------------------------------------------

t0=$SECONDS
log "debootstrap $suite minbase (+$base_include) from $mirror"
if ! debootstrap --variant=minbase --include="$base_include" --components=main \
    --cache-dir="$deb_cache" "$suite" "$v1" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    die "debootstrap failed (full log: $work/debootstrap.log)"
fi
log "debootstrap done in $((SECONDS - t0)) s"

# Device-like apt configuration: all three pockets, no recommends, services never started.
cat >"$v1/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
EOF
printf '#!/bin/sh\nexit 101\n' >"$v1/usr/sbin/policy-rc.d"
chmod 755 "$v1/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$v1/etc/resolv.conf"
apt_in "$v1" update >"$work/apt-update.log" 2>&1 ||
    { cat "$work/apt-update.log" >&2; die "apt-get update in the chroot failed"; }

# Newest and second-newest version of a package across the configured pockets.
versions_of() {
    in_root "$v1" apt-cache madison "$1" | awk -F'|' '{gsub(/ /, "", $2); print $2}' |
        sort -u | sort -V
}
declare -A v1_version v2_version
pins_v1=()
for pkg in $upgrade_pkgs; do
    mapfile -t vers < <(versions_of "$pkg")
    ((${#vers[@]})) || die "no versions of $pkg in the configured pockets"
    newest=${vers[-1]}
    if ((${#vers[@]} >= 2)); then
        older=${vers[-2]}
    else
        older=$newest
        log "warning: only one version of $pkg ($newest) is available; v2 will not change it"
    fi
    v1_version[$pkg]=$older
    v2_version[$pkg]=$newest
    pins_v1+=("$pkg=$older")
done
log "v1 pins: ${pins_v1[*]:-none}; base: ${base_pkgs:-nothing more}"
if ((${#pins_v1[@]})) || [[ -n $base_pkgs ]]; then
    # shellcheck disable=SC2086 # $base_pkgs is a list of package names
    apt_in "$v1" install --allow-downgrades "${pins_v1[@]}" $base_pkgs >"$work/apt-v1.log" 2>&1 ||
        { tail -n 30 "$work/apt-v1.log" >&2; die "apt-get install in v1 failed"; }
fi

# Small, realistic device configuration shared by both versions.
echo rustupdate-bench >"$v1/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\trustupdate-bench\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
    >"$v1/etc/hosts"

# run_hook VERSION: the caller's hook on that version's tree (its stdout kept for the summary).
run_hook() {
    [[ -n $hook ]] || return 0
    log "hook: $hook $1"
    "$hook" "$1" "$work/$1" >"$work/hook-$1.out" 2>"$work/hook-$1.log" ||
        { tail -n 30 "$work/hook-$1.log" >&2; die "hook $hook $1 failed (log: $work/hook-$1.log)"; }
}
run_hook v1

# --- v2 = v1 + update ---------------------------------------------------------------------------

log "copying v1 to v2"
cp -a "$v1" "$v2"

pins_v2=()
for pkg in $upgrade_pkgs; do pins_v2+=("$pkg=${v2_version[$pkg]}"); done
log "v2: install ${pins_v2[*]:-} $add_pkgs"
if ((${#pins_v2[@]})) || [[ -n $add_pkgs ]]; then
    # shellcheck disable=SC2086 # $add_pkgs is a list of package names
    apt_in "$v2" install "${pins_v2[@]}" $add_pkgs >"$work/apt-v2.log" 2>&1 ||
        { tail -n 30 "$work/apt-v2.log" >&2; die "apt-get install in v2 failed"; }
fi

# Two config changes, written in place (same inode, same directory slot) as a config-management
# tool or a package's conffile update would leave them.
edit_in_place() {
    local file=$1 expr=$2 text
    text=$(sed -e "$expr" "$file")
    [[ $text != "$(cat "$file")" ]] || die "edit of $file changed nothing"
    printf '%s\n' "$text" >"$file"
}
if [[ $edits == 1 ]]; then
    edit_in_place "$v2/etc/systemd/journald.conf" \
        's/^#Storage=.*/Storage=volatile/; s/^#RuntimeMaxUse=.*/RuntimeMaxUse=16M/'
    edit_in_place "$v2/etc/login.defs" 's/^UMASK[[:space:]].*/UMASK\t\t027/'
fi
run_hook v2

# --- make both trees deterministic --------------------------------------------------------------

finalize_tree() {
    local root=$1
    apt_in "$root" clean >/dev/null
    rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
    mkdir -p "$root/var/lib/apt/lists/partial"
    # Logs and caches that record the build host's clock or inode numbers.
    find "$root/var/log" -type f -delete
    rm -f "$root"/var/cache/ldconfig/aux-cache "$root"/var/lib/dpkg/*-old \
        "$root"/var/cache/debconf/*-old "$root"/etc/*- "$root"/root/.bash_history
    find "$root/tmp" "$root/var/tmp" -mindepth 1 -delete
    # Empty machine-id: systemd generates one on first boot (the documented image convention).
    : >"$root/etc/machine-id"
    # Clamp every timestamp newer than SOURCE_DATE_EPOCH (packages' own older mtimes stay).
    find "$root" -xdev -newermt "@$SOURCE_DATE_EPOCH" -print0 |
        xargs -0r touch -h -d "@$SOURCE_DATE_EPOCH"
}
log "finalizing trees"
finalize_tree "$v1"
finalize_tree "$v2"

# --- images -------------------------------------------------------------------------------------

# Inodes in use, from the group summaries of dumpe2fs ("Free inodes: a-b, c, ...").
used_inodes() {
    dumpe2fs "$1" 2>/dev/null | awk '
        /^Inodes per group:/ { ipg = $4 }
        /^Group [0-9]+:/ { g = $2; sub(":", "", g); g += 0; groups = g + 1 }
        /^  Free inodes:/ {
            line = $0; sub(/^  Free inodes: */, "", line)
            n = split(line, parts, /, */)
            for (i = 1; i <= n; i++) {
                if (parts[i] == "") continue
                if (split(parts[i], r, "-") == 2) { for (j = r[1]; j <= r[2]; j++) free[j] = 1 }
                else free[parts[i] + 0] = 1
            }
        }
        END {
            total = ipg * groups
            for (i = 1; i <= total; i++) if (!(i in free)) print i
        }'
}

make_image() {
    local tree=$1 img=$2 tmp="$2.tmp" cmds
    cmds="$work/debugfs-$(basename "$img").cmds"
    rm -f "$tmp"
    truncate -s "$size" "$tmp"
    LC_ALL=C E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -F -t ext4 -T default \
        -b 4096 -I 256 -L "$fs_label" -U "$fs_uuid" \
        -E "hash_seed=$fs_hash_seed,lazy_itable_init=0" -d "$tree" "$tmp" ||
        die "mkfs.ext4 failed for $img"
    # mke2fs copies atime/ctime from the staging tree and stamps crtime with the clock.
    local t=$SOURCE_DATE_EPOCH ino field
    {
        for field in mkfs_time mtime wtime lastcheck; do echo "ssv $field @$t"; done
        while read -r ino; do
            for field in atime ctime crtime; do echo "sif <$ino> $field @$t"; done
            for field in atime_extra ctime_extra mtime_extra crtime_extra; do
                echo "sif <$ino> $field 0"
            done
        done < <(used_inodes "$tmp")
    } >"$cmds"
    # The fake time also keeps debugfs from stamping the superblock write time on close.
    E2FSPROGS_FAKE_TIME=$t debugfs -w -f "$cmds" "$tmp" >"$work/debugfs.log" 2>&1 ||
        { tail -n 20 "$work/debugfs.log" >&2; die "debugfs fixups failed for $img"; }
    if grep -v '^debugfs [0-9]' "$work/debugfs.log" | grep -q .; then
        grep -v '^debugfs [0-9]' "$work/debugfs.log" | head -n 20 >&2
        die "debugfs reported problems for $img"
    fi
    e2fsck -fn "$tmp" >"$work/e2fsck.log" 2>&1 ||
        { cat "$work/e2fsck.log" >&2; die "e2fsck found problems in $img"; }
    mv -f "$tmp" "$img"
}

t0=$SECONDS
make_image "$v1" "$v1_img"
make_image "$v2" "$v2_img"
log "images made in $((SECONDS - t0)) s"

# --- summary ------------------------------------------------------------------------------------

# shellcheck disable=SC2016 # the format is dpkg-query's, not the shell's
pkglist() { in_root "$1" dpkg-query -W -f '${Package} ${Version}\n' | sort; }
pkglist "$v1" >"$out/rootfs-v1.packages"
pkglist "$v2" >"$out/rootfs-v2.packages"
used_mb() {
    dumpe2fs -h "$1" 2>/dev/null | awk -F: '
        /^Block count/ { b = $2 } /^Free blocks/ { f = $2 } /^Block size/ { s = $2 }
        END { printf "%.1f", (b - f) * s / 1e6 }'
}
{
    echo "# rustupdate benchmark root filesystems (made by bench/rootfs-images.sh)"
    echo "stamp: $key"
    echo "suite: $suite, mirrors: $mirror $security_mirror"
    echo "SOURCE_DATE_EPOCH: $SOURCE_DATE_EPOCH, uuid: $fs_uuid, $mke2fs_version"
    echo "built in $SECONDS s on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    for pkg in $upgrade_pkgs; do
        echo "upgrade: $pkg ${v1_version[$pkg]} -> ${v2_version[$pkg]}"
    done
    echo "added: $add_pkgs"
    [[ -z $base_pkgs ]] || echo "base (v1 and v2): $base_pkgs"
    [[ $edits != 1 ]] || echo "changed config: /etc/systemd/journald.conf /etc/login.defs"
    if [[ -n $hook ]]; then
        echo "hook: $hook"
        sed 's/^/  v1: /' "$work/hook-v1.out"
        sed 's/^/  v2: /' "$work/hook-v2.out"
    fi
    echo "packages: v1 $(wc -l <"$out/rootfs-v1.packages"), v2 $(wc -l <"$out/rootfs-v2.packages")"
    echo "package changes (v1 -> v2):"
    join -a1 -a2 -e '-' -o 0,1.2,2.2 "$out/rootfs-v1.packages" "$out/rootfs-v2.packages" |
        awk '$2 != $3 { printf "  %s %s -> %s\n", $1, $2, $3 }'
    for img in "$v1_img" "$v2_img"; do
        echo "$(basename "$img"): size $(stat -c %s "$img") bytes, used $(used_mb "$img") MB," \
            "sha256 $(sha256sum "$img" | cut -d' ' -f1)"
    done
} >"$summary"

echo "$key" >"$stamp"
cat "$summary" >&2
log "done in $SECONDS s: $v1_img $v2_img (staging trees kept in $work)"
