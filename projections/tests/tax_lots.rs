//! Tax lots of one account: FIFO, HIFO and specific identification, partial lots,
//! exact fee and basis allocation, the one-year boundary (IRS Publication 550,
//! "Holding Period"), realized figures per tax year and term, unrealized gains, and
//! a seeded property: basis is conserved and every gain is proceeds minus basis.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use riskstream_projections::tax::{Closed, LotBook, TaxBook, TaxError, Term};
use riskstream_schemas::{LotMethod, Side, TaxStatus, Timestamp, TradeExecuted};
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn at(date: &str) -> Timestamp {
    Timestamp::parse(&format!("{date}T15:00:00Z")).unwrap()
}

fn trade(id: &str, side: Side, quantity: &str, price: &str, fees: &str) -> TradeExecuted {
    TradeExecuted {
        trade_id: id.into(),
        account_id: "acc".into(),
        user_id: "u".into(),
        symbol: "XYZ".into(),
        side,
        quantity: d(quantity),
        price: d(price),
        fees: d(fees),
        lot_method: None,
        lot_ids: Vec::new(),
    }
}

fn buy(book: &mut LotBook, id: &str, date: &str, quantity: &str, price: &str) {
    book.buy(&trade(id, Side::Buy, quantity, price, "0"), at(date)).unwrap();
}

fn sell_with(method: LotMethod, ids: &[&str], quantity: &str, price: &str) -> TradeExecuted {
    let lot_ids = ids.iter().map(|s| s.to_string()).collect();
    TradeExecuted { lot_method: Some(method), lot_ids, ..trade("s", Side::Sell, quantity, price, "0") }
}

/// Three lots: 10 @ 10 (Jan), 10 @ 30 (Feb), 10 @ 20 (Mar).
fn three_lots() -> LotBook {
    let mut book = LotBook::new("acc");
    buy(&mut book, "b1", "2025-01-10", "10", "10");
    buy(&mut book, "b2", "2025-02-10", "10", "30");
    buy(&mut book, "b3", "2025-03-10", "10", "20");
    book
}

fn summary(closed: &[Closed]) -> Vec<(String, Decimal, Decimal)> {
    closed.iter().map(|c| (c.lot_id.clone(), c.quantity, c.basis)).collect()
}

#[test]
fn fifo_closes_oldest_first_and_leaves_a_partial_lot() {
    let mut book = three_lots();
    let closed = book.sell(&trade("s", Side::Sell, "15", "25", "0"), at("2025-06-01")).unwrap();
    assert_eq!(summary(&closed), vec![("b1".into(), d("10"), d("100")), ("b2".into(), d("5"), d("150"))]);
    assert_eq!(closed[1].gain, d("-25")); // 5 x 25 - 150
    let left: Vec<_> = book.lots("XYZ").iter().map(|l| (l.id(), l.quantity, l.basis)).collect();
    assert_eq!(left, vec![("b2".into(), d("5"), d("150")), ("b3".into(), d("10"), d("200"))]);
}

#[test]
fn fifo_is_the_default_and_hifo_takes_the_dearest_shares() {
    let mut book = three_lots();
    let closed = book.sell(&sell_with(LotMethod::Hifo, &[], "15", "25"), at("2025-06-01")).unwrap();
    assert_eq!(summary(&closed), vec![("b2".into(), d("10"), d("300")), ("b3".into(), d("5"), d("100"))]);
}

#[test]
fn hifo_ties_go_in_acquisition_order() {
    let mut book = LotBook::new("acc");
    buy(&mut book, "late", "2025-02-01", "1", "10");
    buy(&mut book, "early", "2025-01-01", "1", "10");
    let closed = book.sell(&sell_with(LotMethod::Hifo, &[], "1", "12"), at("2025-06-01")).unwrap();
    assert_eq!(closed[0].lot_id, "early");
}

#[test]
fn specific_identification_follows_the_named_order() {
    let mut book = three_lots();
    let closed = book.sell(&sell_with(LotMethod::Specific, &["b3", "b1"], "12", "25"), at("2025-06-01")).unwrap();
    assert_eq!(summary(&closed), vec![("b3".into(), d("10"), d("200")), ("b1".into(), d("2"), d("20"))]);
}

