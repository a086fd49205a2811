//! Configuration: defaults → TOML file (`--config`) → `COACHLOOP_*` environment → flags.

use anyhow::Context;
use coachloop_core::destination::PrivateDestinations;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Config {
    /// Where `serve` listens.
    pub listen: SocketAddr,
    /// Where data lives when no `database_url` is given (SQLite file inside).
    pub data_dir: PathBuf,
    /// An explicit database URL (`sqlite://…`); overrides `data_dir`.
    pub database_url: Option<String>,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// Most events in one bulk `POST /events`.
    pub max_bulk_events: usize,
    /// Log filter, e.g. `info` or `coachloop_server=debug,info`.
    pub log: String,
    /// The address people reach the server at, for links in emails (e.g.
    /// `https://training.example.com`); default: the `Host` of the request at hand.
    pub public_url: Option<String>,
    /// The SMTP server email goes through; none: no email is sent.
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    /// `none` (plain, for a local relay), `starttls` or `tls`.
    pub smtp_tls: String,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    /// A file holding the SMTP password (instead of `smtp_password`).
    pub smtp_password_file: Option<PathBuf>,
    /// The From address of emails.
    pub smtp_from: String,
    /// Which non-public addresses (loopback, private, link-local, …) webhooks may be
    /// sent to: `false` (none), `true` (all) or a list of ranges (`["10.0.0.0/8"]`; in
    /// the environment comma-separated: `10.0.0.0/8,192.168.1.5`).
    pub allow_private_destinations: PrivateDestinations,
    /// Seconds a node holds a notice job it sends (PostgreSQL with several nodes): a job
    /// in flight on a node that dies is sent by another this long after it was claimed.
    /// Keep it well above the longest send (webhooks time out after 10 s, SMTP 15 s).
    pub notice_lease: u64,
    /// The file holding the installation's secret key, which seals remote sync keys at
    /// rest (made on first use); default `secret.key` in `data_dir`. Give every node the
    /// same file.
    pub secret_key_file: Option<PathBuf>,
    /// Where a region's Reporting API answers, for remote sync, when not the reference
    /// service's host (`{ eu = "https://proxy.example/kb4-eu" }`).
    pub sync_regions: std::collections::BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("coachloop-data"),
            database_url: None,
            max_body_bytes: 1024 * 1024,
            max_bulk_events: 1_000,
            log: "info".to_owned(),
            public_url: None,
            smtp_host: None,
            smtp_port: 587,
            smtp_tls: "starttls".to_owned(),
            smtp_username: None,
            smtp_password: None,
            smtp_password_file: None,
            smtp_from: "coachloop <coachloop@localhost>".to_owned(),
            allow_private_destinations: PrivateDestinations::default(),
            notice_lease: coachloop_server::notices::NOTICE_LEASE.as_secs(),
            secret_key_file: None,
            sync_regions: std::collections::BTreeMap::new(),
        }
    }
}

/// The keys a `COACHLOOP_*` variable may name.
const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "max_body_bytes",
    "max_bulk_events",
    "log",
    "public_url",
    "smtp_host",
    "smtp_port",
    "smtp_tls",
    "smtp_username",
    "smtp_password",
    "smtp_password_file",
    "smtp_from",
    "allow_private_destinations",
    "notice_lease",
    "secret_key_file",
    "sync_regions",
];

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

