//! Bearer tokens: the extractor and a short-lived cache of token lookups.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use coachloop_core::ids::{AccountId, TokenId};
use coachloop_core::scope::Scope;
use coachloop_store::tokens::{Token, hash_secret};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a looked-up token is trusted before it is read again. Revocation through the
/// API is immediate; through the CLI of another process it takes effect within this.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// The caller, authenticated.
#[derive(Debug, Clone)]
pub struct Auth {
    pub token: Arc<Token>,
    /// A console administrator acting through the API (see [`ActingAdmin`]).
    pub admin: Option<String>,
}

/// A console administrator's form, sent through the API inside the process so that the
/// console and the API check and do everything the same way. Only the console sets it:
/// a request from outside cannot carry an extension. It acts with `admin` on the
/// session's account and is not rate-limited (the session is the limit).
#[derive(Debug, Clone)]
pub struct ActingAdmin {
    pub token: Arc<Token>,
    pub email: String,
}

impl Auth {
    pub fn account(&self) -> AccountId {
        self.token.account_id
    }

    /// Who the caller is, for what the store keeps of them: `admin:<email>` or
    /// `token:<name>`.
    pub fn who(&self) -> String {
        match &self.admin {
            Some(email) => format!("admin:{email}"),
            None => format!("token:{}", self.token.name),
        }
    }

    /// Refuses with 403 unless the token carries `scope` (or `admin`).
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        self.require_any(&[scope])
    }

    pub fn require_any(&self, scopes: &[Scope]) -> Result<(), ApiError> {
        if scopes.iter().any(|s| self.token.scopes.allows(*s)) {
            return Ok(());
        }
        let names: Vec<_> = scopes.iter().map(|s| format!("`{s}`")).collect();
        Err(ApiError::forbidden(format!(
            "this token lacks the {} scope; create a token with it (`coachloop tokens create --scopes ...`)",
            names.join(" or ")
        )))
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(acting) = parts.extensions.get::<ActingAdmin>() {
            return Ok(Auth {
                token: acting.token.clone(),
                admin: Some(acting.email.clone()),
            });
        }
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized("missing token: send `Authorization: Bearer <token>`")
            })?;
        let (scheme, credentials) = header
            .split_once(' ')
            .map(|(scheme, rest)| (scheme, rest.trim()))
            .filter(|(_, rest)| !rest.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("malformed Authorization header: expected `Bearer <token>`")
            })?;
        let token = if scheme.eq_ignore_ascii_case("bearer") {
            state
                .tokens
                .lookup(state, credentials)
                .await?
                .ok_or_else(|| ApiError::unauthorized("unknown token"))?
        } else if scheme.eq_ignore_ascii_case("basic") {
            basic(state, credentials).await?
        } else {
            return Err(ApiError::unauthorized(
                "malformed Authorization header: expected `Bearer <token>` (or, with an LRS credential, `Basic <key:secret>`)",
            ));
        };
        let now = state.store.clock().now_ms();
        if let Some(reason) = token.unusable_reason(now) {
            return Err(ApiError::unauthorized(reason));
        }
        // The audit log's read of a resource before a change is not the caller's request.
        if parts.extensions.get::<crate::audit::AuditRead>().is_none() {
            state.limits.admit(token.id, token.limits, now)?;
        }
        Ok(Auth { token, admin: None })
    }
}

/// HTTP Basic auth with an LRS credential: its key as the user name, its secret as the
/// password. The key is compared in constant time, after the secret's lookup.
async fn basic(state: &AppState, credentials: &str) -> Result<Arc<Token>, ApiError> {
    use base64::Engine;
    let malformed =
        || ApiError::unauthorized("malformed Basic credentials: expected base64 of `key:secret`");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .map_err(|_| malformed())?;
    let text = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (key, secret) = text.split_once(':').ok_or_else(malformed)?;
    let token = state.tokens.lookup(state, secret).await?;
    match token {
        Some(token)
            if token.lrs_key.as_deref().is_some_and(|known| {
                bool::from(subtle::ConstantTimeEq::ct_eq(
                    known.as_bytes(),
                    key.as_bytes(),
                ))
            }) =>
        {
            Ok(token)
        }
        _ => Err(ApiError::unauthorized(
            "unknown key or secret: create an LRS credential (`coachloop lrs create`) and use its key and secret",
        )),
    }
}

