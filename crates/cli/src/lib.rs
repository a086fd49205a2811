//! The `coachloop` command: parses flags, loads configuration, wires the crates together.

pub mod config;
pub mod db;
pub mod demo;
pub mod forward;
pub mod import;
mod lrs;
mod sync;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use coachloop_core::clock::{Clock, SystemClock};
use coachloop_core::scope::Scopes;
use coachloop_core::time::{date_start_ms, format_ms, parse_date};
use coachloop_store::Store;
use coachloop_store::tokens::{NewToken, RateLimits};
use config::{Config, Overrides};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "coachloop",
    version,
    about = "From a risky event to proof of training, in one loop."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long)]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Run a demo: a seeded organisation and a live stream of events.
    Demo(demo::DemoArgs),
    /// Deliver a password manager's audit log to a User Event API (coachloop's or the
    /// reference service's), through a durable outbox; `forward status` shows how it goes.
    Forward(forward::ForwardArgs),
    /// Manage accounts (tenants).
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Manage LRS credentials: the key and secret an LMS sends xAPI statements with.
    #[command(subcommand)]
    Lrs(lrs::LrsCommand),
    /// Manage console administrators.
    #[command(subcommand)]
    Admins(AdminsCommand),
    /// Manage people.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Create or upgrade the database, then exit.
    Migrate {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCommand),
    /// Compliance evidence: exports, and checking the chain of kept exports.
    #[command(subcommand)]
    Compliance(ComplianceCommand),
    /// Ask a running server whether it is healthy (exit 0) or not (exit 1).
    Healthcheck {
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
}