#[test]
fn specific_identification_errors_name_the_lot() {
    let mut book = three_lots();
    let unknown = book.sell(&sell_with(LotMethod::Specific, &["b9"], "1", "25"), at("2025-06-01")).unwrap_err();
    assert_eq!(unknown.to_string(), "trade `s`: lot `b9` is not an open XYZ lot of account `acc`");
    assert_eq!(unknown.field(), "lot_ids");
    let small = book.sell(&sell_with(LotMethod::Specific, &["b1", "b2"], "25", "25"), at("2025-06-01")).unwrap_err();
    assert_eq!(small.to_string(), "trade `s`: selling 25 XYZ but the named lots (`b1`, `b2`) hold 20");
    let twice = book.sell(&sell_with(LotMethod::Specific, &["b1", "b1"], "5", "25"), at("2025-06-01")).unwrap_err();
    assert!(matches!(twice, TaxError::LotNamedTwice { ref lot_id, .. } if lot_id == "b1"));
    let missing = book.sell(&sell_with(LotMethod::Specific, &[], "5", "25"), at("2025-06-01")).unwrap_err();
    assert!(matches!(missing, TaxError::MissingLotIds { .. }));
    assert_eq!(book, three_lots(), "a rejected sell changes nothing");
}

#[test]
fn overselling_is_rejected_with_the_holding() {
    let mut book = three_lots();
    let err = book.sell(&trade("s", Side::Sell, "31", "25", "0"), at("2025-06-01")).unwrap_err();
    assert_eq!(err.to_string(), "trade `s`: selling 31 XYZ but account `acc` holds 30 in open lots");
}

#[test]
fn partial_lots_split_basis_exactly() {
    let mut book = LotBook::new("acc");
    // 3 shares for 100 (fees included): a third is 33.3333333333 at 10 decimals,
    // the lot keeps the remainder 66.6666666667.
    book.buy(&trade("b", Side::Buy, "3", "33", "1"), at("2025-01-02")).unwrap();
    let closed = book.sell(&trade("s", Side::Sell, "1", "40", "0"), at("2025-02-02")).unwrap();
    assert_eq!(closed[0].basis, d("33.3333333333"));
    assert_eq!(book.lots("XYZ")[0].basis, d("66.6666666667"));
    let rest = book.sell(&trade("s2", Side::Sell, "2", "40", "0"), at("2025-02-03")).unwrap();
    assert_eq!(rest[0].basis, d("66.6666666667"));
    assert!(book.lots("XYZ").is_empty());
}

#[test]
fn sell_fees_are_allocated_pro_rata_and_sum_exactly() {
    let mut book = LotBook::new("acc");
    for (id, date) in [("b1", "2025-01-02"), ("b2", "2025-01-03"), ("b3", "2025-01-04")] {
        buy(&mut book, id, date, "1", "10");
    }
    let closed = book.sell(&trade("s", Side::Sell, "3", "12", "10"), at("2025-02-02")).unwrap();
    let fees: Vec<Decimal> = closed.iter().map(|c| c.fees).collect();
    assert_eq!(fees, vec![d("3.3333333333"), d("3.3333333333"), d("3.3333333334")]);
    assert_eq!(fees.iter().sum::<Decimal>(), d("10"));
    let proceeds: Decimal = closed.iter().map(|c| c.proceeds).sum();
    assert_eq!(proceeds, d("26")); // 3 x 12 - 10
}

#[test]
fn buy_fees_are_part_of_the_basis() {
    let mut book = LotBook::new("acc");
    book.buy(&trade("b", Side::Buy, "100", "10", "4.95"), at("2025-01-02")).unwrap();
    assert_eq!(book.lots("XYZ")[0].basis, d("1004.95"));
}

/// IRS Publication 550, "Holding Period": count from the day after acquisition; more
/// than one year is long term. Acquired 2025-03-10: short on 2026-03-09 and
/// 2026-03-10, long from 2026-03-11.
#[test]
fn one_year_boundary() {
    for (sold, want) in [("2026-03-09", Term::Short), ("2026-03-10", Term::Short), ("2026-03-11", Term::Long)] {
        let mut book = LotBook::new("acc");
        buy(&mut book, "b", "2025-03-10", "1", "10");
        let closed = book.sell(&trade("s", Side::Sell, "1", "11", "0"), at(sold)).unwrap();
        assert_eq!(closed[0].term, want, "sold {sold}");
    }
}

