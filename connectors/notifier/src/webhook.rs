//! Webhooks signed per the Standard Webhooks specification: `webhook-id` (stable per
//! alert and endpoint, so a receiver drops a re-send), `webhook-timestamp` (Unix
//! seconds) and `webhook-signature` = `v1,` + base64 HMAC-SHA256 of
//! `id.timestamp.body` under each of the endpoint's secrets (several during a
//! rotation). Answers decide what happens next: 2xx delivered; 408, 429, 5xx, a
//! timeout or a refused connection retry later; 410 and any other 4xx give up.
//! Redirects are not followed, and private, loopback and link-local addresses are
//! refused unless the endpoint allows them (checked on the addresses the host name
//! resolves to, which are the ones connected to).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use riskstream_schemas::Alert;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::channel::{BoxFuture, Channel, ChannelError};
use crate::digest::Digest;
use crate::preferences::Preferences;

/// An endpoint's signing secret: `whsec_` + base64 of the key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl std::str::FromStr for WebhookSecret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let key = s.strip_prefix("whsec_").ok_or("a webhook secret starts with `whsec_`")?;
        let key = BASE64.decode(key).map_err(|e| format!("a webhook secret is whsec_ + base64: {e}"))?;
        if key.len() < 16 {
            return Err(format!("a webhook secret needs at least 16 bytes of key, got {}", key.len()));
        }
        Ok(WebhookSecret(key))
    }
}

/// The `webhook-signature` value of one secret: `v1,` + base64 HMAC-SHA256 of
/// `id.timestamp.body`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret.0).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// One receiver of every alert (an operator's integration; users' own endpoints
/// come with preferences).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The endpoint's id in the ledger and in `webhook-id`.
    pub id: String,
    pub url: String,
    /// Signing secrets, `whsec_...`; every one signs (rotation: add the new one,
    /// remove the old one once receivers have it).
    pub secrets: Vec<String>,
    /// Allow private, loopback and link-local addresses (a receiver on this machine
    /// or the private network). Off, they are refused: no request reaches them.
    #[serde(default)]
    pub allow_private: bool,
    /// At most this many requests a second to the endpoint (bursts of one second's
    /// worth); alerts over it wait in the retry queue. None: no limit.
    #[serde(default)]
    pub rate_limit: Option<u32>,
}

struct Endpoint {
    config: WebhookConfig,
    secrets: Vec<WebhookSecret>,
}

/// The ledger's endpoint id of a user's own webhook: `u/<user>/<id>` (operator
/// endpoint ids cannot contain `/`).
pub fn user_endpoint(user: &str, id: &str) -> String {
    format!("u/{user}/{id}")
}

fn parse_user_endpoint(endpoint: &str) -> Option<(&str, &str)> {
    endpoint.strip_prefix("u/")?.rsplit_once('/')
}

pub struct WebhookChannel {
    endpoints: Vec<Endpoint>,
    /// Users' own endpoints (from their preferences) are delivered to, and whether
    /// they may reach private addresses.
    users: Option<bool>,
    http: Http,
}

