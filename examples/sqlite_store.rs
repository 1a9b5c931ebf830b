//! A [`UserStore`] of your own: users kept in a SQLite database (with
//! `rusqlite`), looked up at every request, so that a user added, disabled or
//! removed in the table counts from the next request on, without a restart.
//!
//! The table, created if missing:
//!
//! ```sql
//! CREATE TABLE users (
//!     username        TEXT PRIMARY KEY NOT NULL,
//!     hashed_password TEXT NOT NULL,  -- argon2id PHC string
//!     email           TEXT,
//!     full_name       TEXT,
//!     disabled        INTEGER,        -- 0, 1 or NULL (shown as null, active)
//!     scopes          TEXT            -- space-separated: "me items"
//! );
//! ```
//!
//! A user is added with the example's own command, which reads the password
//! on stdin and hashes it with `password_bearer::password::hash_password`;
//! `serve` then answers `POST /token`, `GET /users/me` and `GET /healthz`
//! from the table, plus a route of its own, `GET /users/me/items`, which
//! needs the `items` scope (FastAPI's next chapter):
//!
//! ```sh
//! echo secret | cargo run --example sqlite_store -- add-user users.db johndoe \
//!     --email johndoe@example.com --full-name 'John Doe' --scopes 'me items'
//! cargo run --example sqlite_store -- serve users.db    # http://127.0.0.1:8001
//! TOKEN=$(curl -s -d 'username=johndoe&password=secret&scope=me+items' \
//!     http://127.0.0.1:8001/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
//! curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/users/me/items
//! sqlite3 users.db "UPDATE users SET disabled = 1 WHERE username = 'johndoe'"
//! curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/users/me
//! # {"detail":"Inactive user"}
//! ```
//!
//! Without `echo`, `add-user` prompts for the password. Restore a backup in
//! place (`sqlite3 users.db ".restore backup.db"`), not by moving a file
//! over `users.db` or deleting it: an open connection keeps reading the file
//! it opened.
//!
//! While the database cannot answer (the file overwritten with garbage, the
//! table dropped, a lock held too long), every request that needs it is answered
//! 503 with `Retry-After` and `/healthz` says `unavailable`: a lookup that
//! fails is a `StoreError`, never "no such user", so a broken database neither
//! turns away good passwords as wrong nor counts failed logins that lock
//! users out once it is repaired.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use password_bearer::app::MAX_PASSWORD_BYTES;
use password_bearer::auth::{current_active_user, current_user, require_scopes};
use password_bearer::bearer::bearer_token;
use password_bearer::error::{json_response, ApiError};
use password_bearer::password::hash_password;
use password_bearer::server::serve_with;
use password_bearer::token::SecretKey;
use password_bearer::users::{is_scope_token, StoreError, User, UserStore, MAX_USERNAME_BYTES};
use password_bearer::{App, Config};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::collections::BTreeSet;
use std::error::Error;
use std::future::Future;
use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The table. `NOT NULL` on the key because SQLite, for old compatibility,
/// lets a `TEXT PRIMARY KEY` hold NULLs.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS users (
    username        TEXT PRIMARY KEY NOT NULL,
    hashed_password TEXT NOT NULL,
    email           TEXT,
    full_name       TEXT,
    disabled        INTEGER,
    scopes          TEXT
)";

/// One user by primary key: an index lookup, microseconds.
const FIND_USER: &str = "SELECT username, hashed_password, email, full_name, disabled, scopes
    FROM users WHERE username = ?1";

/// The health check. Not a bare `SELECT 1`: a connection that has read the
/// schema answers that without reading the file, so it would report a
/// healthy store with the table dropped or the file overwritten. Naming the
/// table makes SQLite check the schema and read the table's first page, and
/// costs no more than a lookup.
const HEALTH_CHECK: &str = "SELECT 1 FROM users LIMIT 1";

/// Connections open at once, and so lookups running at once. A lookup by
/// primary key takes microseconds, so a few keep up with any login rate the
/// password hashing allows; the bound keeps a burst of requests from taking
/// a blocking thread and a file descriptor each.
const CONNECTIONS: usize = 4;