#[test]
fn realized_is_summed_per_tax_year_and_term() {
    let mut book = LotBook::new("acc");
    buy(&mut book, "old", "2024-01-02", "10", "10");
    buy(&mut book, "new", "2025-06-02", "10", "20");
    // 2025: 10 old shares long term at 15 (+50); 4 new shares short term at 15 (-20),
    // then 4 more at 18 (-8).
    book.sell(&trade("s1", Side::Sell, "14", "15", "0"), at("2025-07-01")).unwrap();
    let s2 = TradeExecuted { lot_method: Some(LotMethod::Fifo), ..trade("s2", Side::Sell, "4", "18", "0") };
    book.sell(&s2, at("2025-07-02")).unwrap();
    // 2026: the last 2 new shares short term at 25 (+10) less 1 of fees.
    book.sell(&trade("s3", Side::Sell, "2", "25", "1"), at("2026-01-05")).unwrap();
    let r = book.realized();
    assert_eq!(r.gain(2025, Term::Long), d("50"));
    assert_eq!(r.gain(2025, Term::Short), d("-28"));
    assert_eq!(r.gain(2026, Term::Short), d("9"));
    assert_eq!(r.year(2026).short.proceeds, d("49"));
    assert_eq!(r.gain(2024, Term::Short), Decimal::ZERO);
}

/// The user's figures add up the taxable accounts per tax year and term; an IRA's
/// sales are kept in its own book only.
#[test]
fn realized_per_user_sums_taxable_accounts() {
    let mut user = TaxBook::new("u");
    for (id, status) in [("a", TaxStatus::Taxable), ("b", TaxStatus::Taxable), ("ira", TaxStatus::TraditionalIra)] {
        user.open_account(id, status);
    }
    let mut go = |id: &str, account: &str, side, quantity: &str, price: &str, date: &str| {
        let t = TradeExecuted { account_id: account.into(), ..trade(id, side, quantity, price, "0") };
        user.trade(&t, at(date), "XYZ").unwrap();
    };
    go("a1", "a", Side::Buy, "10", "10", "2024-01-02");
    go("b1", "b", Side::Buy, "10", "20", "2025-02-03");
    go("i1", "ira", Side::Buy, "10", "10", "2025-02-03");
    go("a2", "a", Side::Sell, "10", "15", "2025-03-03"); // long +50
    go("b2", "b", Side::Sell, "5", "25", "2025-04-01"); // short +25
    go("i2", "ira", Side::Sell, "10", "30", "2025-04-01"); // IRA: +200, not the user's
    go("b3", "b", Side::Sell, "5", "30", "2026-02-04"); // 2026 long +50
    user.settle_all();
    let r = user.realized();
    assert_eq!((r.gain(2025, Term::Long), r.gain(2025, Term::Short)), (d("50"), d("25")));
    assert_eq!((r.gain(2026, Term::Long), r.gain(2026, Term::Short)), (d("50"), d("0")));
    assert_eq!(user.account("ira").unwrap().lots.realized().gain(2025, Term::Short), d("200"));
    assert_eq!(user.account("b").unwrap().lots.realized().gain(2026, Term::Long), d("50"));
}

#[test]
fn trades_of_unknown_accounts_are_rejected() {
    let mut user = TaxBook::new("u");
    assert!(user.open_account("a", TaxStatus::Taxable));
    assert!(!user.open_account("a", TaxStatus::RothIra), "opening twice changes nothing");
    let t = TradeExecuted { account_id: "zz".into(), ..trade("t1", Side::Buy, "1", "1", "0") };
    let err = user.trade(&t, at("2025-01-02"), "XYZ").unwrap_err();
    assert_eq!(err.to_string(), "trade `t1`: account `zz` has no tax lots (open it first)");
    assert_eq!(err.field(), "account_id");
    assert_eq!(user.account("a").unwrap().status, TaxStatus::Taxable);
}

#[test]
fn unrealized_values_each_lot_with_its_term() {
    let book = three_lots();
    let lots = book.unrealized("XYZ", d("25"), at("2026-02-10"));
    let got: Vec<_> = lots.iter().map(|u| (u.lot_id.as_str(), u.gain, u.term)).collect();
    assert_eq!(got, vec![("b1", d("150"), Term::Long), ("b2", d("-50"), Term::Short), ("b3", d("50"), Term::Short)]);
}

/// A buy and a sell with one timestamp close the same lots in either delivery
/// order: lots acquired at the sell's own time are taken last.
#[test]
fn equal_timestamp_buy_is_taken_last() {
    let ts = at("2025-06-01");
    let (b, s) = (trade("b9", Side::Buy, "5", "99", "0"), sell_with(LotMethod::Hifo, &[], "5", "25"));
    let mut first = three_lots();
    first.buy(&b, ts).unwrap();
    let one = first.sell(&s, ts).unwrap();
    let mut second = three_lots();
    let two = second.sell(&s, ts).unwrap();
    second.buy(&b, ts).unwrap();
    assert_eq!(one, two);
    assert_eq!(first, second);
}

