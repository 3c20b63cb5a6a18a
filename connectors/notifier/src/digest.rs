//! Digests: the alerts a user asked to get together (hourly, daily) on a channel,
//! sent as one message when their window ends. The digest's id is derived from its
//! channel, endpoint and members, so a digest sent again after a crash has the same
//! id (the webhook-id, the Message-ID) and receivers drop it as a duplicate.

use riskstream_schemas::Alert;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// One digest message: its id, its user and its alerts, oldest first. A webhook's
/// body is this as JSON, with `"type": "digest"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub digest_id: String,
    pub user_id: String,
    pub alerts: Vec<Alert>,
}

impl Digest {
    pub fn new(digest_id: String, user_id: String, alerts: Vec<Alert>) -> Self {
        Digest { kind: "digest", digest_id, user_id, alerts }
    }
}

/// The id of the digest of `members` (alert ids, in any order) to an endpoint.
pub fn digest_id<'a>(channel: &str, endpoint: &str, members: impl IntoIterator<Item = &'a str>) -> String {
    let mut members: Vec<&str> = members.into_iter().collect();
    members.sort_unstable();
    let mut hash = Sha256::new().chain_update(channel).chain_update([0x1f]).chain_update(endpoint);
    for id in members {
        hash.update([0x1f]);
        hash.update(id);
    }
    format!("dg_{}", hex::encode(&hash.finalize()[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digests_id_is_its_members_in_any_order() {
        let id = digest_id("webhook", "ops", ["a2", "a1"]);
        assert_eq!(id, digest_id("webhook", "ops", ["a1", "a2"]));
        assert_ne!(id, digest_id("webhook", "ops", ["a1"]), "another member set, another id");
        assert_ne!(id, digest_id("webhook", "other", ["a1", "a2"]), "another endpoint, another id");
        assert_ne!(digest_id("w", "ab", ["c"]), digest_id("w", "a", ["bc"]), "fields are separated");
        assert!(id.starts_with("dg_") && id.len() == 35, "{id}");
    }
}
