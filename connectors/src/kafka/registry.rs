//! Confluent Schema Registry client: registers the schemas the engine writes with and
//! fetches the writer schema of an id found in a message. Blocking on purpose: it is
//! called from the Kafka worker thread, never from async code (reqwest's blocking
//! client panics inside a tokio runtime). Both lookups are cached for the life of the
//! client: an id names one schema forever, so a hit never needs to be revalidated.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::RwLock;
use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};

const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";
const ACCEPTED: &str = "application/vnd.schemaregistry.v1+json, application/json";
const TIMEOUT: Duration = Duration::from_secs(10);
/// Error bodies are quoted in messages; a proxy's HTML page should not flood the log.
const MAX_QUOTED_BODY: usize = 512;
/// Confluent's `error_code` for an id the registry does not have.
const SCHEMA_NOT_FOUND: u32 = 40403;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Configuration: fix the URL and restart.
    #[error("schema registry url `{url}` is invalid: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// Internal: the HTTP client could not be built.
    #[error("schema registry client for {url} cannot be built: {reason}")]
    Client { url: String, reason: String },
    /// External: no answer (refused, reset, timed out); retry with backoff.
    #[error("schema registry request {method} {url} failed: {reason}")]
    Unreachable { method: &'static str, url: String, reason: String },
    /// The registry has no schema with this id: the message that carries it cannot be read.
    #[error("schema id {id} not found in the schema registry ({url} answered HTTP {status}: {body})")]
    UnknownId { id: u32, url: String, status: u16, body: String },
    /// The registry refused the request; 5xx is worth a retry, 4xx is not.
    #[error("schema registry {method} {url} answered HTTP {status}: {body}")]
    Status { method: &'static str, url: String, status: u16, body: String },
    /// The registry answered 2xx with a body that is not the documented JSON.
    #[error("schema registry {method} {url} answered an unexpected body ({reason}): {body}")]
    BadResponse { method: &'static str, url: String, reason: String, body: String },
}

impl RegistryError {
    /// Whether the same request may succeed later (network trouble, 5xx, rate limiting).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}

#[derive(serde::Serialize)]
struct RegisterRequest<'a> {
    schema: &'a str,
}

#[derive(serde::Deserialize)]
struct RegisterResponse {
    id: u32,
}

/// The registry's error body: `{"error_code": 40403, "message": "Schema not found"}`.
#[derive(serde::Deserialize)]
struct ErrorBody {
    error_code: u32,
}

#[derive(serde::Deserialize)]
struct SchemaResponse {
    schema: String,
}

/// A client of one registry, shared by every producer and decoder of an instance.
pub struct SchemaRegistry {
    base: Url,
    http: Client,
    by_id: RwLock<HashMap<u32, String>>,
    by_schema: RwLock<HashMap<(String, String), u32>>,
}

impl SchemaRegistry {
    /// A client of the registry at `base_url` (`http://host:port`, optionally with a path
    /// prefix). Checks the URL only; the registry is first contacted by a lookup.
    pub fn new(base_url: &str) -> Result<Self, RegistryError> {
        let base = parse_base(base_url)?;
        let http = Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .build()
            .map_err(|e| RegistryError::Client { url: base.to_string(), reason: chain(e) })?;
        Ok(SchemaRegistry { base, http, by_id: RwLock::default(), by_schema: RwLock::default() })
    }

    /// POST {base}/subjects/{subject}/versions {"schema": json}; returns the id (registers or finds the same schema).
    pub fn register(&self, subject: &str, schema_json: &str) -> Result<u32, RegistryError> {
        let key = (subject.to_string(), schema_json.to_string());
        if let Some(id) = self.by_schema.read().expect("registry cache lock").get(&key) {
            return Ok(*id);
        }
        let url = self.endpoint(&["subjects", subject, "versions"]);
        let request = self
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, MEDIA_TYPE)
            .header(ACCEPT, ACCEPTED)
            .json(&RegisterRequest { schema: schema_json });
        let response = request.send().map_err(|e| unreachable("POST", &url, e))?;
        let body = success_body("POST", &url, response)?;
        let parsed: RegisterResponse = parse("POST", &url, &body)?;
        self.by_schema.write().expect("registry cache lock").insert(key, parsed.id);
        Ok(parsed.id)
    }

    /// GET {base}/schemas/ids/{id}; returns the schema JSON string. Cached.
    pub fn schema(&self, id: u32) -> Result<String, RegistryError> {
        if let Some(schema) = self.by_id.read().expect("registry cache lock").get(&id) {
            return Ok(schema.clone());
        }
        let url = self.endpoint(&["schemas", "ids", &id.to_string()]);
        let response =
            self.http.get(url.clone()).header(ACCEPT, ACCEPTED).send().map_err(|e| unreachable("GET", &url, e))?;
        if response.status() == StatusCode::NOT_FOUND {
            let (status, body) = (response.status().as_u16(), quoted_body(response));
            // Only the registry's own "schema not found" condemns the id; any other 404
            // (a wrong path prefix, a proxy) is a configuration error.
            let url = url.to_string();
            return Err(match serde_json::from_str::<ErrorBody>(&body) {
                Ok(ErrorBody { error_code: SCHEMA_NOT_FOUND }) => RegistryError::UnknownId { id, url, status, body },
                _ => RegistryError::Status { method: "GET", url, status, body },
            });
        }
        let body = success_body("GET", &url, response)?;
        let parsed: SchemaResponse = parse("GET", &url, &body)?;
        self.by_id.write().expect("registry cache lock").insert(id, parsed.schema.clone());
        Ok(parsed.schema)
    }

    /// The base URL as given, normalised (no trailing slash).
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `base` plus percent-encoded path segments (a subject may hold `/` or spaces).
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut().expect("http URLs have a path").pop_if_empty().extend(segments);
        url
    }
}

