//! Sealing one personal field: XChaCha20-Poly1305 under the user's 256-bit key, a
//! fresh random 192-bit nonce per value (random nonces of that size never repeat in
//! practice, so no counter has to survive a crash), and associated data binding the
//! user and the field, so a sealed value copied into another user's event or another
//! field does not open. The sealed form is text, because the field is an Avro string:
//! `enc:v1:` then the standard base64 of nonce || ciphertext || tag.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroize;

/// What every sealed value starts with; the version names the cipher and the layout.
pub const SEALED_PREFIX: &str = "enc:v1:";
/// Bytes of an XChaCha20 nonce.
const NONCE_LEN: usize = 24;
/// Bytes of a Poly1305 tag.
const TAG_LEN: usize = 16;
/// Domain separation of the associated data, versioned with the prefix.
const AAD_LABEL: &[u8] = b"riskstream personal field v1";

/// A user's key. Zeroed when dropped; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct UserKey([u8; 32]);

impl Drop for UserKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl UserKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> UserKey {
        UserKey(XChaCha20Poly1305::generate_key(&mut OsRng).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> UserKey {
        UserKey(bytes)
    }

    /// Exactly 32 bytes, as a key store keeps them.
    pub fn from_slice(bytes: &[u8]) -> Option<UserKey> {
        bytes.try_into().ok().map(UserKey)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserKey(..)")
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not a sealed value (no `{SEALED_PREFIX}` prefix)")]
    NotSealed,
    #[error("malformed sealed value: {0}")]
    Malformed(&'static str),
    /// Another key, another user or field, or changed bytes: AEAD cannot tell which.
    #[error("the sealed value does not open with this key for this user and field")]
    Rejected,
}

/// Whether `value` has the sealed form's prefix.
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED_PREFIX)
}

/// The associated data: the label, then the user id and the field name, each with its
/// length, so no two (user, field) pairs give the same bytes.
fn associated_data(user_id: &str, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 16 + user_id.len() + field.len());
    aad.extend_from_slice(AAD_LABEL);
    for part in [user_id, field] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// Seals `plaintext`, the value of `field` of `user_id`.
pub fn seal(key: &UserKey, user_id: &str, field: &str, plaintext: &str) -> String {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let aad = associated_data(user_id, field);
    let ciphertext = key
        .cipher()
        .encrypt(&nonce, Payload { msg: plaintext.as_bytes(), aad: &aad })
        .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
    let mut bytes = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&ciphertext);
    format!("{SEALED_PREFIX}{}", STANDARD.encode(bytes))
}

/// Opens a value sealed by [`seal`] for the same user and field.
pub fn open(key: &UserKey, user_id: &str, field: &str, sealed: &str) -> Result<String, OpenError> {
    let encoded = sealed.strip_prefix(SEALED_PREFIX).ok_or(OpenError::NotSealed)?;
    let bytes = STANDARD.decode(encoded).map_err(|_| OpenError::Malformed("not base64"))?;
    if bytes.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenError::Malformed("shorter than a nonce and a tag"));
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let aad = associated_data(user_id, field);
    let plaintext = key
        .cipher()
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
        .map_err(|_| OpenError::Rejected)?;
    String::from_utf8(plaintext).map_err(|_| OpenError::Malformed("the plaintext is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_for_its_user_and_field_only() {
        let key = UserKey::generate();
        let sealed = seal(&key, "u-1", "holder_name", "Ann Lee");
        assert!(is_sealed(&sealed), "{sealed}");
        assert!(!sealed.contains("Ann"), "{sealed}");
        assert_eq!(open(&key, "u-1", "holder_name", &sealed), Ok("Ann Lee".to_string()));
        // Moved to another user's event, or into another field: it does not open.
        assert_eq!(open(&key, "u-2", "holder_name", &sealed), Err(OpenError::Rejected));
        assert_eq!(open(&key, "u-1", "holder_email", &sealed), Err(OpenError::Rejected));
        // Length-prefixed parts: shifting bytes between user and field changes the data.
        assert_eq!(open(&key, "u-1h", "older_name", &sealed), Err(OpenError::Rejected));
        // Another key (another user's, or this user's after an erasure) does not open it.
        assert_eq!(open(&UserKey::generate(), "u-1", "holder_name", &sealed), Err(OpenError::Rejected));
    }

    #[test]
    fn each_seal_has_its_own_nonce() {
        let key = UserKey::generate();
        let a = seal(&key, "u-1", "holder_email", "ann@example.com");
        let b = seal(&key, "u-1", "holder_email", "ann@example.com");
        assert_ne!(a, b);
        assert_eq!(open(&key, "u-1", "holder_email", &a), open(&key, "u-1", "holder_email", &b));
    }

    #[test]
    fn changed_or_malformed_values_are_refused() {
        let key = UserKey::generate();
        let sealed = seal(&key, "u-1", "holder_name", "Ann Lee");
        let mut bytes = STANDARD.decode(&sealed[SEALED_PREFIX.len()..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let flipped = format!("{SEALED_PREFIX}{}", STANDARD.encode(&bytes));
        assert_eq!(open(&key, "u-1", "holder_name", &flipped), Err(OpenError::Rejected));
        assert_eq!(open(&key, "u-1", "holder_name", "Ann Lee"), Err(OpenError::NotSealed));
        assert_eq!(open(&key, "u-1", "holder_name", "enc:v1:***"), Err(OpenError::Malformed("not base64")));
        let short = format!("{SEALED_PREFIX}{}", STANDARD.encode([0u8; 39]));
        assert_eq!(
            open(&key, "u-1", "holder_name", &short),
            Err(OpenError::Malformed("shorter than a nonce and a tag"))
        );
    }

    #[test]
    fn keys_round_trip_and_never_print() {
        let key = UserKey::generate();
        assert_eq!(UserKey::from_slice(key.as_bytes()), Some(key.clone()));
        assert_eq!(UserKey::from_slice(&[0u8; 31]), None);
        assert_eq!(format!("{key:?}"), "UserKey(..)");
        assert_ne!(UserKey::generate(), key);
    }
}
