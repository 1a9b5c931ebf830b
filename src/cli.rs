//! The binary's command line: flags, the `hash-password` subcommand, and
//! turning flags into a [`Config`] with one-line errors for bad settings.
//! The binary's alone: declared by `main.rs`, not part of the library.
//!
//! Every flag can also come from an environment variable named after it
//! (`--secret-key-file` ↔ `PASSWORD_BEARER_SECRET_KEY_FILE`), as containers
//! and service managers configure programs; a flag given on the command line
//! wins over its variable. One table, [`FLAGS`], drives the parsing, the
//! variable names and `--help`, so a flag cannot be added to one and
//! forgotten in another.
//!
//! Hand-written rather than a parser crate: a handful of flags does not pay
//! for the binary size an embedded deployment would carry.

use crate::store::{self, Store};
use password_bearer::app::{Config, DEFAULT_DOCS_ASSETS_URL, MAX_LEEWAY};
use password_bearer::openapi::SwaggerAssets;
use password_bearer::token::SecretKey;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The most `--workers` accepted: more threads than any machine this is
/// meant for has cores.
pub(crate) const MAX_WORKERS: usize = 256;

/// What serves without `--users`: `--help`'s default, and the startup
/// line that says so (`password_bearer::users::Users::demo`).
pub(crate) const DEMO_USERS: &str = "the demo users johndoe, alice";

/// The prefix of every flag's environment variable.
pub(crate) const ENV_PREFIX: &str = "PASSWORD_BEARER_";

/// One command-line flag, and through [`Flag::env_var`] its environment
/// variable.
#[derive(Clone, Copy)]
pub(crate) struct Flag {
    /// The name without the leading `--`, e.g. `secret-key-file`.
    pub(crate) name: &'static str,
    /// What the flag does, for `--help`.
    pub(crate) help: &'static str,
    /// The default as `--help` shows it; empty for a switch (off unless
    /// given).
    pub(crate) default: &'static str,
    /// How a value is checked and stored; private so that the table stays
    /// the only place flags are defined.
    apply: Apply,
}

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `--flag VALUE` or `--flag=VALUE`; the string is the placeholder
    /// `--help` shows (`FILE`, `N`, ...).
    Value(&'static str),
    /// `--flag` alone; its variable is on when `1` or `true`.
    Switch,
}

#[derive(Clone, Copy)]
enum Apply {
    /// The placeholder for `--help`, and the check-and-store; the error is
    /// the problem alone, the caller names the flag or variable.
    Value(&'static str, fn(&mut Options, &str) -> Result<(), String>),
    /// Stores a switch's state.
    Switch(fn(&mut Options, bool)),
}

impl Flag {
    /// `--name`.
    pub(crate) fn flag(&self) -> String {
        format!("--{}", self.name)
    }

    /// The environment variable: `PASSWORD_BEARER_` and the name in upper
    /// case with `_` for `-`.
    pub(crate) fn env_var(&self) -> String {
        format!(
            "{ENV_PREFIX}{}",
            self.name.to_ascii_uppercase().replace('-', "_")
        )
    }

    /// Whether the flag takes a value.
    pub(crate) fn kind(&self) -> Kind {
        match self.apply {
            Apply::Value(placeholder, _) => Kind::Value(placeholder),
            Apply::Switch(_) => Kind::Switch,
        }
    }

