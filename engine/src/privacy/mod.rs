//! Personal data (docs/EVENTS.md, "Personal data"): crypto-shredding between the
//! decoded events and the event store. The contract names the personal fields
//! ([`riskstream_schemas::PERSONAL_FIELDS`]); the pipeline calls [`PersonalData::seal`]
//! on a batch's events before any record is made, so the records (and with them the
//! hash chain, the Merkle tree, the audit topic, replay and snapshots) only ever hold
//! sealed values. The keys live in a [`KeyStore`] outside all of those; erasing a user
//! destroys the key, which leaves every record as it was (the chain still verifies)
//! and the user's sealed values unreadable.
//!
//! Reading: `GET /v1/events/{shard}/{seq}` discloses ([`Disclosure::Disclosed`]);
//! every other view withholds ([`Disclosure::Withheld`]). A sealed value is never
//! shown as if it were the data: it reads as its plaintext or as one of the
//! placeholders below.

mod keys;
mod seal;

use std::collections::HashMap;
use std::sync::Arc;

use riskstream_schemas::{Event, Timestamp};

pub use keys::{Erasure, KeyStore, KeyStoreError, MemoryKeyStore, RocksDbKeyStore, ERASURE_LOG};
pub use seal::{is_sealed, open, seal, OpenError, UserKey, SEALED_PREFIX};

/// A personal field of a user whose key was destroyed.
pub const ERASED: &str = "[erased]";
/// A personal field whose user has no key here and was never erased here: the key
/// store is not this one (a replica, another instance, an offline read).
pub const KEY_UNAVAILABLE: &str = "[key unavailable]";
/// A personal field that does not open with its user's key: changed bytes, or a sealed
/// value copied from another user or field.
pub const UNREADABLE: &str = "[unreadable]";
/// A personal field in a view that does not show personal data.
pub const WITHHELD: &str = "[withheld]";
/// A personal field in a dead letter's raw text.
pub const REDACTED: &str = "[redacted]";

/// How a view shows personal fields.
#[derive(Clone, Copy)]
pub enum Disclosure<'a> {
    /// Every personal field reads [`WITHHELD`].
    Withheld,
    /// Opened with the user's key, or a placeholder saying why not.
    Disclosed(&'a PersonalData),
}

/// The engine's side of personal data: seals, discloses and erases with one key store.
#[derive(Clone)]
pub struct PersonalData {
    keys: Arc<dyn KeyStore>,
}

impl Default for PersonalData {
    /// An in-memory key store (tests, engines opened without a data dir's key store).
    fn default() -> Self {
        PersonalData::new(Arc::new(MemoryKeyStore::new()))
    }
}

impl PersonalData {
    pub fn new(keys: Arc<dyn KeyStore>) -> Self {
        PersonalData { keys }
    }

    pub fn key_store(&self) -> &Arc<dyn KeyStore> {
        &self.keys
    }

    /// Seals every personal field of `events` in place, under its user's key; a user's
    /// first personal field creates the key, and all new keys of the call are stored
    /// (durably) before it returns, so before the records are made. Returns the
    /// number of fields sealed.
    pub fn seal<'a>(&self, events: impl IntoIterator<Item = &'a mut Event>) -> Result<usize, KeyStoreError> {
        let mut personal: Vec<(String, &'a mut Event)> = Vec::new();
        for event in events {
            let has_some = event.body.personal_fields_mut().iter().any(|(_, value)| value.is_some());
            if let Some(user_id) = event.body.user_id().filter(|_| has_some).map(str::to_string) {
                personal.push((user_id, event));
            }
        }
        if personal.is_empty() {
            return Ok(0);
        }
        let mut keys: HashMap<String, UserKey> = HashMap::new();
        let mut created = Vec::new();
        for (user_id, _) in &personal {
            if keys.contains_key(user_id) {
                continue;
            }
            let key = match self.keys.key(user_id)? {
                Some(key) => key,
                None => {
                    let key = UserKey::generate();
                    created.push((user_id.clone(), key.clone()));
                    key
                }
            };
            keys.insert(user_id.clone(), key);
        }
        self.keys.insert(&created)?;
        let mut sealed = 0;
        for (user_id, event) in personal {
            let key = &keys[&user_id];
            for (field, value) in event.body.personal_fields_mut() {
                if let Some(plain) = value.as_mut() {
                    *plain = seal(key, &user_id, field, plain);
                    sealed += 1;
                }
            }
        }
        Ok(sealed)
    }

    /// Replaces each sealed personal field of `event` by its plaintext, or by
    /// [`ERASED`], [`KEY_UNAVAILABLE`] or [`UNREADABLE`]. A key store that fails reads
    /// as [`KEY_UNAVAILABLE`] (and is logged): a read view should not fail for it.
    pub fn disclose(&self, event: &mut Event) {
        let Some(user_id) = event.body.user_id().map(str::to_string) else { return };
        let mut fields = event.body.personal_fields_mut();
        if fields.iter().all(|(_, value)| value.is_none()) {
            return;
        }
        let looked_up = self.keys.key(&user_id).and_then(|key| Ok((key, self.keys.erasure(&user_id)?.is_some())));
        let (key, erased) = match looked_up {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the key store; personal fields shown as unavailable");
                (None, false)
            }
        };
        for (field, value) in fields.iter_mut() {
            if let Some(stored) = value.as_mut() {
                *stored = disclosed(key.as_ref(), erased, &user_id, field, stored);
            }
        }
    }

    /// Erases the user: destroys the key and records the erasure with the wall-clock
    /// time. Every record stays as it was.
    pub fn erase(&self, user_id: &str) -> Result<Erasure, KeyStoreError> {
        let now = Timestamp(wall_clock_micros()).to_rfc3339();
        let erasure = self.keys.erase(user_id, &now)?;
        tracing::warn!(
            user_id,
            key_existed = erasure.key_existed,
            erased_at = %erasure.erased_at,
            "erased a user's personal data (the key is destroyed)"
        );
        Ok(erasure)
    }
}

