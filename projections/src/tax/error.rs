//! What can go wrong when a trade meets the tax lots. Every case is bad input: the
//! trade names an account, lot or quantity the lots do not have. The caller rejects
//! the trade (dead-letter, tell the sender); nothing was changed.

use rust_decimal::Decimal;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxError {
    #[error("trade `{trade_id}`: account `{account_id}` has no tax lots (open it first)")]
    UnknownAccount { trade_id: String, account_id: String },
    #[error("trade `{trade_id}`: account `{account_id}` already holds an open lot from this trade")]
    DuplicateLot { trade_id: String, account_id: String },
    #[error("trade `{trade_id}`: field `{field}` must be positive, got {value}")]
    NotPositive { trade_id: String, field: &'static str, value: Decimal },
    #[error("trade `{trade_id}`: field `fees` must not be negative, got {value}")]
    NegativeFees { trade_id: String, value: Decimal },
    #[error("trade `{trade_id}`: selling {quantity} {symbol} but account `{account_id}` holds {held} in open lots")]
    InsufficientLots { trade_id: String, account_id: String, symbol: String, quantity: Decimal, held: Decimal },
    #[error("trade `{trade_id}`: lot `{lot_id}` is not an open {symbol} lot of account `{account_id}`")]
    UnknownLot { trade_id: String, account_id: String, symbol: String, lot_id: String },
    #[error("trade `{trade_id}`: lot `{lot_id}` is named twice in `lot_ids`")]
    LotNamedTwice { trade_id: String, lot_id: String },
    #[error("trade `{trade_id}`: selling {quantity} {symbol} but the named lots ({lot_ids}) hold {held}")]
    NamedLotsTooSmall { trade_id: String, symbol: String, quantity: Decimal, held: Decimal, lot_ids: String },
    #[error("trade `{trade_id}`: lot_method `specific` needs `lot_ids`")]
    MissingLotIds { trade_id: String },
    #[error("trade `{trade_id}`: `lot_ids` are only allowed with lot_method `specific`")]
    UnexpectedLotIds { trade_id: String },
}

impl TaxError {
    /// The field of `TradeExecuted` to blame, for a `Rejection`.
    pub fn field(&self) -> &'static str {
        match self {
            TaxError::UnknownAccount { .. } => "account_id",
            TaxError::DuplicateLot { .. } => "trade_id",
            TaxError::NotPositive { field, .. } => field,
            TaxError::NegativeFees { .. } => "fees",
            TaxError::InsufficientLots { .. } => "quantity",
            TaxError::UnknownLot { .. }
            | TaxError::LotNamedTwice { .. }
            | TaxError::NamedLotsTooSmall { .. }
            | TaxError::MissingLotIds { .. }
            | TaxError::UnexpectedLotIds { .. } => "lot_ids",
        }
    }
}