    /// Checks and stores `text`, given as the flag or the variable `what`.
    fn set(&self, options: &mut Options, what: &str, text: &str) -> Result<(), ConfigError> {
        match self.apply {
            Apply::Value(_, set) => set(options, text),
            Apply::Switch(set) => switch_state(text).map(|on| set(options, on)),
        }
        .map_err(|problem| ConfigError::new(what, problem))
    }
}

impl fmt::Debug for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flag")
            .field("name", &self.name)
            .field("kind", &self.kind())
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

/// Every flag of the server, in `--help` order.
pub(crate) const FLAGS: &[Flag] = &[
    Flag {
        name: "host",
        help: "address to listen on",
        default: "127.0.0.1",
        apply: Apply::Value("HOST", |o, v| {
            o.host = v.to_owned();
            Ok(())
        }),
    },
    Flag {
        name: "port",
        help: "port to listen on; 0 picks a free one",
        default: "8000",
        apply: Apply::Value("PORT", |o, v| {
            o.port = number(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "tls-cert",
        help: "serve HTTPS with this PEM certificate chain, leaf first, sent whole; \
               with --tls-key (builds with the `tls` feature)",
        default: "",
        apply: Apply::Value("FILE", |o, v| {
            o.tls_cert = Some(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "tls-key",
        help: "the PEM private key of --tls-cert's certificate",
        default: "",
        apply: Apply::Value("FILE", |o, v| {
            o.tls_key = Some(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "users",
        help: "users JSON, the seed's fake_users_db shape with argon2 PHC hashes; \
               or a postgres:// URL: users in a PostgreSQL table, shared by every \
               instance (builds with the `postgres` feature)",
        default: DEMO_USERS,
        apply: Apply::Value("FILE|URL", |o, v| {
            o.users = Some(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "users-table",
        help: "the table of --users postgres://…, NAME or SCHEMA.NAME in lowercase SQL \
               identifiers; created when missing (builds with the `postgres` feature)",
        default: "users",
        apply: Apply::Value("NAME", |o, v| {
            o.users_table = Some(users_table(v)?);
            Ok(())
        }),
    },
    Flag {
        name: "secret-key-file",
        help: "HS256 key: the file's content, trimmed, >= 32 bytes; give it again to \
               rotate: the first key signs, every key verifies",
        default: "a random key; tokens die with the process",
        apply: Apply::Value("FILE", |o, v| {
            o.secret_key_files.push(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "refresh-token-ttl-days",
        help: "how long a login's session and its refresh tokens last, 0..=3650; \
               0 turns sessions off (no refresh tokens, no /revoke)",
        default: "14",
        apply: Apply::Value("N", |o, v| {
            o.refresh_token_ttl_days = number(v)?;
            if o.refresh_token_ttl_days > 3650 {
                return Err("must be from 0 to 3650".into());
            }
            Ok(())
        }),
    },
    Flag {
        name: "state-dir",
        help: "keep sessions and revocations in this directory, so that they survive \
               a restart (builds with the `persist` feature)",
        default: "in memory; lost on restart",
        apply: Apply::Value("DIR", |o, v| {
            o.state_dir = Some(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "redis-url",
        help: "share sessions, revocations and failed-login counts with every instance \
               using this Redis, redis://[:PASSWORD@]HOST[:PORT][/DB] (builds with the \
               `redis` feature)",
        default: "each instance keeps its own",
        apply: Apply::Value("URL", |o, v| {
            o.redis_url = Some(redis_url(v)?);
            Ok(())
        }),
    },
    Flag {
        name: "token-ttl-minutes",
        help: "lifetime of issued tokens, 1..=525600",
        default: "30",
        apply: Apply::Value("N", |o, v| {
            o.token_ttl_minutes = number(v)?;
            // A year bounds `exp` far from overflow and is already too long.
            if !(1..=525_600).contains(&o.token_ttl_minutes) {
                return Err("must be from 1 to 525600".into());
            }
            Ok(())
        }),
    },
    Flag {
        name: "token-leeway-seconds",
        help: "clock skew allowed on exp/nbf, 0..=60",
        default: "0",
        apply: Apply::Value("N", |o, v| {
            o.token_leeway_seconds = number(v)?;
            if o.token_leeway_seconds > MAX_LEEWAY.as_secs() {
                return Err("must be from 0 to 60".into());
            }
            Ok(())
        }),
    },
    Flag {
        name: "header-read-timeout-seconds",
        help: "time to send a request head; idle keep-alive limit",
        default: "10",
        apply: Apply::Value("N", |o, v| {
            o.header_read_timeout_seconds = number(v)?;
            if o.header_read_timeout_seconds == 0 {
                return Err("must be at least 1".into());
            }
            Ok(())
        }),
    },
    Flag {
        name: "request-timeout-seconds",
        help: "time a request has after its head: a body that stops arriving gets 408, \
               a client that stops reading its answers is closed",
        default: "10",
        apply: Apply::Value("N", |o, v| {
            o.request_timeout_seconds = number(v)?;
            if o.request_timeout_seconds == 0 {
                return Err("must be at least 1".into());
            }
            Ok(())
        }),
    },
    Flag {
        name: "max-body-bytes",
        help: "largest request body; more gets 413",
        default: "16384",
        apply: Apply::Value("N", |o, v| {
            o.max_body_bytes = number(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "grace-period-seconds",
        help: "on SIGINT/SIGTERM, time for in-flight requests",
        default: "10",
        apply: Apply::Value("N", |o, v| {
            o.grace_period_seconds = number(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "login-failures-per-user",
        help: "failed logins per username per minute before 429; 0 disables",
        default: "10",
        apply: Apply::Value("N", |o, v| {
            o.login_failures_per_user = number(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "login-failures-per-ip",
        help: "failed logins per client address per minute before 429; 0 disables",
        default: "100",
        apply: Apply::Value("N", |o, v| {
            o.login_failures_per_ip = number(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "max-connections",
        help: "connections served at once; more wait in the listen backlog",
        default: "4096",
        apply: Apply::Value("N", |o, v| {
            o.max_connections = number(v)?;
            if o.max_connections == 0 {
                return Err("must be at least 1".into());
            }
            Ok(())
        }),
    },
    Flag {
        name: "max-connections-per-ip",
        help: "connections served at once from one client address (IPv6: one /64); \
               more are refused at once; 0 disables (behind a reverse proxy)",
        default: "an eighth of --max-connections",
        apply: Apply::Value("N", |o, v| {
            o.max_connections_per_ip = Some(number(v)?);
            Ok(())
        }),
    },
    Flag {
        name: "login-queue-seconds",
        help: "how long a login may wait for a password hash slot before 503; \
               0 answers 503 unless a slot is free",
        default: "2",
        apply: Apply::Value("N", |o, v| {
            o.login_queue_seconds = number(v)?;
            if o.login_queue_seconds > 60 {
                return Err("must be from 0 to 60".into());
            }
            Ok(())
        }),
    },
    Flag {
        name: "workers",
        help: "threads serving connections; 1 runs a single-threaded runtime",
        default: "one per core",
        apply: Apply::Value("N", |o, v| {
            let workers: usize = number(v)?;
            if !(1..=MAX_WORKERS).contains(&workers) {
                return Err(format!("must be from 1 to {MAX_WORKERS}"));
            }
            o.workers = Some(workers);
            Ok(())
        }),
    },
    Flag {
        name: "no-docs",
        help: "do not serve /docs and /openapi.json (both answer 404)",
        default: "",
        apply: Apply::Switch(|o, on| o.docs = !on),
    },
    Flag {
        name: "docs-assets-url",
        help: "where /docs loads swagger-ui-bundle.js and swagger-ui.css; \
               http://, https:// or a path starting with /",
        default: DEFAULT_DOCS_ASSETS_URL,
        apply: Apply::Value("URL", |o, v| {
            o.docs_assets_url = assets_url(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "docs-assets-dir",
        help: "serve swagger-ui-bundle.js and swagger-ui.css from this copy of the \
               swagger-ui-dist npm package, read at start, so /docs needs no network; \
               wins over --docs-assets-url",
        default: "",
        apply: Apply::Value("DIR", |o, v| {
            o.docs_assets_dir = Some(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "access-log",
        help: "one stderr line per request: method, path, status, time, peer",
        default: "",
        apply: Apply::Switch(|o, on| o.access_log = on),
    },
    Flag {
        name: "no-login-log",
        help: "no stderr line per login success or failure",
        default: "",
        apply: Apply::Switch(|o, on| o.login_log = !on),
    },
    Flag {
        name: "metrics-addr",
        help: "serve GET /metrics (Prometheus) on this HOST:PORT, a listener of its own; \
               off unless given; bind it where only your monitoring reaches",
        default: "",
        apply: Apply::Value("HOST:PORT", |o, v| {
            o.metrics_addr = Some(host_port(v)?);
            Ok(())
        }),
    },
];

/// The text of `--help`, rendered from [`FLAGS`]: `print!("{USAGE}")`.
pub(crate) const USAGE: Usage = Usage;

/// The `--help` text; see [`USAGE`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage;

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Descriptions start at this column and wrap before WIDTH, so the
        // text reads in an 80-column terminal.
        const COLUMN: usize = 32;
        const WIDTH: usize = 80;
        f.write_str(
            "\
password-bearer: the OAuth2 password grant and Bearer check, on hyper

Usage:
  password-bearer [OPTIONS]          serve POST /token and GET /users/me
  password-bearer hash-password      read a password on stdin, print its argon2id hash

Options (each also read from the environment variable shown; a flag given
on the command line wins; a switch's variable is on when 1 or true, off when
0, false or empty; --switch=1/true/0/false is accepted too):
",
        )?;
        for flag in FLAGS {
            let mut head = format!("  {}", flag.flag());
            if let Kind::Value(placeholder) = flag.kind() {
                head = format!("{head} {placeholder}");
            }
            let mut lines = wrap(flag.help, WIDTH - COLUMN);
            if !flag.default.is_empty() {
                // Never split, so the default reads (and greps) whole.
                let default = format!("[default: {}]", flag.default);
                match lines.last_mut() {
                    Some(last) if last.len() + 1 + default.len() <= WIDTH - COLUMN => {
                        last.push(' ');
                        last.push_str(&default);
                    }
                    _ => lines.push(default),
                }
            }
            let mut lines = lines.iter();
            if head.len() < COLUMN {
                let first = lines.next().map_or("", String::as_str);
                writeln!(f, "{head:<COLUMN$}{first}")?;
            } else {
                writeln!(f, "{head}")?;
            }
            for line in lines {
                writeln!(f, "{:COLUMN$}{line}", "")?;
            }
            writeln!(f, "{:COLUMN$}[env: {}]", "", flag.env_var())?;
        }
        writeln!(f, "  {:<w$}print this help", "-h, --help", w = COLUMN - 2)?;
        writeln!(
            f,
            "  {:<w$}print the version",
            "-V, --version",
            w = COLUMN - 2
        )
    }
}

/// Greedy word wrap; a word longer than `width` gets a line of its own.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Command {
    /// Serve with these options.
    Serve(Box<Options>),
    /// Read a password on stdin and print its hash.
    HashPassword,
    /// Print [`USAGE`].
    Help,
    /// Print [`VERSION`].
    Version,
}

/// What `--version` prints: the name and the crate's version, as
/// `cargo --version` and most tools do.
pub(crate) const VERSION: &str = concat!("password-bearer ", env!("CARGO_PKG_VERSION"));

/// The serving options, as given (files not yet read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// `--host`.
    pub(crate) host: String,
    /// `--port`.
    pub(crate) port: u16,
    /// `--tls-cert`.
    pub(crate) tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub(crate) tls_key: Option<PathBuf>,
    /// `--users`.
    pub(crate) users: Option<PathBuf>,
    /// `--users-table`, checked to be a table's name.
    pub(crate) users_table: Option<String>,
    /// `--secret-key-file`, each time it was given: the first signs.
    pub(crate) secret_key_files: Vec<PathBuf>,
    /// `--refresh-token-ttl-days`.
    pub(crate) refresh_token_ttl_days: u64,
    /// `--state-dir`.
    pub(crate) state_dir: Option<PathBuf>,
    /// `--redis-url`, checked to be one; it may hold a password, so it is
    /// never shown.
    pub(crate) redis_url: Option<String>,
    /// `--token-ttl-minutes`.
    pub(crate) token_ttl_minutes: u64,
    /// `--token-leeway-seconds`.
    pub(crate) token_leeway_seconds: u64,
    /// `--header-read-timeout-seconds`.
    pub(crate) header_read_timeout_seconds: u64,
    /// `--request-timeout-seconds`.
    pub(crate) request_timeout_seconds: u64,
    /// `--max-body-bytes`.
    pub(crate) max_body_bytes: usize,
    /// `--grace-period-seconds`.
    pub(crate) grace_period_seconds: u64,
    /// `--login-failures-per-user`.
    pub(crate) login_failures_per_user: u32,
    /// `--login-failures-per-ip`.
    pub(crate) login_failures_per_ip: u32,
    /// `--max-connections`.
    pub(crate) max_connections: usize,
    /// `--max-connections-per-ip`; `None` is an eighth of `max_connections`.
    pub(crate) max_connections_per_ip: Option<usize>,
    /// `--login-queue-seconds`.
    pub(crate) login_queue_seconds: u64,
    /// `--workers`; `None` is one per core the process may run on.
    pub(crate) workers: Option<usize>,
    /// Serve `/docs` and `/openapi.json`; `--no-docs` clears it.
    pub(crate) docs: bool,
    /// `--docs-assets-url`, checked, without a trailing `/`.
    pub(crate) docs_assets_url: String,
    /// `--docs-assets-dir`.
    pub(crate) docs_assets_dir: Option<PathBuf>,
    /// `--access-log`.
    pub(crate) access_log: bool,
    /// Log logins; `--no-login-log` clears it.
    pub(crate) login_log: bool,
    /// `--metrics-addr`, checked to be `HOST:PORT`.
    pub(crate) metrics_addr: Option<String>,
    /// The [`Flag::name`]s whose value came from the environment, so that
    /// [`Options::load`] names the variable, not the flag, when a file they
    /// name is bad.
    pub(crate) from_env: Vec<&'static str>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            host: "127.0.0.1".to_owned(),
            port: 8000,
            tls_cert: None,
            tls_key: None,
            users: None,
            users_table: None,
            secret_key_files: Vec::new(),
            refresh_token_ttl_days: 14,
            state_dir: None,
            redis_url: None,
            token_ttl_minutes: 30,
            token_leeway_seconds: 0,
            header_read_timeout_seconds: 10,
            request_timeout_seconds: 10,
            max_body_bytes: 16 * 1024,
            grace_period_seconds: 10,
            login_failures_per_user: 10,
            login_failures_per_ip: 100,
            max_connections: 4096,
            max_connections_per_ip: None,
            login_queue_seconds: 2,
            workers: None,
            docs: true,
            docs_assets_url: DEFAULT_DOCS_ASSETS_URL.to_owned(),
            docs_assets_dir: None,
            access_log: false,
            login_log: true,
            metrics_addr: None,
            from_env: Vec::new(),
        }
    }
}

/// A bad command line or configuration: `what` names the flag, variable or
/// file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    /// The flag or environment variable, and the file when there is one.
    pub(crate) what: String,
    /// What is wrong, in a few words.
    pub(crate) problem: String,
}

impl ConfigError {
    fn new(what: impl Into<String>, problem: impl fmt::Display) -> ConfigError {
        ConfigError {
            what: what.into(),
            problem: problem.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the underlying error printed.
        let problem = self.problem.replace(['\n', '\r'], " ");
        write!(f, "{}: {}", self.what, problem)
    }
}

impl std::error::Error for ConfigError {}

/// Parses the arguments after the program name, taking every flag not on
/// the command line from its environment variable as read by `env` (see
/// [`Flag::env_var`]). `--flag value` and `--flag=value` are both accepted;
/// a switch is on when given alone, and `--switch=VALUE` takes the spellings
/// its variable does. `hash-password` and `--help` do not read `env`.
pub(crate) fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Command, ConfigError> {
    let mut args = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    let mut options = Options::default();
    let mut given = [false; FLAGS.len()];
    let mut first = true;
    while let Some(arg) = args.next() {
        if first && arg == "hash-password" {
            if let Some(extra) = args.next() {
                return Err(ConfigError::new(extra, "hash-password takes no arguments"));
            }
            return Ok(Command::HashPassword);
        }
        first = false;
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        if arg == "-V" || arg == "--version" {
            return Ok(Command::Version);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let Some(index) = name
            .strip_prefix("--")
            .and_then(|bare| FLAGS.iter().position(|flag| flag.name == bare))
        else {
            let problem = match closest_flag(&name) {
                Some(close) => format!("unknown option; did you mean `{close}`?"),
                None => "unknown option (see --help)".to_owned(),
            };
            return Err(ConfigError::new(name, problem));
        };
        let flag = &FLAGS[index];
        let text = match (inline, flag.kind()) {
            (Some(text), _) => text,
            (None, Kind::Switch) => "true".to_owned(),
            (None, Kind::Value(_)) => args
                .next()
                .ok_or_else(|| ConfigError::new(&name, "needs a value"))?,
        };
        flag.set(&mut options, &name, &text)?;
        given[index] = true;
    }
    // After the command line, so that a flag wins even over a variable whose
    // value is invalid: the operator's explicit choice is the one checked.
    for (flag, given) in FLAGS.iter().zip(given) {
        if given {
            continue;
        }
        let var = flag.env_var();
        let Some(value) = env(&var) else { continue };
        let text = value
            .into_string()
            .map_err(|_| ConfigError::new(&var, "the value is not valid UTF-8"))?;
        flag.set(&mut options, &var, &text)?;
        if flag.kind() != Kind::Switch {
            options.from_env.push(flag.name);
        }
    }
    Ok(Command::Serve(Box::new(options)))
}

/// What a mistyped `arg` most likely meant: the flag (or `hash-password`,
/// `--help`, `--version`) closest to it, when close enough to be a typo
/// rather than another word: a letter or two dropped, added, changed or
/// swapped. Dashes are not counted, so `-users` and `users` find `--users`.
fn closest_flag(arg: &str) -> Option<String> {
    let bare = arg.trim_start_matches('-');
    let mut names = FLAGS
        .iter()
        .map(|flag| flag.name)
        .chain(["hash-password", "help", "version"]);
    closest(bare, &mut names).map(|name| match name {
        "hash-password" => name.to_owned(),
        _ => format!("--{name}"),
    })
}

/// Of `names`, the one closest to `typed` by [`edit_distance`], if within a
/// typo's reach: at most 2 edits, and at most a third of the name, so that
/// short words do not match everything. (`dyn`: one copy in the binary for
/// flags and variables.)
fn closest(typed: &str, names: &mut dyn Iterator<Item = &'static str>) -> Option<&'static str> {
    names
        // A length apart by more than 2 is more than 2 edits: not worth
        // measuring (and a megabyte argument costs nothing).
        .filter(|name| typed.len().abs_diff(name.len()) <= 2)
        .map(|name| (edit_distance(typed, name), name))
        .filter(|&(distance, name)| distance <= 2 && distance * 3 <= name.len())
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, name)| name)
}

/// Edits (a character inserted, removed, replaced, or two neighbours
/// swapped) from `a` to `b`: the optimal string alignment distance, with
/// two rows of the table. Flag names are ASCII; other characters count
/// byte by byte, which only makes them look further apart.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            current[j] = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                current[j] = current[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()]
}

/// One warning per `PASSWORD_BEARER_*` variable among `names` that is no
/// flag's: it is ignored, and a typo (`PASSWORD_BEARER_USER`) would
/// otherwise serve the defaults (the demo users) without a word. Names
/// only: a value may be a secret.
pub(crate) fn unknown_variables(names: impl IntoIterator<Item = OsString>) -> Vec<String> {
    let mut warnings = Vec::new();
    for name in names {
        // A name that is not UTF-8 is not a flag's variable, nor close to one.
        let Some(rest) = name.to_str().and_then(|name| name.strip_prefix(ENV_PREFIX)) else {
            continue;
        };
        // Compared as flag names (`USERS` as `users`): a variable is a
        // flag's when its rest is the flag's name in upper case, `_` for `-`.
        let as_flag: String = rest
            .chars()
            .map(|c| {
                if c == '_' {
                    '-'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        let flag = FLAGS.iter().position(|flag| flag.name == as_flag);
        if flag.is_some() && !rest.bytes().any(|b| b.is_ascii_lowercase()) {
            continue;
        }
        let close = flag
            .map(|i| FLAGS[i].name)
            .or_else(|| closest(&as_flag, &mut FLAGS.iter().map(|flag| flag.name)));
        let hint = match close.and_then(|name| FLAGS.iter().find(|f| f.name == name)) {
            Some(flag) => format!("; did you mean {}?", flag.env_var()),
            None => " (see --help)".to_owned(),
        };
        // A name may hold a newline, which must not start a line of its
        // own in the log: control characters are shown as `?`.
        let shown: String = rest
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        warnings.push(format!(
            "{ENV_PREFIX}{shown} is not a setting, ignored{hint}"
        ));
    }
    warnings
}

/// [`parse`] with the process environment.
pub(crate) fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, ConfigError> {
    parse(args, |name| std::env::var_os(name))
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a valid number"))
}

/// A switch's value, as its variable or `--switch=VALUE` gives it. Empty is
/// off so that `PASSWORD_BEARER_NO_DOCS=` in a compose file means unset.
fn switch_state(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" | "" => Ok(false),
        _ => Err(format!("{text:?} is not 1, true, 0 or false")),
    }
}

/// The session store kept in `dir`.
#[cfg(not(feature = "persist"))]
fn open_state_dir(
    _dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn password_bearer::sessions::SessionStore>, String> {
    Err("this binary was built without the `persist` feature \
         (cargo build --release --features persist)"
        .into())
}

/// The session store kept in `dir`: created if missing, refused if another
/// process has it open.
#[cfg(feature = "persist")]
fn open_state_dir(
    dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn password_bearer::sessions::SessionStore>, String> {
    use password_bearer::sessions::persistent::PersistentSessions;
    match PersistentSessions::open(dir) {
        Ok(store) => Ok(std::sync::Arc::new(store)),
        Err(e) => Err(e.to_string()),
    }
}

/// Checks that `text` names a table as the PostgreSQL store takes it.
#[cfg(feature = "postgres")]
fn users_table(text: &str) -> Result<String, String> {
    password_bearer::users::postgres::check_table(text).map_err(|e| e.to_string())?;
    Ok(text.to_owned())
}

/// Without the `postgres` feature, there is no table to name.
#[cfg(not(feature = "postgres"))]
fn users_table(_text: &str) -> Result<String, String> {
    Err("this binary was built without the `postgres` feature \
         (cargo build --release --features postgres)"
        .into())
}

/// Checks that `text` is a Redis URL, without repeating it (it may hold a
/// password).
#[cfg(feature = "redis")]
fn redis_url(text: &str) -> Result<String, String> {
    password_bearer::redis::Redis::check_url(text).map_err(|e| e.to_string())?;
    Ok(text.to_owned())
}

/// Without the `redis` feature, there is nothing to connect to.
#[cfg(not(feature = "redis"))]
fn redis_url(_text: &str) -> Result<String, String> {
    Err("this binary was built without the `redis` feature \
         (cargo build --release --features redis)"
        .into())
}

/// Checks that `text` is `HOST:PORT` (`[::1]:9100` for an IPv6 address),
/// so that a typo stops the server with its flag named, before it binds.
fn host_port(text: &str) -> Result<String, String> {
    let shape = || format!("{text:?} is not HOST:PORT (e.g. 127.0.0.1:9100)");
    let (host, port) = text.rsplit_once(':').ok_or_else(shape)?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.is_empty() || port.parse::<u16>().is_err() || (host.contains(':') && !bracketed) {
        return Err(shape());
    }
    Ok(text.to_owned())
}

/// What the server serves TLS with: the library's [`Tls`](password_bearer::tls::Tls),
/// shared with whoever reloads it.
pub(crate) type Tls = std::sync::Arc<ServedTls>;

#[cfg(feature = "tls")]
use password_bearer::tls::Tls as ServedTls;

/// Without the `tls` feature there is no TLS to serve: `Option<Tls>` is
/// always `None`.
#[cfg(not(feature = "tls"))]
type ServedTls = std::convert::Infallible;

/// The certificate and key read again on SIGHUP, for [`renew_tls`].
#[cfg(feature = "tls")]
pub(crate) type TlsRenewal = password_bearer::tls::Renewal;

/// Without the `tls` feature there is nothing to renew.
#[cfg(not(feature = "tls"))]
pub(crate) type TlsRenewal = std::convert::Infallible;

/// Serves `renewal` to every handshake from now on.
#[cfg(feature = "tls")]
pub(crate) fn renew_tls(tls: &Tls, renewal: TlsRenewal) {
    tls.renew(renewal);
}

#[cfg(not(feature = "tls"))]
pub(crate) fn renew_tls(tls: &Tls, _renewal: TlsRenewal) {
    match **tls {}
}

/// Checks `--docs-assets-url` and drops trailing `/`s, so the page can
/// append `/swagger-ui.css` to it.
fn assets_url(text: &str) -> Result<String, String> {
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|scheme| text.strip_prefix(scheme));
    match rest {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            return Err(format!("{text:?} has no host"));
        }
        Some(_) => {}
        None if text.starts_with('/') => {}
        None => return Err(format!("{text:?} must start with http://, https:// or /")),
    }
    // The URL lands in an HTML attribute and a script: refuse what could end
    // either rather than escape it, as no URL needs these unencoded.
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "\"'<>\\`".contains(c))
    {
        return Err(format!(
            "{text:?} holds a space, quote, <, >, \\ or `; percent-encode it"
        ));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

impl Options {
    /// How errors name the setting `name` (a [`Flag::name`]): its variable
    /// when the value came from the environment, else its flag.
    fn origin(&self, name: &str) -> String {
        match FLAGS.iter().find(|flag| flag.name == name) {
            Some(flag) if self.from_env.contains(&flag.name) => flag.env_var(),
            _ => format!("--{name}"),
        }
    }

    /// `config` with its sessions and failed-login counts in the Redis of
    /// `--redis-url`, when given: connected at start, on `runtime` (whose
    /// tasks follow the revocations), and an error when Redis cannot be
    /// reached then.
    #[cfg(feature = "redis")]
    pub(crate) fn connect_redis<S>(
        &self,
        runtime: &tokio::runtime::Runtime,
        mut config: Config<S>,
    ) -> Result<Config<S>, ConfigError> {
        use password_bearer::redis::{Redis, RedisSessions, DEFAULT_PREFIX};
        use password_bearer::sessions::memory::DEFAULT_MAX_PER_USER;
        let Some(url) = &self.redis_url else {
            return Ok(config);
        };
        let what = self.origin("redis-url");
        let redis = runtime
            .block_on(Redis::connect(url, DEFAULT_PREFIX))
            .map_err(|e| ConfigError::new(&what, e))?;
        if !config.refresh_token_ttl.is_zero() {
            let sessions = runtime
                .block_on(RedisSessions::open(redis.clone(), DEFAULT_MAX_PER_USER))
                .map_err(|e| ConfigError::new(&what, e))?;
            config.sessions = Some(std::sync::Arc::new(sessions));
        }
        config.shared_throttle = Some(redis);
        Ok(config)
    }

    /// Without the `redis` feature, `--redis-url` is refused when read; not
    /// `async`, so that the default binary carries no extra runtime entry.
    #[cfg(not(feature = "redis"))]
    pub(crate) fn connect_redis<S>(
        &self,
        _runtime: &tokio::runtime::Runtime,
        config: Config<S>,
    ) -> Result<Config<S>, ConfigError> {
        Ok(config)
    }

    /// `--tls-cert` and `--tls-key`, read and checked: `None` when neither
    /// is given (plain HTTP).
    pub(crate) fn tls(&self) -> Result<Option<Tls>, ConfigError> {
        let named = |name: &str, path: &std::path::Path| {
            format!("{} {}", self.origin(name), path.display())
        };
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(None),
            #[cfg(feature = "tls")]
            (Some(cert), Some(key)) => password_bearer::tls::Tls::load(cert, key)
                .map(|tls| Some(Tls::new(tls)))
                .map_err(|e| self.tls_error(e)),
            #[cfg(not(feature = "tls"))]
            (Some(cert), Some(_)) => Err(ConfigError::new(
                named("tls-cert", cert),
                "this binary was built without the `tls` feature \
                 (cargo build --release --features tls)",
            )),
            (Some(cert), None) => Err(ConfigError::new(
                named("tls-cert", cert),
                "needs --tls-key, the certificate's private key",
            )),
            (None, Some(key)) => Err(ConfigError::new(
                named("tls-key", key),
                "needs --tls-cert, the key's certificate",
            )),
        }
    }

    /// On SIGHUP: `tls`'s certificate and key read again and checked, not
    /// yet served.
    #[cfg(feature = "tls")]
    pub(crate) fn read_tls(&self, tls: &Tls) -> Result<TlsRenewal, ConfigError> {
        tls.read().map_err(|e| self.tls_error(e))
    }

    #[cfg(not(feature = "tls"))]
    pub(crate) fn read_tls(&self, tls: &Tls) -> Result<TlsRenewal, ConfigError> {
        match **tls {}
    }

    /// A certificate or key file's error, named by the flag (or variable)
    /// that gave the file.
    #[cfg(feature = "tls")]
    fn tls_error(&self, e: password_bearer::tls::TlsError) -> ConfigError {
        let name = match e.file {
            password_bearer::tls::TlsFile::Cert => "tls-cert",
            password_bearer::tls::TlsFile::Key => "tls-key",
        };
        ConfigError::new(
            format!("{} {}", self.origin(name), e.path.display()),
            e.problem.to_string(),
        )
    }

    /// Reads the users file and the key files, as at start and on each
    /// SIGHUP: the users (the demo users without `--users`; a database's
    /// store is kept from `running`), and the keys, the signing key first
    /// (none without `--secret-key-file`). An error names the first file
    /// that failed and what is wrong with it.
    pub(crate) fn read_files(
        &self,
        running: Option<&Store>,
    ) -> Result<(Store, Vec<SecretKey>), ConfigError> {
        let from_table = self
            .users
            .as_deref()
            .is_some_and(|users| store::names_postgres(&users.to_string_lossy()));
        if self.users_table.is_some() && !from_table {
            return Err(ConfigError::new(
                self.origin("users-table"),
                "names a PostgreSQL table, but the users come from a file \
                 (--users postgres://… reads them from a table)",
            ));
        }
        let users = store::open(
            self.users.as_deref(),
            &self.origin("users"),
            self.users_table.as_deref(),
            running,
        )?;
        let mut keys = Vec::with_capacity(self.secret_key_files.len());
        for path in &self.secret_key_files {
            let what = format!("{} {}", self.origin("secret-key-file"), path.display());
            // Trimmed, as PyJWT users write keys with `echo` and editors
            // add a final newline; the library's constructor, so that an
            // embedded app reads the same file as the same key.
            keys.push(SecretKey::from_file(path).map_err(|e| ConfigError::new(&what, e))?);
        }
        Ok((users, keys))
    }

    /// Reads the files the options name and builds the [`Config`]. The
    /// second value is a warning to print, if any.
    pub(crate) fn load(&self) -> Result<(Config<Store>, Option<&'static str>), ConfigError> {
        let (users, keys) = self.read_files(None)?;
        let warning = keys.is_empty().then_some(
            "no --secret-key-file: signing with a random key; tokens die with the process",
        );
        let mut keys = keys.into_iter();
        let key = match keys.next() {
            Some(key) => key,
            None => SecretKey::random().map_err(|e| ConfigError::new("--secret-key-file", e))?,
        };
        let mut config = Config::new(users, key);
        config.old_keys = keys.collect();
        config.refresh_token_ttl = Duration::from_secs(self.refresh_token_ttl_days * 24 * 60 * 60);
        if let (Some(_), Some(_)) = (&self.state_dir, &self.redis_url) {
            return Err(ConfigError::new(
                self.origin("state-dir"),
                "sessions are kept in Redis (--redis-url): there is no state to keep here",
            ));
        }
        if let Some(dir) = &self.state_dir {
            let what = format!("{} {}", self.origin("state-dir"), dir.display());
            if self.refresh_token_ttl_days == 0 {
                return Err(ConfigError::new(
                    what,
                    "sessions are off (--refresh-token-ttl-days 0): there is no state to keep",
                ));
            }
            config.sessions = Some(open_state_dir(dir).map_err(|e| ConfigError::new(what, e))?);
        }
        config.token_ttl = Duration::from_secs(self.token_ttl_minutes * 60);
        config.leeway = Duration::from_secs(self.token_leeway_seconds);
        config.header_read_timeout = Duration::from_secs(self.header_read_timeout_seconds);
        config.request_timeout = Duration::from_secs(self.request_timeout_seconds);
        config.body_limit = self.max_body_bytes;
        config.grace_period = Duration::from_secs(self.grace_period_seconds);
        config.docs = self.docs;
        config.docs_assets_url = self.docs_assets_url.clone();
        // Read at start, so that a missing file stops the server at once;
        // not at all when the docs are off.
        if let (true, Some(dir)) = (self.docs, &self.docs_assets_dir) {
            let assets = SwaggerAssets::load(dir).map_err(|e| {
                ConfigError::new(
                    format!("{} {}", self.origin("docs-assets-dir"), dir.display()),
                    e,
                )
            })?;
            config.docs_assets = Some(assets);
        }
        config.access_log = self.access_log;
        config.login_log = self.login_log;
        config.throttle.per_user = self.login_failures_per_user;
        config.throttle.per_ip = self.login_failures_per_ip;
        config.max_connections = self.max_connections;
        config.max_connections_per_ip = self.max_connections_per_ip;
        config.login_queue_wait = Duration::from_secs(self.login_queue_seconds);
        Ok((config, warning))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The command line alone, with an empty environment.
    fn args_only(args: &[&str]) -> Result<Command, ConfigError> {
        with_env(args, &[])
    }

    fn with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
        let env: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        parse(args.iter().map(OsString::from), |name| {
            env.get(name).cloned()
        })
    }

    fn serve(result: Result<Command, ConfigError>) -> Options {
        match result {
            Ok(Command::Serve(o)) => *o,
            other => panic!("{other:?}"),
        }
    }

    fn options(args: &[&str]) -> Options {
        serve(args_only(args))
    }

    fn env_options(env: &[(&str, &str)]) -> Options {
        serve(with_env(&[], env))
    }

    fn env_error(env: &[(&str, &str)]) -> String {
        with_env(&[], env).unwrap_err().to_string()
    }

    #[test]
    fn defaults_and_both_flag_spellings() {
        assert_eq!(options(&[]), Options::default());
        let o = options(&["--port", "0", "--host=0.0.0.0", "--token-ttl-minutes=5"]);
        assert_eq!(
            (o.port, o.host.as_str(), o.token_ttl_minutes),
            (0, "0.0.0.0", 5)
        );
    }

    #[test]
    fn the_defaults_help_shows_are_the_real_ones() {
        for flag in FLAGS {
            // These describe what happens without the flag: no file, or
            // as many workers as cores; `users-table` is refused by a build
            // without its feature, and names the default table otherwise.
            if flag.default.is_empty()
                || [
                    "users",
                    "users-table",
                    "secret-key-file",
                    "workers",
                    "max-connections-per-ip",
                    "state-dir",
                    "redis-url",
                ]
                .contains(&flag.name)
            {
                continue;
            }
            let arg = format!("{}={}", flag.flag(), flag.default);
            assert_eq!(options(&[&arg]), Options::default(), "{arg}");
        }
    }

    #[test]
    fn redis_url_is_checked_unrepeated_and_excludes_a_state_dir() {
        let err = args_only(&["--redis-url", "http://:hunter2@host"])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--redis-url: "), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        if cfg!(feature = "redis") {
            let o = options(&["--redis-url=redis://:pw@127.0.0.1:1/", "--state-dir=/tmp/x"]);
            let err = o.load().unwrap_err().to_string();
            assert_eq!(
                err,
                "--state-dir: sessions are kept in Redis (--redis-url): there is no state to keep here"
            );
        } else {
            assert!(err.contains("without the `redis` feature"), "{err}");
        }
    }

    #[test]
    fn the_key_file_flag_repeats_for_a_rotation_and_sessions_can_be_off() {
        let o = options(&["--secret-key-file", "new", "--secret-key-file=old"]);
        assert_eq!(
            o.secret_key_files,
            [PathBuf::from("new"), PathBuf::from("old")]
        );
        assert_eq!(
            options(&["--refresh-token-ttl-days=0"]).refresh_token_ttl_days,
            0
        );
        let err = args_only(&["--refresh-token-ttl-days", "3651"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--refresh-token-ttl-days: must be from 0 to 3650"
        );
        let (config, _) = options(&["--refresh-token-ttl-days=2"]).load().unwrap();
        assert_eq!(config.refresh_token_ttl, Duration::from_secs(2 * 86400));
        let err = options(&["--refresh-token-ttl-days=0", "--state-dir=/tmp/x"])
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--state-dir /tmp/x: sessions are off"),
            "{err}"
        );
    }

    #[test]
    fn variable_names_follow_the_flags() {
        let names: Vec<String> = FLAGS.iter().map(Flag::env_var).collect();
        assert!(names.contains(&"PASSWORD_BEARER_PORT".to_owned()));
        assert!(names.contains(&"PASSWORD_BEARER_SECRET_KEY_FILE".to_owned()));
        assert!(names.contains(&"PASSWORD_BEARER_NO_DOCS".to_owned()));
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }

    #[test]
    fn subcommand_and_help() {
        assert!(matches!(
            args_only(&["hash-password"]),
            Ok(Command::HashPassword)
        ));
        assert!(matches!(args_only(&["--help"]), Ok(Command::Help)));
        assert!(matches!(
            args_only(&["--port", "1", "-h"]),
            Ok(Command::Help)
        ));
    }

    #[test]
    fn version_is_a_command_of_its_own() {
        for arg in ["--version", "-V"] {
            assert!(matches!(args_only(&[arg]), Ok(Command::Version)), "{arg}");
            assert!(matches!(
                with_env(&["--port", "1", arg], &[("PASSWORD_BEARER_PORT", "x")]),
                Ok(Command::Version)
            ));
        }
        assert_eq!(
            VERSION,
            format!("password-bearer {}", env!("CARGO_PKG_VERSION"))
        );
        assert!(USAGE.to_string().contains("-V, --version"));
    }

    #[test]
    fn a_mistyped_flag_is_told_the_closest() {
        let err = |args: &[&str]| args_only(args).unwrap_err().to_string();
        for (typed, meant) in [
            ("--user", "--users"),
            ("--user=users.json", "--users"),
            ("-users", "--users"),
            ("--prot", "--port"),
            ("--hots", "--host"),
            ("--secret-key-files", "--secret-key-file"),
            ("--no-doc", "--no-docs"),
            ("--verison", "--version"),
            ("--hlep", "--help"),
            ("hash_password", "hash-password"),
        ] {
            let name = typed.split('=').next().unwrap();
            assert_eq!(
                err(&[typed]),
                format!("{name}: unknown option; did you mean `{meant}`?"),
                "{typed}"
            );
        }
        // Too far from any flag to be its typo.
        for typed in ["--bogus", "--secret-key", "--tls", "--x", "users.json"] {
            assert_eq!(
                err(&[typed]),
                format!("{typed}: unknown option (see --help)"),
            );
        }
    }

    #[test]
    fn edit_distances() {
        for (a, b, distance) in [
            ("", "", 0),
            ("users", "users", 0),
            ("user", "users", 1),
            ("usrs", "users", 1),
            ("uzers", "users", 1),
            ("prot", "port", 1),
            ("", "port", 4),
            ("port", "", 4),
            ("kitten", "sitting", 3),
            ("ca", "abc", 3),
        ] {
            assert_eq!(edit_distance(a, b), distance, "{a:?} {b:?}");
            assert_eq!(edit_distance(b, a), distance, "{b:?} {a:?}");
        }
    }

    #[test]
    fn unknown_variables_are_named_with_the_closest() {
        let names = [
            "PATH",
            "PASSWORD_BEARER_USER",
            "PASSWORD_BEARER_PORT",
            "PASSWORD_BEARER_FROBNICATE",
            "PASSWORD_BEARER_SECRET_KEY",
            "PASSWORD_BEARER_NO_DOC",
            // Read as written: the binary reads only the upper-case name.
            "PASSWORD_BEARER_users",
            "password_bearer_users",
            "PASSWORD_BEARER_X\nforged line",
        ];
        assert_eq!(
            unknown_variables(names.map(OsString::from)),
            [
                "PASSWORD_BEARER_USER is not a setting, ignored; \
                 did you mean PASSWORD_BEARER_USERS?",
                "PASSWORD_BEARER_FROBNICATE is not a setting, ignored (see --help)",
                "PASSWORD_BEARER_SECRET_KEY is not a setting, ignored (see --help)",
                "PASSWORD_BEARER_NO_DOC is not a setting, ignored; \
                 did you mean PASSWORD_BEARER_NO_DOCS?",
                "PASSWORD_BEARER_users is not a setting, ignored; \
                 did you mean PASSWORD_BEARER_USERS?",
                "PASSWORD_BEARER_X?forged line is not a setting, ignored (see --help)",
            ]
        );
        let every: Vec<OsString> = FLAGS.iter().map(|f| f.env_var().into()).collect();
        assert!(unknown_variables(every).is_empty());
    }

    #[test]
    fn the_demo_users_named_are_the_demo_users() {
        let demo = password_bearer::users::Users::demo();
        let named: Vec<&str> = DEMO_USERS
            .trim_start_matches("the demo users ")
            .split(", ")
            .collect();
        assert_eq!(named.len(), demo.len(), "{DEMO_USERS}");
        for name in named {
            assert!(demo.get(name).is_some(), "{name}");
        }
    }

    #[test]
    fn hash_password_and_help_ignore_the_environment() {
        let bad = [
            ("PASSWORD_BEARER_PORT", "x"),
            ("PASSWORD_BEARER_NO_DOCS", "yes"),
        ];
        assert!(matches!(
            with_env(&["hash-password"], &bad),
            Ok(Command::HashPassword)
        ));
        assert!(matches!(with_env(&["-h"], &bad), Ok(Command::Help)));
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let err = |args: &[&str]| args_only(args).unwrap_err().to_string();
        assert_eq!(err(&["--port", "x"]), "--port: \"x\" is not a valid number");
        assert_eq!(
            err(&["--port", "70000"]),
            "--port: \"70000\" is not a valid number"
        );
        assert_eq!(err(&["--users"]), "--users: needs a value");
        assert_eq!(err(&["--bogus"]), "--bogus: unknown option (see --help)");
        assert_eq!(
            err(&["--token-ttl-minutes", "0"]),
            "--token-ttl-minutes: must be from 1 to 525600"
        );
        assert_eq!(
            err(&["--token-leeway-seconds", "61"]),
            "--token-leeway-seconds: must be from 0 to 60"
        );
        assert_eq!(
            err(&["--header-read-timeout-seconds", "0"]),
            "--header-read-timeout-seconds: must be at least 1"
        );
        assert_eq!(
            err(&["--request-timeout-seconds", "0"]),
            "--request-timeout-seconds: must be at least 1"
        );
        assert_eq!(
            err(&["--login-queue-seconds", "61"]),
            "--login-queue-seconds: must be from 0 to 60"
        );
        assert_eq!(
            err(&["--max-connections-per-ip", "-1"]),
            "--max-connections-per-ip: \"-1\" is not a valid number"
        );
        assert_eq!(
            err(&["--no-docs=yes"]),
            "--no-docs: \"yes\" is not 1, true, 0 or false"
        );
        for bad in [
            "9100",
            "localhost",
            ":9100",
            "host:",
            "host:99999",
            "::1:9100",
        ] {
            assert_eq!(
                err(&["--metrics-addr", bad]),
                format!("--metrics-addr: {bad:?} is not HOST:PORT (e.g. 127.0.0.1:9100)")
            );
        }
        for ok in ["127.0.0.1:9100", "[::1]:0", "localhost:9100"] {
            assert_eq!(
                options(&["--metrics-addr", ok]).metrics_addr.as_deref(),
                Some(ok)
            );
        }
        assert_eq!(
            err(&["--docs-assets-url", "ftp://x"]),
            "--docs-assets-url: \"ftp://x\" must start with http://, https:// or /"
        );
    }

    #[test]
    fn new_flags() {
        let o = options(&["--no-docs", "--access-log", "--no-login-log"]);
        assert_eq!((o.docs, o.access_log, o.login_log), (false, true, false));
        // A switch does not take the next argument as its value.
        let o = options(&["--no-docs", "--port", "1"]);
        assert_eq!((o.docs, o.port), (false, 1));
        let o = options(&["--docs-assets-url", "https://assets.example.com/swagger/"]);
        assert_eq!(o.docs_assets_url, "https://assets.example.com/swagger");
        let o = options(&["--docs-assets-url=/static/swagger-ui"]);
        assert_eq!(o.docs_assets_url, "/static/swagger-ui");
        assert_eq!(options(&["--docs-assets-url=/"]).docs_assets_url, "");
    }

    #[test]
    fn docs_assets_urls_are_checked() {
        for ok in [
            "http://localhost:8080/swagger",
            "https://cdn.example.com/swagger-ui-dist@5/",
            "/swagger",
            "//cdn.example.com/swagger",
        ] {
            assert!(assets_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "cdn.example.com",
            "ftp://cdn.example.com",
            "javascript:alert(1)",
            "https://",
            "https:///path",
            "/a b",
            "/a\"><script>",
            "https://x/\n",
        ] {
            assert!(assets_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_kind_from_the_environment() {
        let o = env_options(&[
            ("PASSWORD_BEARER_HOST", "0.0.0.0"),
            ("PASSWORD_BEARER_PORT", "0"),
            ("PASSWORD_BEARER_TLS_CERT", "/etc/pb/cert.pem"),
            ("PASSWORD_BEARER_TLS_KEY", "/etc/pb/key.pem"),
            ("PASSWORD_BEARER_USERS", "/etc/pb/users.json"),
            ("PASSWORD_BEARER_SECRET_KEY_FILE", "/etc/pb/key"),
            ("PASSWORD_BEARER_TOKEN_TTL_MINUTES", "5"),
            ("PASSWORD_BEARER_TOKEN_LEEWAY_SECONDS", "7"),
            ("PASSWORD_BEARER_HEADER_READ_TIMEOUT_SECONDS", "3"),
            ("PASSWORD_BEARER_REQUEST_TIMEOUT_SECONDS", "4"),
            ("PASSWORD_BEARER_MAX_CONNECTIONS_PER_IP", "0"),
            ("PASSWORD_BEARER_LOGIN_QUEUE_SECONDS", "0"),
            ("PASSWORD_BEARER_MAX_BODY_BYTES", "100"),
            ("PASSWORD_BEARER_GRACE_PERIOD_SECONDS", "1"),
            ("PASSWORD_BEARER_NO_DOCS", "true"),
            ("PASSWORD_BEARER_DOCS_ASSETS_URL", "/assets/"),
            ("PASSWORD_BEARER_ACCESS_LOG", "1"),
            ("PASSWORD_BEARER_NO_LOGIN_LOG", "TRUE"),
            ("PASSWORD_BEARER_LOGIN_FAILURES_PER_USER", "0"),
            ("PASSWORD_BEARER_LOGIN_FAILURES_PER_IP", "5"),
            ("PASSWORD_BEARER_MAX_CONNECTIONS", "64"),
            ("PASSWORD_BEARER_WORKERS", "3"),
            ("PASSWORD_BEARER_METRICS_ADDR", "127.0.0.1:9100"),
        ]);
        let expected = Options {
            host: "0.0.0.0".into(),
            port: 0,
            tls_cert: Some("/etc/pb/cert.pem".into()),
            tls_key: Some("/etc/pb/key.pem".into()),
            users: Some("/etc/pb/users.json".into()),
            users_table: None,
            secret_key_files: vec!["/etc/pb/key".into()],
            refresh_token_ttl_days: 14,
            state_dir: None,
            redis_url: None,
            token_ttl_minutes: 5,
            token_leeway_seconds: 7,
            header_read_timeout_seconds: 3,
            request_timeout_seconds: 4,
            max_body_bytes: 100,
            grace_period_seconds: 1,
            docs: false,
            docs_assets_url: "/assets".into(),
            docs_assets_dir: None,
            access_log: true,
            login_log: false,
            login_failures_per_user: 0,
            login_failures_per_ip: 5,
            max_connections: 64,
            max_connections_per_ip: Some(0),
            login_queue_seconds: 0,
            workers: Some(3),
            metrics_addr: Some("127.0.0.1:9100".into()),
            from_env: o.from_env.clone(),
        };
        assert_eq!(o, expected);
        assert!(o.from_env.contains(&"users") && o.from_env.contains(&"port"));
        assert!(!o.from_env.contains(&"no-docs"), "{:?}", o.from_env);
    }

    #[test]
    fn a_flag_beats_its_variable() {
        let env = [
            ("PASSWORD_BEARER_PORT", "9000"),
            ("PASSWORD_BEARER_HOST", "0.0.0.0"),
            ("PASSWORD_BEARER_NO_DOCS", "1"),
        ];
        let o = serve(with_env(&["--port", "9001", "--no-docs=false"], &env));
        assert_eq!((o.port, o.host.as_str(), o.docs), (9001, "0.0.0.0", true));
        assert_eq!(o.from_env, ["host"]);
        // The variable is not even checked when the flag is given.
        let o = serve(with_env(
            &["--port=1"],
            &[("PASSWORD_BEARER_PORT", "not a port")],
        ));
        assert_eq!(o.port, 1);
    }

    #[test]
    fn bad_variables_name_the_variable() {
        assert_eq!(
            env_error(&[("PASSWORD_BEARER_PORT", "x")]),
            "PASSWORD_BEARER_PORT: \"x\" is not a valid number"
        );
        assert_eq!(
            env_error(&[("PASSWORD_BEARER_PORT", "")]),
            "PASSWORD_BEARER_PORT: \"\" is not a valid number"
        );
        assert_eq!(
            env_error(&[("PASSWORD_BEARER_TOKEN_TTL_MINUTES", "0")]),
            "PASSWORD_BEARER_TOKEN_TTL_MINUTES: must be from 1 to 525600"
        );
        assert_eq!(
            env_error(&[("PASSWORD_BEARER_NO_DOCS", "yes")]),
            "PASSWORD_BEARER_NO_DOCS: \"yes\" is not 1, true, 0 or false"
        );
        assert_eq!(
            env_error(&[("PASSWORD_BEARER_DOCS_ASSETS_URL", "cdn.example.com")]),
            "PASSWORD_BEARER_DOCS_ASSETS_URL: \"cdn.example.com\" must start with \
             http://, https:// or /"
        );
        let not_utf8 = {
            use std::os::unix::ffi::OsStringExt;
            OsString::from_vec(vec![0xff, b'/'])
        };
        let err = parse(Vec::<OsString>::new(), |name| {
            (name == "PASSWORD_BEARER_USERS").then(|| not_utf8.clone())
        })
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("PASSWORD_BEARER_USERS: "), "{err}");
    }

    #[test]
    fn switch_spellings() {
        let docs = |value: &str| with_env(&[], &[("PASSWORD_BEARER_NO_DOCS", value)]);
        for on in ["1", "true", "TRUE", "True", " true\n"] {
            assert!(!serve(docs(on)).docs, "{on:?} turns --no-docs on");
        }
        for off in ["0", "false", "FALSE", "False", ""] {
            assert!(serve(docs(off)).docs, "{off:?} leaves --no-docs off");
        }
        for bad in ["yes", "no", "on", "off", "2", "-1", "t"] {
            assert_eq!(
                docs(bad).unwrap_err().to_string(),
                format!("PASSWORD_BEARER_NO_DOCS: {bad:?} is not 1, true, 0 or false")
            );
        }
    }

    #[test]
    fn help_lists_every_flag_and_its_variable() {
        let usage = USAGE.to_string();
        for flag in FLAGS {
            let head = match flag.kind() {
                Kind::Value(placeholder) => format!("{} {placeholder}", flag.flag()),
                Kind::Switch => flag.flag(),
            };
            let listed = usage.lines().any(|line| {
                let line = line.trim_start();
                line == head || line.starts_with(&format!("{head} "))
            });
            assert!(listed, "{head}: {usage}");
            assert!(
                usage.contains(&format!("[env: {}]", flag.env_var())),
                "{}: {usage}",
                flag.env_var()
            );
            if !flag.default.is_empty() {
                assert!(usage.contains(flag.default), "{}: {usage}", flag.default);
            }
        }
        assert!(usage.contains("hash-password") && usage.contains("--help"));
    }

    #[test]
    fn load_carries_the_limits_into_the_config() {
        let (config, _) = Options::default().load().unwrap();
        assert_eq!(config.request_timeout, Duration::from_secs(10));
        assert_eq!(config.max_connections_per_ip, None);
        assert_eq!(config.login_queue_wait, Duration::from_secs(2));
        let o = options(&[
            "--request-timeout-seconds=3",
            "--max-connections-per-ip=0",
            "--login-queue-seconds=0",
        ]);
        let (config, _) = o.load().unwrap();
        assert_eq!(config.request_timeout, Duration::from_secs(3));
        assert_eq!(config.max_connections_per_ip, Some(0));
        assert_eq!(config.login_queue_wait, Duration::ZERO);
    }

    #[test]
    fn load_carries_the_new_settings_into_the_config() {
        let o = options(&[
            "--no-docs",
            "--access-log",
            "--no-login-log",
            "--docs-assets-url",
            "/swagger/",
        ]);
        let (config, warning) = o.load().unwrap();
        assert!(!config.docs && config.access_log && !config.login_log);
        assert_eq!(config.docs_assets_url, "/swagger");
        assert!(
            warning.is_some(),
            "no key file: a random key, and a warning"
        );
        let (config, _) = Options::default().load().unwrap();
        assert!(config.docs && !config.access_log && config.login_log);
        assert_eq!(config.docs_assets_url, DEFAULT_DOCS_ASSETS_URL);
    }

    #[test]
    fn a_bad_file_from_a_variable_names_the_variable() {
        let missing = std::env::temp_dir().join(format!("pb-config-none-{}", std::process::id()));
        let missing = missing.to_str().unwrap();
        let o = env_options(&[("PASSWORD_BEARER_USERS", missing)]);
        let err = o.load().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("PASSWORD_BEARER_USERS {missing}: ")),
            "{err}"
        );
        let o = env_options(&[("PASSWORD_BEARER_SECRET_KEY_FILE", missing)]);
        let err = o.load().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("PASSWORD_BEARER_SECRET_KEY_FILE {missing}: ")),
            "{err}"
        );
    }

    #[test]
    fn short_key_file_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("pb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(&path, "too short\n").unwrap();
        let opts = Options {
            secret_key_files: vec![path.clone()],
            ..Options::default()
        };
        let err = opts.load().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("--secret-key-file {}", path.display())),
            "{err}"
        );
        assert!(err.contains("32"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
