//! The admin commands' command line: `users ACTION [NAME] [OPTIONS]` and
//! `clients ACTION [NAME] [OPTIONS]` into an [`Admin`], every mistake one
//! [`ConfigError`] (exit 2). The store comes from `--users`/`--clients`,
//! or the variable the server reads (`PASSWORD_BEARER_USERS`, …), so that
//! the CLI run with the service's environment changes what it serves.

use crate::error::ConfigError;
use std::path::PathBuf;

/// An admin command, parsed: what to do, and on which store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Admin {
    pub(crate) action: Action,
    pub(crate) target: Target,
}

/// What an admin command does.
#[derive(Debug, Clone, PartialEq, Eq)]
// Without `clients`, only the `User…` variants are left: their prefix
// says which group they are, beside the `Client…` ones of the full build.
#[cfg_attr(not(feature = "clients"), allow(clippy::enum_variant_names))]
pub(crate) enum Action {
    /// `users add NAME`, its password read at run time.
    UserAdd {
        name: String,
        email: Option<String>,
        full_name: Option<String>,
        scopes: Vec<String>,
        disabled: bool,
    },
    /// `users passwd NAME`.
    UserPasswd(String),
    /// `users disable NAME` (`true`) or `users enable NAME` (`false`).
    UserDisable(String, bool),
    /// `users remove NAME`.
    UserRemove(String),
    /// `users list`.
    UserList,
    /// `clients add NAME`, its secret generated at run time.
    #[cfg(feature = "clients")]
    ClientAdd {
        name: String,
        scopes: Vec<String>,
        introspect: bool,
    },
    /// `clients remove NAME`.
    #[cfg(feature = "clients")]
    ClientRemove(String),
    /// `clients list`.
    #[cfg(feature = "clients")]
    ClientList,
}

/// Where the command works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// The users file.
    UsersFile(PathBuf),
    /// The users table (`--users postgres://…`, `--users-table`).
    #[cfg(feature = "postgres")]
    UsersPostgres { url: String, table: String },
    /// The clients file.
    #[cfg(feature = "clients")]
    ClientsFile(PathBuf),
    /// The clients table (`--clients postgres://…`, `--clients-table`).
    #[cfg(all(feature = "clients", feature = "postgres"))]
    ClientsPostgres { url: String, table: String },
}

/// `users --help` and `clients --help`.
pub(crate) const USAGE: &str = "\
Usage:
  password-bearer users add NAME [--email E] [--full-name F] [--scope S]... [--disabled]
  password-bearer users passwd NAME
  password-bearer users disable NAME | enable NAME | remove NAME
  password-bearer users list
  password-bearer clients add NAME [--scope S]... [--introspect]
  password-bearer clients remove NAME
  password-bearer clients list

The users commands work on --users FILE, or --users postgres://... with
--users-table NAME (builds with the `postgres` feature); the clients commands
(build with the `clients` feature) on --clients FILE, or --clients
postgres://... with --clients-table NAME. Each also read from its variable,
as the server reads it: PASSWORD_BEARER_USERS, PASSWORD_BEARER_USERS_TABLE,
PASSWORD_BEARER_CLIENTS, PASSWORD_BEARER_CLIENTS_TABLE.

A password is read from the terminal without echo, twice, or once from stdin
when stdin is not a terminal. A client's secret is generated and printed once.
A running server reads a changed file on SIGHUP (systemctl reload); a
PostgreSQL table's change is seen within its cache time (0.5 s), the clients
table's too (read again whole every 0.5 s).
";

/// The options an action takes, beyond the store's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Takes {
    Nothing,
    UserFields,
    ClientFields,
}