/// How long a lookup waits for a lock held by a writer (`add-user`, the
/// `sqlite3` shell) before failing. rusqlite's default is 5 s; a writer that
/// holds the lock for more than a second is a problem to report (503, with
/// `Retry-After`), not to queue every request behind.
const BUSY_TIMEOUT: Duration = Duration::from_secs(1);

/// The users table as a [`UserStore`].
pub(crate) struct SqliteUsers {
    pool: Arc<Pool>,
    /// Taken before a lookup leaves for the blocking pool: waiting for a
    /// connection is an async wait, never a blocked thread.
    permits: Arc<Semaphore>,
    /// Read once at open: `App::new` renders `/openapi.json` once, so scopes
    /// added to the table later are listed after a restart (they are granted
    /// at once all the same).
    scopes: Vec<String>,
}

/// Idle connections, reused: opening one costs a file open and, at its
/// first query, a read of the schema. `Connection` is `Send` but not `Sync`,
/// so each is used by one blocking task at a time and put back after.
struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl SqliteUsers {
    /// Opens the database at `path`, creating the file and the table if
    /// missing.
    pub(crate) fn open(path: impl Into<PathBuf>) -> rusqlite::Result<SqliteUsers> {
        let path = path.into();
        // Created here, at start, and never again: a lookup that recreated
        // a dropped table (or a deleted file) would find an empty one, and
        // every user would fail to log in, counted, instead of getting 503.
        let setup = create(&path)?;
        let scopes = scopes_in(&setup)?;
        Ok(SqliteUsers {
            pool: Arc::new(Pool {
                path,
                idle: Mutex::new(Vec::new()),
            }),
            permits: Arc::new(Semaphore::new(CONNECTIONS)),
            scopes,
        })
    }

    /// Runs `query` on a pooled connection, off the async runtime: SQLite's
    /// calls block (on the disk, or on a writer's lock), and a worker thread
    /// blocked there would stall every connection it serves.
    async fn query<T, Q>(&self, query: Q) -> Result<T, StoreError>
    where
        T: Send + 'static,
        Q: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pool.with_connection(query)
        })
        .await
        // A panic in the query is a store that could not answer too.
        .map_err(StoreError::new)?
        .map_err(StoreError::new)
    }
}

impl Pool {
    fn with_connection<T>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let idle = self.lock().pop();
        let connection = match idle {
            Some(connection) => connection,
            None => connect(&self.path)?,
        };
        let result = query(&connection);
        // A connection that failed is dropped, not pooled: whatever broke
        // it (a file overwritten, an I/O error), the next lookup starts
        // from a fresh one.
        if result.is_ok() {
            self.lock().push(connection);
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // Nothing panics while holding it (a push or a pop), and the
        // connections inside are whole either way.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection for lookups: the file must exist (no `SQLITE_OPEN_CREATE`),
/// so a database deleted while the server runs is an error, not a new empty
/// one in which nobody exists.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::default().difference(OpenFlags::SQLITE_OPEN_CREATE);
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    Ok(connection)
}

/// Opens (or creates) the database and the table.
fn create(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.execute_batch(SCHEMA)?;
    Ok(connection)
}

/// Every scope some row grants, once each, sorted.
fn scopes_in(connection: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement =
        connection.prepare("SELECT DISTINCT scopes FROM users WHERE scopes IS NOT NULL")?;
    let mut all = BTreeSet::new();
    for list in statement.query_map([], |row| row.get::<_, String>(0))? {
        // A row with a malformed scope fails at its lookup; the docs just
        // leave it out.
        let list = list?;
        all.extend(
            list.split_whitespace()
                .filter(|s| is_scope_token(s))
                .map(str::to_owned),
        );
    }
    Ok(all.into_iter().collect())
}

/// One row, as read.
struct Row {
    username: String,
    hashed_password: String,
    email: Option<String>,
    full_name: Option<String>,
    disabled: Option<bool>,
    scopes: Option<String>,
}

impl Row {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        Ok(Row {
            username: row.get(0)?,
            hashed_password: row.get(1)?,
            email: row.get(2)?,
            full_name: row.get(3)?,
            // INTEGER: 0 or 1 (any other number reads as true); NULL is
            // shown as `null` and counts as active, as in the seed's model.
            disabled: row.get(4)?,
            scopes: row.get(5)?,
        })
    }

