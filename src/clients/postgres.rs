//! Clients in a PostgreSQL table (the `clients` and `postgres` features),
//! as users are: [`PostgresClients::read`] reads the whole table into a
//! [`Clients`], each row checked as the clients file's entries are (the
//! id, the scopes, the stored form `sha256$…`), all or nothing.
//!
//! Why the whole set, and not a row per request as `PostgresUsers` reads
//! users: clients are few and change rarely, and the grant, `/introspect`
//! and `/revoke` authenticate them on the hot path, synchronously, from
//! the set in memory. So the server reads the table again every
//! [`FRESH_FOR`](crate::users::postgres::FRESH_FOR) (the users' cache
//! time) and on SIGHUP, and swaps the set in with `App::reload_clients`:
//! a client removed with SQL stops authenticating within that time on
//! every instance, and while the database cannot answer the running set
//! keeps serving (a grant needs no database).
//!
//! The table is [`SCHEMA`] (`contrib/postgres/clients.sql`), named
//! [`DEFAULT_TABLE`] unless another name is given, and created when missing
//! at the first read that works, never again (a table dropped later is a
//! failed read, which keeps the running set, not an empty set). The
//! connections are the users store's settings ([`PostgresClients::sharing`]
//! takes its very pool when the clients are on the same database).

use super::{ClientError, Clients, Row};
use crate::users::postgres::{
    describe, ensure_table, pool, quote_table, redact, PostgresError, PostgresUsers, TIMEOUT,
};
use deadpool_postgres::{Object, Pool, PoolError};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

/// The clients table, as created when missing: the clients file's shape.
pub const SCHEMA: &str = include_str!("../../contrib/postgres/clients.sql");

/// The table read unless another is named (`--clients-table`).
pub const DEFAULT_TABLE: &str = "clients";

/// The statement of [`SCHEMA`] that names the table, replaced when the
/// table has another name.
const CREATE_DEFAULT: &str = "CREATE TABLE IF NOT EXISTS clients (";

/// [`SCHEMA`] for the table `quoted` (each part of its name in double
/// quotes, as `"auth"."clients"`).
pub fn schema_for(quoted: &str) -> String {
    SCHEMA.replacen(
        CREATE_DEFAULT,
        &format!("CREATE TABLE IF NOT EXISTS {quoted} ("),
        1,
    )
}

/// Checks that `table` names a table (`name` or `schema.name`, lowercase
/// SQL identifiers), as `--users-table` is checked.
pub fn check_table(table: &str) -> Result<(), PostgresError> {
    quote_table(table).map(drop)
}

/// The clients table of a PostgreSQL database. Build it with
/// [`PostgresClients::new`] or [`PostgresClients::sharing`] (no I/O), then
/// [`PostgresClients::read`] it as often as the set should be fresh.
pub struct PostgresClients {
    pool: Pool,
    /// The URL with its password replaced, for log lines.
    target: String,
    /// The table's name, quoted.
    table: String,
    create: String,
    select: String,
    /// Whether the table exists (found or created).
    table_ready: AtomicBool,
}

