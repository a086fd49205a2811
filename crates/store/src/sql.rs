//! Statements built at run time (multi-row inserts, lists, optional filters), for both
//! engines. sqlx's own `QueryBuilder` writes `?` placeholders for the `Any` driver, which
//! PostgreSQL does not read; this one has the same calls and writes `$1, $2, …`, which
//! both engines read. SQLite, though, looks each `$n` up among the names it has seen, so
//! a statement of thousands of values costs it quadratic time to prepare: builders made
//! [`QueryBuilder::with`] the engine write SQLite's plain `?` instead.

use crate::db::Backend;
use sqlx::any::AnyArguments;
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{Any, Arguments, Encode, FromRow, Type};
use std::fmt::Write;

pub(crate) struct QueryBuilder<'args> {
    text: String,
    arguments: AnyArguments<'args>,
    count: usize,
    /// Placeholders are SQLite's positional `?`.
    positional: bool,
    /// Values are written into the text as PostgreSQL literals (see [`Literal`]).
    literal: bool,
    /// A value that no literal can carry was pushed (see [`QueryBuilder::check`]).
    unwritable: bool,
}

impl<'args> QueryBuilder<'args> {
    /// A builder whose statement either engine reads.
    pub fn new(init: impl Into<String>) -> Self {
        Self {
            text: init.into(),
            arguments: AnyArguments::default(),
            count: 0,
            positional: false,
            literal: false,
            unwritable: false,
        }
    }

    /// A builder for PostgreSQL that writes each value into the text as a literal, cast
    /// to the type a bound value would have: statements built so go to the server
    /// together, as one simple query, in one round trip (a statement with bound values
    /// costs two: its parse and description, then its execution).
    pub fn literal() -> Self {
        Self {
            literal: true,
            ..Self::new("")
        }
    }

    /// A builder for `backend` alone: for statements of many values.
    pub fn with(backend: Backend, init: impl Into<String>) -> Self {
        Self {
            positional: backend == Backend::Sqlite,
            ..Self::new(init)
        }
    }

