//! A span around every request: `request{method=… route=…}`, with `status` and `latency_ms`
//! recorded when the answer is ready. Events logged while a request is handled carry it, so a
//! line says which route it came from.
//!
//! The route is the matched template (`/{tenant}/controller/v1/{controller}`), never the concrete
//! path, as in `/metrics`; `unmatched` for requests that match no route. No line is logged per
//! request at the default level (a fleet polls all day): the answer is a `debug` event
//! (`event=answered`, with the span's fields).

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;

/// Layer on every route (`app::router`); added with `Router::layer`, it runs after routing,
/// where `MatchedPath` is known.
pub async fn trace(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route,
        status = Empty,
        latency_ms = Empty,
    );
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.record("status", status);
    span.record("latency_ms", latency_ms);
    // The span's fields (status and latency now recorded) say the rest.
    tracing::debug!(parent: &span, event = %"answered");
    response
}
