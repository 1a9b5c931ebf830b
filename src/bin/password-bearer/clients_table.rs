//! `--clients postgres://…` (the `clients` and `postgres` features): the
//! clients table (`clients::postgres`) read at start, then again every
//! [`FRESH_FOR`](password_bearer::users::postgres::FRESH_FOR) (0.5 s, the
//! users table's cache time) by a task of its own, and on SIGHUP. Each
//! read is swapped in whole with `App::reload_clients`, or not at all: a
//! read that fails (the database down, a row refused) keeps the running
//! set, and one line says so per failure streak, not one per period. The
//! grant, `/introspect` and `/revoke` authenticate from the set in memory,
//! so they go on while the database is down.
//!
//! At start the table is read before the app is built; a database that
//! does not answer is a warning, as it is for `--users postgres://…`
//! (`store::connect`): the server starts with no client and reads the
//! table again every period until it answers.

use crate::cli::Options;
use crate::error::ConfigError;
use crate::store::Store;
use password_bearer::app::Config;
use password_bearer::App;
use std::sync::Arc;

/// The table, as the server reads it.
pub(crate) struct Table {
    pg: password_bearer::clients::postgres::PostgresClients,
    /// Whether the last read failed: the failure is told once, and the
    /// read that works again is told too.
    failing: std::sync::atomic::AtomicBool,
    /// The ids last served, so that a line is written when they change.
    ids: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// With `--clients postgres://…`, on `runtime` before the app is built:
/// the table's pool (the users store's own when `--users` names the same
/// URL), its first read put in `config` (no client when it fails), and the
/// line to print. `None` without a table.
pub(crate) fn open(
    options: &Options,
    runtime: &tokio::runtime::Runtime,
    config: &mut Config<Store>,
) -> Result<Option<(Arc<Table>, String)>, ConfigError> {
    use password_bearer::clients::postgres::{PostgresClients, DEFAULT_TABLE};
    use password_bearer::clients::Clients;
    use password_bearer::users::postgres::redact;
    let url = match &options.clients {
        Some(path) if crate::store::names_postgres(&path.to_string_lossy()) => {
            path.to_string_lossy().into_owned()
        }
        _ => return Ok(None),
    };
    let table = options.clients_table.as_deref().unwrap_or(DEFAULT_TABLE);
    let same_database = options.users.as_deref() == Some(std::path::Path::new(&url));
    let pg = match &config.users {
        Store::Postgres(users) if same_database => PostgresClients::sharing(users, table),
        _ => PostgresClients::new(&url, table),
    }
    .map_err(|e| {
        ConfigError::new(
            format!("{} {}", options.origin_of("clients"), redact(&url)),
            e,
        )
    })?;
    let (clients, line, failing) = match runtime.block_on(pg.read()) {
        Ok(clients) => {
            let line = format!("clients from {}: {} clients", pg.target(), clients.len());
            (clients, line, false)
        }
        Err(e) => {
            let line = format!(
                "warning: clients: {e}; no client authenticates until the table is read \
                 (again every {} ms)",
                password_bearer::users::postgres::FRESH_FOR.as_millis()
            );
            (Clients::default(), line, true)
        }
    };
    let ids = clients.ids().into_iter().map(str::to_owned).collect();
    config.clients = Some(clients);
    let table = Table {
        pg,
        failing: failing.into(),
        ids: std::sync::Mutex::new(ids),
    };
    Ok(Some((Arc::new(table), line)))
}

impl Table {
    /// Reads the table every period and at each SIGHUP, on the runtime,
    /// for as long as the process runs, one read at a time (so a slow
    /// read never swaps in a set older than the one before it). The files'
    /// reload hears the same SIGHUP (tokio tells every listener of a
    /// signal), and the two go on apart.
    pub(crate) fn spawn(self: &Arc<Self>, app: &Arc<App<Store>>) {
        let (table, app) = (self.clone(), app.clone());
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(password_bearer::users::postgres::FRESH_FOR);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is at once: the set was read at start.
            every.tick().await;
            loop {
                #[cfg(unix)]
                let asked = tokio::select! {
                    _ = every.tick() => false,
                    Some(()) = async {
                        match &mut hangup {
                            Some(hangup) => hangup.recv().await,
                            None => std::future::pending().await,
                        }
                    } => true,
                };
                #[cfg(not(unix))]
                let asked = {
                    every.tick().await;
                    false
                };
                table.refresh(&app, asked).await;
            }
        });
    }

    /// One read, swapped in whole or not at all. A line when the ids
    /// served change, when a read works again after failing, and on SIGHUP
    /// (`asked`) whatever happens; a failure's line once per streak.
    /// Never a secret or a hash: the errors name the client and the
    /// database without its password.
    async fn refresh(&self, app: &App<Store>, asked: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        match self.pg.read().await {
            Ok(clients) => {
                let count = clients.len();
                let ids: std::collections::BTreeSet<String> =
                    clients.ids().into_iter().map(str::to_owned).collect();
                let _ = app.reload_clients(clients);
                let recovered = self.failing.swap(false, Relaxed);
                let mut last = self
                    .ids
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if asked || recovered || *last != ids {
                    let again = if recovered { " (read again)" } else { "" };
                    log::info!(
                        target: "password_bearer::server",
                        "password-bearer: clients from {}: {count} clients{again}",
                        self.pg.target()
                    );
                }
                *last = ids;
            }
            Err(e) => {
                if !self.failing.swap(true, Relaxed) || asked {
                    let serving = app.clients().map_or(0, |c| c.len());
                    log::error!(
                        target: "password_bearer::server",
                        "password-bearer: clients: reading the table failed, still serving \
                         the previous {serving} clients: {e}"
                    );
                }
            }
        }
    }
}
