//! Users in a PostgreSQL table (the `postgres` feature): a [`UserStore`]
//! that several instances share, so that a user added, changed, disabled or
//! deleted with plain SQL counts on every instance, with no reload.
//!
//! How a change reaches the instances: each keeps the rows it read for
//! [`FRESH_FOR`] (0.5 s) and reads a row again at the first request after
//! that. So `GET /users/me` pays one round trip per user per half second,
//! not one per request, and a change committed at time t is seen by every
//! request from t + 0.5 s on (the read that is served was issued before
//! the commit at the latest, and is dropped 0.5 s after it was issued).
//! LISTEN/NOTIFY would reach the instances sooner, but a notification lost
//! with a connection (a network partition without a reset) would leave a
//! disabled user in the cache for as long as nobody noticed; an expiry
//! bounds the delay whatever the network does.
//!
//! While the database cannot answer, a row read less than 0.5 s ago is
//! still served, and every other lookup is a [`StoreError`] (503 with
//! `Retry-After`, no failed login counted): a cached row never outlives
//! the bound a change has, outage or not, so a user disabled just before
//! the database went away is not let in during the outage. `/healthz`
//! queries the table itself, so it answers 503 as soon as the database is
//! gone. The pool replaces connections the server closed, so the store
//! recovers by itself when the database comes back.
//!
//! The table is [`SCHEMA`] (`contrib/postgres/users.sql`), named `users`
//! unless [`PostgresUsers::with_table`] names another (in another schema,
//! say), created when
//! missing at the first connection that works, and never again: a lookup
//! that recreated a dropped table would find nobody, and every login would
//! fail, counted, instead of getting 503. There is no TLS to the database
//! (`NoTls`): run it on the same host or a private network, or tunnel it.
//!
//! ```no_run
//! use password_bearer::users::postgres::PostgresUsers;
//! use password_bearer::{token::SecretKey, App, Config};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let users = PostgresUsers::new("postgres://bearer:secret@db.internal/auth")?;
//! // Inside the runtime; a database not up yet is 503 until it is.
//! if let Err(e) = users.connect().await {
//!     eprintln!("{e}");
//! }
//! let app = App::new(Config::new(users, SecretKey::random()?));
//! # Ok(())
//! # }
//! ```

use super::{is_scope_token, StoreError, User, UserStore, MAX_USERNAME_BYTES};
use crate::password;
use argon2::Params;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio_postgres::config::SslMode;
use tokio_postgres::NoTls;

/// The users table, as created when missing: the users file's shape.
pub const SCHEMA: &str = include_str!("../../contrib/postgres/users.sql");

/// The table [`PostgresUsers::new`] reads.
pub const DEFAULT_TABLE: &str = "users";

/// The statement of [`SCHEMA`] that names the table, replaced when the
/// table has another name.
const CREATE_DEFAULT: &str = "CREATE TABLE IF NOT EXISTS users (";

/// How long a row read from the table is served before it is read again:
/// the longest a change made with SQL takes to count on every instance.
pub const FRESH_FOR: Duration = Duration::from_millis(500);

/// How long connecting, waiting for a pooled connection, or a query may
/// take before the lookup fails (503): the client's `Retry-After` is 2 s.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(2);

/// Connections open at once. A lookup by primary key takes well under a
/// millisecond, and the cache leaves at most one per user per
/// [`FRESH_FOR`], so a few keep up with any login rate hashing allows.
const CONNECTIONS: usize = 4;

/// Most rows cached. Failed logins for made-up usernames are cached too
/// (as "no such user"), so the bound matters: past it, expired rows are
/// dropped, and if that frees nothing new rows are not cached.
const MAX_CACHED: usize = 100_000;

/// Lookups of the same user wait for one read instead of each issuing
/// its own; users are spread over this many locks.
const STRIPES: usize = 64;

/// Every statement, written for one table's name.
struct Queries {
    /// The name as `to_regclass` reads it, to find whether it exists.
    regclass: String,
    create: String,
    find_user: String,
    /// Reads the table, not just the connection: a bare `SELECT 1` would
    /// succeed with the table dropped.
    health_check: String,
    scopes: String,
    hashes: String,
}

