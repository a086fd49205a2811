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
}

impl<'args> QueryBuilder<'args> {
    /// A builder whose statement either engine reads.
    pub fn new(init: impl Into<String>) -> Self {
        Self {
            text: init.into(),
            arguments: AnyArguments::default(),
            count: 0,
            positional: false,
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

    /// Appends a placeholder and binds `value` to it.
    pub fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'args + Encode<'args, Any> + Type<Any>,
    {
        self.count += 1;
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

    /// How many values are bound.
    pub fn binds(&self) -> usize {
        self.count
    }

    /// Empties the builder for the next statement.
    pub fn reset(&mut self) -> &mut Self {
        self.text.clear();
        self.arguments = AnyArguments::default();
        self.count = 0;
        self
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
        T: 'args + Encode<'args, Any> + Type<Any>,
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