    fn into_user(self) -> Result<User, StoreError> {
        let username = self.username.clone();
        let mut user = User::builder(self.username, self.hashed_password);
        if let Some(email) = self.email {
            user = user.email(email);
        }
        if let Some(full_name) = self.full_name {
            user = user.full_name(full_name);
        }
        if let Some(disabled) = self.disabled {
            user = user.disabled(disabled);
        }
        if let Some(scopes) = self.scopes {
            user = user.scopes(scopes.split_whitespace());
        }
        // A row whose hash is not an argon2 PHC string (or whose scope
        // is not a scope token) is the table's fault, not the client's:
        // 503 and a log line, rather than a wrong password counted
        // against the user. The message names the user and the fault,
        // never the hash.
        user.build()
            .map_err(|e| StoreError::new(format!("users table, row {username:?}: {e}")))
    }
}

impl UserStore for SqliteUsers {
    async fn find(&self, username: &str) -> Result<Option<Arc<User>>, StoreError> {
        let username = username.to_owned();
        let row = self
            .query(move |connection| {
                // Cached: SQL parsed once per connection, not per request.
                let mut statement = connection.prepare_cached(FIND_USER)?;
                // No row is `Ok(None)`, an unknown user; every other error
                // stays an error (`StoreError`: 503, nothing counted).
                statement.query_row([&username], Row::read).optional()
            })
            .await?;
        match row {
            Some(row) => Ok(Some(Arc::new(row.into_user()?))),
            None => Ok(None),
        }
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.query(|connection| connection.prepare_cached(HEALTH_CHECK)?.exists([]))
            .await
            .map(|_| ())
    }

    // `hash_params` keeps its default, the crate's argon2 parameters: every
    // hash here is made by `hash_password`, at those parameters, so the dummy
    // hash checked for unknown usernames costs what a real one does.

    fn scopes(&self) -> Vec<String> {
        self.scopes.clone()
    }
}

/// What `add-user` writes besides the username and the password.
#[derive(Debug, Default)]
pub(crate) struct Profile {
    pub(crate) email: Option<String>,
    pub(crate) full_name: Option<String>,
    pub(crate) disabled: bool,
    pub(crate) scopes: Vec<String>,
}

/// Hashes `password` and writes the user's row, replacing one of the same
/// name (which is how a password is changed), in the database at `db`,
/// created with its table if missing.
pub(crate) fn add_user(
    db: &Path,
    username: &str,
    password: &str,
    profile: &Profile,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    if username.is_empty() || username.len() > MAX_USERNAME_BYTES {
        // The username travels in every token's `sub`, which has a size.
        return Err(format!("a username has 1 to {MAX_USERNAME_BYTES} bytes").into());
    }
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        // Longer ones are refused at login without hashing: never valid.
        return Err(format!("a password has 1 to {MAX_PASSWORD_BYTES} bytes").into());
    }
    if let Some(bad) = profile.scopes.iter().find(|s| !is_scope_token(s)) {
        // A scope travels in a space-separated claim and in a header.
        return Err(format!("{bad:?} is not a scope token").into());
    }
    let hash = hash_password(password)?;
    let scopes = (!profile.scopes.is_empty()).then(|| profile.scopes.join(" "));
    create(db)?.execute(
        "INSERT OR REPLACE INTO users
             (username, hashed_password, email, full_name, disabled, scopes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            username,
            hash,
            profile.email,
            profile.full_name,
            profile.disabled,
            scopes
        ],
    )?;
    Ok(())
}

/// Our route first, then everything else to the crate.
pub(crate) async fn route(
    app: &App<SqliteUsers>,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/users/me/items") => read_own_items(app, request.headers())
            .await
            .unwrap_or_else(ApiError::into_response),
        (_, "/users/me/items") => ApiError::MethodNotAllowed("GET").into_response(),
        // The client's address: failed logins are throttled per address
        // with it, and log lines name it.
        _ => app.handle(request, Some(peer)).await,
    }
}