/// What a stored personal field reads as, given the user's key and erasure.
fn disclosed(key: Option<&UserKey>, erased: bool, user_id: &str, field: &str, stored: &str) -> String {
    if !is_sealed(stored) {
        // Never written by this engine (it seals every personal field): not data to show.
        return UNREADABLE.to_string();
    }
    match key.map(|key| open(key, user_id, field, stored)) {
        Some(Ok(plain)) => plain,
        // A key made after an erasure does not open what the destroyed one sealed.
        Some(Err(_)) | None if erased => ERASED.to_string(),
        Some(Err(_)) => UNREADABLE.to_string(),
        None => KEY_UNAVAILABLE.to_string(),
    }
}

/// Replaces every personal field of `event` that is set by [`WITHHELD`].
pub fn withhold(event: &mut Event) {
    for (_, value) in event.body.personal_fields_mut() {
        if let Some(stored) = value.as_mut() {
            *stored = WITHHELD.to_string();
        }
    }
}

/// Applies `how` to `event`'s personal fields.
pub fn show(event: &mut Event, how: Disclosure<'_>) {
    match how {
        Disclosure::Withheld => withhold(event),
        Disclosure::Disclosed(personal) => personal.disclose(event),
    }
}

/// A dead letter's raw text with the personal fields' values replaced by
/// [`REDACTED`]: a rejected event is never sealed, and the dead-letter store keeps no
/// plaintext personal data either. Raw text that is not a JSON object (undecodable
/// input) is kept as it is.
pub fn redact_raw(raw: &str) -> std::borrow::Cow<'_, str> {
    let personal = riskstream_schemas::PERSONAL_FIELDS.map(|(_, field)| field);
    if !personal.iter().any(|field| raw.contains(field)) {
        return raw.into();
    }
    let Ok(serde_json::Value::Object(mut object)) = serde_json::from_str::<serde_json::Value>(raw) else {
        return raw.into();
    };
    for field in personal {
        if let Some(value) = object.get_mut(field).filter(|v| !v.is_null()) {
            *value = serde_json::Value::String(REDACTED.to_string());
        }
    }
    serde_json::Value::Object(object).to_string().into()
}