fn parse_base(base_url: &str) -> Result<Url, RegistryError> {
    let invalid = |reason: String| RegistryError::InvalidUrl { url: base_url.to_string(), reason };
    let url = Url::parse(base_url.trim()).map_err(|e| invalid(e.to_string()))?;
    match url.scheme() {
        "http" => {}
        // The workspace builds reqwest without a TLS backend.
        "https" => return Err(invalid("https is not supported by this build; use http".into())),
        other => return Err(invalid(format!("scheme `{other}` is not http"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a base URL takes no query or fragment".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials in the URL are not supported".into()));
    }
    Ok(url)
}

fn success_body(method: &'static str, url: &Url, response: Response) -> Result<String, RegistryError> {
    let status = response.status();
    if !status.is_success() {
        return Err(RegistryError::Status {
            method,
            url: url.to_string(),
            status: status.as_u16(),
            body: quoted_body(response),
        });
    }
    response.text().map_err(|e| unreachable(method, url, e))
}

fn parse<T: serde::de::DeserializeOwned>(method: &'static str, url: &Url, body: &str) -> Result<T, RegistryError> {
    serde_json::from_str(body).map_err(|e| RegistryError::BadResponse {
        method,
        url: url.to_string(),
        reason: e.to_string(),
        body: truncate(body),
    })
}

fn quoted_body(response: Response) -> String {
    match response.text() {
        Ok(body) if body.trim().is_empty() => "(empty body)".to_string(),
        Ok(body) => truncate(body.trim()),
        Err(e) => format!("(body unreadable: {})", chain(e)),
    }
}

fn truncate(body: &str) -> String {
    if body.len() <= MAX_QUOTED_BODY {
        return body.to_string();
    }
    let cut = (0..=MAX_QUOTED_BODY).rev().find(|i| body.is_char_boundary(*i)).unwrap_or(0);
    format!("{}... ({} bytes)", &body[..cut], body.len())
}

fn unreachable(method: &'static str, url: &Url, err: reqwest::Error) -> RegistryError {
    RegistryError::Unreachable { method, url: url.to_string(), reason: chain(err) }
}

/// reqwest's own message is generic ("error sending request"); the cause that tells a
/// person what to fix (connection refused, timed out) is further down the chain.
fn chain(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_is_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SchemaRegistry>();
    }

    #[test]
    fn rejects_urls_it_cannot_use() {
        for (url, reason) in [
            ("localhost:8081", "scheme `localhost` is not http"),
            ("not a url", "relative URL without a base"),
            ("ftp://registry:8081", "scheme `ftp` is not http"),
            ("https://registry:8081", "https is not supported"),
            ("http://registry:8081/?x=1", "no query or fragment"),
            ("http://user:pw@registry:8081", "credentials"),
        ] {
            let err = SchemaRegistry::new(url).err().unwrap_or_else(|| panic!("{url} accepted"));
            let text = err.to_string();
            assert!(text.contains(url) && text.contains(reason), "{url}: {text}");
        }
    }

    #[test]
    fn endpoints_keep_a_path_prefix_and_encode_subjects() {
        let registry = SchemaRegistry::new("http://127.0.0.1:8081/registry/").unwrap();
        assert_eq!(registry.base_url(), "http://127.0.0.1:8081/registry");
        assert_eq!(
            registry.endpoint(&["subjects", "riskstream.v1.TradeExecuted", "versions"]).as_str(),
            "http://127.0.0.1:8081/registry/subjects/riskstream.v1.TradeExecuted/versions"
        );
        let bare = SchemaRegistry::new("http://127.0.0.1:8081").unwrap();
        assert_eq!(
            bare.endpoint(&["subjects", "a/b c", "versions"]).as_str(),
            "http://127.0.0.1:8081/subjects/a%2Fb%20c/versions"
        );
        assert_eq!(bare.endpoint(&["schemas", "ids", "7"]).as_str(), "http://127.0.0.1:8081/schemas/ids/7");
    }

    #[test]
    fn long_bodies_are_cut_on_a_char_boundary() {
        let body = "é".repeat(MAX_QUOTED_BODY);
        let cut = truncate(&body);
        assert!(cut.ends_with(&format!("... ({} bytes)", body.len())), "{cut}");
        assert_eq!(truncate("short"), "short");
    }

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        let status = |status| RegistryError::Status { method: "GET", url: "u".into(), status, body: String::new() };
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(422).is_transient());
        let unknown = RegistryError::UnknownId { id: 9, url: "u".into(), status: 404, body: String::new() };
        assert!(!unknown.is_transient());
    }
}
