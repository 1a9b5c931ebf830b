//! The users commands on PostgreSQL (`--users postgres://…`, the
//! `postgres` feature): the same commands as SQL on the table the server
//! reads (`contrib/postgres/users.sql`), one statement each (and the
//! clients commands on `--clients postgres://…`, `contrib/postgres/clients.sql`), so that the
//! database's own locking orders two admins at once. A new row is checked
//! as the server reads one (`User::builder(…).build()`: the hash, the
//! scopes) before it is written.
//!
//! How the servers see it: each reads a user's row again once it is
//! 0.5 s old (`users::postgres::FRESH_FOR`), so a change counts on every
//! instance within that, with no reload; a session's refresh checks the
//! password it was started under, so a password change, a removal or a
//! disabling ends the user's sessions at their next refresh.

use super::args::Action;
use super::{audit, prompt, Quoted};
use crate::error::ConfigError;
use password_bearer::users::postgres::{redact, SCHEMA};
use password_bearer::users::User;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

/// The longest the command waits for the database, connecting or for a
/// statement.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The statement of `SCHEMA` naming the table, replaced for another name
/// (as the server does).
const CREATE_DEFAULT: &str = "CREATE TABLE IF NOT EXISTS users (";

/// Runs a users command on `table` of the database at `url`.
pub(super) fn run(action: &Action, url: &str, table: &str) -> Result<(), ConfigError> {
    let place = format!("{} table {table}", redact(url));
    let fail = |problem: String| ConfigError::new(format!("--users {}", redact(url)), problem);
    // The password is asked, and hashed, before connecting: the typing
    // holds no connection open.
    let hash = match action {
        Action::UserAdd { name, .. } | Action::UserPasswd(name) => Some(
            password_bearer::password::hash_password(&prompt::new_password(name)?)
                .map_err(|e| ConfigError::new("password", e))?,
        ),
        _ => None,
    };
    if let (Action::UserAdd { name, scopes, .. }, Some(hash)) = (action, &hash) {
        User::builder(name.as_str(), hash.as_str())
            .scopes(scopes.iter().cloned())
            .build()
            .map_err(|e| ConfigError::new("users add", e))?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the runtime: {e}")))?;
    let quoted = quote(table);
    let outcome = runtime.block_on(async {
        let client = tokio::time::timeout(TIMEOUT, connect(url))
            .await
            .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))??;
        tokio::time::timeout(TIMEOUT, apply(&client, action, &quoted, hash.as_deref()))
            .await
            .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))?
    });
    let done = outcome.map_err(fail)?;
    let (command, name, detail) = match (done, action) {
        (Done::Listed(text), _) => {
            print!("{text}");
            return Ok(());
        }
        (
            Done::Changed,
            Action::UserAdd {
                name,
                scopes,
                disabled,
                ..
            },
        ) => (
            "users add",
            name,
            format!(" scopes={:?} disabled={disabled}", scopes.join(" ")),
        ),
        (Done::Changed, Action::UserPasswd(name)) => ("users passwd", name, String::new()),
        (Done::Changed, Action::UserDisable(name, true)) => ("users disable", name, String::new()),
        (Done::Changed, Action::UserDisable(name, false)) => ("users enable", name, String::new()),
        (Done::Changed, Action::UserRemove(name)) => ("users remove", name, String::new()),
        (Done::Taken(name), _) => {
            return Err(ConfigError::new(
                "users add",
                format!(
                    "a user {} exists already (users passwd changes a password)",
                    Quoted(&name)
                ),
            ))
        }
        (Done::Missing(name), _) => {
            return Err(ConfigError::new(
                "users",
                format!("no user {}", Quoted(&name)),
            ))
        }
        (Done::Changed, _) => return Err(ConfigError::new("clients", "not a users command")),
    };
    audit(command, name, &place, &detail);
    crate::stderr_log::write_now(format_args!(
        "password-bearer: every server reading the table sees it within 0.5 s (its cache \
         time), with no reload; the user's sessions end at their next refresh"
    ));
    Ok(())
}

/// What a statement did.
enum Done {
    Changed,
    Listed(String),
    /// `add` of a name the table has.
    Taken(String),
    /// A change to a name the table does not have.
    Missing(String),
}