impl Config {
    /// Loads the layers from the given file, the process environment and the flags.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> anyhow::Result<Self> {
        Self::load_from(file, Env::prefixed("COACHLOOP_").split("__"), flags)
    }

    fn load_from(file: Option<&Path>, env: Env, flags: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            anyhow::ensure!(
                file.exists(),
                "config file {} does not exist",
                file.display()
            );
            figment = figment.merge(Toml::file_exact(file));
        }
        let config: Config = figment
            .merge(env)
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|e| anyhow::anyhow!("bad configuration: {e}"))?;
        Ok(config)
    }

    /// The database to open: `database_url` if given, else the file in `data_dir`.
    pub fn database_url(&self) -> coachloop_store::DatabaseUrl {
        match &self.database_url {
            Some(url) => coachloop_store::DatabaseUrl::new(url.clone()),
            None => coachloop_store::DatabaseUrl::in_data_dir(&self.data_dir),
        }
    }

    pub fn server(&self) -> anyhow::Result<coachloop_server::ServerConfig> {
        let password = match (&self.smtp_password, &self.smtp_password_file) {
            (_, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| {
                        anyhow::anyhow!("cannot read smtp_password_file {}: {e}", file.display())
                    })?
                    .trim_end()
                    .to_owned(),
            ),
            (password, None) => password.clone(),
        };
        let smtp = self
            .smtp_host
            .as_ref()
            .map(|host| coachloop_server::notices::SmtpConfig {
                host: host.clone(),
                port: self.smtp_port,
                tls: self.smtp_tls.clone(),
                username: self.smtp_username.clone(),
                password,
                from: self.smtp_from.clone(),
            });
        anyhow::ensure!(
            self.notice_lease >= 1,
            "notice_lease must be at least 1 (seconds), not {}",
            self.notice_lease
        );
        Ok(coachloop_server::ServerConfig {
            secret_key: std::sync::Arc::new(self.secrets()),
            regions: self.regions()?,
            notice_lease: std::time::Duration::from_secs(self.notice_lease),
            max_body_bytes: self.max_body_bytes,
            max_bulk_events: self.max_bulk_events,
            public_url: self.public_url.clone(),
            smtp,
            allow_private_destinations: self.allow_private_destinations.clone(),
            ..coachloop_server::ServerConfig::default()
        })
    }
}

impl Config {
    /// The installation's secret key, kept in `secret_key_file` (made there on first use).
    pub fn secrets(&self) -> coachloop_server::secrets::Secrets {
        coachloop_server::secrets::Secrets::file(
            self.secret_key_file
                .clone()
                .unwrap_or_else(|| self.data_dir.join("secret.key")),
        )
    }

