//! The registry's token service (`pipeline/registry.rs`): `GET /registry/token`, which the
//! registry sends BuildKit to with a build's credential, and `GET /registry/jwks.json`, the
//! public key the registry verifies the tokens with (its `auth.token.jwks` file). Called by the
//! registry's clients, not by users: the credential is the build's, in HTTP Basic.

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use axum_extra::TypedHeader;
use axum_extra::headers::Authorization;
use axum_extra::headers::authorization::Basic;
use switchyard_engine::Engine;
use switchyard_engine::pipeline::registry::{self, TokenError};

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/registry/token", get(token))
        .route("/registry/jwks.json", get(jwks))
}

/// What a token request asks for: `service` once, `scope` any number of times.
fn query(raw: Option<&str>) -> (String, Vec<String>) {
    let mut service = String::new();
    let mut scopes = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "service" => service = v.into_owned(),
            // A client may also join several scopes with spaces in one parameter.
            "scope" => scopes.extend(v.split(' ').filter(|s| !s.is_empty()).map(str::to_owned)),
            _ => {}
        }
    }
    (service, scopes)
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"enclii-registry\"")],
        Json(serde_json::json!({ "errors": [{ "code": "UNAUTHORIZED", "message": message }] })),
    )
        .into_response()
}

async fn token(
    State(engine): State<Engine>,
    auth: Option<TypedHeader<Authorization<Basic>>>,
    RawQuery(raw): RawQuery,
) -> Response {
    // Anonymous requests get nothing: every repository is some project's.
    let Some(TypedHeader(Authorization(basic))) = auth else {
        return unauthorized("a build's registry credential is required");
    };
    let (service, scopes) = query(raw.as_deref());
    match registry::issue(
        &engine,
        basic.username(),
        basic.password(),
        &service,
        &scopes,
    )
    .await
    {
        Ok(token) => ([(header::CACHE_CONTROL, "no-store")], Json(token)).into_response(),
        Err(TokenError::Unauthorized) => unauthorized("the registry credential is not valid"),
        Err(e @ TokenError::NotConfigured) => {
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
        Err(e) => {
            tracing::error!(error = &e as &dyn std::error::Error, "registry token");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn jwks(State(engine): State<Engine>) -> Response {
    match engine.registry_tokens.as_deref() {
        Some(issuer) => Json(issuer.jwks()).into_response(),
        None => (StatusCode::NOT_FOUND, TokenError::NotConfigured.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn scopes_are_read_repeated_or_space_separated() {
        let (service, scopes) = super::query(Some(
            "service=enclii-registry&scope=repository%3Aa%2Fb%3Apull%2Cpush&scope=repository:a/c:pull%20repository:d/e:pull&account=x",
        ));
        assert_eq!(service, "enclii-registry");
        assert_eq!(
            scopes,
            [
                "repository:a/b:pull,push",
                "repository:a/c:pull",
                "repository:d/e:pull"
            ]
        );
        assert_eq!(super::query(None), (String::new(), vec![]));
    }
}