impl Queries {
    /// The statements for `table`, `name` or `schema.name`: each part a
    /// lowercase SQL identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes, as
    /// PostgreSQL keeps them), quoted, so that a reserved word such as
    /// `user` is a name too. Nothing else is accepted: the name is written
    /// into SQL, never a value a client sends.
    fn new(table: &str) -> Result<Queries, PostgresError> {
        let quoted = quote_table(table)?;
        Ok(Queries {
            regclass: quoted.clone(),
            create: SCHEMA.replacen(
                CREATE_DEFAULT,
                &format!("CREATE TABLE IF NOT EXISTS {quoted} ("),
                1,
            ),
            find_user: format!(
                "SELECT username, hashed_password, email, full_name, disabled, scopes \
                 FROM {quoted} WHERE username = $1"
            ),
            health_check: format!("SELECT 1 FROM {quoted} LIMIT 1"),
            scopes: format!(
                "SELECT DISTINCT s FROM {quoted}, unnest(scopes) AS s WHERE s IS NOT NULL"
            ),
            hashes: format!("SELECT hashed_password FROM {quoted} LIMIT 1000"),
        })
    }
}

/// `table`, `name` or `schema.name`, quoted for SQL: each part a
/// lowercase SQL identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes, as
/// PostgreSQL keeps them), quoted, so that a reserved word such as `user`
/// is a name too. Nothing else is accepted: the name is written into SQL,
/// never a value a client sends. The clients table's too.
pub(crate) fn quote_table(table: &str) -> Result<String, PostgresError> {
    let parts: Vec<&str> = table.split('.').collect();
    let identifier = |part: &str| {
        let mut chars = part.chars();
        part.len() <= 63
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    if parts.len() > 2 || !parts.iter().all(|p| identifier(p)) {
        return Err(PostgresError::Table);
    }
    Ok(parts
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join("."))
}

/// The users table of a PostgreSQL database, as a [`UserStore`]. Build it
/// with [`PostgresUsers::new`] (no I/O), then call
/// [`PostgresUsers::connect`] once inside the runtime; lookups connect on
/// their own if that failed.
pub struct PostgresUsers {
    pool: Pool,
    /// The URL with its password replaced, for log lines.
    target: String,
    cache: RwLock<HashMap<Box<str>, Cached>>,
    /// When expired rows were last dropped, so that a full cache is swept
    /// at most once per [`FRESH_FOR`].
    swept_at: Mutex<Instant>,
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// The last time the database could not be reached, and why: lookups
    /// that were waiting behind that attempt fail at once instead of each
    /// waiting its own timeout.
    down_since: Mutex<Option<(Instant, Arc<str>)>>,
    /// Whether the table exists (found or created).
    table_ready: AtomicBool,
    /// The statements, for the table's name.
    queries: Queries,
    /// Read at the first connection that works: `App::new` renders
    /// `/openapi.json` once.
    scopes: OnceLock<Vec<String>>,
    params: OnceLock<Params>,
    /// The costliest parameters read then (see
    /// [`UserStore::slowest_hash_params`]).
    slowest: OnceLock<Params>,
}

impl fmt::Debug for PostgresUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresUsers")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// A row as last read: the user, or `None` for no such user.
struct Cached {
    read_at: Instant,
    user: Option<Arc<User>>,
}

/// Why [`PostgresUsers::new`] refused a URL: what is wrong, never the URL
/// (which may hold a password).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PostgresError {
    /// Not a `postgres://` or `postgresql://` URL.
    NotAUrl,
    /// The client refused it (its reason: an option's name, never a value).
    Invalid(String),
    /// The connection pool could not be built.
    Pool(String),
    /// The table's name is not `name` or `schema.name` in lowercase SQL
    /// identifiers.
    Table,
}

impl fmt::Display for PostgresError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostgresError::NotAUrl => f.write_str("not a postgres:// or postgresql:// URL"),
            PostgresError::Invalid(why) => write!(f, "invalid PostgreSQL URL: {why}"),
            PostgresError::Pool(why) => write!(f, "cannot build the connection pool: {why}"),
            PostgresError::Table => f.write_str(
                "not a table name: one or two lowercase SQL identifiers \
                 ([a-z_][a-z0-9_]*, at most 63 bytes each), as in users or auth.users",
            ),
        }
    }
}

impl std::error::Error for PostgresError {}

