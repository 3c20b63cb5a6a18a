//! The tax routes: lots, realized gains, harvest candidates, wash sales and the
//! pre-trade check (docs/TAX.md).

use super::*;

/// The account's open tax lots at the last prices.
pub(super) async fn get_account_lots<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(id): Path<String>,
    Query(q): Query<AccountQuery>,
) -> Result<Json<Value>, ApiError> {
    let key = id.clone();
    let found = app.on_engine(move |e| e.find_view(|_| true, |s| s.lots_view(&key).map(to_json))).await?;
    answer_for_account(&app, &id, found, &["lots"], q, None).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct YearQuery {
    /// A tax year (UTC calendar year of the sale); all years when absent.
    year: Option<i32>,
    local: Option<bool>,
    user_id: Option<String>,
}

impl YearQuery {
    fn split(self) -> (Option<i32>, AccountQuery) {
        (self.year, AccountQuery { local: self.local, user_id: self.user_id, as_of: None })
    }
}

/// Realized gains per tax year and term: the account's and its user's taxable total.
pub(super) async fn get_account_realized<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(id): Path<String>,
    Query(q): Query<YearQuery>,
) -> Result<Json<Value>, ApiError> {
    let (year, q) = q.split();
    let key = id.clone();
    let found = app.on_engine(move |e| e.find_view(|_| true, |s| s.realized_view(&key, year).map(to_json))).await?;
    answer_for_account(&app, &id, found, &["realized"], q, year).await
}

/// Tax-loss harvesting candidates now, with blocked lots and replacements.
pub(super) async fn get_account_harvest<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(id): Path<String>,
    Query(q): Query<AccountQuery>,
) -> Result<Json<Value>, ApiError> {
    let key = id.clone();
    let found = app.on_engine(move |e| e.find_view(|_| true, |s| s.harvest_view(&key).map(to_json))).await?;
    answer_for_account(&app, &id, found, &["harvest"], q, None).await
}

/// A user's wash sales (of the loss sale's tax year when given).
pub(super) async fn get_wash_sales<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(id): Path<String>,
    Query(q): Query<YearQuery>,
) -> Result<Json<Value>, ApiError> {
    let served = served_shards(&app);
    let (key, year) = (id.clone(), q.year);
    let found = app.on_engine(move |e| e.find_view(served, |s| s.wash_sales_view(&key, year).map(to_json))).await?;
    let (shard, seq, view) = found.ok_or_else(|| ApiError::NotFound(format!("no user `{id}` on this instance")))?;
    Ok(Json(stamped(view, shard, seq)))
}

/// The pre-trade check: a `TradeExecuted` (with or without `type` and `ts`; the
/// shard's latest event time when `ts` is absent) against the account's state now.
/// Nothing is stored or changed.
pub(super) async fn post_what_if<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let mut value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not a JSON object: {e}")))?;
    let Some(fields) = value.as_object_mut() else {
        return Err(ApiError::BadRequest("the body must be a JSON object (a TradeExecuted)".into()));
    };
    match fields.get("type").and_then(Value::as_str) {
        None => {
            fields.insert("type".into(), json!("TradeExecuted"));
        }
        Some("TradeExecuted") => {}
        Some(other) => {
            return Err(ApiError::BadRequest(format!("field `type`: a what-if takes a TradeExecuted, not `{other}`")))
        }
    }
    let at = fields.contains_key("ts");
    if !at {
        fields.insert("ts".into(), json!("1970-01-01T00:00:00Z"));
    }
    fields.entry("account_id").or_insert_with(|| json!(id));
    let event = json::event_from_value(value).map_err(|r| ApiError::BadRequest(r.to_string()))?;
    let riskstream_schemas::EventBody::TradeExecuted(trade) = &event.body else {
        return Err(ApiError::BadRequest("a what-if takes a TradeExecuted".into()));
    };
    if trade.account_id != id {
        return Err(ApiError::BadRequest(format!(
            "field `account_id`: the trade is for `{}` but the path names `{id}`",
            trade.account_id
        )));
    }
    let ts = at.then_some(event.ts);
    let served = served_shards(&app);
    // Ok(None) (not this shard's account) moves on to the next shard.
    let trade = trade.clone();
    let found = app
        .on_engine(move |e| e.find_view(served, |s| s.what_if(&trade, ts).transpose().map(|v| v.map(to_json))))
        .await?;
    let (shard, seq, view) = found.ok_or_else(|| ApiError::NotFound(format!("no account `{id}` on this instance")))?;
    let view = view.map_err(|r| ApiError::BadRequest(r.to_string()))?;
    Ok(Json(stamped(view, shard, seq)))
}