impl WebhookChannel {
    /// Checks every endpoint's URL and secrets; the error names the endpoint.
    pub fn new(configs: Vec<WebhookConfig>, timeout: Duration) -> Result<Self, String> {
        let mut endpoints = Vec::with_capacity(configs.len());
        for config in configs {
            if config.id.is_empty() || config.id.contains('/') {
                return Err(format!("webhook `{}`: the id must be non-empty, without `/`", config.id));
            }
            let url = reqwest::Url::parse(&config.url).map_err(|e| format!("webhook `{}`: url: {e}", config.id))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("webhook `{}`: url must be http or https", config.id));
            }
            if config.rate_limit == Some(0) {
                return Err(format!(
                    "webhook `{}`: rate_limit must be at least 1 a second (leave it out for none)",
                    config.id
                ));
            }
            if config.secrets.is_empty() {
                return Err(format!("webhook `{}`: needs a secret (whsec_...)", config.id));
            }
            let secrets = config
                .secrets
                .iter()
                .map(|s| s.parse().map_err(|e| format!("webhook `{}`: {e}", config.id)))
                .collect::<Result<_, String>>()?;
            endpoints.push(Endpoint { config, secrets });
        }
        Ok(WebhookChannel { endpoints, users: None, http: Http::new(timeout)? })
    }

    /// Also delivers to the webhooks users set in their preferences; `allow_private`
    /// lets those reach private addresses (tests, a private deployment).
    pub fn with_user_endpoints(mut self, allow_private: bool) -> Self {
        self.users = Some(allow_private);
        self
    }

    fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.config.id == id)
    }

    /// Where an endpoint id sends: URL, secrets, whether private addresses are
    /// allowed. A user's endpoint is read from the user's preferences.
    fn target(&self, endpoint: &str, prefs: &Preferences) -> Result<(String, Vec<WebhookSecret>, bool), ChannelError> {
        if let Some(e) = self.endpoint(endpoint) {
            return Ok((e.config.url.clone(), e.secrets.clone(), e.config.allow_private));
        }
        let gone = || ChannelError::Permanent(format!("no webhook endpoint `{endpoint}` is configured any more"));
        let ((_, id), Some(allow_private)) = (parse_user_endpoint(endpoint).ok_or_else(gone)?, self.users) else {
            return Err(gone());
        };
        let hook = prefs.webhooks.iter().find(|h| h.id == id).ok_or_else(gone)?;
        let secrets =
            hook.secrets.iter().map(|s| s.parse()).collect::<Result<Vec<_>, _>>().map_err(ChannelError::Permanent)?;
        Ok((hook.url.clone(), secrets, allow_private))
    }
}

/// Stable across retries and restarts, different per endpoint.
pub fn message_id(alert_id: &str, endpoint: &str) -> String {
    let digest = Sha256::new().chain_update(alert_id).chain_update([0]).chain_update(endpoint).finalize();
    format!("msg_{}", hex::encode(&digest[..16]))
}

