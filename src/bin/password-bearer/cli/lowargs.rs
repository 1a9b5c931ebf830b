//! What the command line asks for, as parsed and before any file is read:
//! [`Command`] and the serving [`Options`] with their defaults.

use password_bearer::app::DEFAULT_DOCS_ASSETS_URL;
use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Command {
    /// Serve with these options.
    Serve(Box<Options>),
    /// Read a password on stdin and print its hash.
    HashPassword,
    /// Read a client secret on stdin and print its stored form; with
    /// `--generate`, make one and print it and its stored form.
    HashClientSecret {
        /// `--generate`.
        generate: bool,
    },
    /// `users …` or `clients …`: change the users or clients (the
    /// `admin` feature).
    #[cfg(feature = "admin")]
    Admin(Box<crate::admin::Admin>),
    /// Print the admin commands' usage.
    #[cfg(feature = "admin")]
    AdminHelp,
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
    /// `--clients`: a file, or a `postgres://` URL.
    pub(crate) clients: Option<PathBuf>,
    /// `--clients-table`, checked to be a table's name.
    pub(crate) clients_table: Option<String>,
    /// `--secret-key-file`, each time it was given: the first signs.
    pub(crate) secret_key_files: Vec<PathBuf>,
    /// `--signing-key`, each time it was given: the first signs.
    pub(crate) signing_key_files: Vec<PathBuf>,
    /// `--issuer`, checked to be a URL.
    pub(crate) issuer: Option<String>,
    /// `--audience`.
    pub(crate) audience: Option<String>,
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
            clients: None,
            clients_table: None,
            secret_key_files: Vec::new(),
            signing_key_files: Vec::new(),
            issuer: None,
            audience: None,
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
