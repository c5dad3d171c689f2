# shellcheck shell=bash
# The configuration (rustupdate.toml) of a device simulated on files (sourced, not run), as
# client/tests/device/rig.rs lays such a device out; one writer for bench/install-bench.sh,
# bench/delta-bench.sh, bench/daemon-footprint.sh and ci/server-peers/goosebit-daemon-test.sh.
#
#   device_config DIR --device-type TYPE [--slot-a PATH] [--slot-b PATH] [--health-timeout S] [--hooks-timeout S]
#                 [--reboot-command PATH] [--server-url URL --controller-id ID
#                 [--gateway-token-file FILE] [--poll-interval S] [--max-backoff S]
#                 [--reboot POLICY]]
#
# prints the configuration. DIR is the device: DIR/data (data-dir), DIR/slot-a.img and
# DIR/slot-b.img (--slot-a PATH and --slot-b PATH instead, e.g. loop devices), DIR/boot/grubenv (a GRUB
# environment), DIR/keys (trusted keys), DIR/health.d, DIR/hooks.d (only with --hooks-timeout)
# and DIR/cmdline. Health checks time out after 10 s unless --health-timeout says otherwise; a
# trial after 600 s. The client reboots with `true` (nothing) unless --reboot-command names a
# program. --server-url adds the [server] section (plain HTTP on loopback, allowed); its other
# keys only when given. Makes no file and starts nothing.
device_config() {
    local dir=$1 type="" slot_a=$1/slot-a.img slot_b=$1/slot-b.img health=10 hooks="" reboot=true
    local url="" id="" token="" poll="" backoff="" policy=""
    shift
    while (($#)); do
        (($# >= 2)) || { echo "device_config: $1 needs a value" >&2; return 2; }
        case $1 in
        --device-type) type=$2 ;;
        --slot-a) slot_a=$2 ;;
        --slot-b) slot_b=$2 ;;
        --health-timeout) health=$2 ;;
        --hooks-timeout) hooks=$2 ;;
        --reboot-command) reboot=$2 ;;
        --server-url) url=$2 ;;
        --controller-id) id=$2 ;;
        --gateway-token-file) token=$2 ;;
        --poll-interval) poll=$2 ;;
        --max-backoff) backoff=$2 ;;
        --reboot) policy=$2 ;;
        *) echo "device_config: unknown option $1" >&2; return 2 ;;
        esac
        shift 2
    done
    [[ -n $type ]] || { echo "device_config: --device-type is required" >&2; return 2; }
    [[ -z $url || -n $id ]] || { echo "device_config: --server-url needs --controller-id" >&2; return 2; }
    cat <<TOML
device-type = "$type"
data-dir = "$dir/data"
[slots.a]
device = "$slot_a"
[slots.b]
device = "$slot_b"
[bootloader]
type = "grub"
grubenv = "$dir/boot/grubenv"
[keys]
trusted-dir = "$dir/keys"
[health]
dir = "$dir/health.d"
timeout-secs = $health
trial-timeout-secs = 600
TOML
    if [[ -n $hooks ]]; then
        printf '[hooks]\ndir = "%s/hooks.d"\ntimeout-secs = %s\n' "$dir" "$hooks"
    fi
    printf '[system]\nreboot-command = ["%s"]\ncmdline-file = "%s/cmdline"\n' "$reboot" "$dir"
    [[ -n $url ]] || return 0
    printf '[server]\nurl = "%s"\ncontroller-id = "%s"\n' "$url" "$id"
    if [[ -n $token ]]; then printf 'gateway-token-file = "%s"\n' "$token"; fi
    printf 'allow-insecure-http = true\n'
    if [[ -n $poll ]]; then printf 'poll-interval-secs = %s\n' "$poll"; fi
    if [[ -n $backoff ]]; then printf 'max-backoff-secs = %s\n' "$backoff"; fi
    if [[ -n $policy ]]; then printf 'reboot = "%s"\n' "$policy"; fi
}
