#!/usr/bin/env bash
# What apt itself would download for the v1 -> v2 change of bench/rootfs-images.sh: the .deb files
# of every package that v2 adds or holds at another version than v1, as `apt-get install
# --print-uris` lists them (with their sizes from the Packages indexes) in a copy of v1's staging
# tree with the same three pockets (bookworm, -updates, -security). This is the package manager's
# download for the same update, the figure docs/bandwidth.md compares the delta patches with.
#
#   sudo bench/apt-download.sh      (root: chroot; about 15 s with the images built)
#
# Output: a table on stdout and in build/bench/apt-download.md, the same as JSON in
# build/bench/apt-download.json ({"debs": [{"package", "version", "file", "bytes"}], "total_bytes"}).
# Nothing is installed or downloaded but the Packages indexes (apt-get update in the copy). Cached:
# when the JSON is newer than both package lists and this script, it is printed again (FORCE=1
# asks the mirror again).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build/bench
WORK=$OUT/rootfs-work
log() { printf '[apt-download %3ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

bench/rootfs-images.sh >/dev/null
if [[ ${FORCE:-0} != 1 && -f $OUT/apt-download.md && $OUT/apt-download.json -nt $OUT/rootfs-v1.packages &&
    $OUT/apt-download.json -nt $OUT/rootfs-v2.packages && $OUT/apt-download.json -nt $0 ]]; then
    cat "$OUT/apt-download.md"
    exit 0
fi
[[ -d $WORK/v1/var/lib/dpkg ]] || die "no v1 staging tree in $WORK/v1 (bench/rootfs-images.sh keeps it)"

# The change: packages new in v2 or at another version, as "name=version".
mapfile -t pins < <(join -a2 -e '-' -o 0,1.2,2.2 "$OUT/rootfs-v1.packages" "$OUT/rootfs-v2.packages" |
    awk '$2 != $3 { print $1 "=" $3 }')
((${#pins[@]})) || die "v1 and v2 hold the same packages"
log "the change: ${pins[*]}"

# A throwaway copy of v1 (its dpkg status is what apt compares against).
TMP=$(mktemp -d "$OUT/apt-download.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cp -a "$WORK/v1" "$TMP/root"
cp /etc/resolv.conf "$TMP/root/etc/resolv.conf"
in_root() { chroot "$TMP/root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }
in_root apt-get update -qq >"$TMP/update.log" 2>&1 || { cat "$TMP/update.log" >&2; die "apt-get update failed"; }
# --print-uris: one line per .deb to fetch: 'URI' FILE SIZE CHECKSUM (nothing is fetched).
in_root apt-get install -qq --print-uris -o APT::Install-Recommends=false "${pins[@]}" >"$TMP/uris.txt" ||
    die "apt-get install --print-uris failed"

python3 - "$TMP/uris.txt" "$OUT/apt-download.json" "$OUT/apt-download.md" "$(date -u +%F)" <<'PY'
import json, re, sys
uris, json_path, md_path, day = sys.argv[1:]
debs = []
for line in open(uris, encoding="utf-8"):
    m = re.match(r"'(?P<uri>[^']+\.deb)' (?P<file>\S+) (?P<size>\d+) ", line)
    if m:
        name, version = m["file"].split("_")[:2]
        debs.append({"package": name, "version": version.replace("%3a", ":"), "file": m["file"],
                     "uri": m["uri"], "bytes": int(m["size"])})
if not debs:
    sys.exit("apt-download: apt-get listed no .deb files")
total = sum(d["bytes"] for d in debs)
with open(json_path, "w", encoding="utf-8") as f:
    json.dump({"date": day, "debs": debs, "total_bytes": total}, f, indent=1)
    f.write("\n")
out = [f"## What apt downloads for the v1 -> v2 change ({day})", "", "| .deb | bytes |", "| --- | ---: |"]
out += [f"| {d['file']} | {d['bytes']:,} |" for d in debs]
out += [f"| **total ({len(debs)} files)** | **{total:,}** ({total / 1e6:.2f} MB) |", "",
        "From `apt-get install --print-uris` in a copy of v1 with the bookworm, bookworm-updates and "
        "bookworm-security pockets; sizes from the Packages indexes. MB = 10^6 bytes."]
text = "\n".join(out) + "\n"
open(md_path, "w", encoding="utf-8").write(text)
print(text, end="")
PY
