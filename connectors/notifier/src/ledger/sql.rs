//! One set of statements for both databases the ledger runs on, through sqlx's
//! `Any` driver. Placeholders are numbered (`$1`, `$2`), which PostgreSQL needs and
//! SQLite reads too; sqlx's `QueryBuilder` writes `?` under `Any`, so bulk
//! statements are built here, numbered for PostgreSQL and `?` for SQLite (sqlx
//! binds a named SQLite parameter by looking its name up, which costs time linear
//! in the statement's parameters: quadratic over a 4,000-value `INSERT`). `Any` refuses SQLite's declared BOOLEAN columns, so a
//! statement reads one as `CAST(column AS INTEGER)`; a boolean expression comes
//! back from SQLite as an integer and from PostgreSQL as a boolean: [`flag`] reads
//! either.

use std::fmt::Write as _;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, AnyConnection, Arguments, AssertSqlSafe, Encode, Row, Type};

/// The database behind a ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The database behind a connection.
    pub(crate) fn of(conn: &AnyConnection) -> Backend {
        if conn.backend_name() == "PostgreSQL" {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// A statement built in pieces, writing a placeholder as each value is bound.
pub(crate) struct Statement {
    sql: String,
    args: AnyArguments,
    bound: usize,
    numbered: bool,
}

impl Statement {
    pub fn new(backend: Backend, sql: &str) -> Self {
        Statement {
            sql: sql.to_string(),
            args: AnyArguments::default(),
            bound: 0,
            numbered: backend == Backend::Postgres,
        }
    }

    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Writes the next placeholder and binds `value` to it.
    pub fn bind<'t, T: Encode<'t, Any> + Type<Any>>(&mut self, value: T) -> &mut Self {
        self.bound += 1;
        if self.numbered {
            let _ = write!(self.sql, "${}", self.bound);
        } else {
            self.sql.push('?');
        }
        // Encoding into `Any` copies the value: it fails for no type the ledger binds.
        self.args.add(value).expect("a value the Any driver encodes");
        self
    }

    /// `VALUES (..), (..)`: one row per item, its columns bound by `row`.
    pub fn values<I, F>(&mut self, items: I, mut row: F) -> &mut Self
    where
        I: IntoIterator,
        F: FnMut(&mut Columns<'_>, I::Item),
    {
        self.sql.push_str("VALUES ");
        for (i, item) in items.into_iter().enumerate() {
            self.sql.push_str(if i == 0 { "(" } else { ", (" });
            row(&mut Columns { statement: self, first: true }, item);
            self.sql.push(')');
        }
        self
    }

    pub fn query(self) -> sqlx::query::Query<'static, Any, AnyArguments> {
        sqlx::query_with(AssertSqlSafe(self.sql), self.args)
    }
}

/// The columns of one row of [`Statement::values`].
pub(crate) struct Columns<'a> {
    statement: &'a mut Statement,
    first: bool,
}

impl Columns<'_> {
    pub fn bind<'t, T: Encode<'t, Any> + Type<Any>>(&mut self, value: T) -> &mut Self {
        if !std::mem::take(&mut self.first) {
            self.statement.sql.push_str(", ");
        }
        self.statement.bind(value);
        self
    }
}

/// A boolean read as an integer (a cast column) or as a boolean (an expression on
/// PostgreSQL).
pub(crate) fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    match row.try_get::<bool, _>(column) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<i64, _>(column)? != 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_in_the_order_values_are_bound() {
        let build = |backend| {
            let mut s = Statement::new(backend, "INSERT INTO t (a, b) ");
            s.values([(1_i64, "x"), (2, "y")], |row, (a, b)| {
                row.bind(a).bind(b);
            });
            s.push(" ON CONFLICT DO NOTHING WHERE c = ").bind(true);
            assert_eq!(s.args.len(), 5);
            s.sql
        };
        assert_eq!(
            build(Backend::Postgres),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING WHERE c = $5"
        );
        assert_eq!(
            build(Backend::Sqlite),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING WHERE c = ?"
        );
    }
}