/// Whether `text` names a PostgreSQL database (libpq's two URL schemes)
/// rather than a users file.
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// Checks that `table` names a table as [`PostgresUsers::with_table`]
/// takes it (`name` or `schema.name`, lowercase SQL identifiers).
pub fn check_table(table: &str) -> Result<(), PostgresError> {
    Queries::new(table).map(drop)
}

/// `url` with its password replaced by `***`, in the user information and
/// in a `password=` option, for log lines and error messages. Errs on the
/// side of hiding: everything between the user name and the last `@` goes,
/// so a password with an unescaped `/`, `?` or `@` is hidden whole.
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let (Some(start), Some(at)) = (out.find("://"), out.rfind('@')) {
        let userinfo = start + 3..at;
        if let Some(colon) = out.get(userinfo.clone()).and_then(|u| u.find(':')) {
            out.replace_range(userinfo.start + colon + 1..at, "***");
        }
    }
    if let Some(query) = out.find('?') {
        let mut rest = out.split_off(query);
        let mut from = 0;
        while let Some(found) = rest[from..].find("password=") {
            let value = from + found + "password=".len();
            let boundary = rest[from + found - 1..].starts_with(['?', '&']);
            let end = rest[value..].find('&').map_or(rest.len(), |e| value + e);
            if boundary {
                rest.replace_range(value..end, "***");
                from = value + 3;
            } else {
                from = value;
            }
        }
        out.push_str(&rest);
    }
    out
}

/// An error and its causes on one line: tokio-postgres says "error
/// connecting to server" and keeps "Connection refused" in its source.
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text.replace(['\n', '\r'], " ")
}

/// A lookup that failed: the database could not answer, or a row is not
/// a usable user (its fault alone, not the database's).
enum Fault {
    Down(StoreError),
    Row(StoreError),
}

/// The connection pool for the database at `url`, with the store's
/// settings (timeouts, the application name, no TLS, [`CONNECTIONS`]
/// connections); no I/O. The clients table (`clients::postgres`) builds
/// its own with it when it is on another database.
pub(crate) fn pool(url: &str) -> Result<Pool, PostgresError> {
    if !is_postgres_url(url) {
        return Err(PostgresError::NotAUrl);
    }
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| PostgresError::Invalid(describe(&e)))?;
    if matches!(config.get_ssl_mode(), SslMode::Require) {
        // Refused now: every connection would fail, and the server
        // would answer 503 for ever with a reason buried in its log.
        return Err(PostgresError::Invalid(
            "sslmode=require: this server does not speak TLS to PostgreSQL; \
             reach it on the same host, a private network or a tunnel"
                .into(),
        ));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("password-bearer");
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // A connection the server closed is replaced at checkout;
            // one that fails a query is dropped (`Object::take`), so
            // no round trip is spent checking healthy ones.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(CONNECTIONS)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(TIMEOUT))
        .create_timeout(Some(TIMEOUT))
        .recycle_timeout(Some(TIMEOUT))
        .build()
        .map_err(|e| PostgresError::Pool(describe(&e)))
}

