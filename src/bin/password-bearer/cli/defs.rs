//! The flag table, [`FLAGS`]: each flag's name, help, default, and the
//! check that turns its text into a field of [`Options`]. One table drives
//! the parsing (`parse`), the variable names and `--help` (`help`), so a
//! flag cannot be added to one and forgotten in another. The checks a
//! value goes through (numbers, switches, URLs, `HOST:PORT`) are here too.

use super::{ConfigError, Options};
use password_bearer::app::{DEFAULT_DOCS_ASSETS_URL, MAX_LEEWAY};
use std::fmt;

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
    pub(super) fn set(
        &self,
        options: &mut Options,
        what: &str,
        text: &str,
    ) -> Result<(), ConfigError> {
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
        name: "clients",
        help: "clients JSON: machines with an id and a secret, for the client credentials \
               grant, POST /introspect and POST /revoke (docs/clients.md); reloaded on \
               SIGHUP; or a postgres:// URL: clients in a PostgreSQL table, read again \
               every 0.5 s (builds with the `clients` feature, and `postgres` for a URL)",
        default: "",
        apply: Apply::Value("FILE|URL", |o, v| {
            clients_available()?;
            o.clients = Some(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "clients-table",
        help: "the table of --clients postgres://…, NAME or SCHEMA.NAME in lowercase SQL \
               identifiers; created when missing (builds with the `clients` and `postgres` \
               features)",
        default: "clients",
        apply: Apply::Value("NAME", |o, v| {
            clients_available()?;
            o.clients_table = Some(users_table(v)?);
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
        name: "signing-key",
        help: "sign access tokens with this PEM PKCS#8 private key, Ed25519 (EdDSA) or \
               P-256 (ES256), published at /.well-known/jwks.json; give it again to rotate: \
               the first signs, every key verifies and is published; --secret-key-file \
               keys then only verify (builds with the `signing` feature)",
        default: "",
        apply: Apply::Value("FILE", |o, v| {
            signing_available()?;
            o.signing_key_files.push(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "issuer",
        help: "iss of every access token, required of every token verified; tokens then \
               follow RFC 9068 (typ at+jwt, client_id, jti), and \
               /.well-known/oauth-authorization-server describes the server (builds with \
               the `signing` feature)",
        default: "",
        apply: Apply::Value("URL", |o, v| {
            signing_available()?;
            o.issuer = Some(issuer(v)?);
            Ok(())
        }),
    },
    Flag {
        name: "audience",
        help: "aud of every access token, required of every token verified; with \
               --issuer and without this, the issuer",
        default: "",
        apply: Apply::Value("AUD", |o, v| {
            signing_available()?;
            if v.is_empty() || v.chars().any(char::is_control) {
                return Err("must be a non-empty string without control characters".into());
            }
            o.audience = Some(v.to_owned());
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
               a restart (builds with the `state-dir` feature)",
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

pub(super) fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a valid number"))
}

/// A switch's value, as its variable or `--switch=VALUE` gives it. Empty is
/// off so that `PASSWORD_BEARER_NO_DOCS=` in a compose file means unset.
pub(super) fn switch_state(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" | "" => Ok(false),
        _ => Err(format!("{text:?} is not 1, true, 0 or false")),
    }
}

/// Checks that `text` names a table as the PostgreSQL store takes it.
#[cfg(feature = "postgres")]
pub(super) fn users_table(text: &str) -> Result<String, String> {
    password_bearer::users::postgres::check_table(text).map_err(|e| e.to_string())?;
    Ok(text.to_owned())
}

/// Without the `postgres` feature, there is no table to name.
#[cfg(not(feature = "postgres"))]
pub(super) fn users_table(_text: &str) -> Result<String, String> {
    Err("this binary was built without the `postgres` feature \
         (cargo build --release --features postgres)"
        .into())
}

/// Checks that `text` is a Redis URL, without repeating it (it may hold a
/// password).
#[cfg(feature = "redis")]
pub(super) fn redis_url(text: &str) -> Result<String, String> {
    password_bearer::redis::Redis::check_url(text).map_err(|e| e.to_string())?;
    Ok(text.to_owned())
}

/// Without the `redis` feature, there is nothing to connect to.
#[cfg(not(feature = "redis"))]
pub(super) fn redis_url(_text: &str) -> Result<String, String> {
    Err("this binary was built without the `redis` feature \
         (cargo build --release --features redis)"
        .into())
}

/// With the `signing` feature, `--signing-key` is there to give.
#[cfg(feature = "signing")]
fn signing_available() -> Result<(), String> {
    Ok(())
}

/// Without the `signing` feature, there is nothing to sign with.
#[cfg(not(feature = "signing"))]
fn signing_available() -> Result<(), String> {
    Err("this binary was built without the `signing` feature \
         (cargo build --release --features signing)"
        .into())
}

/// With the `clients` feature, `--clients` is there to give.
#[cfg(feature = "clients")]
fn clients_available() -> Result<(), String> {
    Ok(())
}

/// Without the `clients` feature, there are no clients to serve.
#[cfg(not(feature = "clients"))]
fn clients_available() -> Result<(), String> {
    Err("this binary was built without the `clients` feature \
         (cargo build --release --features clients)"
        .into())
}

/// Checks `--issuer`: an `https://` (or, for a test on one machine,
/// `http://`) URL with a host and no query or fragment (RFC 8414 §2), kept
/// exactly as given, since tokens must carry it byte for byte.
pub(super) fn issuer(text: &str) -> Result<String, String> {
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|scheme| text.strip_prefix(scheme))
        .ok_or_else(|| format!("{text:?} must start with https:// (or http://)"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{text:?} has no host"));
    }
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "?#\"\\".contains(c))
    {
        return Err(format!(
            "{text:?} holds a space, quote, backslash, query or fragment"
        ));
    }
    Ok(text.to_owned())
}

/// Checks that `text` is `HOST:PORT` (`[::1]:9100` for an IPv6 address),
/// so that a typo stops the server with its flag named, before it binds.
pub(super) fn host_port(text: &str) -> Result<String, String> {
    let shape = || format!("{text:?} is not HOST:PORT (e.g. 127.0.0.1:9100)");
    let (host, port) = text.rsplit_once(':').ok_or_else(shape)?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.is_empty() || port.parse::<u16>().is_err() || (host.contains(':') && !bracketed) {
        return Err(shape());
    }
    Ok(text.to_owned())
}

/// Checks `--docs-assets-url` and drops trailing `/`s, so the page can
/// append `/swagger-ui.css` to it.
pub(super) fn assets_url(text: &str) -> Result<String, String> {
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
