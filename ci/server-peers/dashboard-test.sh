#!/usr/bin/env bash
# The server's HTML dashboard in a real browser (Debian's chromium, headless, driven by
# ci/server-peers/browser.py through Playwright): seed a small fleet through the DDI API and the CLI,
# make one account per role on the host (`rustupdate-server user add`), log in by typing name and
# password into the login form, and then:
# - as the viewer: what a person sees on the overview, a rollout and a device page, and no form
#   to change anything;
# - without logging in, or with a wrong password: no fleet data;
# - as the operator, the job end to end: upload a signed artifact, create a rollout with the
#   form, start, pause, resume and cancel with the buttons (the management API and the audit log
#   follow);
# - as the admin: logged in with the role shown;
# - a page of another origin that posts the pause form without the CSRF token changes nothing;
# and save screenshots of every page under build/screenshots/.
#
# The fleet: three demo-board devices registered with `device add`, each reporting
# running_version 1.0.0 by configData; a signed .rua (1 MiB image, key trusted through
# DATA_DIR/keys/) in a rollout with phases 50,100; the first device offered the deployment
# downloads it, posts proceeding and closed/success feedback and then reports 2.0.0.
# Assertions are on visible text (ids, versions, "succeeded", feedback details), not markup.
#
# Usage: ci/server-peers/dashboard-test.sh SERVER_BIN
#   SERVER_BIN: rustupdate-server, e.g. tools/server/target/debug/rustupdate-server
#   ARTIFACT_TOOL: a built rustupdate-artifact (default: built with cargo --release here)
#   FLEET_KEEP=1: keep the scratch directory (the dumped pages are in it)
# Exit codes: 0 passed, 1 failed (server log and the page's text are printed), 2 usage.
set -euo pipefail
[[ $# -eq 1 ]] || { sed -n '/^# Usage:/,/^# Exit codes/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

readonly DEVICE_TYPE=demo-board
readonly DEVICES=(dash-dev-alpha dash-dev-bravo dash-dev-charlie)
readonly OLD_VERSION=1.0.0
readonly NEW_VERSION=2.0.0
readonly ROLLOUT_NAME=dashboard-demo
readonly FEEDBACK_DETAIL="flashed demo-image $NEW_VERSION to slot B, checksum ok"
readonly BROWSER_TIMEOUT_S=180
readonly PLAYWRIGHT_VERSION=1.65.2
readonly SCREENSHOT_DIR=$REPO_DIR/build/screenshots

"$REPO_DIR/ci/apt-install.sh" chromium curl python3 python3-venv
fleet_init dashboard

# --- a signed artifact, its key trusted by the server ------------------------------------------
if [[ -z ${ARTIFACT_TOOL:-} ]]; then
    log "building rustupdate-artifact (release)"
    cargo build --release --locked -q -p rustupdate-artifact --manifest-path "$REPO_DIR/Cargo.toml"
    ARTIFACT_TOOL=$REPO_DIR/target/release/rustupdate-artifact
fi
"$ARTIFACT_TOOL" keygen -o "$WORK/release" >/dev/null
head -c 1048576 /dev/urandom >"$WORK/rootfs.img"
RUA=$WORK/demo-image-$NEW_VERSION.rua
"$ARTIFACT_TOOL" build --image "$WORK/rootfs.img" --name demo-image --version "$NEW_VERSION" \
    --device-type "$DEVICE_TYPE" --key "$WORK/release.key.pem" -o "$RUA" >/dev/null
DATA_DIR=$WORK/data
mkdir -p "$DATA_DIR/keys"
cp "$WORK/release.pub.pem" "$DATA_DIR/keys/"
fleet_start_server "$1" --poll-interval 1

# --- the fleet ----------------------------------------------------------------------------
declare -A TOKEN
for id in "${DEVICES[@]}"; do
    TOKEN[$id]=$(fleet_cli device add "$id" --device-type "$DEVICE_TYPE")
    fleet_ddi PUT "$id" "${TOKEN[$id]}" /configData \
        "{\"mode\":\"merge\",\"data\":{\"device_type\":\"$DEVICE_TYPE\",\"running_version\":\"$OLD_VERSION\"}}" >/dev/null
done
ARTIFACT=$(fleet_cli_json artifact upload "$RUA")
ARTIFACT_ID=$(fleet_json id <<<"$ARTIFACT")
ROLLOUT=$(fleet_cli_json rollout create --name "$ROLLOUT_NAME" --artifact "$ARTIFACT_ID" \
    --device-type "$DEVICE_TYPE" --phases 50,100 --start)
ROLLOUT_ID=$(fleet_json id <<<"$ROLLOUT")
log "artifact $ARTIFACT_ID, rollout $ROLLOUT_ID started"

# The first device the rollout offers a deployment to installs it.
UPDATED=""
DEPLOYMENT_HREF=""
find_offered_device() {
    local id poll
    for id in "${DEVICES[@]}"; do
        poll=$(fleet_ddi GET "$id" "${TOKEN[$id]}" "") || return 1
        DEPLOYMENT_HREF=$(fleet_json _links deploymentBase href <<<"$poll" 2>/dev/null) || continue
        UPDATED=$id
        return 0
    done
    return 1
}
fleet_wait_for "a device is offered the deployment" 30 1 find_offered_device
log "$UPDATED is in the first phase"
DEPLOYMENT=$(curl -fsS --max-time 10 -H "Authorization: TargetToken ${TOKEN[$UPDATED]}" "$DEPLOYMENT_HREF")
ACTION_ID=$(fleet_json id <<<"$DEPLOYMENT")
ARTIFACT_JSON=$(fleet_json deployment chunks 0 artifacts 0 <<<"$DEPLOYMENT")
DOWNLOAD_HREF=$(fleet_json _links download-http href <<<"$ARTIFACT_JSON")
curl -fsS --max-time 30 -H "Authorization: TargetToken ${TOKEN[$UPDATED]}" -o "$WORK/downloaded.rua" "$DOWNLOAD_HREF"
[[ $(sha256sum <"$WORK/downloaded.rua" | cut -d' ' -f1) == "$(fleet_json hashes sha256 <<<"$ARTIFACT_JSON")" ]] ||
    fleet_fail "the downloaded artifact does not match the deployment's sha256"
cmp -s "$RUA" "$WORK/downloaded.rua" || fleet_fail "the downloaded artifact differs from the uploaded one"
feedback() {
    fleet_ddi POST "$UPDATED" "${TOKEN[$UPDATED]}" "/deploymentBase/$ACTION_ID/feedback" \
        "{\"id\":\"$ACTION_ID\",\"status\":{\"execution\":\"$1\",\"result\":{\"finished\":\"$2\"},\"details\":[\"$3\"]}}" >/dev/null
}
feedback proceeding none "downloaded demo-image-$NEW_VERSION.rua"
feedback closed success "$FEEDBACK_DETAIL"
fleet_ddi PUT "$UPDATED" "${TOKEN[$UPDATED]}" /configData \
    "{\"mode\":\"merge\",\"data\":{\"running_version\":\"$NEW_VERSION\"}}" >/dev/null
phase_one_succeeded() {
    local status
    status=$(fleet_cli_json rollout status "$ROLLOUT_ID") || return 2
    [[ $(fleet_json phases 0 succeeded <<<"$status") == 1 ]]
}
fleet_wait_for "the rollout counts 1 succeeded" 30 1 phase_one_succeeded

# --- the browser -------------------------------------------------------------------------------
# ci/server-peers/browser.py drives /usr/bin/chromium through Playwright (pinned, from PyPI, in its own
# venv; Playwright's browser download is not used): it logs in by typing the token into the form,
# as an operator does, and saves the pages it opens.
BROWSER_VENV=$REPO_DIR/build/browser-venv
if [[ $("$BROWSER_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("playwright"))' 2>/dev/null) != "$PLAYWRIGHT_VERSION" ]]; then
    log "installing playwright $PLAYWRIGHT_VERSION into $BROWSER_VENV"
    rm -rf "$BROWSER_VENV"
    python3 -m venv "$BROWSER_VENV" || fleet_fail "python3 -m venv $BROWSER_VENV failed"
    timeout 600 "$BROWSER_VENV/bin/pip" install -q "playwright==$PLAYWRIGHT_VERSION" >"$WORK/pip.log" 2>&1 ||
        { tail -n 20 "$WORK/pip.log" >&2; fleet_fail "pip install playwright==$PLAYWRIGHT_VERSION failed"; }
fi
BROWSER_HOME=$WORK/browser-home
mkdir -p "$BROWSER_HOME"
fleet_add_log "$WORK/browser.log"
# Runs browser.py (ARGS after --base) in its own process group, bounded in time.
browse() {
    local pgid deadline rc=0
    HOME=$BROWSER_HOME XDG_CONFIG_HOME=$BROWSER_HOME/.config XDG_CACHE_HOME=$BROWSER_HOME/.cache \
        setsid "$BROWSER_VENV/bin/python" "$FLEET_DIR/browser.py" --base "$SERVER_URL" "$@" \
        >>"$WORK/browser.log" 2>&1 </dev/null &
    pgid=$!
    FLEET_PGIDS+=("$pgid")
    deadline=$((SECONDS + BROWSER_TIMEOUT_S))
    while kill -0 "$pgid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pgid" 2>/dev/null; then
        fleet_stop_group "$pgid"
        fleet_fail "the browser did not finish within ${BROWSER_TIMEOUT_S}s: $*"
    fi
    wait "$pgid" || rc=$?
    fleet_stop_group "$pgid" # chromium processes it may have left behind
    [[ $rc -eq 0 ]] || fleet_fail "browser.py exited $rc: $*"
}

# check_page NAME page_text.py-args…: check the text of a page the logged-in session saved.
check_page() {
    local name=$1
    shift
    python3 "$FLEET_DIR/page_text.py" "$@" <"$WORK/pages/$name.html" || fleet_fail "$name page: see above"
    log "$name page: ok"
}

OTHERS=()
for id in "${DEVICES[@]}"; do [[ $id != "$UPDATED" ]] && OTHERS+=("$id"); done

# --- accounts, one per role, made on the host ------------------------------------------------
server_host() {
    "$SERVER_BIN" "$@" --data-dir "$DATA_DIR" ${FLEET_DATABASE:+--database "$FLEET_DATABASE"}
}
PASSWORDS=$WORK/passwords
mkdir -p "$PASSWORDS"
declare -A ROLE_OF=([ann-admin]=admin [otto-operator]=operator [vera-viewer]=viewer)
for user in "${!ROLE_OF[@]}"; do
    printf '%s-%s-long-password\n' "$user" "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" >"$PASSWORDS/$user"
    server_host user add "$user" --role "${ROLE_OF[$user]}" <"$PASSWORDS/$user" >/dev/null ||
        fleet_fail "user add $user failed"
done
# as USER browse-args…: a browser session logged in as USER through the form.
as() {
    local user=$1
    shift
    browse --user "$user" --password-file "$PASSWORDS/$user" "$@"
}

# --- the viewer: three pages, what they show, no forms ---------------------------------------
PAGES=(overview=/ui/ "rollout=/ui/rollouts/$ROLLOUT_ID" "device=/ui/devices/$UPDATED")
shots=()
for p in "${PAGES[@]}"; do shots+=(--shoot "dashboard-$p"); done
as vera-viewer --out "$WORK/pages" \
    --dump "${PAGES[0]}" --dump "${PAGES[1]}" --dump "${PAGES[2]}" --dump artifacts=/ui/artifacts "${shots[@]}" \
    --shoot dashboard-devices=/ui/devices --shoot dashboard-rollouts=/ui/rollouts
log "the viewer logged in through the form (POST /ui/login)"

check_page overview \
    --contains "${DEVICES[0]}" --contains "${DEVICES[1]}" --contains "${DEVICES[2]}" \
    --contains "$OLD_VERSION" --contains "$NEW_VERSION" --contains "$ROLLOUT_NAME" \
    --contains "vera-viewer (viewer)" --regex "last seen"
check_page rollout \
    --contains "$ROLLOUT_NAME" --contains "demo-image" --contains "$NEW_VERSION" \
    --regex '\b50\s*%' --regex '\b100\s*%' \
    --regex '\b1\s+succeeded|succeeded\W{0,10}1\b' --absent Pause --absent Cancel
check_page device \
    --contains "$UPDATED" --contains "$FEEDBACK_DETAIL" --contains "downloaded demo-image-$NEW_VERSION.rua" \
    --contains succeeded --contains "$ROLLOUT_NAME" --contains "$NEW_VERSION" --absent "Change tags"
check_page artifacts --contains "demo-image" --absent Upload
for name in rollout device artifacts; do
    ! grep -q 'name="csrf"' "$WORK/pages/$name.html" || fleet_fail "the $name page offers the viewer a form"
done

# Not logged in: a redirect to the login page or 401, and no fleet data in what the browser shows.
for path in /ui/ "/ui/rollouts/$ROLLOUT_ID" "/ui/devices/$UPDATED"; do
    code=$(curl -s -o "$WORK/anon.body" -w '%{http_code}' --max-time 10 "$SERVER_URL$path")
    case $code in
    401 | 302 | 303 | 307) ;;
    *) fleet_fail "GET $path without login answered $code: $(head -c 300 "$WORK/anon.body")" ;;
    esac
    if grep -q -e "$UPDATED" -e "${OTHERS[0]}" -e "$FEEDBACK_DETAIL" "$WORK/anon.body"; then
        fleet_fail "GET $path without login shows fleet data"
    fi
done
ABSENT=(--absent "${DEVICES[0]}" --absent "${DEVICES[1]}" --absent "${DEVICES[2]}"
    --absent "$FEEDBACK_DETAIL" --absent "$ROLLOUT_NAME")
browse --out "$WORK/anon" --dump anon=/ui/ --shoot dashboard-login=/ui/login
python3 "$FLEET_DIR/page_text.py" "${ABSENT[@]}" <"$WORK/anon/anon.html" ||
    fleet_fail "/ui/ without login shows fleet data"
# A wrong password typed into the form: the form again, saying so, and still no fleet data.
printf 'not-the-password\n' >"$WORK/wrong.password"
browse --user otto-operator --password-file "$WORK/wrong.password" --expect-login-failure \
    --out "$WORK/wrong" --dump after=/ui/
python3 "$FLEET_DIR/page_text.py" --contains "Wrong name or password" "${ABSENT[@]}" <"$WORK/wrong/login.html" ||
    fleet_fail "a wrong password: the login answer is not the form saying so, or it shows fleet data"
python3 "$FLEET_DIR/page_text.py" "${ABSENT[@]}" <"$WORK/wrong/after.html" ||
    fleet_fail "a wrong password shows fleet data"
log "without login (and with a wrong password) no fleet data is shown"

# --- the admin: logged in with the role shown ---------------------------------------------------
as ann-admin --out "$WORK/admin" --dump overview=/ui/
python3 "$FLEET_DIR/page_text.py" --contains "ann-admin (admin)" <"$WORK/admin/overview.html" ||
    fleet_fail "the admin's overview does not name the admin"

# --- the operator's job: upload, create, start, pause, resume, cancel ---------------------------
RUA3=$WORK/demo-image-3.0.0.rua
"$ARTIFACT_TOOL" build --image "$WORK/rootfs.img" --name demo-image --version 3.0.0 \
    --device-type "$DEVICE_TYPE" --key "$WORK/release.key.pem" -o "$RUA3" >/dev/null
readonly BROWSER_ROLLOUT=made-in-the-browser
as otto-operator --out "$WORK/job" \
    --step "goto /ui/artifacts" --step "file file=$RUA3" --step "press Upload" \
    --step "save artifacts" --step "shoot dashboard-artifacts" \
    --step "goto /ui/rollouts/new" --step "fill name=$BROWSER_ROLLOUT" \
    --step "fill device_type=$DEVICE_TYPE" --step "fill phases=50,100" --step "fill error_threshold=1" \
    --step "shoot dashboard-new-rollout" --step "press Create rollout" --step "save created"
check_page_in() { python3 "$FLEET_DIR/page_text.py" "${@:2}" <"$1" || fleet_fail "$1: see above"; }
check_page_in "$WORK/job/artifacts.html" --contains 3.0.0 --contains Upload
check_page_in "$WORK/job/created.html" --contains "$BROWSER_ROLLOUT" --contains 3.0.0 --regex 'State: created' --contains Start
NEW_ID=$(fleet_cli_json rollout list | python3 -c '
import json, sys
print(next(r["id"] for r in json.load(sys.stdin) if r["name"] == sys.argv[1]))' "$BROWSER_ROLLOUT") ||
    fleet_fail "the rollout created in the browser is not in the management API"
rollout_state() { fleet_json state <<<"$(fleet_cli_json rollout status "$1")"; }
NEW_PAGE=/ui/rollouts/$NEW_ID
as otto-operator --out "$WORK/job" --press "$NEW_PAGE|Start" --dump "started=$NEW_PAGE" \
    --shoot "dashboard-rollout-running=$NEW_PAGE"
[[ $(rollout_state "$NEW_ID") == running ]] || fleet_fail "after Start the rollout is not running"
check_page_in "$WORK/job/started.html" --regex 'State: running' --contains "reloads every"
ROLLOUT_PAGE=/ui/rollouts/$ROLLOUT_ID
as otto-operator --out "$WORK/job" --press "$ROLLOUT_PAGE|Pause" \
    --dump "paused=$ROLLOUT_PAGE" --dump "overview=/ui/"
check_page_in "$WORK/job/paused.html" --regex 'State: paused' --contains Resume --absent Pause
[[ $(rollout_state "$ROLLOUT_ID") == paused ]] || fleet_fail "the management API does not show the rollout paused"
check_page_in "$WORK/job/overview.html" --regex 'otto-operator \| rollout-pause \| rollout '"$ROLLOUT_ID"
as otto-operator --out "$WORK/job" --press "$ROLLOUT_PAGE|Resume" --press "$NEW_PAGE|Cancel rollout" \
    --dump "resumed=$ROLLOUT_PAGE"
check_page_in "$WORK/job/resumed.html" --regex 'State: running' --contains Pause
[[ $(rollout_state "$ROLLOUT_ID") == running ]] || fleet_fail "after Resume the rollout is not running"
[[ $(rollout_state "$NEW_ID") == canceled ]] || fleet_fail "after Cancel the new rollout is not canceled"
AUDIT=$(curl -fsS --max-time 10 -H "Authorization: Bearer $(cat "$DATA_DIR/admin.token")" "$SERVER_URL/api/v1/audit?limit=50")
for action in artifact-upload rollout-create rollout-start rollout-pause rollout-resume rollout-cancel; do
    python3 -c '
import json, sys
entries = json.loads(sys.argv[1])
sys.exit(0 if any(e["actor"] == "otto-operator" and e["action"] == sys.argv[2] for e in entries) else 1)' \
        "$AUDIT" "$action" || fleet_fail "the audit log has no $action by otto-operator"
done
log "the operator uploaded, created, started, paused, resumed and cancelled in the browser"

# --- another origin's page posting the pause form without the token ---------------------------
# Served from another port of 127.0.0.1: the same site to the browser, so SameSite=Strict lets
# the cookie go along and only the CSRF token stops the post.
EVIL_DIR=$WORK/evil
mkdir -p "$EVIL_DIR"
cat >"$EVIL_DIR/evil.html" <<HTML
<!doctype html><html><body onload="document.forms[0].submit()">
<form method="post" action="$SERVER_URL$ROLLOUT_PAGE/pause"><input type="hidden" name="x" value="1"></form>
</body></html>
HTML
EVIL_PORT=$(fleet_free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$EVIL_DIR" "$EVIL_PORT" >"$WORK/evil.log" 2>&1 &
FLEET_PIDS+=("$!")
fleet_wait_for "the other origin's page is served" 10 0.2 \
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$EVIL_PORT/evil.html"
as otto-operator --out "$WORK/evil-run" --step "visit http://127.0.0.1:$EVIL_PORT/evil.html" --step "save landed"
check_page_in "$WORK/evil-run/landed.html" --contains "nothing was changed"
[[ $(rollout_state "$ROLLOUT_ID") == running ]] || fleet_fail "a post from another origin paused the rollout"
log "a cross-origin post without the CSRF token changed nothing"

# --- screenshots ---------------------------------------------------------------------------
mkdir -p "$SCREENSHOT_DIR"
SHOTS=("$WORK"/pages/dashboard-*.png "$WORK"/anon/dashboard-*.png "$WORK"/job/dashboard-*.png)
[[ ${#SHOTS[@]} -ge 8 ]] || fleet_fail "expected at least 8 screenshots, got ${#SHOTS[@]}"
for file in "${SHOTS[@]}"; do
    [[ $(head -c 8 "$file" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || fleet_fail "no PNG in $file"
    mv "$file" "$SCREENSHOT_DIR/"
    log "screenshot: build/screenshots/$(basename "$file")"
done

log "PASS: dashboard overview, rollout and device pages; no data without login"
FLEET_OK=1
