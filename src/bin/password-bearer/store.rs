//! The user store the binary serves: the users file (`--users FILE`, or the
//! demo users), or, built with the `postgres` feature, a PostgreSQL table
//! (`--users postgres://…`). The binary's alone, declared by `main.rs`.
//! Without the feature the store is the users file's type itself, so the
//! default build serves exactly what it served before.

use crate::error::ConfigError;
use password_bearer::users::Users;
use std::path::Path;

/// What the binary serves users from.
#[cfg(not(feature = "postgres"))]
pub(crate) type Store = Users;

/// What the binary serves users from: the users file, or PostgreSQL.
#[cfg(feature = "postgres")]
#[derive(Debug)]
pub(crate) enum Store {
    File(Users),
    /// Shared with every reload: SIGHUP keeps the pool and the cache.
    Postgres(std::sync::Arc<password_bearer::users::postgres::PostgresUsers>),
}

/// Whether `--users` names a database rather than a file: libpq's two
/// URL schemes.
pub(crate) fn names_postgres(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// The store `--users` names (`origin` is how errors name the setting):
/// the file read and checked, or the database's pool on `table`
/// (`--users-table`, checked when read), built without connecting; on a
/// reload (`running`), the database's running store.
pub(crate) fn open(
    users: Option<&Path>,
    origin: &str,
    table: Option<&str>,
    running: Option<&Store>,
) -> Result<Store, ConfigError> {
    let Some(path) = users else {
        return Ok(file(Users::demo()));
    };
    let text = path.to_string_lossy();
    if names_postgres(&text) {
        return postgres(&text, origin, table, running);
    }
    let users = Users::load(path).map_err(|e| ConfigError {
        what: format!("{origin} {}", path.display()),
        problem: e.to_string(),
    })?;
    Ok(file(users))
}

#[cfg(not(feature = "postgres"))]
fn file(users: Users) -> Store {
    users
}

#[cfg(feature = "postgres")]
fn file(users: Users) -> Store {
    Store::File(users)
}

/// Without the feature: refused, without echoing the URL (it may hold a
/// password).
#[cfg(not(feature = "postgres"))]
fn postgres(
    _url: &str,
    origin: &str,
    _table: Option<&str>,
    _running: Option<&Store>,
) -> Result<Store, ConfigError> {
    Err(ConfigError {
        what: origin.to_owned(),
        problem: WITHOUT_POSTGRES.into(),
    })
}

/// Why a PostgreSQL URL is refused without the feature, by the server
/// and by the admin commands alike.
#[cfg(not(feature = "postgres"))]
pub(crate) const WITHOUT_POSTGRES: &str = "a PostgreSQL URL, but this binary was built without \
     the `postgres` feature (cargo build --release --features postgres)";

#[cfg(feature = "postgres")]
fn postgres(
    url: &str,
    origin: &str,
    table: Option<&str>,
    running: Option<&Store>,
) -> Result<Store, ConfigError> {
    use password_bearer::users::postgres::{redact, PostgresUsers, DEFAULT_TABLE};
    if let Some(Store::Postgres(running)) = running {
        return Ok(Store::Postgres(running.clone()));
    }
    PostgresUsers::with_table(url, table.unwrap_or(DEFAULT_TABLE))
        .map(|store| Store::Postgres(std::sync::Arc::new(store)))
        .map_err(|e| ConfigError {
            what: format!("{origin} {}", redact(url)),
            problem: e.to_string(),
        })
}

/// How a reload's log line counts the users.
pub(crate) fn summary(store: &Store) -> String {
    #[cfg(feature = "postgres")]
    let store = match store {
        Store::File(users) => users,
        Store::Postgres(pg) => return format!("users from {}", pg.target()),
    };
    format!("{} users", store.len())
}

/// On `runtime`, before the app is built: connects to the database,
/// creates the table if missing, and reads what `/openapi.json` lists. A
/// database that does not answer yet is a warning, not an exit: instances
/// and their database restart in any order, and until it answers logins
/// and `/healthz` get 503 (docs/scaling-out.md, "Users in PostgreSQL"). The line to print; `None`
/// for a file.
#[cfg(feature = "postgres")]
pub(crate) fn connect(runtime: &tokio::runtime::Runtime, store: &Store) -> Option<String> {
    let Store::Postgres(pg) = store else {
        return None;
    };
    Some(match runtime.block_on(pg.connect()) {
        Ok(()) => format!("users from {}", pg.target()),
        Err(e) => format!("warning: {e}; logins and /healthz answer 503 until it answers"),
    })
}

/// A file has nothing to connect to.
#[cfg(not(feature = "postgres"))]
pub(crate) fn connect(_runtime: &tokio::runtime::Runtime, _store: &Store) -> Option<String> {
    None
}

#[cfg(feature = "postgres")]
mod serve {
    use super::Store;
    use argon2::Params;
    use password_bearer::users::{Change, StoreError, User, UserStore};
    use std::sync::Arc;

    impl UserStore for Store {
        async fn find(&self, username: &str) -> Result<Option<Arc<User>>, StoreError> {
            match self {
                Store::File(users) => users.find(username).await,
                Store::Postgres(pg) => pg.find(username).await,
            }
        }

        async fn health(&self) -> Result<(), StoreError> {
            match self {
                Store::File(users) => users.health().await,
                Store::Postgres(pg) => pg.health().await,
            }
        }

        fn hash_params(&self) -> Option<Params> {
            match self {
                Store::File(users) => users.hash_params(),
                Store::Postgres(pg) => pg.hash_params(),
            }
        }

        fn slowest_hash_params(&self) -> Option<Params> {
            match self {
                Store::File(users) => users.slowest_hash_params(),
                Store::Postgres(pg) => pg.slowest_hash_params(),
            }
        }

        fn scopes(&self) -> Vec<String> {
            match self {
                Store::File(users) => users.scopes(),
                Store::Postgres(pg) => pg.scopes(),
            }
        }

        fn sessions_ended_by(&self, next: &Store) -> Vec<String> {
            match (self, next) {
                (Store::File(before), Store::File(after)) => before.sessions_ended_by(after),
                // PostgreSQL's users change without a reload: each session
                // is checked at its next refresh.
                _ => Vec::new(),
            }
        }

        fn changes_by(&self, next: &Store) -> Vec<(String, Vec<Change>)> {
            match (self, next) {
                (Store::File(before), Store::File(after)) => before.changes_by(after),
                // PostgreSQL's users change in place, not by a reload.
                _ => Vec::new(),
            }
        }
    }
}