fn wall_clock_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use riskstream_schemas::{AccountOpened, EventBody, TaxStatus};

    use super::*;

    fn opened(user: &str, name: Option<&str>, email: Option<&str>) -> Event {
        let body = AccountOpened {
            account_id: format!("acc-{user}"),
            user_id: user.into(),
            tax_status: TaxStatus::Taxable,
            base_currency: "USD".into(),
            holder_name: name.map(str::to_string),
            holder_email: email.map(str::to_string),
        };
        Event { event_id: None, ts: Timestamp::from_micros(0), body: EventBody::AccountOpened(body) }
    }

    fn holder(event: &Event) -> (Option<String>, Option<String>) {
        let EventBody::AccountOpened(e) = &event.body else { panic!("{event:?}") };
        (e.holder_name.clone(), e.holder_email.clone())
    }

    fn some(name: &str, email: &str) -> (Option<String>, Option<String>) {
        (Some(name.to_string()), Some(email.to_string()))
    }

    #[test]
    fn sealed_fields_disclose_until_the_user_is_erased() {
        let personal = PersonalData::default();
        let mut events =
            vec![opened("u-1", Some("Ann Lee"), Some("ann@example.com")), opened("u-2", Some("Bo Chan"), None)];
        let plain = opened("u-3", None, None);
        events.push(plain.clone());
        assert_eq!(personal.seal(events.iter_mut()).unwrap(), 3);
        let (name, email) = holder(&events[0]);
        assert!(name.as_deref().is_some_and(is_sealed) && email.as_deref().is_some_and(is_sealed));
        assert_eq!(events[2], plain, "an event without personal data is untouched, and gets no key");
        assert!(personal.key_store().key("u-3").unwrap().is_none());

        let read = |event: &Event| {
            let mut event = event.clone();
            personal.disclose(&mut event);
            holder(&event)
        };
        assert_eq!(read(&events[0]), some("Ann Lee", "ann@example.com"));
        assert_eq!(read(&events[1]), (Some("Bo Chan".into()), None));

        let erasure = personal.erase("u-1").unwrap();
        assert!(erasure.key_existed);
        assert_eq!(read(&events[0]), some(ERASED, ERASED));
        assert_eq!(read(&events[1]), (Some("Bo Chan".into()), None));
        let again = personal.erase("u-1").unwrap();
        assert_eq!(again, Erasure { key_existed: false, ..erasure });

        // A later personal field of the erased user gets a new key; what the destroyed
        // key sealed stays erased.
        let mut later = opened("u-1", Some("Ann Lee-Wong"), None);
        personal.seal([&mut later]).unwrap();
        assert_eq!(read(&later), (Some("Ann Lee-Wong".into()), None));
        assert_eq!(read(&events[0]), some(ERASED, ERASED));
    }

    #[test]
    fn sealed_values_moved_between_users_or_fields_do_not_disclose() {
        let personal = PersonalData::default();
        let mut a = opened("u-1", Some("Ann Lee"), Some("ann@example.com"));
        let mut b = opened("u-2", Some("Bo Chan"), Some("bo@example.com"));
        personal.seal([&mut a, &mut b]).unwrap();
        let (name_a, email_a) = holder(&a);
        let EventBody::AccountOpened(body_b) = &mut b.body else { panic!() };
        body_b.holder_name = name_a.clone();
        let mut swapped = a.clone();
        let EventBody::AccountOpened(body_a) = &mut swapped.body else { panic!() };
        (body_a.holder_name, body_a.holder_email) = (email_a, name_a);
        for mut event in [b, swapped] {
            personal.disclose(&mut event);
            let (name, email) = holder(&event);
            assert_eq!(name.as_deref(), Some(UNREADABLE), "{event:?}");
            assert_ne!(email.as_deref(), Some("ann@example.com"));
        }
    }

    #[test]
    fn without_the_key_store_fields_are_unavailable_and_other_views_withhold() {
        let mut event = opened("u-1", Some("Ann Lee"), Some("ann@example.com"));
        PersonalData::default().seal([&mut event]).unwrap();
        let mut elsewhere = event.clone();
        PersonalData::default().disclose(&mut elsewhere);
        assert_eq!(holder(&elsewhere), some(KEY_UNAVAILABLE, KEY_UNAVAILABLE));
        withhold(&mut event);
        assert_eq!(holder(&event), some(WITHHELD, WITHHELD));
        let mut plain = opened("u-1", Some("Ann Lee"), None);
        PersonalData::default().disclose(&mut plain);
        assert_eq!(holder(&plain), (Some(UNREADABLE.into()), None), "an unsealed value is not shown as data");
    }

    #[test]
    fn dead_letter_text_loses_the_personal_values() {
        let raw = r#"{"type":"AccountOpened","user_id":"u-1","holder_name":"Ann Lee","holder_email":"ann@"}"#;
        let redacted = redact_raw(raw);
        assert!(!redacted.contains("Ann") && !redacted.contains("ann@"), "{redacted}");
        assert!(redacted.contains(r#""holder_name":"[redacted]""#), "{redacted}");
        assert!(redacted.contains(r#""user_id":"u-1""#), "{redacted}");
        for kept in [r#"{"type":"CashMovement"}"#, "not json holder_name: Ann", r#"{"holder_name":null}"#] {
            assert_eq!(redact_raw(kept), kept);
        }
    }
}
