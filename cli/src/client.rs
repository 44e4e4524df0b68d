//! Calls to Switchyard's JSON API, and the mapping of its errors to messages and exit codes.

use enclii_api::ApiError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A failed command: what to print and the exit code.
pub struct Failure {
    pub message: String,
    pub details: Vec<String>,
    /// Located problems of a refused spec, for the caller to print with the file's name.
    pub diagnostics: Vec<enclii_api::Diagnostic>,
    pub code: u8,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            details: Vec::new(),
            diagnostics: Vec::new(),
            code,
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        let code = match &e {
            ApiError::Invalid { .. } | ApiError::Conflict { .. } => 1,
            ApiError::Unauthenticated { .. } | ApiError::Forbidden { .. } => 4,
            ApiError::NotFound { .. } => 5,
            ApiError::TooMany { .. } | ApiError::Unavailable { .. } | ApiError::Internal { .. } => {
                6
            }
        };
        let mut failure = Failure::new(code, e.message().to_owned());
        match e {
            ApiError::Unauthenticated { .. } => {
                failure
                    .details
                    .push("hint: run `enclii login` with an API token from the dashboard".into());
            }
            ApiError::Invalid { diagnostics, .. } => failure.diagnostics = diagnostics,
            _ => {}
        }
        failure
    }
}

pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Result<Self, Failure> {
        let http = reqwest::blocking::Client::builder()
            .user_agent(concat!("enclii/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| Failure::new(6, format!("cannot start the HTTP client: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// GETs `path` and copies the streamed body to `out` as it arrives.
    pub fn stream_to(&self, path: &str, out: &mut dyn std::io::Write) -> Result<(), Failure> {
        // No overall timeout: a followed log stream lasts as long as the user wants it.
        let http = reqwest::blocking::Client::builder()
            .user_agent(concat!("enclii/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::new(6, format!("cannot start the HTTP client: {e}")))?;
        let mut req = http.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let mut response = req.send().map_err(|e| {
            Failure::new(
                6,
                format!(
                    "cannot reach Switchyard at {}: {}",
                    self.base,
                    root_cause(&e)
                ),
            )
        })?;
        if !response.status().is_success() {
            let status = response.status();
            let bytes = response.bytes().unwrap_or_default();
            return Err(match serde_json::from_slice::<ApiError>(&bytes) {
                Ok(error) => error.into(),
                Err(_) => Failure::new(6, format!("{path} answered {status}")),
            });
        }
        std::io::copy(&mut response, out)
            .map_err(|e| Failure::new(6, format!("the log stream broke: {e}")))?;
        Ok(())
    }

    /// POSTs `body` as JSON to `path`; the answer is either `T` or the server's `ApiError`.
    pub fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Failure> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let response = req.send().map_err(|e| {
            Failure::new(
                6,
                format!(
                    "cannot reach Switchyard at {}: {}",
                    self.base,
                    root_cause(&e)
                ),
            )
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .map_err(|e| Failure::new(6, format!("the answer was cut short: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| Failure::new(6, format!("unexpected answer from {path}: {e}")));
        }
        match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(error) => Err(error.into()),
            Err(_) => Err(Failure::new(6, format!("{path} answered {status}"))),
        }
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
