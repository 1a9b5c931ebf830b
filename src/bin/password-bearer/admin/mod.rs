//! The admin commands: `password-bearer users …` and `password-bearer
//! clients …`, which change the users file (or the PostgreSQL table) and
//! the clients file the server reads, so that an operator never edits
//! JSON by hand. Parsed here from what follows the command word
//! (`cli::parse` hands it over, as it recognises `hash-password`), run by
//! [`run`].
//!
//! Split by job: `args` (the command line of each command), `edit` (a
//! JSON file changed under a lock and replaced atomically), `prompt` (a
//! password from the terminal without echo, or from stdin), `users` and
//! `clients` (each command on its file), `postgres` (the users and clients
//! commands as SQL, the `postgres` feature).
//!
//! Every change prints one line under the target `password_bearer::audit`
//! (the command and the user or client, never a password, secret or
//! hash), then, on stderr, how the running server picks it up.

mod args;
#[cfg(feature = "clients")]
mod clients;
mod edit;
#[cfg(feature = "postgres")]
mod postgres;
mod prompt;
#[cfg(test)]
mod tests;
mod users;

pub(crate) use args::{parse, Admin, USAGE};

use crate::error::ConfigError;
use args::Target;

/// Runs an admin command: its change made (or its list printed), or one
/// line saying why not.
pub(crate) fn run(admin: &Admin) -> Result<(), ConfigError> {
    match &admin.target {
        Target::UsersFile(path) => users::run(&admin.action, path),
        #[cfg(feature = "clients")]
        Target::ClientsFile(path) => clients::run(&admin.action, path),
        #[cfg(feature = "postgres")]
        Target::UsersPostgres { url, table } => postgres::run(&admin.action, url, table),
        #[cfg(all(feature = "clients", feature = "postgres"))]
        Target::ClientsPostgres { url, table } => postgres::run_clients(&admin.action, url, table),
    }
}

/// The audit line of a change, under `password_bearer::audit`: what was
/// done, to whom, where. `detail` never holds a password, secret or hash.
fn audit(command: &str, name: &str, place: &str, detail: &str) {
    log::info!(
        target: "password_bearer::audit",
        "password-bearer: audit: {command} {}={} in {place}{detail}",
        if command.starts_with("clients") {
            "client_id"
        } else {
            "username"
        },
        Quoted(name),
    );
}

/// A name in a line: quoted and escaped, so that no name can forge a line
/// (the library's `logging::Quoted`, which the binary cannot reach).
struct Quoted<'a>(&'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// The line saying how a running server reading `file` picks a change
/// up; for the users file (`users`), that it ends sessions too.
fn tell_reload(file: &std::path::Path, users: bool) {
    let sessions = if users {
        ", and ends the sessions of the users it removed, disabled or gave another password"
    } else {
        ""
    };
    crate::stderr_log::write_now(format_args!(
        "password-bearer: {} changed; a running server reads it again on SIGHUP \
         (systemctl reload password-bearer, or kill -HUP its pid){sessions}",
        file.display()
    ));
}