impl fmt::Debug for PostgresClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresClients")
            .field("target", &self.target)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl PostgresClients {
    /// The clients in `table` of the database at `url` (a `postgres://`
    /// URL, as `PostgresUsers::new` takes it), on a pool of their own.
    pub fn new(url: &str, table: &str) -> Result<PostgresClients, PostgresError> {
        let table = quote_table(table)?;
        Ok(PostgresClients::build(pool(url)?, redact(url), table))
    }

    /// The clients in `table` of the database `users` reads, on its pool.
    pub fn sharing(users: &PostgresUsers, table: &str) -> Result<PostgresClients, PostgresError> {
        let table = quote_table(table)?;
        Ok(PostgresClients::build(
            users.pool().clone(),
            users.target().to_owned(),
            table,
        ))
    }

    fn build(pool: Pool, target: String, table: String) -> PostgresClients {
        PostgresClients {
            pool,
            target,
            create: schema_for(&table),
            select: format!(
                "SELECT client_id, secret_hash, scopes, introspect FROM {table} ORDER BY client_id"
            ),
            table,
            table_ready: AtomicBool::new(false),
        }
    }

    /// The database's URL without its password, for log lines.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Every client of the table, checked as the clients file's are; the
    /// table created first if it is missing. An error is the database's
    /// ([`ClientError::Database`]: not reachable, timed out, a column of
    /// another type) or a row's (the client's id, never its hash): either
    /// way no set, so that the caller keeps the one it has.
    pub async fn read(&self) -> Result<Clients, ClientError> {
        let fail =
            |why: String| ClientError::Database(format!("PostgreSQL {}: {why}", self.target));
        let client = self.pool.get().await.map_err(|e| {
            fail(match &e {
                // Without the pool's "Error occurred while creating a new
                // object" in front.
                PoolError::Backend(e) => format!("cannot connect: {}", describe(e)),
                e => format!("cannot connect: {}", describe(e)),
            })
        })?;
        let query = async {
            if !self.table_ready.load(Ordering::Acquire) {
                if ensure_table(&client, &self.table, &self.create).await? {
                    log::info!(
                        target: "password_bearer::clients",
                        "password-bearer: created the table {} in {}",
                        self.table,
                        self.target
                    );
                }
                self.table_ready.store(true, Ordering::Release);
            }
            client.query(&self.select, &[]).await
        };
        let rows = match tokio::time::timeout(TIMEOUT, query).await {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => {
                // Whatever broke, the connection is closed rather than pooled.
                drop(Object::take(client));
                return Err(fail(format!("table {}: {}", self.table, describe(&e))));
            }
            Err(_) => {
                drop(Object::take(client));
                return Err(fail(format!("table {}: timed out", self.table)));
            }
        };
        drop(client);
        let rows = rows
            .iter()
            .map(|row| row_of(row).map_err(|e| fail(format!("table {}: {e}", self.table))))
            .collect::<Result<Vec<Row>, ClientError>>()?;
        Clients::from_rows(rows.into_iter())
    }
}

/// A row as the file's entry would be. A NULL scope in the array grants
/// nothing, as in the users table; a NULL `introspect` (a table made by
/// hand without the default) is false.
fn row_of(row: &tokio_postgres::Row) -> Result<Row, String> {
    let client_id: String = row.try_get(0).map_err(|e| describe(&e))?;
    let read = || -> Result<_, tokio_postgres::Error> {
        Ok((
            row.try_get::<_, String>(1)?,
            row.try_get::<_, Option<Vec<Option<String>>>>(2)?,
            row.try_get::<_, Option<bool>>(3)?,
        ))
    };
    // The driver's message names the column and the types, never the value.
    let (secret_hash, scopes, introspect) =
        read().map_err(|e| format!("client {client_id:?}: {}", describe(&e)))?;
    Ok(Row {
        client_id,
        secret_hash,
        scopes: scopes.into_iter().flatten().flatten().collect(),
        introspect: introspect.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_checked_named_and_created_with_the_schema() {
        assert!(check_table("clients").is_ok() && check_table("auth.clients").is_ok());
        assert_eq!(check_table("Clients;drop"), Err(PostgresError::Table));
        let pg = PostgresClients::new("postgres://bob:hunter2@host/db", "auth.client").unwrap();
        assert_eq!(pg.target(), "postgres://bob:***@host/db");
        assert!(!format!("{pg:?}").contains("hunter2"));
        assert!(pg
            .create
            .contains("CREATE TABLE IF NOT EXISTS \"auth\".\"client\" ("));
        assert!(!pg.create.contains(CREATE_DEFAULT));
        assert!(pg.select.contains("FROM \"auth\".\"client\" ORDER BY"));
        assert_eq!(
            PostgresClients::new("clients.json", DEFAULT_TABLE).unwrap_err(),
            PostgresError::NotAUrl
        );
        assert_eq!(
            PostgresClients::new("postgres://h/db", "a.b.c").unwrap_err(),
            PostgresError::Table
        );
    }
}