    /// The reference service's regions with `sync_regions` in their place.
    pub fn regions(&self) -> anyhow::Result<coachloop_server::remote::Regions> {
        use coachloop_core::compliance::remote::Region;
        let overrides = self
            .sync_regions
            .iter()
            .map(|(name, url)| {
                Region::parse(name)
                    .map(|r| (r, url.clone()))
                    .with_context(|| format!("sync_regions: `{name}` is not us, eu, ca, uk or de"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(coachloop_server::remote::Regions::with(overrides))
    }
}

/// `COACHLOOP_*` variables that name no setting (probably a typo).
pub fn unknown_env_vars(vars: impl Iterator<Item = String>) -> Vec<String> {
    vars.filter_map(|name| {
        let key = name.strip_prefix("COACHLOOP_")?.to_lowercase();
        let top = key.split("__").next().unwrap_or_default().to_owned();
        (!KEYS.contains(&top.as_str())).then_some(name)
    })
    .collect()
}

#[cfg(test)]
#[expect(
    clippy::result_large_err,
    reason = "figment's Jail returns its own large error"
)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "coachloop.toml",
                "listen = \"127.0.0.1:9000\"\ndata_dir = \"from-file\"\nlog = \"debug\"\nmax_bulk_events = 10\n",
            )?;
            jail.set_env("COACHLOOP_DATA_DIR", "from-env");
            jail.set_env("COACHLOOP_LOG", "warn");
            let flags = Overrides {
                data_dir: Some(PathBuf::from("from-flag")),
                ..Overrides::default()
            };
            let config = Config::load(Some(Path::new("coachloop.toml")), &flags)
                .map_err(|e| e.to_string())?;
            assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 9000)));
            assert_eq!(config.data_dir, PathBuf::from("from-flag"));
            assert_eq!(config.log, "warn");
            assert_eq!(config.max_bulk_events, 10);
            assert_eq!(config.max_body_bytes, Config::default().max_body_bytes);
            Ok(())
        });
    }

    #[test]
    fn a_missing_file_and_a_bad_value_are_clear_errors() {
        Jail::expect_with(|jail| {
            let err =
                Config::load(Some(Path::new("nope.toml")), &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("does not exist"));
            jail.set_env("COACHLOOP_LISTEN", "not-an-address");
            let err = Config::load(None, &Overrides::default()).unwrap_err();
            assert!(err.to_string().to_lowercase().contains("listen"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_notice_lease_is_whole_seconds_and_at_least_one() {
        Jail::expect_with(|jail| {
            let load = || Config::load(None, &Overrides::default());
            let lease = load()
                .map_err(|e| e.to_string())?
                .server()
                .unwrap()
                .notice_lease;
            assert_eq!(lease, coachloop_server::notices::NOTICE_LEASE);
            jail.set_env("COACHLOOP_NOTICE_LEASE", "3");
            let lease = load()
                .map_err(|e| e.to_string())?
                .server()
                .unwrap()
                .notice_lease;
            assert_eq!(lease, std::time::Duration::from_secs(3));
            jail.set_env("COACHLOOP_NOTICE_LEASE", "0");
            let err = load().map_err(|e| e.to_string())?.server().unwrap_err();
            assert!(
                err.to_string().contains("notice_lease must be at least 1"),
                "{err}"
            );
            jail.set_env("COACHLOOP_NOTICE_LEASE", "soon");
            let err = load().unwrap_err();
            assert!(
                err.to_string().to_lowercase().contains("notice_lease"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn private_destinations_come_from_the_file_or_the_environment() {
        Jail::expect_with(|jail| {
            let load = || Config::load(Some(Path::new("coachloop.toml")), &Overrides::default());
            let ranges = |items: &[&str]| PrivateDestinations::ranges(items.iter().copied());
            jail.create_file("coachloop.toml", "log = \"info\"\n")?;
            let config = load().map_err(|e| e.to_string())?;
            assert_eq!(
                config.allow_private_destinations,
                PrivateDestinations::Forbidden
            );
            assert_eq!(
                config.server().unwrap().allow_private_destinations,
                PrivateDestinations::Forbidden
            );

            jail.create_file(
                "coachloop.toml",
                "allow_private_destinations = [\"10.0.0.0/8\", \"192.168.1.5\"]\n",
            )?;
            let config = load().map_err(|e| e.to_string())?;
            assert_eq!(
                config.allow_private_destinations,
                ranges(&["10.0.0.0/8", "192.168.1.5/32"]).unwrap()
            );
            assert_eq!(
                config.server().unwrap().allow_private_destinations,
                config.allow_private_destinations
            );

            // The environment beats the file: a comma-separated list, true or false.
            jail.set_env(
                "COACHLOOP_ALLOW_PRIVATE_DESTINATIONS",
                "127.0.0.0/8, fd00::/8",
            );
            let config = load().map_err(|e| e.to_string())?;
            assert_eq!(
                config.allow_private_destinations,
                ranges(&["127.0.0.0/8", "fd00::/8"]).unwrap()
            );
            jail.set_env("COACHLOOP_ALLOW_PRIVATE_DESTINATIONS", "true");
            let config = load().map_err(|e| e.to_string())?;
            assert_eq!(
                config.allow_private_destinations,
                PrivateDestinations::Allowed
            );
            jail.set_env("COACHLOOP_ALLOW_PRIVATE_DESTINATIONS", "false");
            let config = load().map_err(|e| e.to_string())?;
            assert_eq!(
                config.allow_private_destinations,
                PrivateDestinations::Forbidden
            );
            assert!(
                unknown_env_vars(["COACHLOOP_ALLOW_PRIVATE_DESTINATIONS".to_owned()].into_iter())
                    .is_empty()
            );

            // A bad range stops start-up, saying which and how to write one.
            jail.set_env("COACHLOOP_ALLOW_PRIVATE_DESTINATIONS", "10.0.0/8");
            let err = load().unwrap_err().to_string();
            assert!(err.contains("allow_private_destinations"), "{err}");
            assert!(err.contains("`10.0.0/8`"), "{err}");
            assert!(err.contains("10.0.0.0/8"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn warns_about_unknown_variables() {
        let vars = [
            "COACHLOOP_LISTEN",
            "COACHLOOP_LISTN",
            "PATH",
            "COACHLOOP_LOG",
        ]
        .map(String::from)
        .into_iter();
        assert_eq!(unknown_env_vars(vars), ["COACHLOOP_LISTN"]);
    }
}
