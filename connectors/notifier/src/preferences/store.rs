//! Preference documents in the ledger, each sealed whole under the notifier's key
//! (XChaCha20-Poly1305, the user id as associated data). Erasing a user deletes the
//! row; on SQLite, with `secure_delete` on and the WAL checkpointed, so the bytes are
//! overwritten, not merely unlinked.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sqlx::Row;

use super::Preferences;
use crate::error::NotifierError;
use crate::ledger::{Backend, Ledger};

/// The notifier's sealing key: 32 random bytes in a file of mode 0600 beside the
/// ledger, created on first use.
#[derive(Clone)]
pub struct NotifierKey(XChaCha20Poly1305);

impl NotifierKey {
    pub fn load_or_create(path: &Path) -> std::io::Result<NotifierKey> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = XChaCha20Poly1305::generate_key(&mut OsRng);
                let mut file = std::fs::OpenOptions::new();
                file.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
                let mut file = file.open(path)?;
                file.write_all(&key)?;
                file.sync_all()?;
                key.to_vec()
            }
            Err(e) => return Err(e),
        };
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} holds {} bytes, a notifier key is 32", path.display(), b.len()),
            )
        })?;
        Ok(NotifierKey(XChaCha20Poly1305::new(&key.into())))
    }

    fn seal(&self, user: &str, plain: &[u8]) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self.0.encrypt(&nonce, Payload { msg: plain, aad: user.as_bytes() }).expect("sealing cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        BASE64.encode(out)
    }

    fn open(&self, user: &str, text: &str) -> Result<Vec<u8>, NotifierError> {
        let bytes = BASE64.decode(text).map_err(|e| NotifierError::Corrupt(format!("preferences of {user}: {e}")))?;
        if bytes.len() < 24 {
            return Err(NotifierError::Corrupt(format!("preferences of {user}: too short")));
        }
        let (nonce, sealed) = bytes.split_at(24);
        self.0
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: user.as_bytes() })
            .map_err(|_| NotifierError::Corrupt(format!("preferences of {user} do not open with this notifier key")))
    }
}

/// Preferences in the notifier's store.
#[derive(Clone)]
pub struct PreferenceStore {
    ledger: Ledger,
    key: NotifierKey,
}

impl PreferenceStore {
    pub fn new(ledger: Ledger, key: NotifierKey) -> Self {
        PreferenceStore { ledger, key }
    }

    /// The ledger the preferences are kept in.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub async fn get(&self, user: &str) -> Result<Option<Preferences>, NotifierError> {
        let row = sqlx::query("SELECT sealed FROM preferences WHERE user_id = $1")
            .bind(user)
            .fetch_optional(self.ledger.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let plain = self.key.open(user, row.try_get("sealed")?)?;
        serde_json::from_slice(&plain).map(Some).map_err(|e| NotifierError::Corrupt(e.to_string()))
    }

    /// Sets the user's preferences whole; `prefs` must be valid.
    pub async fn put(&self, user: &str, prefs: &Preferences, now_ms: i64) -> Result<(), NotifierError> {
        let plain = serde_json::to_vec(prefs).map_err(|e| NotifierError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO preferences (user_id, sealed, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET sealed = excluded.sealed, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(user)
        .bind(self.key.seal(user, &plain))
        .bind(now_ms)
        .execute(self.ledger.pool())
        .await?;
        Ok(())
    }

    /// Deletes the user's preferences for good (overwritten in the file and its
    /// WAL); false when there were none.
    pub async fn erase(&self, user: &str) -> Result<bool, NotifierError> {
        let done =
            sqlx::query("DELETE FROM preferences WHERE user_id = $1").bind(user).execute(self.ledger.pool()).await?;
        if self.ledger.backend() == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(self.ledger.pool()).await?;
        }
        Ok(done.rows_affected() > 0)
    }

    /// Users with preferences, in id order, after `after`.
    pub async fn users(&self, after: &str, limit: i64) -> Result<Vec<String>, NotifierError> {
        let rows = sqlx::query("SELECT user_id FROM preferences WHERE user_id > $1 ORDER BY user_id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(self.ledger.pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get("user_id")?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_documents_open_only_for_their_user_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = NotifierKey::load_or_create(&dir.path().join("k")).unwrap();
        let again = NotifierKey::load_or_create(&dir.path().join("k")).unwrap();
        let other = NotifierKey::load_or_create(&dir.path().join("other")).unwrap();
        let sealed = key.seal("u1", b"{\"email\":\"ann@example.com\"}");
        assert!(!String::from_utf8_lossy(&BASE64.decode(&sealed).unwrap()).contains("ann@"));
        assert_eq!(again.open("u1", &sealed).unwrap(), b"{\"email\":\"ann@example.com\"}");
        assert!(key.open("u2", &sealed).is_err(), "bound to its user");
        assert!(other.open("u1", &sealed).is_err(), "and to its key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("k")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
