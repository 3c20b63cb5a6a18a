//! The in-app channel: each user's inbox of alerts, kept in the notifier's store,
//! read, marked read and archived through `GET /v1/users/{id}/inbox` and its routes.

use riskstream_schemas::{Alert, AlertState, Timestamp};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::channel::{BoxFuture, Channel, ChannelError};
use crate::error::NotifierError;
use crate::ledger::Ledger;
use crate::preferences::Preferences;

/// One message of a user's inbox: an alert as raised, or a notice from the
/// notifier, and what the user did with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxItem {
    #[serde(flatten)]
    pub entry: InboxEntry,
    pub read: bool,
    pub archived: bool,
}

/// What an inbox message is; answered flat, an alert's fields or a notice's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InboxEntry {
    Alert(Alert),
    Notice(Notice),
}

impl InboxEntry {
    /// The message's id: the alert's, or the notice's (the read and archive routes take either).
    pub fn id(&self) -> &str {
        match self {
            InboxEntry::Alert(a) => &a.alert_id,
            InboxEntry::Notice(n) => &n.alert_id,
        }
    }
}

/// Something the notifier tells a user about their own settings, e.g. that one of
/// their webhooks was disabled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// The message's id (`ntc_...`), named as an alert's so clients and routes treat
    /// both alike.
    pub alert_id: String,
    /// What happened: `webhook_disabled`.
    pub notice: String,
    pub user_id: String,
    pub ts: Timestamp,
    pub message: String,
}

/// A page of a user's inbox, newest first, with the unread count of the whole inbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxPage {
    pub user_id: String,
    pub unread: i64,
    pub items: Vec<InboxItem>,
}

/// Reads and updates inboxes.
#[derive(Clone)]
pub struct Inbox {
    ledger: Ledger,
}

impl Inbox {
    pub fn new(ledger: Ledger) -> Self {
        Inbox { ledger }
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The newest `limit` messages (archived ones only when asked), and the count
    /// of unread, unarchived ones.
    pub async fn page(&self, user_id: &str, limit: i64, archived: bool) -> Result<InboxPage, NotifierError> {
        let pool = self.ledger.pool();
        let rows = sqlx::query(
            "SELECT alert, read_at_ms, archived_at_ms FROM inbox \
             WHERE user_id = $1 AND (archived_at_ms IS NULL OR $2) ORDER BY ts_us DESC, alert_id DESC LIMIT $3",
        )
        .bind(user_id)
        .bind(archived)
        .bind(limit)
        .fetch_all(pool)
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for r in &rows {
            let text: String = r.try_get("alert")?;
            let entry = serde_json::from_str(&text).map_err(|e| NotifierError::Corrupt(e.to_string()))?;
            let read: Option<i64> = r.try_get("read_at_ms")?;
            let archived: Option<i64> = r.try_get("archived_at_ms")?;
            items.push(InboxItem { entry, read: read.is_some(), archived: archived.is_some() });
        }
        Ok(InboxPage { user_id: user_id.to_string(), unread: self.unread(user_id).await?, items })
    }

    /// Messages neither read nor archived.
    pub async fn unread(&self, user_id: &str) -> Result<i64, NotifierError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM inbox WHERE user_id = $1 AND read_at_ms IS NULL AND archived_at_ms IS NULL",
        )
        .bind(user_id)
        .fetch_one(self.ledger.pool())
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Marks a message read (`archive` false) or archived; false when the user has
    /// no such message. Doing it again keeps the first time.
    pub async fn mark(&self, user_id: &str, alert_id: &str, archive: bool) -> Result<bool, NotifierError> {
        let sql = if archive {
            "UPDATE inbox SET archived_at_ms = COALESCE(archived_at_ms, $1) WHERE user_id = $2 AND alert_id = $3"
        } else {
            "UPDATE inbox SET read_at_ms = COALESCE(read_at_ms, $1) WHERE user_id = $2 AND alert_id = $3"
        };
        let done =
            sqlx::query(sql).bind(crate::now_ms()).bind(user_id).bind(alert_id).execute(self.ledger.pool()).await?;
        Ok(done.rows_affected() > 0)
    }
}

/// Puts raised alerts in their user's inbox. A cleared alert is not a new message
/// (nobody asked to be told of clears yet: preferences come with their issue).
pub struct InAppChannel {
    ledger: Ledger,
}

impl InAppChannel {
    pub fn new(ledger: Ledger) -> Self {
        InAppChannel { ledger }
    }
}

/// The one endpoint of the in-app channel: the user's inbox.
const INBOX: &str = "inbox";

impl Channel for InAppChannel {
    fn name(&self) -> &str {
        "in_app"
    }

    fn endpoints(&self, alert: &Alert, prefs: &Preferences) -> Vec<String> {
        // The inbox lists what needs attention: never a clear.
        (alert.state == AlertState::Raised && prefs.wants("in_app", alert))
            .then(|| INBOX.to_string())
            .into_iter()
            .collect()
    }

    fn deliver<'a>(
        &'a self,
        alert: &'a Alert,
        _endpoint: &'a str,
        _prefs: &'a Preferences,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let text = serde_json::to_string(alert).map_err(|e| ChannelError::Permanent(e.to_string()))?;
            // The key (user, alert) makes a re-delivery after a crash a no-op.
            sqlx::query(
                "INSERT INTO inbox (user_id, alert_id, ts_us, alert) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&alert.user_id)
            .bind(&alert.alert_id)
            .bind(alert.ts.micros())
            .bind(text)
            .execute(self.ledger.pool())
            .await
            .map_err(|e| ChannelError::retry(format!("cannot write the inbox: {e}")))?;
            Ok(())
        })
    }
}
