//! Gives server-function errors their HTTP status. Server functions answer every error with 500;
//! ours carry a typed `ApiError` body, whose kind decides the status (401, 403, 404, 422, …), so
//! that scripts and proxies can rely on the status line.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use enclii_api::ApiError;

/// Server-function error bodies are small; anything bigger is passed through untouched.
const MAX_ERROR_BODY: usize = 256 * 1024;

pub async fn set_status(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    if !response.headers().contains_key("serverfnerror") {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_ERROR_BODY).await else {
        parts.status = StatusCode::INTERNAL_SERVER_ERROR;
        return Response::from_parts(parts, Body::empty());
    };
    if let Ok(error) = serde_json::from_slice::<ApiError>(&bytes) {
        parts.status =
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Response::from_parts(parts, Body::from(bytes))
}