async fn connect(url: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `table` (`name` or `schema.name`, checked when parsed) quoted as SQL
/// identifiers.
fn quote(table: &str) -> String {
    table
        .split('.')
        .map(|part| format!("\"{part}\""))
        .collect::<Vec<_>>()
        .join(".")
}

/// A failed statement, as the command's one line says it.
fn sql_error(e: tokio_postgres::Error) -> String {
    format!("the statement failed: {e}")
}

/// What a statement on `name`'s row did: changed it, or, when it changed
/// no row, `none` (the name taken for an insert, missing otherwise).
fn outcome(rows: u64, name: &str, none: fn(String) -> Done) -> Done {
    if rows == 0 {
        none(name.to_owned())
    } else {
        Done::Changed
    }
}

/// The scopes in column `index` of `row`: a NULL array, or NULL in it,
/// grants nothing, as the server reads them.
fn scopes(row: &tokio_postgres::Row, index: usize) -> Result<Vec<String>, String> {
    let scopes: Option<Vec<Option<String>>> = row.try_get(index).map_err(sql_error)?;
    Ok(scopes.unwrap_or_default().into_iter().flatten().collect())
}

async fn apply(
    client: &Client,
    action: &Action,
    table: &str,
    hash: Option<&str>,
) -> Result<Done, String> {
    let hash = hash.unwrap_or_default();
    Ok(match action {
        Action::UserAdd {
            name,
            email,
            full_name,
            scopes,
            disabled,
        } => {
            // As the server does when the table is missing: a first user
            // on an empty database needs no psql.
            client
                .batch_execute(&SCHEMA.replacen(
                    CREATE_DEFAULT,
                    &format!("CREATE TABLE IF NOT EXISTS {table} ("),
                    1,
                ))
                .await
                .map_err(sql_error)?;
            let scopes: Option<&Vec<String>> = (!scopes.is_empty()).then_some(scopes);
            let params: [&(dyn ToSql + Sync); 6] =
                [name, &hash, email, full_name, disabled, &scopes];
            let rows = client
                .execute(
                    &format!(
                        "INSERT INTO {table} \
                         (username, hashed_password, email, full_name, disabled, scopes) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (username) DO NOTHING"
                    ),
                    &params,
                )
                .await
                .map_err(sql_error)?;
            outcome(rows, name, Done::Taken)
        }
        Action::UserPasswd(name) => {
            let sql = format!("UPDATE {table} SET hashed_password = $2 WHERE username = $1");
            outcome(
                client
                    .execute(&sql, &[name, &hash])
                    .await
                    .map_err(sql_error)?,
                name,
                Done::Missing,
            )
        }
        Action::UserDisable(name, disabled) => {
            let sql = format!("UPDATE {table} SET disabled = $2 WHERE username = $1");
            outcome(
                client
                    .execute(&sql, &[name, disabled])
                    .await
                    .map_err(sql_error)?,
                name,
                Done::Missing,
            )
        }
        Action::UserRemove(name) => {
            let sql = format!("DELETE FROM {table} WHERE username = $1");
            outcome(
                client.execute(&sql, &[name]).await.map_err(sql_error)?,
                name,
                Done::Missing,
            )
        }
        Action::UserList => {
            let sql = format!("SELECT username, disabled, scopes FROM {table} ORDER BY username");
            let mut text = String::new();
            for row in client.query(&sql, &[]).await.map_err(sql_error)? {
                let name: String = row.try_get(0).map_err(sql_error)?;
                let disabled: Option<bool> = row.try_get(1).map_err(sql_error)?;
                let scopes = scopes(&row, 2)?;
                let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
                text.push_str(&super::users::list_line(
                    &name,
                    disabled == Some(true),
                    &scopes,
                ));
            }
            Done::Listed(text)
        }
        #[cfg(feature = "clients")]
        Action::ClientAdd { .. } | Action::ClientRemove(_) | Action::ClientList => {
            return Err("not a users command".into())
        }
    })
}

/// Runs a clients command on `table` of the database at `url`
/// (`--clients postgres://…`, the `clients` feature too): `add` creates the
/// table if missing (`contrib/postgres/clients.sql`), inserts the client
/// with its secret's stored form, and prints the secret once, after the
/// row is committed; `remove` deletes the row; `list` prints the ids,
/// never a stored secret.
#[cfg(feature = "clients")]
pub(super) fn run_clients(action: &Action, url: &str, table: &str) -> Result<(), ConfigError> {
    let place = format!("{} table {table}", redact(url));
    let fail = |problem: String| ConfigError::new(format!("--clients {}", redact(url)), problem);
    let secret = match action {
        Action::ClientAdd { name, .. } => Some(super::clients::new_secret(name)?),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the runtime: {e}")))?;
    let quoted = quote(table);
    let stored = secret.as_ref().map(|(_, stored)| stored.as_str());
    let outcome = runtime.block_on(async {
        let client = tokio::time::timeout(TIMEOUT, connect(url))
            .await
            .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))??;
        tokio::time::timeout(TIMEOUT, apply_clients(&client, action, &quoted, stored))
            .await
            .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))?
    });
    let (command, name, detail) = match (outcome.map_err(fail)?, action) {
        (Done::Listed(text), _) => {
            print!("{text}");
            return Ok(());
        }
        (
            Done::Changed,
            Action::ClientAdd {
                name,
                scopes,
                introspect,
            },
        ) => {
            let Some((secret, _)) = &secret else {
                return Err(fail("clients add made no secret".into()));
            };
            let detail = super::clients::hand_over(secret, name, scopes, *introspect);
            ("clients add", name, detail)
        }
        (Done::Changed, Action::ClientRemove(name)) => ("clients remove", name, String::new()),
        (Done::Taken(name), _) => {
            return Err(ConfigError::new(
                "clients add",
                format!("a client {} exists already", Quoted(&name)),
            ))
        }
        (Done::Missing(name), _) => {
            return Err(ConfigError::new(
                "clients",
                format!("no client {}", Quoted(&name)),
            ))
        }
        (Done::Changed, _) => return Err(ConfigError::new("users", "not a clients command")),
    };
    audit(command, name, &place, &detail);
    crate::stderr_log::write_now(format_args!(
        "password-bearer: every server reading the table sees it within 0.5 s (it reads the \
         clients again every 0.5 s), with no reload"
    ));
    Ok(())
}