/// Refuses a target whose addresses are private, loopback or link-local.
async fn check_target(url: &reqwest::Url) -> Result<(), ChannelError> {
    let host = url.host_str().ok_or_else(|| ChannelError::Permanent("the url has no host".into()))?;
    let port = url.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| ChannelError::retry(format!("cannot resolve {host}: {e}")))?
            .collect(),
    };
    match addrs.iter().find(|a| is_private(a.ip())) {
        Some(a) => Err(ChannelError::Permanent(format!(
            "refused: {host} is {} (a private, loopback or link-local address; set allow_private to send there)",
            a.ip()
        ))),
        None => Ok(()),
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// What an answer means for the delivery.
fn classify(status: reqwest::StatusCode, retry_after: Option<&str>, now_ms: i64) -> Result<(), ChannelError> {
    let code = status.as_u16();
    match code {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => {
            let after = retry_after.map(|s| format!(" (Retry-After: {s})")).unwrap_or_default();
            Err(ChannelError::Retry {
                reason: format!("the receiver answered {status}{after}"),
                after_ms: retry_after.and_then(|v| retry_after_ms(v, now_ms)),
            })
        }
        410 => Err(ChannelError::Gone("the receiver answered 410 Gone: the endpoint is disabled".into())),
        _ => Err(ChannelError::Permanent(format!("the receiver answered {status}"))),
    }
}

/// A `Retry-After` value as a wait in milliseconds (RFC 9110 section 10.2.3: a
/// number of seconds or an HTTP date); `None` when it is neither.
fn retry_after_ms(value: &str, now_ms: i64) -> Option<i64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u32>() {
        return Some(i64::from(secs) * 1_000);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = i64::try_from(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis()).ok()?;
    Some((at_ms - now_ms).max(0))
}

/// Resolves host names for the guarded client and refuses a name with any private,
/// loopback or link-local address, so the address connected to is one that was
/// checked (a name re-pointed between a check and the connection is refused too).
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(private) = addrs.iter().find(|a| is_private(a.ip())) {
                return Err(format!("refused: {host} is {} (a private address)", private.ip()).into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// An error with its causes, as reqwest's own message names only the request.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Channel for WebhookChannel {
    fn name(&self) -> &str {
        "webhook"
    }

    /// The operator's endpoints take every alert; a user's take what the user's
    /// preferences let through.
    fn endpoints(&self, alert: &Alert, prefs: &Preferences) -> Vec<String> {
        let mut ids: Vec<String> = self.endpoints.iter().map(|e| e.config.id.clone()).collect();
        if self.users.is_some() && prefs.wants("webhook", alert) {
            ids.extend(prefs.webhooks.iter().map(|h| user_endpoint(&alert.user_id, &h.id)));
        }
        ids
    }

    fn disables_failing_endpoints(&self) -> bool {
        true
    }

    fn follows_preferences(&self, endpoint: &str) -> bool {
        parse_user_endpoint(endpoint).is_some()
    }

    fn owner(&self, endpoint: &str) -> Option<(String, String)> {
        parse_user_endpoint(endpoint).map(|(user, id)| (user.to_string(), format!("webhook `{id}`")))
    }

    fn rate_limit(&self, endpoint: &str) -> Option<u32> {
        self.endpoint(endpoint).and_then(|e| e.config.rate_limit)
    }

    fn deliver<'a>(
        &'a self,
        alert: &'a Alert,
        endpoint: &'a str,
        prefs: &'a Preferences,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(alert).map_err(|e| ChannelError::Permanent(e.to_string()))?;
            self.post(endpoint, prefs, &message_id(&alert.alert_id, endpoint), body).await
        })
    }

    fn sends_digests(&self) -> bool {
        true
    }

    fn deliver_digest<'a>(
        &'a self,
        digest: &'a Digest,
        endpoint: &'a str,
        prefs: &'a Preferences,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(digest).map_err(|e| ChannelError::Permanent(e.to_string()))?;
            self.post(endpoint, prefs, &message_id(&digest.digest_id, endpoint), body).await
        })
    }
}

impl WebhookChannel {
    /// Posts `body` to the endpoint, signed, under the message id `id`.
    async fn post(&self, endpoint: &str, prefs: &Preferences, id: &str, body: Vec<u8>) -> Result<(), ChannelError> {
        let (target_url, secrets, allow_private) = self.target(endpoint, prefs)?;
        let timestamp = crate::now_ms() / 1_000;
        let signatures: Vec<String> = secrets.iter().map(|s| sign(s, id, timestamp, &body)).collect();
        self.http
            .send(&target_url, allow_private, |client, url| {
                client
                    .post(url)
                    .header("content-type", "application/json")
                    .header("webhook-id", id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", signatures.join(" "))
                    .body(body)
            })
            .await
    }
}

/// The HTTP clients of a channel posting to receivers someone else runs: redirects
/// are not followed, and private, loopback and link-local addresses are refused
/// unless the endpoint allows them.
pub(crate) struct Http {
    /// Resolves through [`PublicOnlyResolver`]: for endpoints without allow_private.
    guarded: reqwest::Client,
    /// For endpoints that allow private addresses.
    open: reqwest::Client,
}

impl Http {
    pub(crate) fn new(timeout: Duration) -> Result<Self, String> {
        let client = |guarded: bool| {
            let builder = reqwest::Client::builder().timeout(timeout).redirect(reqwest::redirect::Policy::none());
            let builder = if guarded { builder.dns_resolver(std::sync::Arc::new(PublicOnlyResolver)) } else { builder };
            builder.build().map_err(|e| format!("cannot build the HTTP client: {e}"))
        };
        Ok(Http { guarded: client(true)?, open: client(false)? })
    }

