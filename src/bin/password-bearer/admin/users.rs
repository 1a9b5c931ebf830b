//! The users commands on the users file (`--users FILE`): each a change to
//! the file's JSON object ([`edit`](super::edit)), checked by
//! `Users::from_json` as the server loads it.

use super::args::Action;
use super::edit::{self, Missing};
use super::{audit, prompt, tell_reload, Quoted};
use crate::error::ConfigError;
use password_bearer::users::Users;
use serde_json::{json, Map, Value};
use std::path::Path;

/// Runs a users command on the file at `path`.
pub(super) fn run(action: &Action, path: &Path) -> Result<(), ConfigError> {
    let place = path.display().to_string();
    let check = |text: &str| Users::from_json(text).map(drop).map_err(|e| e.to_string());
    let (command, name, detail) = match action {
        Action::UserList => {
            let users = edit::read(path)?;
            print!("{}", list(&users));
            return Ok(());
        }
        Action::UserAdd {
            name,
            email,
            full_name,
            scopes,
            disabled,
        } => {
            // Asked before the password, so that a taken name costs no typing;
            // asked again under the lock.
            if let Ok(users) = edit::read(path) {
                refuse_taken(&users, name)?;
            }
            let hash = hash(name)?;
            let entry = entry(name, &hash, email, full_name, scopes, *disabled);
            edit::edit(
                path,
                Missing::Create,
                |users| {
                    refuse_taken(users, name)?;
                    users.insert(name.clone(), entry);
                    Ok(())
                },
                check,
            )?;
            let detail = format!(" scopes={:?} disabled={disabled}", scopes.join(" "));
            ("users add", name, detail)
        }
        Action::UserPasswd(name) => {
            edit::read(path).and_then(|mut users| user_of(&mut users, name).map(drop))?;
            let hash = hash(name)?;
            edit::edit(
                path,
                Missing::Fail,
                |users| {
                    user_of(users, name)?.insert("hashed_password".into(), Value::String(hash));
                    Ok(())
                },
                check,
            )?;
            ("users passwd", name, String::new())
        }
        Action::UserDisable(name, disabled) => {
            edit::edit(
                path,
                Missing::Fail,
                |users| {
                    user_of(users, name)?.insert("disabled".into(), Value::Bool(*disabled));
                    Ok(())
                },
                check,
            )?;
            let command = if *disabled {
                "users disable"
            } else {
                "users enable"
            };
            (command, name, String::new())
        }
        Action::UserRemove(name) => {
            edit::edit(
                path,
                Missing::Fail,
                |users| {
                    users
                        .remove(name)
                        .map(drop)
                        .ok_or_else(|| no_such_user(name))
                },
                check,
            )?;
            ("users remove", name, String::new())
        }
        #[cfg(feature = "clients")]
        Action::ClientAdd { .. } | Action::ClientRemove(_) | Action::ClientList => {
            return Err(ConfigError::new(
                "clients",
                "not a command of the users file",
            ));
        }
    };
    audit(command, name, &place, &detail);
    tell_reload(path, true);
    Ok(())
}

/// The argon2id hash of a new password for `name`, as `hash-password`
/// makes it.
fn hash(name: &str) -> Result<String, ConfigError> {
    let password = prompt::new_password(name)?;
    password_bearer::password::hash_password(&password).map_err(|e| ConfigError::new("password", e))
}

/// A new entry, in the seed's `fake_users_db` shape; fields not given are
/// left out, as the seed's optional fields may be.
fn entry(
    name: &str,
    hash: &str,
    email: &Option<String>,
    full_name: &Option<String>,
    scopes: &[String],
    disabled: bool,
) -> Value {
    let mut entry = Map::new();
    entry.insert("username".into(), json!(name));
    if let Some(email) = email {
        entry.insert("email".into(), json!(email));
    }
    if let Some(full_name) = full_name {
        entry.insert("full_name".into(), json!(full_name));
    }
    entry.insert("hashed_password".into(), json!(hash));
    entry.insert("disabled".into(), json!(disabled));
    if !scopes.is_empty() {
        entry.insert("scopes".into(), json!(scopes));
    }
    Value::Object(entry)
}

pub(super) fn refuse_taken(users: &Map<String, Value>, name: &str) -> Result<(), ConfigError> {
    if users.contains_key(name) {
        return Err(ConfigError::new(
            "users add",
            format!(
                "a user {} exists already (users passwd changes a password)",
                Quoted(name)
            ),
        ));
    }
    Ok(())
}

fn no_such_user(name: &str) -> ConfigError {
    ConfigError::new("users", format!("no user {}", Quoted(name)))
}

/// `name`'s entry, to change.
fn user_of<'a>(
    users: &'a mut Map<String, Value>,
    name: &str,
) -> Result<&'a mut Map<String, Value>, ConfigError> {
    match users.get_mut(name) {
        Some(Value::Object(user)) => Ok(user),
        Some(_) => Err(ConfigError::new(
            "users",
            format!("the entry {} is not an object", Quoted(name)),
        )),
        None => Err(no_such_user(name)),
    }
}

/// `users list`: a line per user, by name: the name, whether disabled,
/// the scopes. Never the hash, nor the email or full name (a list pasted
/// into a ticket should not carry them).
pub(super) fn list(users: &Map<String, Value>) -> String {
    let mut out = String::new();
    for (name, user) in users {
        let disabled = user.get("disabled").and_then(Value::as_bool) == Some(true);
        let scopes: Vec<&str> = user
            .get("scopes")
            .and_then(Value::as_array)
            .map(|scopes| scopes.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str(&list_line(name, disabled, &scopes));
    }
    out
}

/// One line of `users list`, from the file or the table.
pub(super) fn list_line(name: &str, disabled: bool, scopes: &[&str]) -> String {
    format!(
        "{} {} scopes={:?}\n",
        Quoted(name),
        if disabled { "disabled" } else { "active" },
        scopes.join(" "),
    )
}
