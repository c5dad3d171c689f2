//! `GET /metrics`: the series of `metrics.rs` in Prometheus' text format (OpenMetrics), behind
//! the admin token like the rest of the management API (Prometheus sends it with
//! `authorization: {credentials: …}` in its scrape config), and the layer on every route that
//! counts requests and their latency for it.

use crate::app_state::AppState;
use crate::error::ApiResult;
use crate::metrics::CONTENT_TYPE;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;

/// Layer on every route (`app::router`): counts the request and its latency under its route
/// template. Added with `Router::layer`, it runs after routing, where `MatchedPath` is known.
pub async fn count(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    app.inner.metrics.record(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics` (behind the admin token).
pub async fn scrape(State(app): State<AppState>) -> ApiResult<Response> {
    let fleet = app.store.fleet_counts().await?;
    let text = app.inner.metrics.report(&fleet)?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