/// Creates the table `regclass` (quoted, [`quote_table`]) with `create`
/// if it is missing: whether it did. Looked up before it is created:
/// `CREATE TABLE IF NOT EXISTS` needs the CREATE privilege even when the
/// table exists, and a server whose role may only read must still start.
pub(crate) async fn ensure_table(
    client: &tokio_postgres::Client,
    regclass: &str,
    create: &str,
) -> Result<bool, tokio_postgres::Error> {
    let exists = || async {
        let found = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&regclass])
            .await?;
        found.try_get::<_, bool>(0)
    };
    if exists().await? {
        return Ok(false);
    }
    // Two instances starting together both find it missing; the one whose
    // CREATE loses the race fails (a unique violation in the catalog), and
    // finds it.
    match client.batch_execute(create).await {
        Ok(()) => Ok(true),
        Err(e) if exists().await? => {
            drop(e);
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

impl PostgresUsers {
    /// The store for the database at `url` (`postgres://user:password@host:port/db`
    /// or `postgresql://…`, with libpq's options such as
    /// `?connect_timeout=5`), its table [`DEFAULT_TABLE`]. Does no I/O:
    /// see [`PostgresUsers::connect`].
    pub fn new(url: &str) -> Result<PostgresUsers, PostgresError> {
        PostgresUsers::with_table(url, DEFAULT_TABLE)
    }

    /// [`PostgresUsers::new`], its users in `table` (`name` or
    /// `schema.name`, lowercase SQL identifiers), created with
    /// [`SCHEMA`]'s columns when missing.
    pub fn with_table(url: &str, table: &str) -> Result<PostgresUsers, PostgresError> {
        let queries = Queries::new(table)?;
        Ok(PostgresUsers {
            pool: pool(url)?,
            target: redact(url),
            cache: RwLock::new(HashMap::new()),
            swept_at: Mutex::new(Instant::now()),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            down_since: Mutex::new(None),
            table_ready: AtomicBool::new(false),
            queries,
            scopes: OnceLock::new(),
            params: OnceLock::new(),
            slowest: OnceLock::new(),
        })
    }

    /// The connection pool, for the clients table on the same database
    /// (`clients::postgres`): one pool, one set of connection settings.
    #[cfg(feature = "clients")]
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The database's URL without its password, for log lines.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Connects, creates the table if missing, and reads the scopes (for
    /// `/openapi.json`) and the usual argon2 parameters (for the dummy
    /// hash of unknown usernames). Call it before building the `App`; if
    /// it fails, the store still works once the database answers (503
    /// until then), with no scopes listed and the default parameters.
    pub async fn connect(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let read = async {
            let scopes = client.query(&self.queries.scopes, &[]).await?;
            let hashes = client.query(&self.queries.hashes, &[]).await?;
            Ok::<_, tokio_postgres::Error>((scopes, hashes))
        };
        let (scopes, hashes) = match tokio::time::timeout(TIMEOUT, read).await {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => return Err(self.dropped(client, &describe(&e))),
            Err(_) => return Err(self.dropped(client, "timed out reading the users table")),
        };
        let scopes: BTreeSet<String> = scopes
            .iter()
            .filter_map(|row| row.try_get::<_, String>(0).ok())
            .filter(|s| is_scope_token(s))
            .collect();
        let _ = self.scopes.set(scopes.into_iter().collect());
        let mut counts: Vec<(Params, usize)> = Vec::new();
        for row in &hashes {
            let Ok(Ok(params)) = row.try_get::<_, String>(0).map(|h| password::check_phc(&h))
            else {
                continue;
            };
            match counts.iter_mut().find(|(p, _)| *p == params) {
                Some((_, n)) => *n += 1,
                None => counts.push((params, 1)),
            }
        }
        let units = |p: &Params| p.block_count() as u64 * u64::from(p.t_cost());
        if let Some((slowest, _)) = counts.iter().max_by_key(|(p, _)| units(p)) {
            let _ = self.slowest.set(slowest.clone());
        }
        if let Some((params, _)) = counts.into_iter().max_by_key(|(_, n)| *n) {
            let _ = self.params.set(params);
        }
        Ok(())
    }

    /// A pooled connection, with the table known to exist.
    async fn client(&self) -> Result<Object, StoreError> {
        let client = self.pool.get().await.map_err(|e| {
            let why = match &e {
                // Without the pool's "Error occurred while creating a
                // new object" in front.
                PoolError::Backend(e) => describe(e),
                e => describe(e),
            };
            self.error("cannot connect", &why)
        })?;
        if !self.table_ready.load(Ordering::Acquire) {
            let create = ensure_table(&client, &self.queries.regclass, &self.queries.create);
            match tokio::time::timeout(TIMEOUT, create).await {
                Ok(Ok(true)) => {
                    log::info!(
                        target: "password_bearer::users",
                        "password-bearer: created the table {} in {}",
                        self.queries.regclass,
                        self.target
                    );
                    self.table_ready.store(true, Ordering::Release);
                }
                Ok(Ok(false)) => self.table_ready.store(true, Ordering::Release),
                Ok(Err(e)) => return Err(self.dropped(client, &describe(&e))),
                Err(_) => return Err(self.dropped(client, "timed out creating the users table")),
            }
        }
        Ok(client)
    }

    /// `error`, naming the database; the connection is closed rather than
    /// pooled, whatever broke it.
    fn dropped(&self, client: Object, error: &str) -> StoreError {
        drop(Object::take(client));
        self.error("query failed", error)
    }

    fn error(&self, what: &str, error: &str) -> StoreError {
        StoreError::new(format!("PostgreSQL {}: {what}: {error}", self.target))
    }

    /// The row of `username` if read less than [`FRESH_FOR`] ago.
    fn fresh(&self, username: &str) -> Option<Option<Arc<User>>> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        let cached = cache.get(username)?;
        (cached.read_at.elapsed() < FRESH_FOR).then(|| cached.user.clone())
    }

    fn remember(&self, username: &str, read_at: Instant, user: Option<Arc<User>>) {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED && !cache.contains_key(username) {
            let mut swept_at = self.swept_at.lock().unwrap_or_else(PoisonError::into_inner);
            if swept_at.elapsed() < FRESH_FOR {
                return;
            }
            *swept_at = Instant::now();
            cache.retain(|_, cached| cached.read_at.elapsed() < FRESH_FOR);
            if cache.len() >= MAX_CACHED {
                return;
            }
        }
        cache.insert(username.into(), Cached { read_at, user });
    }

    /// Why the database failed after `since`, if it did.
    fn down_after(&self, since: Instant) -> Option<StoreError> {
        let down = self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &*down {
            Some((at, why)) if *at >= since => Some(StoreError::new(why.to_string())),
            _ => None,
        }
    }

    fn note_down(&self, error: &StoreError) {
        let why: Arc<str> = error.to_string().into();
        *self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), why));
    }

    /// One row, from the database.
    async fn read(&self, username: &str) -> Result<Option<User>, Fault> {
        let client = self.client().await.map_err(Fault::Down)?;
        let query = async {
            let statement = client.prepare_cached(&self.queries.find_user).await?;
            client.query_opt(&statement, &[&username]).await
        };
        let row = match tokio::time::timeout(TIMEOUT, query).await {
            Ok(Ok(row)) => row,
            Ok(Err(e)) => return Err(Fault::Down(self.dropped(client, &describe(&e)))),
            Err(_) => return Err(Fault::Down(self.dropped(client, "timed out"))),
        };
        drop(client);
        row.map(|row| user_from_row(&row))
            .transpose()
            .map_err(Fault::Row)
    }
}

