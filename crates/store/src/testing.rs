//! A database of its own for each test, on the engine the run was asked for:
//! `COACHLOOP_TEST_ENGINE=sqlite` (the default) gives a SQLite file in a temporary data
//! directory; `COACHLOOP_TEST_ENGINE=postgres` gives a fresh PostgreSQL database on the
//! server of `COACHLOOP_TEST_POSTGRES_URL`, created from a template that already holds
//! the migrations (a test costs a `CREATE DATABASE … TEMPLATE`, milliseconds, not a
//! migration), and dropped when the test ends.

use crate::{Backend, DatabaseUrl};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Connection, Executor};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use tempfile::TempDir;

/// Which engine tests run on.
pub const ENGINE_VAR: &str = "COACHLOOP_TEST_ENGINE";
/// The PostgreSQL server tests create their databases on (any database on it will do).
pub const POSTGRES_VAR: &str = "COACHLOOP_TEST_POSTGRES_URL";

/// Databases of tests are named `coachloop_test_<pid>_<n>`.
const PREFIX: &str = "coachloop_test_";

/// The engine this test run uses.
pub fn backend() -> Backend {
    match std::env::var(ENGINE_VAR).as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("sqlite") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("{ENGINE_VAR}={other}: use `sqlite` or `postgres`"),
    }
}

/// A test's data directory and database.
pub struct TestDatabase {
    dir: TempDir,
    url: DatabaseUrl,
    /// The PostgreSQL database to drop at the end, with the server it is on.
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// A migrated database.
    pub async fn new() -> Self {
        Self::with(Contents::Migrated).await
    }

    /// A database with nothing in it yet, for tests of what creates and migrates one: on
    /// SQLite no file exists yet, on PostgreSQL the database is empty.
    pub async fn empty() -> Self {
        Self::with(Contents::Empty).await
    }

    async fn with(contents: Contents) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        match backend() {
            Backend::Sqlite => Self {
                url: DatabaseUrl::in_data_dir(dir.path()),
                dir,
                postgres: None,
            },
            Backend::Postgres => {
                let server = std::env::var(POSTGRES_VAR).unwrap_or_else(|_| {
                    panic!("{ENGINE_VAR}=postgres needs {POSTGRES_VAR} (e.g. postgres://postgres@127.0.0.1:5432/test)")
                });
                let name = create(&server, contents).await;
                Self {
                    url: DatabaseUrl::new(with_database(&server, &name)),
                    dir,
                    postgres: Some((server, name)),
                }
            }
        }
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The data directory (on SQLite it holds the database file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs outside any runtime the test may still have: use a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = AnyConnection::connect(&server)
                    .await
                    .map_err(|e| e.to_string())?;
                let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                conn.execute(drop.as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop a test database: {e}");
        }
    }
}

/// What a new test database holds.
#[derive(Clone, Copy)]
enum Contents {
    Migrated,
    Empty,
}

/// Creates a fresh database: empty, or from the migrated template.
async fn create(server: &str, contents: Contents) -> String {
    sqlx::any::install_default_drivers();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut conn = AnyConnection::connect(server)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {POSTGRES_VAR}: {e}"));
    let name = format!(
        "{PREFIX}{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let create = match contents {
        Contents::Migrated => {
            let template = migrated_template(&mut conn, server).await;
            format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"")
        }
        Contents::Empty => format!("CREATE DATABASE \"{name}\""),
    };
    conn.execute(create.as_str())
        .await
        .expect("create a test database");
    conn.close().await.ok();
    name
}

/// The name of the template holding this version of the migrations, made first if there
/// is none yet.
async fn migrated_template(conn: &mut AnyConnection, server: &str) -> String {
    let template = template_name();
    // One process makes the template; the others wait here and find it made.
    conn.execute("SELECT pg_advisory_lock(7460)")
        .await
        .expect("lock");
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT 1::bigint FROM pg_database WHERE datname = $1")
            .bind(&template)
            .fetch_optional(&mut *conn)
            .await
            .expect("read pg_database");
    if exists.is_none() {
        forget_dead_tests(conn).await;
        let building = format!("{template}_building");
        let drop = format!("DROP DATABASE IF EXISTS \"{building}\"");
        conn.execute(drop.as_str())
            .await
            .expect("drop a half-built template");
        let create = format!("CREATE DATABASE \"{building}\"");
        conn.execute(create.as_str())
            .await
            .expect("create the template");
        let mut target = AnyConnection::connect(&with_database(server, &building))
            .await
            .expect("connect to the template");
        migrator()
            .run_direct(&mut target)
            .await
            .expect("migrate the template");
        target.close().await.expect("close");
        let rename = format!("ALTER DATABASE \"{building}\" RENAME TO \"{template}\"");
        conn.execute(rename.as_str())
            .await
            .expect("name the template");
    }
    conn.execute("SELECT pg_advisory_unlock(7460)")
        .await
        .expect("unlock");
    template
}

fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations/postgres")
}

/// Named by the migrations it holds, so a changed migration gets a new template.
fn template_name() -> String {
    let mut hash = Sha256::new();
    for migration in migrator().iter() {
        hash.update(migration.version.to_le_bytes());
        hash.update(&*migration.checksum);
    }
    format!("coachloop_template_{}", &hex::encode(hash.finalize())[..12])
}

/// Drops databases left by test processes that no longer run (killed before their
/// databases were dropped).
async fn forget_dead_tests(conn: &mut AnyConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
            .bind(format!("{PREFIX}%"))
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name[PREFIX.len()..].split('_').next().unwrap_or_default();
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            let _ = conn.execute(drop.as_str()).await;
        }
    }
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    format!("{}/{name}{query}", &base[..host_end])
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        let cases = [
            ("postgres://u@h:5432/test", "postgres://u@h:5432/x"),
            ("postgres://u@h:5432", "postgres://u@h:5432/x"),
            (
                "postgres://h/test?sslmode=disable",
                "postgres://h/x?sslmode=disable",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(with_database(url, "x"), want);
        }
    }
}
