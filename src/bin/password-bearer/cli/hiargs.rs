//! From [`Options`] to the library's [`Config`]: the users, key,
//! certificate and assets files read and checked, the session store
//! opened (`--state-dir`, `--redis-url`), and each error named by the flag
//! or variable that gave the bad value.

use super::defs::FLAGS;
use super::{ConfigError, Options};
use crate::store::{self, Store};
use password_bearer::app::Config;
#[cfg(feature = "clients")]
use password_bearer::clients::Clients;
use password_bearer::openapi::SwaggerAssets;
use password_bearer::token::SecretKey;
use std::time::Duration;

/// The session store kept in `dir`.
#[cfg(not(feature = "state-dir"))]
fn open_state_dir(
    _dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn password_bearer::sessions::SessionStore>, String> {
    Err("this binary was built without the `state-dir` feature \
         (cargo build --release --features state-dir)"
        .into())
}

/// The session store kept in `dir`: created if missing, refused if another
/// process has it open.
#[cfg(feature = "state-dir")]
fn open_state_dir(
    dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn password_bearer::sessions::SessionStore>, String> {
    use password_bearer::sessions::state_dir::StateDirSessions;
    match StateDirSessions::open(dir) {
        Ok(store) => Ok(std::sync::Arc::new(store)),
        Err(e) => Err(e.to_string()),
    }
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

    /// The flag (or variable) that gave `name`, for an error or a line.
    #[cfg(all(feature = "clients", feature = "postgres"))]
    pub(crate) fn origin_of(&self, name: &str) -> String {
        self.origin(name)
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

    /// Reads the `--clients` file, as at start and on each SIGHUP: `None`
    /// without the flag, or when it names a PostgreSQL table (read by
    /// `clients_table`, on the runtime). An error names the file and the
    /// client, never a secret or its hash.
    #[cfg(feature = "clients")]
    pub(crate) fn read_clients(&self) -> Result<Option<Clients>, ConfigError> {
        let from_table = self
            .clients
            .as_deref()
            .is_some_and(|clients| store::names_postgres(&clients.to_string_lossy()));
        if self.clients_table.is_some() && !from_table {
            return Err(ConfigError::new(
                self.origin("clients-table"),
                "names a PostgreSQL table, but the clients come from a file \
                 (--clients postgres://… reads them from a table)",
            ));
        }
        let Some(path) = &self.clients else {
            return Ok(None);
        };
        if from_table {
            #[cfg(not(feature = "postgres"))]
            return Err(ConfigError::new(
                self.origin("clients"),
                store::WITHOUT_POSTGRES,
            ));
            #[cfg(feature = "postgres")]
            return Ok(None);
        }
        let what = format!("{} {}", self.origin("clients"), path.display());
        Clients::load(path)
            .map(Some)
            .map_err(|e| ConfigError::new(what, e))
    }

    /// Reads the `--signing-key` files, as at start and on each SIGHUP, the
    /// signing key first. An error names the file and what is wrong with
    /// it, never the key's content.
    #[cfg(feature = "signing")]
    pub(crate) fn read_signing_keys(
        &self,
    ) -> Result<Vec<password_bearer::token::SigningKey>, ConfigError> {
        let mut keys = Vec::with_capacity(self.signing_key_files.len());
        for path in &self.signing_key_files {
            let what = format!("{} {}", self.origin("signing-key"), path.display());
            keys.push(
                password_bearer::token::SigningKey::from_file(path)
                    .map_err(|e| ConfigError::new(&what, e))?,
            );
        }
        Ok(keys)
    }

    /// Reads the files the options name and builds the [`Config`]. The
    /// second value is a warning to print, if any.
    pub(crate) fn load(&self) -> Result<(Config<Store>, Option<&'static str>), ConfigError> {
        let (users, keys) = self.read_files(None)?;
        #[cfg(feature = "signing")]
        let signing_keys = self.read_signing_keys()?;
        #[cfg(not(feature = "signing"))]
        let signing_keys: Vec<()> = Vec::new();
        let warning = (keys.is_empty() && signing_keys.is_empty()).then_some(
            "no --secret-key-file: signing with a random key; tokens die with the process",
        );
        let mut keys = keys.into_iter();
        let key = match keys.next() {
            Some(key) => key,
            None => SecretKey::random().map_err(|e| ConfigError::new("--secret-key-file", e))?,
        };
        let mut config = Config::new(users, key);
        config.old_keys = keys.collect();
        #[cfg(feature = "clients")]
        {
            config.clients = self.read_clients()?;
        }
        #[cfg(feature = "signing")]
        {
            config.signing_keys = signing_keys;
            config.issuer = self.issuer.clone();
            config.audience = self.audience.clone();
        }
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
