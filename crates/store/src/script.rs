//! Writes sent together. On SQLite each statement is a round trip to the connection's
//! own thread, and on a busy machine every round trip waits for that thread to be
//! scheduled: a transaction that queues its writes here and sends them as one
//! multi-statement query (with its `COMMIT`, when the caller adds it) pays that once.
//! PostgreSQL prepares one statement per query, so there the statements go one after
//! another, in order, when the script runs.

use crate::Result;
use crate::db::Backend;
use crate::sql::QueryBuilder;
use sqlx::{AnyConnection, Executor};

/// Bound values past which [`Script::reserve`] sends what has queued, so one query's
/// text and values stay a few hundred KiB. (SQLite's limit of 32,766 values applies to
/// each statement of it; PostgreSQL's is 65,535 per statement.)
const MAX_BINDS: usize = 16_000;

pub(crate) struct Script<'a> {
    backend: Backend,
    /// Statements complete before the current one (PostgreSQL only).
    done: Vec<QueryBuilder<'a>>,
    query: QueryBuilder<'a>,
    binds: usize,
}

impl<'a> Script<'a> {
    /// A script for the engine of `conn`.
    pub fn new(conn: &AnyConnection) -> Self {
        let backend = Backend::of_connection(conn);
        Self {
            backend,
            done: Vec::new(),
            query: QueryBuilder::with(backend, ""),
            binds: 0,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Makes room for a statement of about `binds` bound values (sending what has
    /// queued if it would not fit) and returns the builder to write it into.
    pub async fn reserve(
        &mut self,
        conn: &mut AnyConnection,
        binds: usize,
    ) -> Result<&mut QueryBuilder<'a>> {
        if self.binds > 0 && self.binds + binds > MAX_BINDS {
            self.run(conn).await?;
        }
        Ok(self.statement(binds))
    }

    /// The builder for one more statement of `binds` bound values, with no check of the
    /// total: for statements the caller knows are small.
    pub fn statement(&mut self, binds: usize) -> &mut QueryBuilder<'a> {
        if !self.query.sql().is_empty() {
            match self.backend {
                Backend::Sqlite => {
                    self.query.push("; ");
                }
                Backend::Postgres => {
                    let full =
                        std::mem::replace(&mut self.query, QueryBuilder::with(self.backend, ""));
                    self.done.push(full);
                }
            }
        }
        self.binds += binds;
        &mut self.query
    }

    /// Opens the write transaction (see [`Backend::begin_write`]).
    pub fn begin_write(&mut self) {
        let backend = self.backend;
        self.statement(0).push(backend.begin_write());
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.done.is_empty() && self.query.sql().is_empty()
    }

    /// Sends what has queued. The text changes from one batch to the next, so it is not
    /// kept in the connection's cache of prepared statements.
    pub async fn run(&mut self, conn: &mut AnyConnection) -> Result<()> {
        for mut statement in self.done.drain(..) {
            if statement.binds() == 0 {
                // Sent as text: statements without values (`BEGIN` with its lock) go
                // together in one round trip.
                conn.execute(statement.sql()).await?;
            } else {
                statement
                    .build()
                    .persistent(false)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        if !self.query.sql().is_empty() {
            self.query
                .build()
                .persistent(false)
                .execute(&mut *conn)
                .await?;
            self.query.reset();
        }
        self.binds = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    #[tokio::test]
    async fn sends_everything_queued_across_flushes() {
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (a INTEGER, b TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
        let mut script = Script::new(&conn);
        script.statement(0).push("BEGIN");
        // 3 × 6,000 rows of 2 values: `reserve` sends the first two inserts before the
        // third would take the script past its limit.
        for chunk in 0..3 {
            let insert = script.reserve(&mut conn, 12_000).await.unwrap();
            insert.push("INSERT INTO t (a, b) ");
            insert.push_values(0..6_000, |mut row, i| {
                row.push_bind(chunk * 6_000 + i)
                    .push_bind(format!("row {i}"));
            });
        }
        let count = "SELECT COUNT(*) FROM t";
        let sent: i64 = sqlx::query_scalar(count)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(sent, 12_000);
        script.statement(0).push("COMMIT");
        assert!(!script.is_empty());
        script.run(&mut conn).await.unwrap();
        assert!(script.is_empty());
        let (rows, distinct): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT a) FROM t")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!((rows, distinct), (18_000, 18_000));
        // Running an empty script sends nothing and fails nothing.
        script.run(&mut conn).await.unwrap();
    }
}