#[test]
fn lot_book_round_trips_through_json() {
    let mut book = three_lots();
    book.sell(&trade("s", Side::Sell, "15", "25", "0.3"), at("2025-06-01")).unwrap();
    let json = serde_json::to_string(&book).unwrap();
    assert_eq!(serde_json::from_str::<LotBook>(&json).unwrap(), book);
}

// ---- property: basis is conserved, gain = proceeds - basis -------------------------

#[derive(Debug, Clone)]
enum Step {
    Buy { quantity: i64, cents: i64, fee_cents: i64 },
    Sell { part: u8, cents: i64, fee_cents: i64, method: u8, pick: Vec<u8> },
}

fn step() -> impl Strategy<Value = (Step, i64)> {
    let buy = (1..500i64, 1..50_000i64, 0..1_000i64).prop_map(|(quantity, cents, fee_cents)| Step::Buy {
        quantity,
        cents,
        fee_cents,
    });
    let sell = (1..=100u8, 1..50_000i64, 0..1_000i64, 0..3u8, proptest::collection::vec(any::<u8>(), 1..4))
        .prop_map(|(part, cents, fee_cents, method, pick)| Step::Sell { part, cents, fee_cents, method, pick });
    (prop_oneof![3 => buy, 2 => sell], 0..200i64)
}

/// Hours from the start; fractional shares (thirds) to exercise rounding.
fn run(steps: &[(Step, i64)]) -> Result<(), TestCaseError> {
    let mut book = LotBook::new("acc");
    let (mut cost, mut closed_basis, mut hours) = (Decimal::ZERO, Decimal::ZERO, 0i64);
    let mut closed: Vec<Closed> = Vec::new();
    for (i, (step, gap)) in steps.iter().enumerate() {
        hours += gap;
        let ts = Timestamp(1_735_689_600_000_000 + hours * 3_600_000_000);
        let id = format!("t{i}");
        match step {
            Step::Buy { quantity, cents, fee_cents } => {
                let q = Decimal::from(*quantity) / Decimal::from(3);
                let q = q.round_dp(10);
                let t = TradeExecuted {
                    quantity: q,
                    price: Decimal::new(*cents, 2),
                    fees: Decimal::new(*fee_cents, 2),
                    ..trade(&id, Side::Buy, "1", "1", "0")
                };
                cost += t.quantity * t.price + t.fees;
                book.buy(&t, ts).unwrap();
            }
            Step::Sell { part, cents, fee_cents, method, pick } => {
                let held = book.quantity("XYZ");
                let q = (held * Decimal::from(*part) / Decimal::from(100)).round_dp(10);
                if q.is_zero() {
                    continue;
                }
                let lots = book.lots("XYZ");
                let (lot_method, lot_ids) = match method {
                    0 => (None, Vec::new()),
                    1 => (Some(LotMethod::Hifo), Vec::new()),
                    _ => {
                        let mut ids: Vec<String> = pick.iter().map(|p| lots[*p as usize % lots.len()].id()).collect();
                        ids.dedup();
                        ids.sort();
                        ids.dedup();
                        (Some(LotMethod::Specific), ids)
                    }
                };
                let t = TradeExecuted {
                    quantity: q,
                    price: Decimal::new(*cents, 2),
                    fees: Decimal::new(*fee_cents, 2),
                    lot_method,
                    lot_ids,
                    ..trade(&id, Side::Sell, "1", "1", "0")
                };
                let before = book.clone();
                match book.sell(&t, ts) {
                    Ok(pieces) => {
                        let fees: Decimal = pieces.iter().map(|c| c.fees).sum();
                        prop_assert_eq!(fees, t.fees);
                        let sold: Decimal = pieces.iter().map(|c| c.quantity).sum();
                        prop_assert_eq!(sold, q);
                        closed_basis += pieces.iter().map(|c| c.basis).sum::<Decimal>();
                        closed.extend(pieces);
                    }
                    Err(TaxError::NamedLotsTooSmall { .. }) => prop_assert_eq!(&book, &before),
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                }
            }
        }
        let open: Decimal = book.open_lots().map(|l| l.basis).sum();
        prop_assert_eq!(open + closed_basis, cost);
    }
    for c in &closed {
        prop_assert_eq!(c.gain, c.proceeds - c.basis);
    }
    let realized: Decimal = book.realized().years().map(|(_, y)| y.short.gain() + y.long.gain()).sum();
    prop_assert_eq!(realized, closed.iter().map(|c| c.gain).sum::<Decimal>());
    Ok(())
}

#[test]
fn basis_is_conserved_for_every_method_and_sequence() {
    let config = Config { cases: 256, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]));
    runner.run(&proptest::collection::vec(step(), 1..60), |steps| run(&steps)).unwrap();
}
