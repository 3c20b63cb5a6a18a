//! The demo's webhook receiver: a listener of its own on 127.0.0.1 to which the
//! demo's notifier posts every alert, signed, as a customer's system would receive
//! them. It checks each signature the way a receiver should (Standard Webhooks: the
//! HMAC of `id.timestamp.body`, a timestamp within five minutes) and keeps the last
//! deliveries for `GET /v1/demo/webhook`, so a new user sees a delivered webhook and
//! can verify one with the secret the demo writes to its data dir.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use riskstream_notifier::{sign, WebhookConfig, WebhookSecret};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

/// Deliveries kept for the API.
const KEEP: usize = 20;
/// How far a `webhook-timestamp` may be from now (the spec's suggested tolerance).
const TOLERANCE_SECS: i64 = 300;

struct Received {
    secret: WebhookSecret,
    url: String,
    secret_file: String,
    total: u64,
    verified: u64,
    last: VecDeque<Value>,
}

type Shared = Arc<Mutex<Received>>;

/// Starts the receiver on `runtime` and writes its secret to `data_dir`. Returns
/// the endpoint for `[[notifier.webhooks]]` and the API's route reading it.
pub fn start(runtime: &tokio::runtime::Runtime, data_dir: &Path) -> anyhow::Result<(WebhookConfig, Router)> {
    let key: [u8; 24] = rand::random();
    let secret_text = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key));
    let secret_file = data_dir.join("demo-webhook.secret");
    std::fs::write(&secret_file, format!("{secret_text}\n"))?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))))?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    let shared: Shared = Arc::new(Mutex::new(Received {
        secret: secret_text.parse().map_err(anyhow::Error::msg)?,
        url: url.clone(),
        secret_file: secret_file.display().to_string(),
        total: 0,
        verified: 0,
        last: VecDeque::with_capacity(KEEP),
    }));
    let app = Router::new().route("/hooks", post(receive)).with_state(Arc::clone(&shared));
    runtime.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the demo's webhook receiver stopped");
        }
    });
    let endpoint = WebhookConfig {
        id: "demo-receiver".into(),
        url,
        secrets: vec![secret_text],
        allow_private: true,
        rate_limit: None,
    };
    Ok((endpoint, Router::new().route("/v1/demo/webhook", get(show)).with_state(shared)))
}

/// What a receiver does: check the signature and the timestamp, then answer 2xx.
async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (id, timestamp, signatures) = (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let mut received = shared.lock().unwrap_or_else(|p| p.into_inner());
    let check = match timestamp.parse::<i64>() {
        Err(_) => Err("no webhook-timestamp".to_string()),
        Ok(ts) if (now - ts).abs() > TOLERANCE_SECS => {
            Err(format!("timestamp {ts} is over {TOLERANCE_SECS} s from now"))
        }
        Ok(ts) => {
            let expected = sign(&received.secret, &id, ts, &body);
            let matches = signatures.split(' ').any(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())));
            if matches {
                Ok(())
            } else {
                Err("no signature matches the secret".into())
            }
        }
    };
    let alert: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    received.total += 1;
    received.verified += u64::from(check.is_ok());
    if received.last.len() == KEEP {
        received.last.pop_back();
    }
    received.last.push_front(json!({
        "webhook_id": id,
        "webhook_timestamp": timestamp,
        "verified": check.is_ok(),
        "error": check.as_ref().err(),
        "alert_id": alert["alert_id"],
        "kind": alert["kind"],
        "state": alert["state"],
        "account_id": alert["account_id"],
        "message": alert["message"],
    }));
    match check {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

/// `GET /v1/demo/webhook`: what the receiver got, newest first, and how to check it.
async fn show(State(shared): State<Shared>) -> Json<Value> {
    let received = shared.lock().unwrap_or_else(|p| p.into_inner());
    Json(json!({
        "endpoint": received.url,
        "received": received.total,
        "verified": received.verified,
        "how_to_verify": format!(
            "webhook-signature is v1, + base64 HMAC-SHA256 of `webhook-id.webhook-timestamp.body` under the key \
             after whsec_ in {} (Standard Webhooks; e.g. Python: standardwebhooks.Webhook(secret).verify(body, headers))",
            received.secret_file
        ),
        "last": received.last,
    }))
}