/// A row as a [`User`]. A row whose hash is not an argon2 PHC string (or
/// whose scope is not a scope token) is the table's fault, not the
/// client's: a [`StoreError`] (503 and a log line naming the user, never
/// the hash) rather than a wrong password counted against the user.
fn user_from_row(row: &tokio_postgres::Row) -> Result<User, StoreError> {
    let read = || -> Result<_, tokio_postgres::Error> {
        Ok((
            row.try_get::<_, String>(0)?,
            row.try_get::<_, String>(1)?,
            row.try_get::<_, Option<String>>(2)?,
            row.try_get::<_, Option<String>>(3)?,
            row.try_get::<_, Option<bool>>(4)?,
            row.try_get::<_, Option<Vec<Option<String>>>>(5)?,
        ))
    };
    let (username, hashed_password, email, full_name, disabled, scopes) =
        read().map_err(|e| StoreError::new(format!("users table: {}", describe(&e))))?;
    let mut user = User::builder(username.clone(), hashed_password)
        // A NULL in the array grants nothing.
        .scopes(scopes.into_iter().flatten().flatten());
    if let Some(email) = email {
        user = user.email(email);
    }
    if let Some(full_name) = full_name {
        user = user.full_name(full_name);
    }
    if let Some(disabled) = disabled {
        user = user.disabled(disabled);
    }
    user.build()
        .map_err(|e| StoreError::new(format!("users table, row {username:?}: {e}")))
}

impl UserStore for PostgresUsers {
    async fn find(&self, username: &str) -> Result<Option<Arc<User>>, StoreError> {
        // No token or users file can name one: not worth a round trip.
        if username.len() > MAX_USERNAME_BYTES {
            return Ok(None);
        }
        if let Some(user) = self.fresh(username) {
            return Ok(user);
        }
        let asked = Instant::now();
        let stripe = {
            use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
            BuildHasherDefault::<DefaultHasher>::default().hash_one(username) as usize % STRIPES
        };
        let _turn = self.stripes[stripe].lock().await;
        // Read by the lookup this one waited behind.
        if let Some(user) = self.fresh(username) {
            return Ok(user);
        }
        if let Some(error) = self.down_after(asked) {
            return Err(error);
        }
        // Taken before the query leaves: the row is at least this fresh.
        let read_at = Instant::now();
        match self.read(username).await {
            Ok(user) => {
                let user = user.map(Arc::new);
                self.remember(username, read_at, user.clone());
                Ok(user)
            }
            Err(Fault::Down(error)) => {
                self.note_down(&error);
                Err(error)
            }
            Err(Fault::Row(error)) => Err(error),
        }
    }

