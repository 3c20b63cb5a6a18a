//! The rules' signals: the lifecycle state of each rule on each subject (account or
//! symbol), the part of the shard the rules write.

use std::collections::{BTreeMap, BTreeSet};

use ahash::AHashMap as HashMap;
use riskstream_schemas::{Alert, AlertState, Timestamp};
use serde::{Deserialize, Serialize};

use super::{alert_id, Cause, Finding, Level, Rule};

/// Lifecycle of one rule on one subject (account or symbol).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalState {
    pub raised: bool,
    pub last_raised_at: Option<Timestamp>,
    /// Id of the alert that raised it, so the clear can point back.
    pub raised_alert_id: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Signals {
    /// Rule name -> subject -> state (nested so a lookup needs no allocation;
    /// hashed, as `facts` sorts what it writes).
    pub by_rule: BTreeMap<String, HashMap<String, SignalState>>,
    /// (rule, subject) touched since the last `drain_changes`.
    pub changed: BTreeSet<(String, String)>,
}

impl Signals {
    pub fn get(&self, rule: &str, subject: &str) -> Option<&SignalState> {
        self.by_rule.get(rule)?.get(subject)
    }

    /// Every (rule, subject, state), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &SignalState)> {
        self.by_rule.iter().flat_map(|(rule, m)| m.iter().map(move |(s, st)| (rule.as_str(), s.as_str(), st)))
    }

    /// Sets a state loaded from the facts (nothing to write back).
    pub fn load(&mut self, rule: &str, subject: &str, state: SignalState) {
        self.by_rule.entry(rule.to_string()).or_default().insert(subject.to_string(), state);
    }

    /// Sets a state and records the row for the next drain.
    pub fn set(&mut self, rule: &str, subject: &str, state: SignalState) {
        self.load(rule, subject, state);
        self.changed.insert((rule.to_string(), subject.to_string()));
    }

    /// The change `level` makes to `rule` on `subject` at `ts`: raised on a breach
    /// once the cooldown since the last raise has passed, cleared on a clear. The
    /// common case (no change) allocates nothing.
    pub fn transition(
        &self,
        rule: &str,
        subject: &str,
        level: Level,
        ts: Timestamp,
        cooldown_secs: i64,
    ) -> Option<AlertState> {
        let state = self.get(rule, subject);
        match (state.is_some_and(|s| s.raised), level) {
            (false, Level::Breach) => {
                let last = state.and_then(|s| s.last_raised_at);
                let cooled = last.is_none_or(|t| ts >= t.plus_seconds(cooldown_secs));
                cooled.then_some(AlertState::Raised)
            }
            (true, Level::Clear) => Some(AlertState::Cleared),
            _ => None,
        }
    }

    /// Records a change `transition` decided: one alert per recipient account
    /// (`(account_id, user_id)`), and the rule's new state on the subject.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        rule: Rule,
        subject: &str,
        state: AlertState,
        cause: Cause,
        recipients: Vec<(String, String)>,
        mut finding: Finding,
        out: &mut Vec<Alert>,
    ) {
        let Rule { kind, name: rule } = rule;
        if state == AlertState::Cleared {
            // The finding reads as a breach; a reader of the message alone must see it ended.
            finding.message = format!("cleared: {}", finding.message);
        }
        let mut first_id = None;
        for (account_id, user_id) in recipients {
            let id = alert_id(cause.at, rule, subject, &account_id);
            first_id.get_or_insert_with(|| id.clone());
            out.push(Alert {
                alert_id: id,
                kind,
                state,
                priority: finding.priority,
                account_id,
                user_id,
                ts: cause.ts,
                caused_by: cause.at,
                rule: rule.to_string(),
                value: finding.value,
                threshold: finding.threshold,
                message: finding.message.clone(),
                details: finding.details.clone(),
            });
        }
        let next = match state {
            AlertState::Raised => {
                SignalState { raised: true, last_raised_at: Some(cause.ts), raised_alert_id: first_id }
            }
            AlertState::Cleared => {
                SignalState { raised: false, ..self.get(rule, subject).cloned().unwrap_or_default() }
            }
        };
        self.set(rule, subject, next);
    }
}
