//! The read path: views answered from what is committed (a consistent store
//! snapshot), never from the writer's state. A query does not wait for a batch in
//! flight, and never sees one before its commit (invariant 1), because the rows it
//! reads are written in the batch's one atomic commit.

use riskstream_projections::{AccountView, FactSource, RuleConfig, ShardState, Table};

use crate::store::{CommittedRead, ProjectionStore, StoreError};

/// One shard of a committed read, as the projections read rows.
struct ShardRows<'a> {
    read: &'a dyn CommittedRead,
    shard: u32,
}

impl FactSource for ShardRows<'_> {
    type Error = StoreError;

    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read.row(self.shard, table, key)
    }

    fn scan(&mut self, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.read.rows_with_prefix(self.shard, table, prefix)
    }
}

/// Whether the last commit holds the account, in any shard.
pub fn account_exists<S: ProjectionStore + ?Sized>(
    store: &S,
    shards: u32,
    account_id: &str,
) -> Result<bool, StoreError> {
    let read = store.committed();
    for shard in 0..shards {
        if read.row(shard, Table::Accounts, account_id)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The account's view as of the last commit, with its shard and the seq it
/// reflects, from the first shard that holds it.
pub fn account_view<S: ProjectionStore + ?Sized>(
    store: &S,
    shards: u32,
    rules: &RuleConfig,
    account_id: &str,
) -> Result<Option<(u32, u64, AccountView)>, StoreError> {
    let read = store.committed();
    for shard in 0..shards {
        let mut rows = ShardRows { read: read.as_ref(), shard };
        if let Some(view) = ShardState::account_view_from(shard, rules, account_id, &mut rows)? {
            return Ok(Some((shard, read.head(shard)?.seq, view)));
        }
    }
    Ok(None)
}
