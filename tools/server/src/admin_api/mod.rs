//! The management API under `/api/v1` and `/metrics`, for operators, the CLI and Prometheus:
//! `Authorization: Bearer <admin token or a user's API token>`, checked with the role each route
//! needs (`roles::required`) by the `guard::require_role` layer on every route before anything
//! else runs (no handler checks it, none can forget to). The audit log names the token's actor. Documented in
//! `docs/server.md`.
//!
//! One module per resource: `artifacts`, `deltas` (patches of artifacts), `devices`, `rollouts`,
//! `audit_log`, `trust` (the trust document devices fetch); `/metrics` is `metrics_api.rs`. This module only routes.

mod artifacts;
mod audit_log;
mod deltas;
pub mod devices;
pub mod rollouts;
mod trust;

use crate::app_state::AppState;
use crate::guard;
use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};

/// Every route behind the admin token; all but the upload (streamed to disk, with a per-chunk
/// idle timeout instead) also within the request timeout.
pub fn routes(app: &AppState) -> Router<AppState> {
    let bounded = Router::new()
        .route("/api/v1/artifacts", get(artifacts::list_artifacts))
        .route(
            "/api/v1/artifacts/{id}/deltas",
            get(deltas::list_artifact_deltas).post(deltas::queue_delta),
        )
        .route("/api/v1/deltas", get(deltas::list_deltas))
        .route(
            "/api/v1/devices",
            post(devices::add_device).get(devices::list_devices),
        )
        .route("/api/v1/devices/{controller}", get(devices::show_device))
        .route(
            "/api/v1/devices/{controller}/tags",
            put(devices::change_tags),
        )
        .route(
            "/api/v1/rollouts",
            post(rollouts::create_rollout).get(rollouts::list_rollouts),
        )
        .route("/api/v1/rollouts/{id}", get(rollouts::show_rollout))
        .route(
            "/api/v1/rollouts/{id}/{command}",
            post(rollouts::rollout_command),
        )
        .route("/api/v1/audit", get(audit_log::audit_log))
        .route("/api/v1/trust", get(trust::get_trust).put(trust::put_trust))
        .route("/api/v1/trust/summary", get(trust::trust_summary))
        .route("/metrics", get(crate::metrics_api::scrape))
        .route_layer(from_fn_with_state(app.clone(), guard::deadline));
    Router::new()
        .route("/api/v1/artifacts", post(artifacts::upload_artifact))
        .route("/api/v1/artifacts/{id}/patch", post(deltas::upload_patch))
        .merge(bounded)
        .route_layer(from_fn_with_state(app.clone(), guard::require_role))
}