    async fn health(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        match tokio::time::timeout(TIMEOUT, client.query_opt(&self.queries.health_check, &[])).await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.dropped(client, &describe(&e))),
            Err(_) => Err(self.dropped(client, "timed out")),
        }
    }

    fn hash_params(&self) -> Option<Params> {
        self.params.get().cloned()
    }

    fn slowest_hash_params(&self) -> Option<Params> {
        self.slowest.get().cloned()
    }

    fn scopes(&self) -> Vec<String> {
        self.scopes.get().cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_every_password_spelling() {
        for (url, shown) in [
            (
                "postgres://bob:hunter2@db.example.com:5432/app",
                "postgres://bob:***@db.example.com:5432/app",
            ),
            (
                "postgresql://bob:p%40ss@host/app?sslmode=disable",
                "postgresql://bob:***@host/app?sslmode=disable",
            ),
            // Unescaped `/`, `@` and `:` in the password.
            (
                "postgres://bob:a/b@c:d@host/app",
                "postgres://bob:***@host/app",
            ),
            (
                "postgres://host/app?user=bob&password=hunter2&connect_timeout=5",
                "postgres://host/app?user=bob&password=***&connect_timeout=5",
            ),
            (
                "postgres://host/app?password=x",
                "postgres://host/app?password=***",
            ),
            ("postgres://bob@host/app", "postgres://bob@host/app"),
            ("postgres:///app", "postgres:///app"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
    }

    #[test]
    fn urls_are_checked_without_io_and_errors_hold_no_password() {
        assert!(is_postgres_url("postgres://h/db") && is_postgres_url("postgresql://h/db"));
        assert!(!is_postgres_url("users.json") && !is_postgres_url("mysql://h/db"));
        assert_eq!(
            PostgresUsers::new("users.json").unwrap_err(),
            PostgresError::NotAUrl
        );
        let err = PostgresUsers::new("postgres://bob:hunter2@host:notaport/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("port") && !err.contains("hunter2"), "{err}");
        let err = PostgresUsers::new("postgres://bob:hunter2@host/db?bogus=1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus") && !err.contains("hunter2"), "{err}");
        let err = PostgresUsers::new("postgres://bob:hunter2@host/db?sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sslmode=require") && !err.contains("hunter2"),
            "{err}"
        );
        assert!(PostgresUsers::new("postgres://host/db?sslmode=disable").is_ok());
        let store = PostgresUsers::new("postgresql://bob:hunter2@host/db").unwrap();
        assert_eq!(store.target(), "postgresql://bob:***@host/db");
        assert!(!format!("{store:?}").contains("hunter2"));
    }

    #[test]
    fn a_table_is_named_by_lowercase_identifiers_and_quoted() {
        for bad in [
            "",
            "Users",
            "users;drop",
            "a.b.c",
            ".users",
            "users.",
            "1users",
            "us ers",
            "\"users\"",
            &"u".repeat(64),
        ] {
            assert_eq!(
                PostgresUsers::with_table("postgres://h/db", bad).unwrap_err(),
                PostgresError::Table,
                "{bad:?}"
            );
        }
        let queries = Queries::new("auth.user").unwrap();
        assert_eq!(queries.regclass, "\"auth\".\"user\"");
        assert!(queries.find_user.contains("FROM \"auth\".\"user\" WHERE"));
        // The schema file's statement is found and renamed.
        assert!(queries
            .create
            .contains("CREATE TABLE IF NOT EXISTS \"auth\".\"user\" ("));
        assert!(!queries.create.contains(CREATE_DEFAULT));
        assert!(Queries::new(DEFAULT_TABLE)
            .unwrap()
            .create
            .contains("\"users\""));
        assert!(Queries::new(&"u".repeat(63)).is_ok());
    }
}