    pub fn push(&mut self, sql: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.text, "{sql}");
        self
    }

    /// Appends a placeholder and binds `value` to it (or, built [`QueryBuilder::literal`],
    /// appends the value as a literal).
    pub fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'args + Encode<'args, Any> + Type<Any> + Literal,
    {
        self.count += 1;
        if self.literal {
            self.unwritable |= !value.write_literal(&mut self.text);
            return self;
        }
        // An error here is one of encoding, which the `Any` types never raise; it would
        // come back from the database as a missing argument.
        let _ = self.arguments.add(value);
        if self.positional {
            self.text.push('?');
        } else {
            let _ = write!(self.text, "${}", self.count);
        }
        self
    }

    /// Appends `VALUES (…), (…)`, one tuple per item, written by `push_tuple`.
    pub fn push_values<I, F>(&mut self, tuples: I, mut push_tuple: F) -> &mut Self
    where
        I: IntoIterator,
        F: FnMut(Separated<'_, 'args>, I::Item),
    {
        self.push("VALUES ");
        let mut first = true;
        for tuple in tuples {
            self.push(if first { "(" } else { ", (" });
            first = false;
            push_tuple(self.separated(", "), tuple);
            self.push(")");
        }
        self
    }

    /// Appends `INSERT INTO table (…) ` and `rows` in the engine's fastest form: on
    /// SQLite a `VALUES` list of bound values; on PostgreSQL one JSON array read by
    /// `json_to_recordset`, one value to send and parse instead of one per column and
    /// row (a statement of thousands of values costs PostgreSQL more to parse and plan
    /// than to run). The caller may append `ON CONFLICT …`.
    pub fn push_records<R: Record>(
        &mut self,
        backend: Backend,
        table: &str,
        rows: &[R],
    ) -> &mut Self {
        let columns = R::COLUMNS.iter().map(|(name, _)| *name);
        let names = columns.collect::<Vec<_>>().join(", ");
        self.push(format_args!("INSERT INTO {table} ({names}) "));
        match backend {
            Backend::Sqlite => self.push_values(rows, |mut row, record| record.bind(&mut row)),
            Backend::Postgres => {
                let json = serde_json::to_string(rows).unwrap_or_else(|_| "[]".to_owned());
                let types = (R::COLUMNS.iter())
                    .map(|(name, kind)| format!("{name} {kind}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.push(format_args!("SELECT {names} FROM json_to_recordset("))
                    .push_bind(json)
                    .push(format_args!("::json) AS r({types})"))
            }
        }
    }

    /// Appends `WITH name (…) AS (…)`: `rows` as a relation named `name` whose columns are
    /// the record's, in the engine's fastest form (see [`QueryBuilder::push_records`]).
    pub fn push_with<R: Record>(&mut self, backend: Backend, name: &str, rows: &[R]) -> &mut Self {
        let names = (R::COLUMNS.iter().map(|(column, _)| *column))
            .collect::<Vec<_>>()
            .join(", ");
        match backend {
            Backend::Sqlite => {
                self.push(format_args!("WITH {name} ({names}) AS ("));
                self.push_values(rows, |mut row, record| record.bind(&mut row))
            }
            Backend::Postgres => {
                let json = serde_json::to_string(rows).unwrap_or_else(|_| "[]".to_owned());
                let types = (R::COLUMNS.iter())
                    .map(|(column, kind)| format!("{column} {kind}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.push(format_args!(
                    "WITH {name} AS (SELECT * FROM json_to_recordset("
                ))
                .push_bind(json)
                .push(format_args!("::json) AS r({types})"))
            }
        }
        .push(")")
    }

    /// Appends `sql`, in which `$0` stands for `ids` bound as one list (the text of
    /// [`Backend::in_list`] or [`Backend::list_rows`] made with `n = 0`).
    pub fn push_list(&mut self, sql: &str, ids: &[i64]) -> &mut Self {
        let (before, after) = sql.split_once("$0").unwrap_or((sql, ""));
        self.push(before).push_bind(Backend::list(ids)).push(after)
    }

    /// Pushes that put `separator` between items.
    pub fn separated(&mut self, separator: &'static str) -> Separated<'_, 'args> {
        Separated {
            builder: self,
            separator,
            first: true,
        }
    }

    pub fn sql(&self) -> &str {
        &self.text
    }

    /// Empties the builder for the next statement.
    pub fn reset(&mut self) -> &mut Self {
        self.text.clear();
        self.arguments = AnyArguments::default();
        self.count = 0;
        self.unwritable = false;
        self
    }

    /// Fails if a value pushed into a [`QueryBuilder::literal`] builder could not be
    /// written (text holding a NUL, which PostgreSQL's text cannot hold either).
    pub fn check(&self) -> crate::Result<()> {
        if self.unwritable {
            return Err(crate::StoreError::invalid(
                "value",
                "text holding a NUL character cannot be stored",
            ));
        }
        Ok(())
    }

    pub fn build(&mut self) -> Query<'_, Any, AnyArguments<'_>> {
        let arguments = std::mem::take(&mut self.arguments);
        sqlx::query_with(&self.text, arguments)
    }

    pub fn build_query_as<'q, T>(&'q mut self) -> QueryAs<'q, Any, T, AnyArguments<'q>>
    where
        T: for<'r> FromRow<'r, sqlx::any::AnyRow>,
    {
        let arguments = std::mem::take(&mut self.arguments);
        sqlx::query_as_with(&self.text, arguments)
    }

    pub fn build_query_scalar<'q, T>(&'q mut self) -> QueryScalar<'q, Any, T, AnyArguments<'q>>
    where
        (T,): for<'r> FromRow<'r, sqlx::any::AnyRow>,
    {
        let arguments = std::mem::take(&mut self.arguments);
        sqlx::query_scalar_with(&self.text, arguments)
    }
}

/// A row for [`QueryBuilder::push_records`]: serialized with its fields named as the
/// columns, or bound column by column.
pub(crate) trait Record: serde::Serialize {
    /// The columns, each with its PostgreSQL type, in the order `bind` binds them.
    const COLUMNS: &'static [(&'static str, &'static str)];

    fn bind<'args>(&self, row: &mut Separated<'_, 'args>);
}

/// See [`QueryBuilder::separated`].
pub(crate) struct Separated<'b, 'args> {
    builder: &'b mut QueryBuilder<'args>,
    separator: &'static str,
    first: bool,
}

