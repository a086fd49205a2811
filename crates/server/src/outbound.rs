//! Requests to URLs that users give (webhooks; later remote syncs and forwarders) reach
//! only public addresses unless the operator allows more (`allow_private_destinations`,
//! judged by [`coachloop_core::destination`]). Every such request goes through a
//! [`Client`] built by [`Gate::client`], which enforces the policy at each step where an
//! address is chosen:
//!
//! * names: the client's resolver drops refused addresses and fails the connection with
//!   the rule when none are left, so a name re-pointed after registration (DNS
//!   rebinding) is caught when it is used;
//! * IP literals, which reqwest connects to without asking the resolver: checked by
//!   [`Client::request`] before each send, and by the redirect policy on every redirect
//!   (at most [`MAX_REDIRECTS`]);
//! * proxies are off: through a proxy the destination's address is never resolved here.
//!
//! [`Gate::check_new`] checks a URL when it is registered, so the admin hears at once.
//!
//! The one seam: a table of static hosts ([`crate::ServerConfig::static_hosts`]) that the
//! resolver consults before the system's. It is empty in production; tests use it to make
//! a name resolve to an internal address, since CI machines have no outside DNS.

use coachloop_core::destination::{PrivateDestinations, Refused};
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;
use std::collections::HashMap;
use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Redirects followed per request, at most.
pub const MAX_REDIRECTS: usize = 5;
/// How long registration waits for a name to resolve before accepting it unchecked (it is
/// checked again on every connection).
const REGISTRATION_LOOKUP: Duration = Duration::from_secs(5);

/// Why a request may not go to a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("must be an absolute http:// or https:// URL")]
    NotHttp,
    /// `name`: the host name that resolved to the refused address, if it was a name.
    #[error(
        "{refused}{}; coachloop sends only to public addresses unless the operator allows \
         this one (allow_private_destinations)",
        name.as_ref().map(|n| format!(" ({n} resolves to it)")).unwrap_or_default()
    )]
    Refused {
        name: Option<String>,
        refused: Refused,
    },
    /// A redirect to a refused address, which is not followed.
    #[error("redirected to {to}: {refusal}")]
    Redirect {
        to: String,
        refusal: Box<DestinationError>,
    },
}

/// The policy and the static hosts, shared by every client built from it.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    policy: PrivateDestinations,
    hosts: HashMap<String, Vec<IpAddr>>,
}

impl Gate {
    /// `hosts`: names answered before the system resolver is asked (lower case, no
    /// trailing dot); empty outside tests.
    pub fn new(policy: PrivateDestinations, hosts: HashMap<String, Vec<IpAddr>>) -> Self {
        Self(Arc::new(Inner { policy, hosts }))
    }

    /// The policy's verdict on `url`'s host when it is an IP literal; names pass (the
    /// resolver judges what they resolve to).
    fn check_literal(&self, url: &Url) -> Result<(), DestinationError> {
        let Some(ip) = literal(url) else {
            return Ok(());
        };
        self.0
            .policy
            .check(ip)
            .map_err(|refused| DestinationError::Refused {
                name: None,
                refused,
            })
    }

    /// The addresses of `name`: from the static hosts, else the system resolver.
    async fn lookup(&self, name: &str) -> std::io::Result<Vec<IpAddr>> {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(addrs) = self.0.hosts.get(&key) {
            return Ok(addrs.clone());
        }
        Ok(tokio::net::lookup_host((name, 0))
            .await?
            .map(|addr| addr.ip())
            .collect())
    }

    /// Checks a URL someone registers: an http(s) URL whose host is a public address, or
    /// a name none of whose addresses is refused. A name that does not resolve now is
    /// accepted: every connection checks it again.
    pub async fn check_new(&self, url: &str) -> Result<Url, DestinationError> {
        let url = Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or(DestinationError::NotHttp)?;
        self.check_literal(&url)?;
        if let (None, Some(name)) = (literal(&url), url.host_str()) {
            let resolved = tokio::time::timeout(REGISTRATION_LOOKUP, self.lookup(name)).await;
            if let Ok(Ok(addrs)) = resolved {
                for ip in addrs {
                    self.0
                        .policy
                        .check(ip)
                        .map_err(|refused| DestinationError::Refused {
                            name: Some(name.to_owned()),
                            refused,
                        })?;
                }
            }
        }
        Ok(url)
    }

    /// A client for user-given URLs: the policy on every resolution and redirect, no
    /// proxy, `timeout` per request.
    pub fn client(&self, timeout: Duration) -> reqwest::Result<Client> {
        let gate = self.clone();
        let redirects = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if let Err(refusal) = gate.check_literal(attempt.url()) {
                let to = attempt.url().to_string();
                attempt.error(DestinationError::Redirect {
                    to,
                    refusal: Box::new(refusal),
                })
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .redirect(redirects)
            .dns_resolver(Arc::new(Resolver(self.clone())))
            .build()?;
        Ok(Client {
            http,
            gate: self.clone(),
        })
    }
}

/// `url`'s host when it is an IP literal. The URL parser has already turned every
/// spelling of an IPv4 address (`2130706433`, `0x7f.1`) into dotted form; IPv6 ones come
/// in brackets.
fn literal(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

/// Resolves a name and keeps only the addresses the policy allows.
struct Resolver(Gate);

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let gate = self.0.clone();
        Box::pin(async move {
            let name = name.as_str();
            let mut first_refusal = None;
            let allowed: Vec<SocketAddr> = gate
                .lookup(name)
                .await?
                .into_iter()
                .filter(|&ip| match gate.0.policy.check(ip) {
                    Ok(()) => true,
                    Err(refused) => {
                        first_refusal.get_or_insert(refused);
                        false
                    }
                })
                // Port 0: reqwest puts in the URL's (or the scheme's) port.
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            match first_refusal {
                Some(refused) if allowed.is_empty() => Err(DestinationError::Refused {
                    name: Some(name.to_owned()),
                    refused,
                }
                .into()),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// An HTTP client that sends only where the [`Gate`] it was built from allows.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    gate: Gate,
}

impl Client {
    /// A request to `url`, refused at once when its host is an IP literal the policy
    /// refuses (reqwest does not resolve those, so the resolver cannot).
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, DestinationError> {
        let url = Url::parse(url).map_err(|_| DestinationError::NotHttp)?;
        self.gate.check_literal(&url)?;
        Ok(self.http.request(method, url))
    }

    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, DestinationError> {
        self.request(reqwest::Method::POST, url)
    }
}

/// What went wrong with a request, for a delivery log: a refusal by the policy (on
/// connecting or on a redirect) names its rule; other errors give their causes.
pub fn describe(error: &reqwest::Error) -> String {
    let mut cause = error.source();
    while let Some(e) = cause {
        if let Some(refused) = e.downcast_ref::<DestinationError>() {
            return refused.to_string();
        }
        cause = e.source();
    }
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}