    /// Sends the request `build` makes for `target`, and says what the answer means.
    pub(crate) async fn send(
        &self,
        target: &str,
        allow_private: bool,
        build: impl FnOnce(&reqwest::Client, reqwest::Url) -> reqwest::RequestBuilder,
    ) -> Result<(), ChannelError> {
        let url = reqwest::Url::parse(target).map_err(|e| ChannelError::Permanent(e.to_string()))?;
        // An address literal is never resolved: check it here. A name is checked here
        // for a clear error, and again by the guarded client's resolver on connecting.
        let client = if allow_private {
            &self.open
        } else {
            check_target(&url).await?;
            &self.guarded
        };
        let shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
        let response = build(client, url)
            .send()
            .await
            .map_err(|e| ChannelError::retry(format!("cannot reach {shown}: {}", with_causes(&e))))?;
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        classify(response.status(), retry_after.as_deref(), crate::now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks test vector (REFERENCES.md; the same in Svix's libraries).
    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let secret: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
        let signature = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_must_be_whsec_base64_of_enough_key() {
        assert!("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse::<WebhookSecret>().unwrap_err().contains("whsec_"));
        assert!("whsec_!!".parse::<WebhookSecret>().unwrap_err().contains("base64"));
        assert!("whsec_AAAA".parse::<WebhookSecret>().unwrap_err().contains("16 bytes"));
    }

    #[test]
    fn answers_decide_retry_or_give_up() {
        use reqwest::StatusCode as S;
        let now = 1_700_000_000_000;
        assert!(classify(S::OK, None, now).is_ok() && classify(S::NO_CONTENT, None, now).is_ok());
        for retry in [S::REQUEST_TIMEOUT, S::TOO_MANY_REQUESTS, S::INTERNAL_SERVER_ERROR, S::BAD_GATEWAY] {
            assert!(matches!(classify(retry, None, now), Err(ChannelError::Retry { after_ms: None, .. })), "{retry}");
        }
        let slow = classify(S::TOO_MANY_REQUESTS, Some("30"), now).unwrap_err();
        assert!(slow.to_string().contains("Retry-After: 30"), "{slow}");
        assert!(matches!(slow, ChannelError::Retry { after_ms: Some(30_000), .. }));
        assert!(matches!(classify(S::GONE, None, now), Err(ChannelError::Gone(_))));
        for give_up in [S::BAD_REQUEST, S::UNAUTHORIZED, S::NOT_FOUND, S::MOVED_PERMANENTLY] {
            assert!(matches!(classify(give_up, None, now), Err(ChannelError::Permanent(_))), "{give_up}");
        }
    }

    /// RFC 9110 section 10.2.3: delay-seconds or an HTTP-date (its example date).
    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        // Fri, 31 Dec 1999 23:59:59 GMT is 946684799 s after the epoch.
        let now = 946_684_799_000 - 90_000;
        assert_eq!(retry_after_ms("120", now), Some(120_000));
        assert_eq!(retry_after_ms("Fri, 31 Dec 1999 23:59:59 GMT", now), Some(90_000));
        assert_eq!(retry_after_ms("Fri, 31 Dec 1999 23:59:59 GMT", now + 200_000), Some(0), "a date past");
        assert_eq!(retry_after_ms("soon", now), None);
        assert_eq!(retry_after_ms("-5", now), None);
    }

    #[tokio::test]
    async fn the_guarded_resolver_refuses_names_of_private_addresses() {
        use reqwest::dns::Resolve as _;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let error = match PublicOnlyResolver.resolve(name).await {
            Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e.to_string(),
        };
        assert!(error.contains("refused: localhost is") && error.contains("private"), "{error}");
    }

    #[test]
    fn private_addresses_are_recognised() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "0.0.0.0",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn message_ids_are_stable_per_alert_and_endpoint() {
        assert_eq!(message_id("a1", "ops"), message_id("a1", "ops"));
        assert_ne!(message_id("a1", "ops"), message_id("a1", "crm"));
        assert_ne!(message_id("a1", "ops"), message_id("a2", "ops"));
        assert!(message_id("a1", "ops").starts_with("msg_"));
    }
}