/// Parses what follows `users` or `clients` (`group`). `env` reads the
/// server's variables, for a store not given as a flag.
pub(crate) fn parse(
    group: &str,
    args: impl IntoIterator<Item = String>,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Option<Admin>, ConfigError> {
    let mut args = args.into_iter();
    #[cfg(not(feature = "clients"))]
    if group == "clients" {
        return Err(without_clients());
    }
    let Some(verb) = args.next() else {
        return Err(ConfigError::new(
            group,
            format!("needs a command: {}", verbs(group)),
        ));
    };
    if verb == "-h" || verb == "--help" {
        return Ok(None);
    }
    let command = format!("{group} {verb}");
    let (takes, named) = match (group, verb.as_str()) {
        ("users", "add") => (Takes::UserFields, true),
        ("users", "passwd" | "disable" | "enable" | "remove") => (Takes::Nothing, true),
        ("users", "list") | ("clients", "list") => (Takes::Nothing, false),
        ("clients", "add") => (Takes::ClientFields, true),
        ("clients", "remove") => (Takes::Nothing, true),
        _ => {
            return Err(ConfigError::new(
                format!("{group} {verb}"),
                format!("unknown command; {group} takes {}", verbs(group)),
            ))
        }
    };
    let mut name: Option<String> = None;
    let mut store: Option<(String, String)> = None;
    let mut table: Option<(String, String)> = None;
    let (mut email, mut full_name, mut scopes) = (None, None, Vec::new());
    let (mut disabled, mut introspect) = (false, false);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        if !arg.starts_with('-') {
            if !named || name.is_some() {
                return Err(ConfigError::new(&command, format!("unexpected {arg:?}")));
            }
            name = Some(check_name(&command, arg)?);
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let value = |args: &mut dyn Iterator<Item = String>| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| ConfigError::new(&flag, "needs a value"))
        };
        match (flag.as_str(), takes) {
            ("--users", _) if group == "users" => store = Some((flag.clone(), value(&mut args)?)),
            ("--users-table", _) if group == "users" => {
                table = Some((flag.clone(), value(&mut args)?));
            }
            ("--clients", _) if group == "clients" => {
                store = Some((flag.clone(), value(&mut args)?));
            }
            ("--clients-table", _) if group == "clients" => {
                table = Some((flag.clone(), value(&mut args)?));
            }
            ("--email", Takes::UserFields) => email = Some(field(&flag, value(&mut args)?)?),
            ("--full-name", Takes::UserFields) => {
                full_name = Some(field(&flag, value(&mut args)?)?);
            }
            ("--scope", Takes::UserFields | Takes::ClientFields) => {
                let scope = value(&mut args)?;
                if !password_bearer::users::is_scope_token(&scope) {
                    return Err(ConfigError::new(
                        &flag,
                        format!("{scope:?} is not a scope (RFC 6749 §3.3: no spaces, quotes or backslashes)"),
                    ));
                }
                if !scopes.contains(&scope) {
                    scopes.push(scope);
                }
            }
            ("--disabled", Takes::UserFields) if inline.is_none() => disabled = true,
            ("--introspect", Takes::ClientFields) if inline.is_none() => introspect = true,
            _ => {
                return Err(ConfigError::new(
                    &flag,
                    format!("not an option of `{command}` (see password-bearer {group} --help)"),
                ))
            }
        }
    }
    let name = match (named, name) {
        (true, None) => return Err(ConfigError::new(&command, "needs a NAME")),
        (_, name) => name.unwrap_or_default(),
    };
    let action = match (group, verb.as_str()) {
        ("users", "add") => Action::UserAdd {
            name,
            email,
            full_name,
            scopes,
            disabled,
        },
        ("users", "passwd") => Action::UserPasswd(name),
        ("users", "disable") => Action::UserDisable(name, true),
        ("users", "enable") => Action::UserDisable(name, false),
        ("users", "remove") => Action::UserRemove(name),
        ("users", _) => Action::UserList,
        #[cfg(feature = "clients")]
        (_, "add") => Action::ClientAdd {
            name,
            scopes,
            introspect,
        },
        #[cfg(feature = "clients")]
        (_, "remove") => Action::ClientRemove(name),
        #[cfg(feature = "clients")]
        _ => Action::ClientList,
        // Refused before the first argument was read.
        #[cfg(not(feature = "clients"))]
        _ => {
            let _ = introspect;
            return Err(without_clients());
        }
    };
    let target = target(group, store, table, env)?;
    Ok(Some(Admin { action, target }))
}

/// `clients …` in a binary built without the `clients` feature.
#[cfg(not(feature = "clients"))]
fn without_clients() -> ConfigError {
    ConfigError::new(
        "clients",
        "this binary was built without the `clients` feature \
         (cargo build --release --features admin,clients)",
    )
}

/// The commands of `group`, for an error.
fn verbs(group: &str) -> &'static str {
    if group == "users" {
        "add, passwd, disable, enable, remove or list"
    } else {
        "add, remove or list"
    }
}

/// A user's or client's name: not empty, no control characters, at most
/// the length a username may have (a token's `sub` carries it).
fn check_name(command: &str, name: String) -> Result<String, ConfigError> {
    if name.is_empty()
        || name.chars().any(char::is_control)
        || name.len() > password_bearer::users::MAX_USERNAME_BYTES
    {
        return Err(ConfigError::new(
            command,
            format!(
                "a NAME must be 1 to {} bytes without control characters",
                password_bearer::users::MAX_USERNAME_BYTES
            ),
        ));
    }
    Ok(name)
}

/// `--email` or `--full-name`: one line of text.
fn field(flag: &str, value: String) -> Result<String, ConfigError> {
    if value.chars().any(char::is_control) {
        return Err(ConfigError::new(flag, "holds a control character"));
    }
    Ok(value)
}