impl<'args> Separated<'_, 'args> {
    fn separate(&mut self) {
        if !self.first {
            self.builder.push(self.separator);
        }
        self.first = false;
    }

    pub fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'args + Encode<'args, Any> + Type<Any> + Literal,
    {
        self.separate();
        self.builder.push_bind(value);
        self
    }

    /// Appends without a separator.
    pub fn push_unseparated(&mut self, sql: impl std::fmt::Display) -> &mut Self {
        self.builder.push(sql);
        self
    }
}

/// A value as a PostgreSQL literal, cast to the type the `Any` driver binds it as, for
/// [`QueryBuilder::literal`]. Text is quoted with its quotes doubled, which is all a
/// literal needs under `standard_conforming_strings` (set on every connection, see
/// `db::POSTGRES_SESSION`).
pub(crate) trait Literal {
    /// The PostgreSQL type a NULL of this type is cast to.
    const TYPE: &'static str;

    /// Appends the literal; false if the value cannot be written as one.
    fn write_literal(&self, out: &mut String) -> bool;
}

/// An integer cast to `kind`; `::` binds before a unary minus, so a negative value goes
/// in parentheses.
fn write_integer(out: &mut String, value: i64, kind: &str) -> bool {
    let _ = if value < 0 {
        write!(out, "({value})::{kind}")
    } else {
        write!(out, "{value}::{kind}")
    };
    true
}

impl Literal for i64 {
    const TYPE: &'static str = "int8";
    fn write_literal(&self, out: &mut String) -> bool {
        write_integer(out, *self, Self::TYPE)
    }
}

impl Literal for i32 {
    const TYPE: &'static str = "int4";
    fn write_literal(&self, out: &mut String) -> bool {
        write_integer(out, i64::from(*self), Self::TYPE)
    }
}

impl Literal for bool {
    const TYPE: &'static str = "bool";
    fn write_literal(&self, out: &mut String) -> bool {
        out.push_str(if *self { "TRUE" } else { "FALSE" });
        true
    }
}

impl Literal for f64 {
    const TYPE: &'static str = "float8";
    fn write_literal(&self, out: &mut String) -> bool {
        let _ = match self {
            v if v.is_nan() => write!(out, "'NaN'::float8"),
            v if v.is_infinite() && *v > 0.0 => write!(out, "'Infinity'::float8"),
            v if v.is_infinite() => write!(out, "'-Infinity'::float8"),
            // `{:?}` writes the shortest text that reads back as the same value.
            v => write!(out, "'{v:?}'::float8"),
        };
        true
    }
}

impl Literal for str {
    const TYPE: &'static str = "text";
    fn write_literal(&self, out: &mut String) -> bool {
        if self.contains('\0') {
            return false;
        }
        out.reserve(self.len() + 8);
        out.push('\'');
        for part in self.split_inclusive('\'') {
            out.push_str(part);
            if part.ends_with('\'') {
                out.push('\'');
            }
        }
        out.push_str("'::text");
        true
    }
}

impl Literal for String {
    const TYPE: &'static str = "text";
    fn write_literal(&self, out: &mut String) -> bool {
        self.as_str().write_literal(out)
    }
}

impl Literal for [u8] {
    const TYPE: &'static str = "bytea";
    fn write_literal(&self, out: &mut String) -> bool {
        out.reserve(2 * self.len() + 12);
        out.push_str("'\\x");
        for byte in self {
            let _ = write!(out, "{byte:02x}");
        }
        out.push_str("'::bytea");
        true
    }
}

impl Literal for Vec<u8> {
    const TYPE: &'static str = "bytea";
    fn write_literal(&self, out: &mut String) -> bool {
        self.as_slice().write_literal(out)
    }
}

impl<T: Literal + ?Sized> Literal for &T {
    const TYPE: &'static str = T::TYPE;
    fn write_literal(&self, out: &mut String) -> bool {
        (**self).write_literal(out)
    }
}

impl<T: Literal> Literal for Option<T> {
    const TYPE: &'static str = T::TYPE;
    fn write_literal(&self, out: &mut String) -> bool {
        match self {
            Some(value) => value.write_literal(out),
            None => {
                let _ = write!(out, "NULL::{}", T::TYPE);
                true
            }
        }
    }
}
