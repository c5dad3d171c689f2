//! The dashboard: server-rendered HTML (maud), no JavaScript, run by operators with accounts and
//! roles (`session.rs`: login, sessions, CSRF and role checks of every form).
//!
//! Pages: the fleet overview (devices per running version, rollouts, the newest operator
//! actions), devices searched and paged, a device with its history and tags
//! (`fleet_pages.rs`); rollouts: list, a new-rollout form, a rollout with a progress bar per
//! phase, its events and the buttons of the commands its state takes, refreshed every
//! [`LIVE_REFRESH_SECS`](page::LIVE_REFRESH_SECS) while it runs (`rollout_pages.rs`); artifacts: list and upload
//! (`artifact_pages.rs`). Viewers see everything and change nothing; operators also upload,
//! create, steer and tag (the same rules as the management API, `roles.rs`).

mod artifact_pages;
mod failure_chart;
mod fleet_pages;
mod page;
mod rollout_pages;
mod session;

pub use session::PASSWORD_CHECKS;

use crate::app_state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::Redirect;
use axum::routing::{get, post};

/// Every page and form but the artifact upload (within the request timeout, like the API).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/", get(fleet_pages::overview))
        .route("/ui/devices", get(fleet_pages::devices))
        .route("/ui/devices/{controller}", get(fleet_pages::device))
        .route("/ui/devices/{controller}/tags", post(fleet_pages::retag))
        .route(
            "/ui/rollouts",
            get(rollout_pages::list).post(rollout_pages::create),
        )
        .route("/ui/rollouts/new", get(rollout_pages::new_form))
        .route("/ui/rollouts/{id}", get(rollout_pages::rollout))
        .route("/ui/rollouts/{id}/{command}", post(rollout_pages::command))
        .route("/ui/artifacts", get(artifact_pages::list))
}

/// The upload form's target: streamed to disk like the API's upload, with a per-chunk idle
/// timeout instead of the request timeout, and no buffered-body limit (`max-upload-bytes` holds).
pub fn upload_routes() -> Router<AppState> {
    Router::new()
        .route("/ui/artifacts", post(artifact_pages::upload))
        .layer(DefaultBodyLimit::disable())
}