#[cfg(feature = "clients")]
async fn apply_clients(
    client: &Client,
    action: &Action,
    table: &str,
    stored: Option<&str>,
) -> Result<Done, String> {
    use password_bearer::clients::postgres::schema_for;
    Ok(match action {
        Action::ClientAdd {
            name,
            scopes,
            introspect,
        } => {
            // As the server does when the table is missing.
            client
                .batch_execute(&schema_for(table))
                .await
                .map_err(sql_error)?;
            let stored = stored.unwrap_or_default();
            let params: [&(dyn ToSql + Sync); 4] = [name, &stored, scopes, introspect];
            let rows = client
                .execute(
                    &format!(
                        "INSERT INTO {table} (client_id, secret_hash, scopes, introspect) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (client_id) DO NOTHING"
                    ),
                    &params,
                )
                .await
                .map_err(sql_error)?;
            outcome(rows, name, Done::Taken)
        }
        Action::ClientRemove(name) => {
            let sql = format!("DELETE FROM {table} WHERE client_id = $1");
            let rows = client.execute(&sql, &[name]).await.map_err(sql_error)?;
            outcome(rows, name, Done::Missing)
        }
        Action::ClientList => {
            let sql =
                format!("SELECT client_id, introspect, scopes FROM {table} ORDER BY client_id");
            let mut listed = serde_json::Map::new();
            for row in client.query(&sql, &[]).await.map_err(sql_error)? {
                let id: String = row.try_get(0).map_err(sql_error)?;
                let introspect: Option<bool> = row.try_get(1).map_err(sql_error)?;
                let scopes = scopes(&row, 2)?;
                listed.insert(
                    id,
                    serde_json::json!({"introspect": introspect == Some(true), "scopes": scopes}),
                );
            }
            Done::Listed(super::clients::list(&listed))
        }
        _ => return Err("not a clients command".into()),
    })
}