/// `GET /users/me/items`: the chain, each `?` an error that is already the
/// contract's response. `current_user` asks the table, so a user disabled
/// there a moment ago gets 400 `Inactive user` here, and a database that
/// cannot answer gets 503.
async fn read_own_items(
    app: &App<SqliteUsers>,
    headers: &HeaderMap,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let token = bearer_token(headers.get(AUTHORIZATION).map(HeaderValue::as_bytes))?;
    let current = current_active_user(current_user(app, token).await?)?;
    require_scopes(&current, &["items"])?;
    let items = serde_json::json!([{"item_id": "Foo", "owner": current.user.username()}]);
    Ok(json_response(StatusCode::OK, items.to_string().into()))
}

/// Serves `app` with our routes until `shutdown` resolves, with the crate's
/// serving loop and its limits.
pub(crate) async fn serve_sqlite(
    listener: TcpListener,
    app: Arc<App<SqliteUsers>>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(
        listener,
        app,
        |app, request, peer| async move { route(&app, request, peer).await },
        shutdown,
    )
    .await
}

const USAGE: &str = "usage: sqlite_store add-user DB USERNAME [--email ADDRESS] \
[--full-name NAME] [--scopes 'SCOPE ...'] [--disabled]   (password on stdin)
       sqlite_store serve DB [PORT]   (default port 8001; 0 for any free one)";

/// The command line, apart from `main` so that it runs in tests: `args`
/// without the program name, the password read from `stdin` (after a
/// prompt on stderr if `prompt`: stdin is a terminal).
pub(crate) async fn run(
    args: &[&str],
    stdin: impl BufRead,
    prompt: bool,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    match args {
        ["add-user", db, username, options @ ..] => {
            let profile = parse_profile(options)?;
            if prompt {
                eprint!("password for {username} (shown as typed): ");
            }
            let password = read_password(stdin)?;
            add_user(Path::new(db), username, &password, &profile)?;
            eprintln!("saved user {username:?} in {db}");
            Ok(())
        }
        ["serve", db, port @ ..] if port.len() <= 1 => {
            let port: u16 = match port.first() {
                Some(arg) => arg.parse().map_err(|_| format!("{arg:?} is not a port"))?,
                None => 8001,
            };
            let users = SqliteUsers::open(*db)?;
            // A fresh key per start: tokens die with the process. Load one
            // from a file (`SecretKey::new`) to keep them across restarts.
            let app = Arc::new(App::new(Config::new(users, SecretKey::random()?)));
            let listener = TcpListener::bind(("127.0.0.1", port)).await?;
            eprintln!("listening on http://{}", listener.local_addr()?);
            serve_sqlite(listener, app, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await;
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

fn parse_profile(options: &[&str]) -> Result<Profile, String> {
    let mut profile = Profile::default();
    let mut options = options.iter();
    while let Some(flag) = options.next() {
        let mut value = || {
            let value = options.next().map(|v| (*v).to_owned());
            value.ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match *flag {
            "--email" => profile.email = Some(value()?),
            "--full-name" => profile.full_name = Some(value()?),
            "--scopes" => profile.scopes = value()?.split_whitespace().map(str::to_owned).collect(),
            "--disabled" => profile.disabled = true,
            _ => return Err(format!("unknown option {flag:?}\n{USAGE}")),
        }
    }
    Ok(profile)
}

/// One line of `stdin`, without its line ending: `echo secret | ...`, or
/// typed at the prompt.
fn read_password(mut stdin: impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    stdin.read_line(&mut line)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    Ok(password.strip_suffix('\r').unwrap_or(password).to_owned())
}

#[allow(dead_code)] // tests include this file for `run`, `add_user` and `serve_sqlite`
#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdin = std::io::stdin();
    let prompt = stdin.is_terminal();
    match run(&args, stdin.lock(), prompt).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sqlite_store: {e}");
            ExitCode::FAILURE
        }
    }
}
