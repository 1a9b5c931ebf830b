//! The server's state and settings: the user store, keys, sessions,
//! password verifier, and the limits and switches the routes apply. Every
//! `impl App` is in this folder:
//!
//! - `mod.rs`: [`App`], [`Config`], [`App::new`];
//! - `reload.rs`: the users and keys a request takes ([`UsersAndKeys`],
//!   [`App::users_and_keys`]) and [`App::reload`], which swaps them while
//!   the server runs;
//! - `sessions.rs`: the sessions' state (the store, the deny-list) and
//!   ending a user's sessions;
//! - `metrics.rs`: [`App::metrics`], the Prometheus text of the app's
//!   counters and gauges;
//! - `handle.rs`: [`App::handle`], one request answered by the handlers.
//!
//! Handlers are free functions taking `&App` (`src/handlers/`); nothing
//! here imports them but `handle.rs`.

mod handle;
pub(crate) mod metrics;
mod reload;
mod sessions;

#[allow(deprecated)]
pub use reload::Loaded;
pub use reload::UsersAndKeys;
pub(crate) use sessions::SessionState;

use crate::clients::Clients;
use crate::counters::Counters;
use crate::limiter::Limiter;
use crate::openapi::{Docs, SwaggerAssets};
use crate::password::{default_slots, Verifier};
use crate::server::caps::ConnectionCaps;
use crate::sessions::memory::MemorySessions;
use crate::sessions::{DenyList, Revocations, SessionStore, MAX_REVOCATIONS_PER_USER};
use crate::throttle::Limits;
use crate::token::SecretKey;
use crate::token_cache::TokenCache;
use crate::users::{UserStore, Users};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Everything a server needs to start. Build it with [`Config::new`] and
/// change the public fields you need.
#[derive(Debug)]
#[non_exhaustive]
pub struct Config<S = Users> {
    /// Who may log in: the built-in [`Users`] or your own [`UserStore`].
    pub users: S,
    /// The clients (machines with an id and a secret) that may use the
    /// client credentials grant, `POST /introspect` and `POST /revoke` with
    /// client authentication (default: none, and none of that is served;
    /// see `docs/clients.md`). Replaced by [`App::reload_clients`].
    pub clients: Option<Clients>,
    /// The HS256 key tokens are signed and checked with.
    pub key: SecretKey,
    /// Keys that still verify tokens but no longer sign them (a rotation:
    /// tokens signed with the previous key keep working until they expire).
    pub old_keys: Vec<SecretKey>,
    /// EdDSA and ES256 keys (the `signing` feature; default none): the
    /// first signs every access token instead of `key`, which then only
    /// verifies; every one verifies and is published at
    /// `/.well-known/jwks.json`.
    #[cfg(feature = "signing")]
    pub signing_keys: Vec<crate::token::SigningKey>,
    /// `iss` of every access token, and required of every token verified
    /// (default none). With it, tokens follow RFC 9068 (`typ: at+jwt`,
    /// `client_id`, `jti`), and `/.well-known/oauth-authorization-server`
    /// is served. With the `signing` feature.
    #[cfg(feature = "signing")]
    pub issuer: Option<String>,
    /// `aud` of every access token, and required of every token verified
    /// (default none; with an `issuer`, the issuer itself: the tokens are
    /// then for this server's own API). With the `signing` feature.
    #[cfg(feature = "signing")]
    pub audience: Option<String>,
    /// How long a login's session, and so its refresh tokens, lasts
    /// (default 14 days). Zero turns sessions off: no refresh tokens, no
    /// `POST /revoke`, and tokens without `kid`, `jti` or `sid`.
    pub refresh_token_ttl: Duration,
    /// How long after a refresh the refresh token it used up may be
    /// presented once more (default 60 s; zero: never), for a client whose
    /// answer was lost: the retry gets a fresh pair instead of ending the
    /// session as a reuse (see `sessions`).
    pub refresh_retry_window: Duration,
    /// Where sessions are kept (default: [`MemorySessions`], bounded, lost
    /// on restart).
    pub sessions: Option<Arc<dyn SessionStore>>,
    /// Most revocations held in the deny-list (default 100,000); past it
    /// the user holding the most has theirs collapsed into one mark (every
    /// token issued to them until then), so none is dropped.
    pub max_revocations: usize,
    /// Most revocations one user's may hold in the deny-list (default
    /// [`MAX_REVOCATIONS_PER_USER`]) before they collapse into one mark.
    pub max_revocations_per_user: usize,
    /// How long an issued token lives (default 30 minutes, as in FastAPI's
    /// JWT chapter).
    pub token_ttl: Duration,
    /// Clock skew tolerated on `exp` and `nbf` (default 0; at most 60 s).
    pub leeway: Duration,
    /// Largest accepted request body (default 16 KiB); more gets 413.
    pub body_limit: usize,
    /// Time a client has to send a complete request head, also the idle
    /// limit of a keep-alive connection (default 10 s).
    pub header_read_timeout: Duration,
    /// Time a request has after its head: a handler that has not answered
    /// by then (its body stopped arriving) is answered 408 and the
    /// connection closed, and answers the client does not read must drain
    /// within it too, or the connection is closed (default 10 s).
    pub request_timeout: Duration,
    /// On shutdown, how long in-flight requests may take (default 10 s).
    pub grace_period: Duration,
    /// Serve `/openapi.json` and `/docs` (default true); off for locked-down
    /// deployments, where both answer 404.
    pub docs: bool,
    /// Where `/docs` loads Swagger UI's `swagger-ui-bundle.js` and
    /// `swagger-ui.css` from (default: the CDN FastAPI uses).
    pub docs_assets_url: String,
    /// Swagger UI's files served by the app itself (see
    /// [`SwaggerAssets::load`]); when set, `/docs` loads them from here and
    /// `docs_assets_url` is not used (default: none).
    pub docs_assets: Option<SwaggerAssets>,
    /// One stderr line per request: method, path, status, microseconds,
    /// peer (default false).
    pub access_log: bool,
    /// One stderr line per login success or failure: username, peer,
    /// outcome; never a password, hash or token (default true).
    pub login_log: bool,
    /// Failed logins allowed per username and per client address in a
    /// sliding minute before `/token` answers 429 (default 10 and 100).
    pub throttle: Limits,
    /// Count failed logins in this Redis, with `throttle`'s limits, shared
    /// by every instance that counts there, instead of in this process
    /// (default: none; the `redis` feature).
    #[cfg(feature = "redis")]
    pub shared_throttle: Option<crate::redis::Redis>,
    /// Connections served at once (default 4096), over every listener the
    /// app is served on; [`crate::serve`] stops accepting at the cap, so
    /// more wait in the kernel's listen backlog.
    pub max_connections: usize,
    /// Connections served at once from one client address (an IPv6 /64);
    /// more are refused at once. `None` (the default) is an eighth of
    /// `max_connections`, so that one address never holds them all;
    /// `Some(0)` lifts the cap (behind a reverse proxy, every client has
    /// the proxy's address).
    pub max_connections_per_ip: Option<usize>,
    /// Password hashes computed at once (default: one per core); each
    /// holds the hash's memory (19 MiB at the default cost) while it runs.
    pub hash_slots: usize,
    /// How long a login may wait for a hash slot (default 2 s); one that
    /// could not start its hash by then, or that the queue ahead of it
    /// already makes wait longer, is answered 503 at once.
    pub login_queue_wait: Duration,
}

