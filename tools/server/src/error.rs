//! The API's errors: a status code and a message that names the problem, as JSON
//! `{"error": "…"}` (the typed [`ErrorBody`]), for every status the server itself produces:
//! 400, 401, 403, 404, 405, 408, 409, 413, 500 and 503. Internal errors are logged with their chain and
//! answered with a generic text.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or a wrong token. The text is the same whatever was wrong, so it teaches nothing.
    #[error("unauthorized")]
    Unauthorized,
    /// A valid credential whose role does not allow the request.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// Replayed or out-of-order feedback, a transition the state does not allow.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    /// The request (headers and body) did not arrive within the request timeout.
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Too many requests in flight (`guard::shed_load`).
    #[error("{0}")]
    Overloaded(String),
    /// Any other failure. When its cause is the database being out of reach (restarting,
    /// refusing connections, the pool exhausted), it is answered 503 with `Retry-After`: the
    /// request did nothing and may be sent again (see [`database_unavailable`]).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Seconds a client is asked to wait when the database is unavailable.
pub const RETRY_AFTER_SECS: u64 = 5;

/// Whether `err` comes from the database being out of reach rather than from a fault: a
/// connection that failed or broke, the pool timing out, PostgreSQL shutting down or starting
/// (SQLSTATE class 08, 57P01-57P03), SQLite busy beyond its timeout. Each store call runs in one
/// statement or one transaction, so such a request changed nothing.
pub fn database_unavailable(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| match cause.downcast_ref::<sqlx::Error>() {
            Some(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            Some(sqlx::Error::Database(db)) => db.code().is_some_and(|code| {
                code.starts_with("08")
                    || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "5" | "517")
            }),
            _ => false,
        })
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(e) if database_unavailable(e) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let error = match &self {
            ApiError::Internal(err) if status == StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(event = %"database-unavailable", error = %format_args!("{err:#}"));
                format!("the database is unavailable: retry in {RETRY_AFTER_SECS} s")
            }
            ApiError::Internal(err) => {
                tracing::error!(event = %"internal-error", error = %format_args!("{err:#}"));
                "internal error (see the server log)".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (status, Json(ErrorBody { error })).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(RETRY_AFTER_SECS),
            );
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> ApiError {
        ApiError::Internal(err.into())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_503_and_a_fault_is_500() {
        let timed_out = ApiError::Internal(anyhow::Error::from(sqlx::Error::PoolTimedOut));
        assert_eq!(timed_out.status(), StatusCode::SERVICE_UNAVAILABLE);
        let wrapped = ApiError::Internal(
            anyhow::Error::from(sqlx::Error::Io(
                std::io::ErrorKind::ConnectionRefused.into(),
            ))
            .context("reading the device"),
        );
        assert_eq!(wrapped.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = wrapped.into_response();
        assert_eq!(response.headers()["retry-after"], "5");
        let fault = ApiError::Internal(anyhow::Error::from(sqlx::Error::RowNotFound));
        assert_eq!(fault.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let other = ApiError::Internal(anyhow::anyhow!("a bug"));
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