/// The store: the flag, else the server's variable, else an error naming
/// both; a database URL is the `postgres` feature's.
#[cfg_attr(not(feature = "clients"), allow(unused_variables))]
fn target(
    group: &str,
    store: Option<(String, String)>,
    table: Option<(String, String)>,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Target, ConfigError> {
    let from_env = |var: &str| -> Result<Option<(String, String)>, ConfigError> {
        match env(var) {
            None => Ok(None),
            Some(value) => value
                .into_string()
                .map(|text| Some((var.to_owned(), text)))
                .map_err(|_| ConfigError::new(var, "the value is not valid UTF-8")),
        }
    };
    #[cfg(feature = "clients")]
    if group == "clients" {
        return match place("clients", store, table, &from_env)? {
            Place::File(path) => Ok(Target::ClientsFile(path.into())),
            Place::Postgres { origin, url, table } => clients_postgres_target(&origin, url, table),
        };
    }
    match place("users", store, table, &from_env)? {
        Place::File(path) => Ok(Target::UsersFile(path.into())),
        Place::Postgres { origin, url, table } => postgres_target(&origin, url, table),
    }
}

/// A flag's or variable's name and its value, when given.
type Given = Option<(String, String)>;

/// Where the users or the clients are, as the flags and variables say.
enum Place {
    File(String),
    /// A database URL, from `origin` (a flag or a variable), and the table
    /// flag's (or variable's) name and value, unchecked.
    Postgres {
        origin: String,
        url: String,
        table: Option<(String, String)>,
    },
}

/// The place of `name` ("users" or "clients"): `--NAME`, else
/// `PASSWORD_BEARER_NAME`, else an error naming both; its table from
/// `--NAME-table`, else `PASSWORD_BEARER_NAME_TABLE`, only with a URL.
fn place(
    name: &str,
    store: Option<(String, String)>,
    table: Option<(String, String)>,
    from_env: &dyn Fn(&str) -> Result<Given, ConfigError>,
) -> Result<Place, ConfigError> {
    let var = format!("PASSWORD_BEARER_{}", name.to_uppercase());
    let store = match store {
        Some(store) => Some(store),
        None => from_env(&var)?,
    };
    let Some((origin, text)) = store.filter(|(_, text)| !text.is_empty()) else {
        return Err(ConfigError::new(
            name,
            format!("no --{name} FILE given (nor {var})"),
        ));
    };
    let table = match table {
        Some(table) => Some(table),
        None => from_env(&format!("{var}_TABLE"))?,
    };
    if crate::store::names_postgres(&text) {
        return Ok(Place::Postgres {
            origin,
            url: text,
            table,
        });
    }
    if let Some((flag, _)) = table {
        return Err(ConfigError::new(
            flag,
            format!("names a table of --{name} postgres://…, not a file"),
        ));
    }
    Ok(Place::File(text))
}

#[cfg(feature = "postgres")]
fn postgres_target(
    _origin: &str,
    url: String,
    table: Option<(String, String)>,
) -> Result<Target, ConfigError> {
    let table = checked_table(table, password_bearer::users::postgres::DEFAULT_TABLE)?;
    Ok(Target::UsersPostgres { url, table })
}

/// The table flag's value, checked as the server checks it, or `default`.
#[cfg(feature = "postgres")]
fn checked_table(table: Option<(String, String)>, default: &str) -> Result<String, ConfigError> {
    let Some((flag, table)) = table else {
        return Ok(default.to_owned());
    };
    password_bearer::users::postgres::check_table(&table).map_err(|e| ConfigError::new(flag, e))?;
    Ok(table)
}

/// Without the feature: the refusal `store.rs` gives the server, without
/// echoing the URL (it may hold a password).
#[cfg(not(feature = "postgres"))]
fn postgres_target(
    origin: &str,
    _url: String,
    _table: Option<(String, String)>,
) -> Result<Target, ConfigError> {
    Err(ConfigError::new(origin, crate::store::WITHOUT_POSTGRES))
}

#[cfg(all(feature = "clients", feature = "postgres"))]
fn clients_postgres_target(
    _origin: &str,
    url: String,
    table: Option<(String, String)>,
) -> Result<Target, ConfigError> {
    let table = checked_table(table, password_bearer::clients::postgres::DEFAULT_TABLE)?;
    Ok(Target::ClientsPostgres { url, table })
}

/// Without the `postgres` feature: the refusal the server gives.
#[cfg(all(feature = "clients", not(feature = "postgres")))]
fn clients_postgres_target(
    origin: &str,
    _url: String,
    _table: Option<(String, String)>,
) -> Result<Target, ConfigError> {
    Err(ConfigError::new(origin, crate::store::WITHOUT_POSTGRES))
}
