//! Realized gains, summed per tax year and term. A wash sale does not change what a
//! sale realized; it disallows part of its loss, which is kept beside the raw
//! figures (Form 8949 reports proceeds, basis and the "W" adjustment the same way),
//! so the recognized gain is `proceeds - basis + disallowed`.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::lots::Closed;
use super::term::Term;

/// Sums over closed lot pieces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    pub proceeds: Decimal,
    pub basis: Decimal,
    /// Losses disallowed by wash sales (positive amounts).
    pub disallowed: Decimal,
}

impl Figures {
    /// Proceeds minus basis, before wash sales.
    pub fn raw_gain(&self) -> Decimal {
        self.proceeds - self.basis
    }

    /// The gain (or, negative, the loss) that counts for tax: raw gain plus the
    /// disallowed losses.
    pub fn gain(&self) -> Decimal {
        self.raw_gain() + self.disallowed
    }
}

/// One tax year's figures, split by term.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct YearFigures {
    pub short: Figures,
    pub long: Figures,
}

impl YearFigures {
    pub fn term(&self, term: Term) -> &Figures {
        match term {
            Term::Short => &self.short,
            Term::Long => &self.long,
        }
    }

    fn term_mut(&mut self, term: Term) -> &mut Figures {
        match term {
            Term::Short => &mut self.short,
            Term::Long => &mut self.long,
        }
    }
}

/// Realized figures by tax year.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Realized {
    years: BTreeMap<i32, YearFigures>,
}

impl Realized {
    /// Books one closed piece in its tax year and term.
    pub fn book(&mut self, closed: &Closed) {
        let figures = self.years.entry(closed.tax_year()).or_default().term_mut(closed.term);
        figures.proceeds += closed.proceeds;
        figures.basis += closed.basis;
    }

    /// Books a loss disallowed by a wash sale in the year and term of the loss sale.
    pub fn disallow(&mut self, year: i32, term: Term, amount: Decimal) {
        self.years.entry(year).or_default().term_mut(term).disallowed += amount;
    }

    /// The year's figures (zero when nothing was sold that year).
    pub fn year(&self, year: i32) -> YearFigures {
        self.years.get(&year).copied().unwrap_or_default()
    }

    /// The recognized gain of one year and term.
    pub fn gain(&self, year: i32, term: Term) -> Decimal {
        self.year(year).term(term).gain()
    }

    /// Years with sales, in order.
    pub fn years(&self) -> impl Iterator<Item = (i32, &YearFigures)> {
        self.years.iter().map(|(y, f)| (*y, f))
    }
}
