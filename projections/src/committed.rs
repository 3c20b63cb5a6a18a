//! The read path's half of the projections: one account's view rebuilt from its
//! committed rows alone (the account, its positions, cash and targets, and the
//! securities and last prices they name), so a query reads a consistent store
//! snapshot instead of waiting for the writer's state. The view is the same
//! function the live state answers with, over a shard holding just this account.

use std::collections::BTreeSet;

use riskstream_schemas::Rejection;

use crate::facts::{Table, SEP};
use crate::state::ShardState;
use crate::{AccountView, RuleConfig};

/// Rows of one shard as committed (a store snapshot), read by key or by key prefix.
pub trait FactSource {
    type Error: From<Rejection>;
    /// The row `key` of `table`, when there is one.
    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Every row of `table` whose key starts with `prefix`, in key order.
    fn scan(&mut self, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, Self::Error>;
}

impl ShardState {
    /// The account's view from `rows`; `None` when the shard holds no such account.
    /// Equal to `incremental_view` on the live shard at the same commit.
    pub fn account_view_from<F: FactSource>(
        shard: u32,
        rules: &RuleConfig,
        account_id: &str,
        rows: &mut F,
    ) -> Result<Option<AccountView>, F::Error> {
        let Some(account) = rows.get(Table::Accounts, account_id)? else { return Ok(None) };
        let mut state = ShardState::new(shard, rules.clone());
        state.load_fact(Table::Accounts, account_id, &account)?;
        let mut symbols = BTreeSet::new();
        for (key, value) in rows.scan(Table::Positions, &format!("{account_id}{SEP}"))? {
            state.load_fact(Table::Positions, &key, &value)?;
            symbols.extend(key.split_once(SEP).map(|(_, s)| s.to_string()));
        }
        for table in [Table::Cash, Table::Targets] {
            if let Some(value) = rows.get(table, account_id)? {
                state.load_fact(table, account_id, &value)?;
            }
        }
        if let Some(t) = state.book.accounts.get(account_id).and_then(|a| a.targets.as_ref()) {
            symbols.extend(t.weights.keys().map(|s| s.to_string()));
        }
        for symbol in &symbols {
            for table in [Table::Securities, Table::Prices] {
                if let Some(value) = rows.get(table, symbol)? {
                    state.load_fact(table, symbol, &value)?;
                }
            }
        }
        state.rebuild_derived();
        Ok(state.incremental_view(account_id))
    }
}
