//! The clients commands on the clients file (`--clients FILE`): each a
//! change to the file's JSON object ([`edit`](super::edit)), checked by
//! `Clients::from_json` as the server loads it. `add` generates the
//! secret (`clients::generate_secret`, 256 random bits), stores its
//! SHA-256 (`clients::hash_secret`), and prints the secret once, on
//! stdout: the file never holds it, so it cannot be shown again.

use super::args::Action;
use super::edit::{self, Missing};
use super::{audit, tell_reload, Quoted};
use crate::error::ConfigError;
use password_bearer::clients::{self, Clients};
use serde_json::{json, Map, Value};
use std::path::Path;

/// `clients add`'s secret for the client `name`, once its id is one
/// the server accepts: the secret, 256 random bits, and its stored form.
/// The file's command and the table's alike.
pub(super) fn new_secret(name: &str) -> Result<(String, String), ConfigError> {
    if !clients::is_client_id(name) {
        return Err(ConfigError::new(
            "clients add",
            format!(
                "{} is not a client id: 1 to {} printable ASCII characters, no space, \
                 `:`, `%` or `+`",
                Quoted(name),
                clients::MAX_CLIENT_ID_BYTES
            ),
        ));
    }
    let secret = clients::generate_secret().map_err(|e| ConfigError::new("secret", e))?;
    let stored = clients::hash_secret(&secret).map_err(|e| ConfigError::new("secret", e))?;
    Ok((secret, stored))
}

/// Prints the secret of the client `name`, added, once on stdout, says
/// on stderr that it will not be shown again; the audit line's detail.
pub(super) fn hand_over(secret: &str, name: &str, scopes: &[String], introspect: bool) -> String {
    println!("{secret}");
    crate::stderr_log::write_now(format_args!(
        "password-bearer: stdout holds the secret of client {}: keep it now, \
         it will not be shown again (only its SHA-256 is stored)",
        Quoted(name)
    ));
    format!(" scopes={:?} introspect={introspect}", scopes.join(" "))
}

/// Runs a clients command on the file at `path`.
pub(super) fn run(action: &Action, path: &Path) -> Result<(), ConfigError> {
    let place = path.display().to_string();
    let check = |text: &str| {
        Clients::from_json(text)
            .map(drop)
            .map_err(|e| e.to_string())
    };
    let (command, name, detail) = match action {
        Action::ClientList => {
            print!("{}", list(&edit::read(path)?));
            return Ok(());
        }
        Action::ClientAdd {
            name,
            scopes,
            introspect,
        } => {
            let (secret, stored) = new_secret(name)?;
            let entry = json!({
                "client_id": name,
                "secret_hash": stored,
                "scopes": scopes,
                "introspect": introspect,
            });
            edit::edit(
                path,
                Missing::Create,
                |clients| {
                    if clients.contains_key(name) {
                        return Err(ConfigError::new(
                            "clients add",
                            format!("a client {} exists already", Quoted(name)),
                        ));
                    }
                    clients.insert(name.clone(), entry);
                    Ok(())
                },
                check,
            )?;
            // Written first: a secret printed for a file that was not
            // changed would be a secret that authenticates nothing.
            let detail = hand_over(&secret, name, scopes, *introspect);
            ("clients add", name, detail)
        }
        Action::ClientRemove(name) => {
            edit::edit(
                path,
                Missing::Fail,
                |clients| {
                    clients.remove(name).map(drop).ok_or_else(|| {
                        ConfigError::new("clients", format!("no client {}", Quoted(name)))
                    })
                },
                check,
            )?;
            ("clients remove", name, String::new())
        }
        _ => {
            return Err(ConfigError::new(
                "users",
                "not a command of the clients file",
            ))
        }
    };
    audit(command, name, &place, &detail);
    tell_reload(path, false);
    Ok(())
}

/// `clients list`: a line per client, by id: the id, whether it may
/// introspect, its scopes. Never the stored secret.
pub(super) fn list(clients: &Map<String, Value>) -> String {
    let mut out = String::new();
    for (id, client) in clients {
        let introspect = client.get("introspect").and_then(Value::as_bool) == Some(true);
        let scopes: Vec<&str> = client
            .get("scopes")
            .and_then(Value::as_array)
            .map(|scopes| scopes.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "{} {} scopes={:?}\n",
            Quoted(id),
            if introspect {
                "introspect"
            } else {
                "no-introspect"
            },
            scopes.join(" ")
        ));
    }
    out
}