/// Where the data is; every command that touches data takes these.
#[derive(Debug, Clone, Default, Args)]
pub struct DataArgs {
    /// Data directory (SQLite file inside) [default: ./coachloop-data].
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Explicit database URL, e.g. sqlite:///var/lib/coachloop/coachloop.db.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// TOML configuration file.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy everything into an empty database (e.g. SQLite to PostgreSQL), check every
    /// table's rows and checksum, and commit only if they all match.
    Copy {
        /// The database to copy, e.g. sqlite:///var/lib/coachloop/coachloop.db.
        #[arg(long)]
        from: String,
        /// An empty database to copy into (migrated first), e.g. postgres://host/coachloop.
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ComplianceCommand {
    /// Export a framework's (or a control's) evidence for a period, as CSV, JSON or OSCAL
    /// assessment results, and keep it as an evidence snapshot.
    Export {
        #[arg(long, default_value = coachloop_store::DEFAULT_ACCOUNT)]
        account: String,
        /// soc2, iso27001, nist-800-53, nist-csf, hipaa or pci-dss (need not be enabled).
        #[arg(long)]
        framework: String,
        /// One control, as the standard writes it (e.g. CC1.4); default: all of them.
        #[arg(long)]
        control: Option<String>,
        /// The period's first day, YYYY-MM-DD (UTC).
        #[arg(long)]
        from: String,
        /// The period's last day, YYYY-MM-DD, included.
        #[arg(long)]
        to: String,
        /// csv, json or oscal.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Write the document here instead of to standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Sync the account's remote Reporting API connections now (or one of them), with
    /// progress; an interrupted sync resumes where it stopped. Exit 1 if one fails.
    Sync {
        #[arg(long, default_value = coachloop_store::DEFAULT_ACCOUNT)]
        account: String,
        /// One connection, by id or name; default: every one of the account.
        #[arg(long)]
        connection: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Recompute the chain of evidence snapshots and name the first broken link (exit 1).
    Verify {
        #[arg(long, default_value = coachloop_store::DEFAULT_ACCOUNT)]
        account: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Add an account.
    Create {
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print its secret (shown once).
    Create {
        /// Account the token acts for.
        #[arg(long, default_value = coachloop_store::DEFAULT_ACCOUNT)]
        account: String,
        /// A label for the token.
        #[arg(long)]
        name: String,
        /// Comma-separated scopes, e.g. events:write,events:read or admin.
        #[arg(long)]
        scopes: String,
        /// The day (YYYY-MM-DD, UTC) from which the token no longer works.
        #[arg(long)]
        expires: Option<String>,
        /// At most this many requests a second (answered 429 beyond); default: no limit.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        rate_per_second: Option<u32>,
        /// At most this many requests a UTC day; default: no limit.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        rate_per_day: Option<u32>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long, default_value = coachloop_store::DEFAULT_ACCOUNT)]
        account: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke a token by its label.
    Revoke {
        name: String,
        #[arg(long, default_value = coachloop_store::DEFAULT_ACCOUNT)]
        account: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminsCommand {
    /// Add a console administrator, or set a new password for one (which ends their
    /// sessions and any lock-out). The password comes from --password-file, else from
    /// standard input when it is not a terminal; else one is made and printed once.
    Create {
        #[arg(long, default_value = coachloop_store::DEFAULT_ACCOUNT)]
        account: String,
        /// The administrator's email: what they sign in with.
        #[arg(long)]
        email: String,
        /// A file whose first line is the password (at least 12 characters).
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List the account's administrators.
    List {
        #[arg(long, default_value = coachloop_store::DEFAULT_ACCOUNT)]
        account: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create or update people from a CSV file (header row of user field names).
    Import {
        file: PathBuf,
        #[arg(long, default_value = coachloop_store::DEFAULT_ACCOUNT)]
        account: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(data: &DataArgs, listen: Option<SocketAddr>) -> anyhow::Result<Config> {
    let overrides = Overrides {
        listen,
        data_dir: data.data_dir.clone(),
        database_url: data.database_url.clone(),
    };
    Config::load(data.config.as_deref(), &overrides)
}

fn init_logging(filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    // Colour only on a terminal: logs piped to a file or a collector stay plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
    for name in config::unknown_env_vars(std::env::vars().map(|(k, _)| k)) {
        tracing::warn!("{name} names no setting and is ignored");
    }
}

/// Opens the store a command works on (creating the data directory when needed).
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Store::open(&config.database_url(), clock)
        .await
        .with_context(|| format!("cannot open the database {:?}", config.database_url()))
}

async fn account_id(store: &Store, name: &str) -> anyhow::Result<coachloop_core::ids::AccountId> {
    Ok(store
        .account_by_name(name)
        .await?
        .with_context(|| {
            format!("no account named `{name}`; create it with `coachloop accounts create {name}`")
        })?
        .id)
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { listen, data } => {
            let config = load(&data, listen)?;
            init_logging(&config.log);
            serve(config).await?;
        }
        Command::Demo(args) => demo::run(args).await?,
        Command::Forward(args) => return forward::run(args).await,
        Command::Accounts(AccountsCommand::Create { name, data }) => {
            let store = open_store(&load(&data, None)?).await?;
            let account = store.create_account(&name).await?;
            println!("created account `{}` (id {})", account.name, account.id);
        }
        Command::Accounts(AccountsCommand::List { data }) => {
            let store = open_store(&load(&data, None)?).await?;
            for account in store.list_accounts().await? {
                println!(
                    "{}\t{}\t{}",
                    account.id,
                    account.name,
                    format_ms(account.created_at)
                );
            }
        }
        Command::Tokens(command) => tokens(command).await?,
        Command::Lrs(command) => lrs::run(command).await?,
        Command::Admins(command) => admins(command).await?,
        Command::Users(UsersCommand::Import {
            file,
            account,
            data,
        }) => {
            let store = open_store(&load(&data, None)?).await?;
            let account = account_id(&store, &account).await?;
            let summary = import::import_users(&store, account, &file).await?;
            println!("{summary}");
            if !summary.failures.is_empty() {
                return Ok(ExitCode::from(2));
            }
        }
        Command::Migrate { data } => {
            let config = load(&data, None)?;
            open_store(&config).await?.close().await;
            println!("database {:?} is up to date", config.database_url());
        }
        Command::Db(DbCommand::Copy { from, to }) => return db::copy(&from, &to).await,
        Command::Compliance(command) => return compliance(command).await,
        Command::Healthcheck { url } => {
            let url = format!("{}/healthz", url.trim_end_matches('/'));
            // A server that accepts but never answers is unhealthy too, not a hang.
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()
                .context("cannot build an HTTP client")?;
            let ok = client
                .get(&url)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            println!("{}: {}", url, if ok { "healthy" } else { "unhealthy" });
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn compliance(command: ComplianceCommand) -> anyhow::Result<ExitCode> {
    use coachloop_core::compliance::catalog;
    use coachloop_core::compliance::evidence::{Format, Period};
    match command {
        ComplianceCommand::Export {
            account,
            framework,
            control,
            from,
            to,
            format,
            output,
            data,
        } => {
            let framework = catalog::framework(&framework).with_context(|| {
                format!(
                    "--framework `{framework}` is not one of: {}",
                    catalog::FRAMEWORKS
                        .iter()
                        .map(|f| f.id)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            let control = control
                .map(|id| {
                    catalog::control_of(framework.id, &id).with_context(|| {
                        format!(
                            "--control `{id}` is not a control of {}: one of {}",
                            framework.id,
                            catalog::controls_of(framework.id)
                                .map(|c| c.id)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                })
                .transpose()?;
            let format = Format::parse(&format)
                .with_context(|| format!("--format `{format}` is not csv, json or oscal"))?;
            let period = Period::parse(&from, &to)
                .map_err(|e| anyhow::anyhow!("--{} {}", e.field, e.message))?;
            let store = open_store(&load(&data, None)?).await?;
            let account = account_id(&store, &account).await?;
            let query = coachloop_store::evidence::EvidenceQuery {
                framework,
                control,
                period,
                format,
            };
            let (snapshot, body) = store.export_evidence(account, &query).await?;
            match &output {
                Some(path) => std::fs::write(path, &body)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => {
                    use std::io::Write;
                    std::io::stdout()
                        .write_all(body.as_bytes())
                        .context("cannot write to standard output")?;
                }
            }
            eprintln!(
                "kept as evidence snapshot {} (sha256 {}){}",
                snapshot.id,
                snapshot.sha256,
                output
                    .map(|p| format!("; written to {}", p.display()))
                    .unwrap_or_default()
            );
        }
        ComplianceCommand::Sync {
            account,
            connection,
            data,
        } => return sync::run(&load(&data, None)?, &account, connection.as_deref()).await,
        ComplianceCommand::Verify { account, data } => {
            let store = open_store(&load(&data, None)?).await?;
            let account = account_id(&store, &account).await?;
            let verification = store.verify_evidence(account).await?;
            match verification.broken {
                None => println!(
                    "evidence chain intact: {} snapshot(s) checked",
                    verification.checked
                ),
                Some(broken) => {
                    println!("evidence snapshot {} is broken: {}", broken.id, broken.what);
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn admins(command: AdminsCommand) -> anyhow::Result<()> {
    use coachloop_server::console::password;
    match command {
        AdminsCommand::Create {
            account,
            email,
            password_file,
            data,
        } => {
            let email = coachloop_core::identity::Email::parse(email.trim())
                .map_err(|e| anyhow::anyhow!("--email `{email}` {e}"))?;
            let (password, made) = match password_file {
                Some(path) => (
                    first_line(&std::fs::read_to_string(&path).with_context(|| {
                        format!("cannot read the password file {}", path.display())
                    })?),
                    false,
                ),
                None if !std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_line(&mut text)
                        .context("cannot read the password from standard input")?;
                    (first_line(&text), false)
                }
                None => (password::generate(), true),
            };
            if let Some(problem) = password::problem(&password) {
                anyhow::bail!("{problem}");
            }
            let hash = password::hash(&password)?;
            let store = open_store(&load(&data, None)?).await?;
            let account = account_id(&store, &account).await?;
            let (admin, added) = store.set_admin_password(account, &email, &hash).await?;
            if added {
                eprintln!("added administrator {}", admin.email);
            } else {
                eprintln!(
                    "set a new password for {}; their sessions have ended",
                    admin.email
                );
            }
            if made {
                eprintln!("their password is shown this once:");
                println!("{password}");
            }
        }
        AdminsCommand::List { account, data } => {
            let store = open_store(&load(&data, None)?).await?;
            let account = account_id(&store, &account).await?;
            println!("id\temail\tadded");
            for admin in store.list_admins(account).await? {
                println!(
                    "{}\t{}\t{}",
                    admin.id,
                    admin.email,
                    format_ms(admin.created_at)
                );
            }
        }
    }
    Ok(())
}

/// A password as a file or a pipe gives it: the first line, without its line ending.
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

async fn tokens(command: TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create {
            account,
            name,
            scopes,
            expires,
            rate_per_second,
            rate_per_day,
            data,
        } => {
            let scopes = Scopes::parse_list(&scopes)?;
            let expires_at = expires
                .map(|text| {
                    parse_date(text.trim()).map(date_start_ms).with_context(|| {
                        format!("--expires `{text}` is not a date written YYYY-MM-DD")
                    })
                })
                .transpose()?;
            let store = open_store(&load(&data, None)?).await?;
            let account = account_id(&store, &account).await?;
            let new = NewToken {
                name,
                scopes,
                expires_at,
                limits: RateLimits {
                    per_second: rate_per_second,
                    per_day: rate_per_day,
                },
                lrs: false,
            };
            let (token, secret) = store.create_token(account, &new).await?;
            eprintln!(
                "created token `{}` with scopes {}{}; the secret is shown this once:",
                token.name,
                token.scopes.to_list(),
                token
                    .expires_at
                    .map(|at| format!(", expiring {}", format_ms(at)))
                    .unwrap_or_default()
            );
            println!("{secret}");
        }
        TokensCommand::List { account, data } => {
            let store = open_store(&load(&data, None)?).await?;
            let account = account_id(&store, &account).await?;
            println!("name\tscopes\texpires\tlast used\tstate");
            for token in store.list_tokens(account).await? {
                let state = match token.revoked_at {
                    Some(at) => format!("revoked {}", format_ms(at)),
                    None => "live".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    token.name,
                    token.scopes.to_list(),
                    token
                        .expires_at
                        .map(format_ms)
                        .unwrap_or_else(|| "never".into()),
                    token
                        .last_used_at
                        .map(format_ms)
                        .unwrap_or_else(|| "never".into()),
                    state
                );
            }
        }
        TokensCommand::Revoke {
            name,
            account,
            data,
        } => {
            let store = open_store(&load(&data, None)?).await?;
            let account = account_id(&store, &account).await?;
            store
                .revoke_token(account, &name)
                .await
                .map_err(|e| match e {
                    coachloop_store::StoreError::NotFound(_) => {
                        anyhow::anyhow!("no live token named `{name}` in this account")
                    }
                    other => other.into(),
                })?;
            println!("revoked token `{name}`");
        }
    }
    Ok(())
}

/// `coachloop serve`: binds, says how to get started, serves until SIGINT/SIGTERM.
async fn serve(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; pick another with --listen",
                config.listen
            )
        })?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = ?config.database_url(), "coachloop listening on http://{addr}");
    let default = account_id(&store, coachloop_store::DEFAULT_ACCOUNT).await?;
    if store.list_tokens(default).await?.is_empty() {
        tracing::info!(
            "no tokens yet: create the first admin token with `coachloop tokens create --account default --name admin --scopes admin{}`",
            data_flag(&config)
        );
    }
    coachloop_server::serve(store, config.server()?, listener, shutdown_signal()).await
}

/// The flag that points a later command at the same data, for printed hints (which end
/// up in logs: a database password is shown as `***`).
pub fn data_flag(config: &Config) -> String {
    match &config.database_url {
        Some(url) => format!(" --database-url {}", without_password(url)),
        None if config.data_dir != Config::default().data_dir => {
            format!(" --data-dir {}", config.data_dir.display())
        }
        None => String::new(),
    }
}

/// `url` with a password (`user:PASSWORD@` or `password=` in the query) shown as `***`.
pub fn without_password(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return url.to_owned();
    };
    let in_query = parsed.query_pairs().any(|(key, _)| key == "password");
    if parsed.password().is_none() && !in_query {
        return url.to_owned();
    }
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if in_query {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let value = if key == "password" {
                    "***".into()
                } else {
                    value
                };
                (key.into_owned(), value.into_owned())
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn hints_never_show_a_database_password() {
        let cases = [
            (
                "postgres://app:s3cret@db.internal:5432/coachloop",
                "postgres://app:***@db.internal:5432/coachloop",
            ),
            (
                "postgres://db.internal/coachloop?user=app&password=s3cret&sslmode=require",
                "postgres://db.internal/coachloop?user=app&password=***&sslmode=require",
            ),
            // Nothing to hide: shown as given.
            (
                "postgres://app@db.internal/coachloop",
                "postgres://app@db.internal/coachloop",
            ),
            (
                "sqlite:///var/lib/coachloop/coachloop.db",
                "sqlite:///var/lib/coachloop/coachloop.db",
            ),
        ];
        for (url, shown) in cases {
            assert_eq!(without_password(url), shown);
        }
    }
}
