#!/usr/bin/env bash
# Makes the benchmark images when they are missing or stale (bench/rootfs-images.sh, root needed
# then), builds and runs the chunking study. Arguments go to chunk-study (--help lists them).
# Report: stdout and build/bench/chunk-study.md; build output: build/chunk-study.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/../rootfs-images.sh"
cd "$here" # .cargo/config.toml here puts the build output under <repo>/build
cargo run --release --quiet -- "$@"