/// Declares an extractor that authenticates and requires a scope before anything else
/// of the request (above all its body) is looked at, so a token without the scope gets
/// 403 whatever it sent.
macro_rules! scoped {
    ($(#[$doc:meta])* $name:ident, $scope:expr) => {
        $(#[$doc])*
        pub struct $name(pub Auth);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, ApiError> {
                let auth = Auth::from_request_parts(parts, state).await?;
                auth.require($scope)?;
                Ok(Self(auth))
            }
        }
    };
}

scoped!(
    /// A caller with the `admin` scope.
    Admin,
    Scope::Admin
);
scoped!(
    /// A caller with the `events:write` scope.
    EventsWriter,
    Scope::EventsWrite
);
scoped!(
    /// A caller with the `group:read` scope.
    GroupReader,
    Scope::GroupRead
);
scoped!(
    /// A caller with the `account:read` scope.
    AccountReader,
    Scope::AccountRead
);
scoped!(
    /// A caller with the `user:read` scope.
    UserReader,
    Scope::UserRead
);
scoped!(
    /// A caller with the `program:read` scope (modules and policies).
    ProgramReader,
    Scope::ProgramRead
);
scoped!(
    /// A caller with the `campaign:read` scope.
    CampaignReader,
    Scope::CampaignRead
);
scoped!(
    /// A caller with the `enrollments:read` scope.
    EnrollmentsReader,
    Scope::EnrollmentsRead
);

/// A looked-up token and when it was read.
type Cached = (Arc<Token>, Instant);

#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], Cached>>,
    /// When each token's `last_used_at` was last written, so a burst of cache misses
    /// writes it once.
    touched: Mutex<HashMap<TokenId, Instant>>,
    /// The store's count of revocations when the entries were last trusted: a token
    /// revoked on any node drops them all at once (the TTL bounds the rest).
    revocations: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    pub(crate) async fn lookup(
        &self,
        state: &AppState,
        secret: &str,
    ) -> Result<Option<Arc<Token>>, ApiError> {
        let key = hash_secret(secret);
        let revocations = state.store.revocations();
        if self
            .revocations
            .swap(revocations, std::sync::atomic::Ordering::SeqCst)
            != revocations
        {
            self.clear();
        }
        if let Some((token, at)) = self.lock().get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(Some(token.clone()));
        }
        let token = state.store.token_by_secret(secret).await?.map(Arc::new);
        match &token {
            Some(token) => {
                self.lock().insert(key, (token.clone(), Instant::now()));
                if !self.due_for_touch(token.id) {
                    return Ok(Some(token.clone()));
                }
                // last_used_at is kept to within the cache lifetime, off the request path.
                let store = state.store.clone();
                let (id, now) = (token.id, store.clock().now_ms());
                tokio::spawn(async move {
                    match store.touch_token(id, now).await {
                        // The server is shutting down; the next start records uses again.
                        Err(e) if !e.is_closed() => {
                            tracing::warn!(error = %e, "could not record token use");
                        }
                        _ => {}
                    }
                });
            }
            None => {
                self.lock().remove(&key);
            }
        }
        Ok(token)
    }

    fn due_for_touch(&self, id: TokenId) -> bool {
        let mut touched = self.touched.lock().unwrap_or_else(|e| e.into_inner());
        match touched.get(&id) {
            Some(at) if at.elapsed() < CACHE_TTL => false,
            _ => {
                touched.insert(id, Instant::now());
                true
            }
        }
    }

    /// Forgets every cached lookup (after a revocation).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Cached>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
