//! What bounds a request before a handler reads it, in the order it applies:
//!
//! 1. hyper: the request line and headers within `header-read-timeout` (also the keep-alive idle
//!    timeout), set in `app::serve`;
//! 2. [`require_role`]: the management API's bearer token and the role it holds, checked by a
//!    layer before any extractor runs, so an unauthenticated or unauthorised body is never read
//!    (401 or 403 at once, whatever its `Content-Length`);
//! 3. [`deadline`]: the whole request within `request-timeout` (408), on every route but the
//!    streamed artifact upload, which has a per-chunk idle timeout of the same length instead;
//! 4. [`JsonBody`]: a declared `Content-Length` above [`MAX_JSON_BODY`] is 413 before a byte of the
//!    body is read, an undeclared (chunked) one is cut at the same size (axum's `DefaultBodyLimit`,
//!    set on every route in `app::router`).
//!
//! Every refusal is the typed JSON `{"error": …}` of [`ApiError`]; [`ApiPath`] and [`ApiQuery`]
//! wrap axum's extractors so that their rejections are as well. What it does not do: rate limits
//! (a reverse proxy's job) and the dashboard's cookie (see `dashboard.rs`).

use crate::app_state::AppState;
use crate::error::ApiError;
use crate::roles::{self, ADMIN_TOKEN_ACTOR, Principal, Role};
use crate::tokens::{self, Credential};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// Largest JSON body of any route (device feedback and configData, every management request but
/// the upload). hawkBit's bodies are far smaller; the device daemon's feedback fits many times.
pub const MAX_JSON_BODY: usize = rustupdate_ddi::MAX_BODY_LEN;

/// Who the `Authorization: Bearer …` header names: the admin token (admin), or a user's live API
/// token (the lower of the token's and the user's role); `None` for no or an unknown token.
pub async fn bearer_principal(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let Some(Credential::Bearer(token)) = tokens::parse_authorization(value) else {
        return Ok(None);
    };
    if tokens::equal(token, &app.inner.admin_token) {
        return Ok(Some(Principal {
            actor: ADMIN_TOKEN_ACTOR.into(),
            role: Role::Admin,
        }));
    }
    Ok(app
        .store
        .api_token_holder(&tokens::hash(token))
        .await?
        .map(|holder| Principal {
            actor: holder.user,
            role: holder.role,
        }))
}

/// Layer of the management API: 401 without a valid bearer token, 403 when its role is below
/// what `roles::required` says the route needs, decided from the headers alone (the body stays
/// unread). The [`Principal`] goes into the request's extensions for the handler.
pub async fn require_role(
    State(app): State<AppState>,
    matched: Option<MatchedPath>,
    mut request: Request,
    next: Next,
) -> Response {
    let principal = match bearer_principal(&app, request.headers()).await {
        Ok(Some(principal)) => principal,
        Ok(None) => return ApiError::Unauthorized.into_response(),
        Err(e) => return e.into_response(),
    };
    let route = matched
        .as_ref()
        .map_or(request.uri().path(), |m| m.as_str());
    let needed = roles::required(request.method(), route);
    if !principal.role.may(needed) {
        return ApiError::Forbidden(format!(
            "{} {} needs the role {needed}; {} has the role {}",
            request.method(),
            request.uri().path(),
            principal.actor,
            principal.role
        ))
        .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// Requests this process works on at once; more are refused at once with 503 and `Retry-After`
/// rather than queued: a server that cannot keep up (a database too slow for the fleet) must
/// not hold every waiting request's buffers (measured: 703 MiB at 100,000 devices on a 2-core
/// PostgreSQL before this bound).
pub const MAX_IN_FLIGHT: usize = 512;

/// Layer over every route: 503 when [`MAX_IN_FLIGHT`] requests are being answered already.
pub async fn shed_load(State(app): State<AppState>, request: Request, next: Next) -> Response {
    match app.inner.in_flight.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => ApiError::Overloaded(format!(
            "the server is answering {MAX_IN_FLIGHT} requests already: retry in {} s",
            crate::error::RETRY_AFTER_SECS
        ))
        .into_response(),
    }
}

/// Layer: the request (reading its body included) must be answered within `request-timeout`.
/// A device that sends half a body holds its connection no longer than that.
pub async fn deadline(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let limit = app.inner.settings.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => timeout_error(limit).into_response(),
    }
}

pub fn timeout_error(limit: std::time::Duration) -> ApiError {
    ApiError::Timeout(format!(
        "the request was not received within {} s (request-timeout)",
        limit.as_secs()
    ))
}

fn too_large(limit: u64) -> ApiError {
    ApiError::TooLarge(format!("the body is larger than {limit} bytes"))
}

/// The body's declared length, refused at once if above `limit` (before any byte is read).
pub fn check_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(len) if len > limit => Err(too_large(limit)),
        _ => Ok(()),
    }
}

/// A JSON body of at most [`MAX_JSON_BODY`] bytes, parsed into `T` with an error that names the
/// problem (axum's `Json` answers plain text).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))
    }
}

/// A body of at most [`MAX_JSON_BODY`] bytes, unparsed (a trust document, whose own parser
/// names its problems), refused like [`JsonBody`]'s when larger.
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S> FromRequest<S> for RawBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        check_declared_length(request.headers(), MAX_JSON_BODY as u64)?;
        Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large(MAX_JSON_BODY as u64)
                } else {
                    ApiError::BadRequest(format!("reading the body: {}", e.body_text()))
                }
            })
    }
}

/// axum's `Path`, rejected as JSON 400.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// axum's `Query`, rejected as JSON 400.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// Routes nobody serves: JSON 404.
pub async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!("no resource {}", request.uri().path()))
}

/// A method a route does not serve: JSON 405.
pub async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{} is not allowed on {}",
        request.method(),
        request.uri().path()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_declared_length_above_the_limit() {
        let mut headers = HeaderMap::new();
        assert!(check_declared_length(&headers, 10).is_ok());
        headers.insert(header::CONTENT_LENGTH, "10".parse().unwrap());
        assert!(check_declared_length(&headers, 10).is_ok());
        headers.insert(header::CONTENT_LENGTH, "536870912".parse().unwrap());
        let err = check_declared_length(&headers, 10).unwrap_err();
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