/// Longest password accepted: argon2's input is hashed in full, so the cost
/// of a login is ours to bound. Longer ones fail like a wrong password,
/// without hashing, and count as no failure.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Swagger UI's assets, as FastAPI loads them.
pub const DEFAULT_DOCS_ASSETS_URL: &str = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5";

/// The largest leeway accepted: more would keep expired tokens alive.
pub const MAX_LEEWAY: Duration = Duration::from_secs(60);

impl<S: UserStore> Config<S> {
    /// A configuration with the default settings.
    pub fn new(users: S, key: SecretKey) -> Config<S> {
        Config {
            users,
            clients: None,
            key,
            old_keys: Vec::new(),
            #[cfg(feature = "signing")]
            signing_keys: Vec::new(),
            #[cfg(feature = "signing")]
            issuer: None,
            #[cfg(feature = "signing")]
            audience: None,
            refresh_token_ttl: Duration::from_secs(14 * 24 * 60 * 60),
            refresh_retry_window: Duration::from_secs(60),
            sessions: None,
            max_revocations: 100_000,
            max_revocations_per_user: MAX_REVOCATIONS_PER_USER,
            token_ttl: Duration::from_secs(30 * 60),
            leeway: Duration::ZERO,
            body_limit: 16 * 1024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            grace_period: Duration::from_secs(10),
            docs: true,
            docs_assets_url: DEFAULT_DOCS_ASSETS_URL.to_owned(),
            docs_assets: None,
            access_log: false,
            login_log: true,
            throttle: Limits::default(),
            #[cfg(feature = "redis")]
            shared_throttle: None,
            max_connections: 4096,
            max_connections_per_ip: None,
            hash_slots: default_slots(),
            login_queue_wait: Duration::from_secs(2),
        }
    }
}

