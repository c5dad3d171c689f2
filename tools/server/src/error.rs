//! The API's errors: a status code and a message that names the problem, as JSON
//! `{"error": "…"}` (the typed [`ErrorBody`]), for every status the server itself produces:
//! 400, 401, 403, 404, 405, 408, 409, 413 and 500. Internal errors are logged with their chain and
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
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
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
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let error = match &self {
            ApiError::Internal(err) => {
                log::error!("event=internal-error error={err:#}");
                "internal error (see the server log)".to_owned()
            }
            other => other.to_string(),
        };
        (status, Json(ErrorBody { error })).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> ApiError {
        ApiError::Internal(err.into())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
