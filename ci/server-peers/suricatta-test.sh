#!/usr/bin/env bash
# SWUpdate's suricatta (Debian's swupdate 2022.12, hawkBit server module) against
# rustupdate-server: a real third-party DDI client installs a signed .swu from a rollout.
#
#   1. start rustupdate-server (fresh data dir, free port, poll interval 1 s);
#   2. build a CMS-signed .swu whose only content is a `files` entry written by the rawfile
#      handler to a file in the scratch directory, register the device, upload the .swu as a
#      foreign artifact, create and start a one-phase rollout;
#   3. "before the reboot": run swupdate -u in the foreground of its own process group until the
#      file is installed and the server holds the device's proceeding feedbacks
#      ("All Chunks Installed.") and its configData; suricatta then waits for a reboot;
#   4. "after the reboot": run it again with `-c 2` (update state TESTING = success), as a
#      bootloader-backed device would after booting the new system; it reports closed/success
#      and the action must become `succeeded`.
# Nothing on the host is touched: the bootloader is SWUpdate's in-memory "none", sockets and
# temporary files are under the scratch directory (TMPDIR), the hardware revision comes from -H.
# Details and the requests suricatta makes: ci/server-peers/README.md.
#
# Usage: ci/server-peers/suricatta-test.sh SERVER_BIN
#   SERVER_BIN: rustupdate-server, e.g. tools/server/target/debug/rustupdate-server
#   FLEET_TIMEOUT_S (default 90): deadline of each suricatta run
#   FLEET_KEEP=1: keep the scratch directory
# Exit codes: 0 passed, 1 failed (the server's and swupdate's logs are printed), 2 usage.
set -euo pipefail
[[ $# -eq 1 ]] || { sed -n '/^# Usage:/,/^# Exit codes/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

readonly TIMEOUT_S=${FLEET_TIMEOUT_S:-90}
readonly DEVICE_ID=swupdate-ci-1
readonly DEVICE_TYPE=swupdate-ci-board
readonly HW_REVISION=rustupdate-ci:1.0  # -H board:revision; sw-description accepts "1.0"
readonly SWU_VERSION=1.0.0

"$REPO_DIR/ci/apt-install.sh" swupdate cpio openssl curl python3
fleet_init suricatta
fleet_start_server "$1" --poll-interval 1

# --- a signed .swu that installs one file into the scratch directory ---------------------
SWU_DIR=$WORK/swu
INSTALL_DIR=$WORK/installed
mkdir -p "$SWU_DIR" "$INSTALL_DIR" "$WORK/swupdate-tmp"
PAYLOAD_TEXT="installed by suricatta from rustupdate-server, nonce $RANDOM$RANDOM"
printf '%s\n' "$PAYLOAD_TEXT" >"$SWU_DIR/payload.txt"
# Debian's swupdate is built with CMS signatures enforced (-k is mandatory); the signer
# certificate must allow emailProtection (the default --cert-purpose).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=rustupdate-ci \
    -addext extendedKeyUsage=emailProtection \
    -keyout "$WORK/signer.key.pem" -out "$WORK/signer.cert.pem" 2>/dev/null
cat >"$SWU_DIR/sw-description" <<EOF
software =
{
	version = "$SWU_VERSION";
	description = "rustupdate-server suricatta test";
	hardware-compatibility = [ "${HW_REVISION#*:}" ];
	files: (
		{
			filename = "payload.txt";
			path = "$INSTALL_DIR/payload.txt";
			sha256 = "$(sha256sum "$SWU_DIR/payload.txt" | cut -d' ' -f1)";
		}
	);
}
EOF
openssl cms -sign -in "$SWU_DIR/sw-description" -out "$SWU_DIR/sw-description.sig" \
    -signer "$WORK/signer.cert.pem" -inkey "$WORK/signer.key.pem" -outform DER -nosmimecap -binary
# cpio newc, sw-description first and its signature second. suricatta installs only artifacts
# whose file name ends in .swu.
SWU=$WORK/suricatta-test-$SWU_VERSION.swu
(cd "$SWU_DIR" && printf '%s\n' sw-description sw-description.sig payload.txt |
    cpio --quiet -o -H newc >"$SWU")

# --- the fleet side -------------------------------------------------------------------------
TOKEN=$(fleet_cli device add "$DEVICE_ID" --device-type "$DEVICE_TYPE")
[[ $TOKEN =~ ^[A-Za-z0-9._~+/=-]+$ ]] || fleet_fail "device add printed no token: $TOKEN"
ARTIFACT=$(fleet_cli_json artifact upload "$SWU" --foreign --name suricatta-test \
    --version "$SWU_VERSION" --device-type "$DEVICE_TYPE")
ARTIFACT_ID=$(fleet_json id <<<"$ARTIFACT")
ROLLOUT=$(fleet_cli_json rollout create --name suricatta --artifact "$ARTIFACT_ID" \
    --device-type "$DEVICE_TYPE" --phases 100 --start)
ROLLOUT_ID=$(fleet_json id <<<"$ROLLOUT")
log "device $DEVICE_ID, artifact $ARTIFACT_ID, rollout $ROLLOUT_ID started"

# --- suricatta ---------------------------------------------------------------------------------
cat >"$WORK/swupdate.cfg" <<EOF
globals: {
	loglevel = 6;
	public-key-file = "$WORK/signer.cert.pem";
};
suricatta: {
	tenant = "DEFAULT";
	id = "$DEVICE_ID";
	url = "$SERVER_URL";
	targettoken = "$TOKEN";
	retry = 2;
	retrywait = "1";  # read as a string by 2022.12
};
identify: (
	{ name = "sw_stack"; value = "swupdate-2022.12"; }
);
EOF

# Runs swupdate's suricatta in its own process group; $1 is the suricatta argument string.
start_suricatta() {
    local name=$1 suricatta_args=$2
    fleet_add_log "$WORK/$name.log"
    TMPDIR=$WORK/swupdate-tmp fleet_spawn_group "$WORK/$name.log" swupdate -v -f "$WORK/swupdate.cfg" \
        -H "$HW_REVISION" -u "$suricatta_args"
    SURICATTA_PGID=$FLEET_LAST_PGID
    log "$name: swupdate started (process group $SURICATTA_PGID)"
}

device_json() { fleet_cli device show "$DEVICE_ID" --json; }

# Succeeds when the device's newest action satisfies the device_check.py arguments; returns 2
# (give up) when the action ended otherwise or swupdate died.
device_is() {
    local doc
    kill -0 -- "-$SURICATTA_PGID" 2>/dev/null || { log "swupdate exited"; return 2; }
    doc=$(device_json) || return 1
    python3 "$FLEET_DIR/device_check.py" --quiet "$@" <<<"$doc"
}

installed_and_reported() {
    [[ -f $INSTALL_DIR/payload.txt ]] || return 1
    device_is --min-feedback proceeding=1 --detail "All Chunks Installed." \
        --attribute sw_stack=swupdate-2022.12
}

start_suricatta before-reboot ""
fleet_wait_for "suricatta installs the .swu and reports it" "$TIMEOUT_S" 1 installed_and_reported
[[ $(cat "$INSTALL_DIR/payload.txt") == "$PAYLOAD_TEXT" ]] ||
    fleet_fail "installed file has the wrong content: $(head -c 200 "$INSTALL_DIR/payload.txt")"
log "installed: $INSTALL_DIR/payload.txt; proceeding feedback and configData received"
fleet_stop_group "$SURICATTA_PGID"

# After the "reboot": the new system is up, report success.
start_suricatta after-reboot "-c 2"
fleet_wait_for "suricatta reports success and the action succeeds" "$TIMEOUT_S" 1 \
    device_is --state succeeded --finished success --min-feedback closed=1
fleet_stop_group "$SURICATTA_PGID"

DOC=$(fleet_cli_json device show "$DEVICE_ID")
python3 "$FLEET_DIR/device_check.py" --state succeeded --min-feedback proceeding=3 \
    --min-feedback closed=1 --detail "Installing Update Chunk Artifacts." \
    --detail "Update Installed." <<<"$DOC" || fleet_fail "final device state incomplete: $DOC"
STATUS=$(fleet_cli_json rollout status "$ROLLOUT_ID")
SUCCEEDED=$(fleet_json phases 0 succeeded <<<"$STATUS")
[[ $SUCCEEDED == 1 ]] || fleet_fail "rollout $ROLLOUT_ID counts $SUCCEEDED succeeded: $STATUS"
# The artifact was fetched from the server (the installed file exists only inside the .swu);
# the server's request log, if it has one, shows the download too.
log "PASS: suricatta installed rollout $ROLLOUT_ID's .swu and the action succeeded"
FLEET_OK=1