/// The running server's state, shared by all connections. Mount it in
/// your own hyper service with [`App::handle`], or serve it with
/// [`crate::serve`].
#[derive(Debug)]
pub struct App<S = Users> {
    /// The users and keys, replaced whole by [`App::reload`]. A std lock,
    /// held only to clone the `Arc`: a request takes the current set once
    /// and keeps it to its end.
    current: RwLock<Arc<UsersAndKeys<S>>>,
    /// The clients, replaced whole by [`App::reload_clients`]; `None` when
    /// the app started without (`Config::clients`), and then for good. A
    /// std lock, held only to clone the `Arc`.
    pub(crate) clients: Option<RwLock<Arc<Clients>>>,
    /// `None` when sessions are off.
    pub(crate) sessions: Option<SessionState>,
    pub(crate) tokens: TokenCache,
    pub(crate) verifier: Verifier,
    pub(crate) token_ttl_secs: i64,
    pub(crate) leeway_secs: i64,
    pub(crate) body_limit: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) grace_period: Duration,
    /// Rendered once at start: the routes are fixed while the server runs.
    pub(crate) docs: Option<Docs>,
    pub(crate) access_log: bool,
    pub(crate) login_log: bool,
    /// The failed-login counts in use, with `Config::throttle`'s limits.
    pub(crate) limiter: Limiter,
    /// The connection caps, shared by every serving loop of this app.
    pub(crate) connections: Arc<ConnectionCaps>,
    /// `/.well-known/jwks.json` is served: there are EdDSA or ES256 keys.
    pub(crate) serves_jwks: bool,
    /// `/.well-known/oauth-authorization-server` is served: there is an
    /// issuer.
    pub(crate) serves_metadata: bool,
    /// Requests, logins and refreshes counted ([`App::metrics`]); an
    /// `Arc`, as each request's future holds it until it has answered.
    pub(crate) counters: Arc<Counters>,
}

impl<S: UserStore> App<S> {
    /// Builds the state. Cheap: nothing is hashed until the first login;
    /// what the session store had revoked is loaded into the deny-list.
    pub fn new(config: Config<S>) -> App<S> {
        let verifier = Verifier::with_limits(
            reload::usual_params(&config.users),
            config.hash_slots,
            config.login_queue_wait,
        );
        verifier.set_slowest_params(&reload::slowest_params(&config.users));
        let limiter = Limiter::new(
            &config.throttle,
            config.login_queue_wait,
            #[cfg(feature = "redis")]
            config.shared_throttle.as_ref(),
        );
        let docs = config.docs.then(|| {
            Docs::new(
                &config.users.scopes(),
                !config.refresh_token_ttl.is_zero(),
                &config.docs_assets_url,
                config.docs_assets,
            )
        });
        let sessions = (!config.refresh_token_ttl.is_zero()).then(|| {
            let store = config
                .sessions
                .unwrap_or_else(|| Arc::new(MemorySessions::default()));
            let revocations =
                Revocations::new(config.max_revocations, config.max_revocations_per_user);
            let now = crate::clock::unix_now();
            // With their owners: each counts against its user's cap again.
            for (revocation, owner) in store.revocations(now) {
                revocations.add(revocation, owner.as_deref(), now);
            }
            let revocations = Arc::new(revocations);
            store.follow(DenyList(revocations.clone()));
            SessionState {
                store,
                revocations,
                ttl_secs: i64::try_from(config.refresh_token_ttl.as_secs()).unwrap_or(i64::MAX),
                retry_secs: i64::try_from(config.refresh_retry_window.as_secs())
                    .unwrap_or(i64::MAX),
            }
        });
        let mut keys = vec![config.key];
        keys.extend(config.old_keys);
        #[cfg(feature = "signing")]
        let (serves_jwks, serves_metadata) =
            (!config.signing_keys.is_empty(), config.issuer.is_some());
        #[cfg(not(feature = "signing"))]
        let (serves_jwks, serves_metadata) = (false, false);
        #[cfg(feature = "signing")]
        let signing = {
            let audience = config.audience.or_else(|| config.issuer.clone());
            let profile = crate::token::Profile::new(config.issuer, audience);
            (config.signing_keys, Arc::new(profile))
        };
        let current = UsersAndKeys::new(
            config.users,
            keys,
            #[cfg(feature = "signing")]
            signing,
        );
        App {
            current: RwLock::new(Arc::new(current)),
            clients: config.clients.map(|c| RwLock::new(Arc::new(c))),
            sessions,
            tokens: TokenCache::new(),
            verifier,
            token_ttl_secs: i64::try_from(config.token_ttl.as_secs()).unwrap_or(i64::MAX),
            leeway_secs: config.leeway.min(MAX_LEEWAY).as_secs() as i64,
            body_limit: config.body_limit,
            header_read_timeout: config.header_read_timeout,
            request_timeout: config.request_timeout,
            grace_period: config.grace_period,
            docs,
            access_log: config.access_log,
            login_log: config.login_log,
            limiter,
            connections: Arc::new(ConnectionCaps::new(
                config.max_connections,
                config
                    .max_connections_per_ip
                    .unwrap_or((config.max_connections / 8).max(1)),
            )),
            serves_jwks,
            serves_metadata,
            counters: Arc::default(),
        }
    }
}
