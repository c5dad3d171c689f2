#!/usr/bin/env bash
# Tests of the fleet server (tools/server, its own cargo workspace), for ci/test.sh:
#   formatting and clippy of the server workspace (server, fleet-load), its unit tests, the API
#   tests on SQLite and on a throwaway PostgreSQL (ci/postgres.sh; every scenario on both, and two
#   server processes on one database), SWUpdate's suricatta completing a deployment, the dashboard
#   in headless Chromium (screenshots in build/screenshots/), a short load run that must see
#   no errors and meet its targets (bench/fleet-load.sh --quick --enforce), a chaos run in which
#   nothing may be lost or doubled (bench/chaos.sh --quick --enforce), and the client
#   daemon against gooseBit, a DDI server we did not write (ci/server-peers/goosebit-daemon-test.sh).
# Installs what it needs (Debian packages through ci/apt-install.sh) and stops what it starts.
# Usage: ci/server-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf -- '--- %s\n' "$*"; }
MANIFEST=tools/server/Cargo.toml

step "cargo fmt --check (server workspace)"
cargo fmt --manifest-path "$MANIFEST" --all -- --check

step "cargo clippy -D warnings (server workspace)"
cargo clippy --manifest-path "$MANIFEST" --workspace --all-targets --locked -- -D warnings

step "PostgreSQL for the tests"
PG_URL=$(ci/postgres.sh start)
trap 'ci/postgres.sh stop' EXIT

step "cargo test (server workspace; API tests on SQLite and PostgreSQL)"
RUSTUPDATE_TEST_POSTGRES=$PG_URL cargo test --manifest-path "$MANIFEST" --workspace --locked

SERVER=tools/server/target/debug/rustupdate-server
cargo build --manifest-path "$MANIFEST" --locked --bin rustupdate-server

step "SWUpdate suricatta completes a deployment (SQLite)"
ci/server-peers/suricatta-test.sh "$SERVER"

step "SWUpdate suricatta completes a deployment (PostgreSQL)"
FLEET_DATABASE=$(ci/postgres.sh createdb fleet_suricatta) ci/server-peers/suricatta-test.sh "$SERVER"

step "dashboard in headless Chromium"
ci/server-peers/dashboard-test.sh "$SERVER"

step "fleet-load smoke run"
bench/fleet-load.sh --quick --enforce

step "chaos: PostgreSQL restarted and the server killed during a rollout"
bench/chaos.sh --quick --enforce

step "the client daemon against gooseBit"
ci/server-peers/goosebit-daemon-test.sh
