//! Writes sent together, in one round trip. On SQLite each statement is a round trip to
//! the connection's own thread, and on a busy machine every round trip waits for that
//! thread to be scheduled; on PostgreSQL each is one to another process, two for a
//! statement with bound values (its parse, then its execution). A transaction that
//! queues its writes here sends them as one multi-statement query (with its `COMMIT`,
//! when the caller adds it): on SQLite with bound values, on PostgreSQL as one simple
//! query with the values written as literals ([`QueryBuilder::literal`]).

use crate::Result;
use crate::db::Backend;
use crate::locks::Locks;
use crate::sql::QueryBuilder;
use sqlx::{AnyConnection, Executor};

/// Bound values past which [`Script::reserve`] sends what has queued, so one query's
/// text and values stay a few hundred KiB. (SQLite's limit of 32,766 values applies to
/// each statement of it.)
const MAX_BINDS: usize = 16_000;

pub(crate) struct Script<'a> {
    backend: Backend,
    query: QueryBuilder<'a>,
    binds: usize,
}

impl<'a> Script<'a> {
    /// A script for the engine of `conn`.
    pub fn new(conn: &AnyConnection) -> Self {
        let backend = Backend::of_connection(conn);
        let query = match backend {
            Backend::Sqlite => QueryBuilder::with(backend, ""),
            Backend::Postgres => QueryBuilder::literal(),
        };
        Self {
            backend,
            query,
            binds: 0,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Makes room for a statement of about `binds` values (sending what has queued if it
    /// would not fit) and returns the builder to write it into.
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

    /// The builder for one more statement of `binds` values, with no check of the
    /// total: for statements the caller knows are small.
    pub fn statement(&mut self, binds: usize) -> &mut QueryBuilder<'a> {
        if !self.query.sql().is_empty() {
            self.query.push("; ");
        }
        self.binds += binds;
        &mut self.query
    }

    /// Opens a write transaction holding `locks` (see `locks`).
    pub fn begin_write(&mut self, locks: &Locks) {
        let begin = locks.begin(self.backend);
        self.statement(0).push(begin);
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.query.sql().is_empty()
    }

    /// Sends what has queued. The text changes from one batch to the next, so it is not
    /// kept in the connection's cache of prepared statements.
    pub async fn run(&mut self, conn: &mut AnyConnection) -> Result<()> {
        if self.query.sql().is_empty() {
            return Ok(());
        }
        match self.backend {
            Backend::Sqlite => {
                self.query
                    .build()
                    .persistent(false)
                    .execute(&mut *conn)
                    .await?;
            }
            Backend::Postgres => {
                self.query.check()?;
                // No values bound: sent as one simple query, its statements run in order.
                conn.execute(self.query.sql()).await?;
            }
        }
        self.query.reset();
        self.binds = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    /// Values a script writes come back as they went in, on the engine under test (on
    /// PostgreSQL, written into the text as literals).
    #[tokio::test]
    async fn values_arrive_as_given() {
        sqlx::any::install_default_drivers();
        let db = crate::testing::TestDatabase::new().await;
        let backend = Backend::of(db.url()).unwrap();
        let mut conn = backend
            .connect(&backend.options(db.url()).unwrap())
            .await
            .unwrap();
        conn.execute(
            "CREATE TABLE t (n INTEGER, a TEXT, b BIGINT, c BOOLEAN, d DOUBLE PRECISION, e BYTEA)",
        )
        .await
        .ok();
        let texts = [
            "plain",
            "it's a 'quote'",
            "back\\slash \\' and \\x41",
            "$1 $$ ;DROP TABLE t; --",
            "line\nbreak\ttab",
            "ünïcødé 🦀",
            "",
        ];
        let mut script = Script::new(&conn);
        script.statement(0).push("BEGIN");
        for (n, text) in texts.iter().enumerate() {
            let insert = script.reserve(&mut conn, 6).await.unwrap();
            insert.push("INSERT INTO t (n, a, b, c, d, e) VALUES (");
            let mut row = insert.separated(", ");
            row.push_bind(n as i64)
                .push_bind(*text)
                .push_bind(Some(i64::MIN + n as i64))
                .push_bind(n % 2 == 0)
                .push_bind(0.1 + n as f64)
                .push_bind(vec![0u8, 39, 92, n as u8]);
            row.push_unseparated(")");
        }
        let insert = script.statement(6);
        insert.push("INSERT INTO t (n, a, b, c, d, e) VALUES (");
        let mut row = insert.separated(", ");
        row.push_bind(99_i64)
            .push_bind(None::<String>)
            .push_bind(None::<i64>)
            .push_bind(None::<bool>)
            .push_bind(None::<f64>)
            .push_bind(None::<Vec<u8>>);
        row.push_unseparated(")");
        script.statement(0).push("COMMIT");
        script.run(&mut conn).await.unwrap();
        type Stored = (
            i64,
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<f64>,
            Option<Vec<u8>>,
        );
        let rows: Vec<Stored> = sqlx::query_as("SELECT n, a, b, CASE WHEN c THEN 'yes' WHEN NOT c THEN 'no' END, d, e FROM t ORDER BY n")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(rows.len(), texts.len() + 1);
        for (n, text) in texts.iter().enumerate() {
            let expected: Stored = (
                n as i64,
                Some(text.to_string()),
                Some(i64::MIN + n as i64),
                Some(if n % 2 == 0 { "yes" } else { "no" }.to_string()),
                Some(0.1 + n as f64),
                Some(vec![0, 39, 92, n as u8]),
            );
            assert_eq!(rows[n], expected);
        }
        assert_eq!(rows[texts.len()], (99, None, None, None, None, None));
        if backend == Backend::Postgres {
            // A NUL cannot be written as a literal (nor stored as PostgreSQL text).
            let mut script = Script::new(&conn);
            script
                .statement(1)
                .push("INSERT INTO t (n, a) VALUES (100, ")
                .push_bind("nul\0inside")
                .push(")");
            let refused = script.run(&mut conn).await.unwrap_err();
            assert!(
                matches!(refused, crate::StoreError::Invalid(_)),
                "{refused}"
            );
        }
    }

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
