//! rustupdate-server's API tests: real server processes over HTTP on loopback, every scenario on
//! SQLite and on PostgreSQL (`RUSTUPDATE_TEST_POSTGRES`; `ci/server-test.sh` starts one).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod backup;
mod bad_input;
mod deltas;
mod device_api;
mod device_input;
mod device_search;
mod encrypted;
mod harness;
mod login_abuse;
mod metrics;
mod raw_http;
mod request_bounds;
mod roles;
mod rollouts;
mod scale_out;
mod tls;
mod trust;
