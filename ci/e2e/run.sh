#!/usr/bin/env bash
# End-to-end A/B update and rollback under QEMU with real firmware, bootloaders and kernels.
#
#   ci/e2e/run.sh [--arch x86_64|arm64|x86_64-sdboot|all] [--scenario NAME ...] [--jobs N] [--no-deps]
#                 [--client-x86_64 PATH] [--client-arm64 PATH] [--narrate] [--no-soak] [--list]
#                 [--prune-cache]
#
# 0. tests the harness in-process (ci/e2e/selftest.py: scenario files, expectation checks, the
#    boot contract's names against the Rust code; about a second),
# 1. installs the host packages it needs when missing (ci/e2e/deps.sh; --no-deps skips this),
# 2. builds the host tool rustupdate-artifact and the static musl client for each architecture
#    (cargo; --client-<arch> PATH or $RUSTUPDATE_E2E_CLIENT_<ARCH> use a given binary instead,
#    e.g. a stand-in script while the client cannot do something yet),
# 3. builds the disk images and signed artifacts (ci/e2e/build.py, into build/e2e/<arch>),
#    and, when a chosen scenario needs the fleet server, rustupdate-server (tools/server, debug
#    build as ci/server-test.sh makes it; $RUSTUPDATE_E2E_SERVER uses a given binary instead);
#    --prune-cache then deletes the unpacked packages (build/e2e/cache/unpacked, about 2 GB),
#    which only the image builds read: for CI machines with small disks (the next run unpacks
#    them again from the kept .deb files),
# 4. runs the scenarios of ci/scenarios (ci/e2e/runner.py; default: every
#    scenario marked for CI),
# 5. without --scenario: the CI-sized randomized power-cut soak (ci/e2e/soak.py, a fresh seed
#    per run, printed: soak.py --seed N repeats it; --no-soak skips it).
# Exits non-zero on any failure. Console logs: build/e2e/results/<arch>/<scenario>/boot-NN.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

ARCH=all
SCENARIOS=()
JOBS=${E2E_JOBS:-2}  # architectures in parallel (one TCG guest per core)
DEPS=1
LIST=0
NARRATE=0
SOAK=1
PRUNE_CACHE=0
# shellcheck disable=SC2034  # read indirectly: ${!var} with var=CLIENT_<arch>
CLIENT_x86_64=${RUSTUPDATE_E2E_CLIENT_X86_64:-}
CLIENT_arm64=${RUSTUPDATE_E2E_CLIENT_ARM64:-}
# shellcheck disable=SC2034  # CLIENT_<arch> are read indirectly
while (($#)); do
    case "$1" in
        --arch) ARCH=$2; shift 2 ;;
        --scenario)
            shift
            while (($#)) && [[ $1 != --* ]]; do SCENARIOS+=("$1"); shift; done ;;
        --jobs) JOBS=$2; shift 2 ;;
        --no-deps) DEPS=0; shift ;;
        --client-x86_64) CLIENT_x86_64=$2; shift 2 ;;
        --client-arm64) CLIENT_arm64=$2; shift 2 ;;
        --list) LIST=1; shift ;;
        --narrate) NARRATE=1; shift ;;
        --no-soak) SOAK=0; shift ;;
        --prune-cache) PRUNE_CACHE=1; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
# The boot chains: x86_64 (OVMF + GRUB), arm64 (U-Boot), x86_64-sdboot (OVMF + systemd-boot,
# the x86_64 client). In this order: with --jobs 2 the third starts when arm64 is done.
case "$ARCH" in
    all) ARCHES=(x86_64 arm64 x86_64-sdboot) ;;
    x86_64|arm64|x86_64-sdboot) ARCHES=("$ARCH") ;;
    *) echo "run.sh: --arch x86_64|arm64|x86_64-sdboot|all" >&2; exit 2 ;;
esac
if ((LIST)); then
    exec python3 ci/e2e/runner.py --list
fi

stamp() { printf '\n=== e2e %s: %s ===\n' "$(date +%H:%M:%S)" "$*"; }
T0=$(date +%s)

stamp "harness self-test"
python3 ci/e2e/selftest.py

if ((DEPS)); then
    stamp "host packages"
    ci/e2e/deps.sh
fi

TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-aarch64-linux-gnu-gcc}
export CC_aarch64_unknown_linux_musl=${CC_aarch64_unknown_linux_musl:-aarch64-linux-gnu-gcc}

stamp "host tool rustupdate-artifact"
cargo build --release --locked -p rustupdate-artifact
TOOL=$TARGET_DIR/release/rustupdate-artifact

for arch in "${ARCHES[@]}"; do
    machine=${arch%%-*}  # x86_64-sdboot runs the x86_64 client
    var=CLIENT_$machine
    client=${!var}
    if [[ -z "$client" ]]; then
        case "$machine" in
            x86_64) triple=x86_64-unknown-linux-musl ;;
            arm64) triple=aarch64-unknown-linux-musl ;;
        esac
        stamp "client for $arch ($triple)"
        cargo build --release --locked -p rustupdate --target "$triple"
        client=$TARGET_DIR/$triple/release/rustupdate
    fi
    stamp "disk image and artifacts for $arch (client $client)"
    python3 ci/e2e/build.py --arch "$arch" --client "$client" --artifact-tool "$TOOL"
done
query=(--arch "$ARCH")
((${#SCENARIOS[@]})) && query+=(--scenario "${SCENARIOS[@]}")
if [[ -z "${RUSTUPDATE_E2E_SERVER:-}" ]] && python3 ci/e2e/runner.py --needs-server "${query[@]}"; then
    stamp "fleet server rustupdate-server (tools/server, debug)"
    cargo build --locked --manifest-path tools/server/Cargo.toml --bin rustupdate-server
fi
if ((PRUNE_CACHE)); then
    stamp "pruning the unpacked packages (--prune-cache)"
    rm -rf build/e2e/cache/unpacked
fi
echo "e2e: build took $(( $(date +%s) - T0 )) s"

stamp "scenarios"
args=(--arch "$ARCH" --jobs "$JOBS")
((${#SCENARIOS[@]})) && args+=(--scenario "${SCENARIOS[@]}")
((NARRATE)) && args+=(--narrate)
status=0
python3 ci/e2e/runner.py "${args[@]}" || status=$?
if ((SOAK)) && ((${#SCENARIOS[@]} == 0)); then
    stamp "power-cut soak (CI size)"
    python3 ci/e2e/soak.py --arch "$ARCH" --jobs "$JOBS" || status=$?
fi
echo "e2e: total $(( $(date +%s) - T0 )) s"
exit $status
