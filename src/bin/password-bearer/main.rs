//! The `password-bearer` binary: parses the command line, binds (or takes
//! the socket systemd passed: `systemd`), and hands the listener to the
//! library's `serve` (`serve_tls` with `--tls-cert`), with the library's
//! log records on stderr. Bad configuration is one line on stderr and exit
//! code 2. SIGHUP reads the users and key files (and the certificate)
//! again.

#[cfg(feature = "admin")]
mod admin;
mod cli;
#[cfg(all(feature = "clients", feature = "postgres"))]
mod clients_table;
mod error;
mod stderr_log;
mod store;
mod systemd;

use cli::{Command, ConfigError, Options};
#[cfg(feature = "clients")]
use password_bearer::clients::{self, Clients};
use password_bearer::{password, serve, serve_metrics, App};
use std::io::Read;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use tokio::net::{TcpListener, TcpSocket};

/// Pending connections the kernel queues for us: enough for a burst of
/// clients arriving together.
const LISTEN_BACKLOG: u32 = 4096;

fn main() -> ExitCode {
    stderr_log::install();
    let outcome = match cli::parse_args(std::env::args_os().skip(1)) {
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            Ok(())
        }
        Ok(Command::Version) => {
            println!("{}", cli::VERSION);
            Ok(())
        }
        Ok(Command::HashPassword) => hash_password(),
        Ok(Command::HashClientSecret { generate }) => hash_client_secret(generate),
        #[cfg(feature = "admin")]
        Ok(Command::Admin(admin)) => admin::run(&admin),
        #[cfg(feature = "admin")]
        Ok(Command::AdminHelp) => {
            print!("{}", admin::USAGE);
            Ok(())
        }
        Ok(Command::Serve(options)) => run(&options),
        Err(e) => Err(e),
    };
    let code = match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            stderr_log::write_now(format_args!("password-bearer: {e}"));
            ExitCode::from(2)
        }
    };
    // Lines are written by a thread of their own: let it finish before the
    // process goes, but never hang the exit on a stderr nobody reads.
    stderr_log::flush(Duration::from_secs(2));
    code
}

/// `hash-password`: one password on stdin (a final newline is not part of
/// it), its argon2id PHC string on stdout.
fn hash_password() -> Result<(), ConfigError> {
    let stdin_error = |problem: String| ConfigError {
        what: "hash-password".into(),
        problem,
    };
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| stdin_error(format!("cannot read stdin: {e}")))?;
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input);
    if password.is_empty() {
        return Err(stdin_error("no password on stdin".into()));
    }
    let hash = password::hash_password(password).map_err(|e| stdin_error(e.to_string()))?;
    println!("{hash}");
    Ok(())
}

/// `hash-client-secret`: one client secret on stdin (a final newline is
/// not part of it), its stored form on stdout; with `--generate`, a new
/// secret on one line and its stored form on the next.
#[cfg(feature = "clients")]
fn hash_client_secret(generate: bool) -> Result<(), ConfigError> {
    let error = |problem: String| ConfigError {
        what: "hash-client-secret".into(),
        problem,
    };
    let secret = if generate {
        clients::generate_secret().map_err(|e| error(e.to_string()))?
    } else {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .map_err(|e| error(format!("cannot read stdin: {e}")))?;
        let line = input.strip_suffix('\n').unwrap_or(&input);
        line.strip_suffix('\r').unwrap_or(line).to_owned()
    };
    let stored = clients::hash_secret(&secret).map_err(|e| error(e.to_string()))?;
    if generate {
        println!("{secret}");
    }
    println!("{stored}");
    Ok(())
}

/// Without the `clients` feature: `hash-client-secret` refused, one line
/// naming the feature.
#[cfg(not(feature = "clients"))]
fn hash_client_secret(_generate: bool) -> Result<(), ConfigError> {
    Err(ConfigError {
        what: "hash-client-secret".into(),
        problem: "this binary was built without the `clients` feature \
                  (cargo build --release --features clients)"
            .into(),
    })
}

/// Serves on `workers` threads. One worker is a current-thread runtime: no
/// work-stealing scheduler, about 900 fewer instructions per
/// `GET /users/me` (`benches/instructions.sh`) and one thread less. More
/// are one multi-thread runtime, whose work stealing moves a connection
/// away from a core a password hash holds (docs/configuration.md, "Workers"; docs/benchmarks.md).
fn run(options: &Options) -> Result<(), ConfigError> {
    // Read before systemd's variables are taken from the environment;
    // printed with the other warnings, once the configuration is good.
    let unknown_variables = cli::unknown_variables(std::env::vars_os().map(|(name, _)| name));
    let (config, warning) = options.load()?;
    let tls = options.tls()?;
    // Before the runtime's threads start: this edits the environment.
    let inherited = systemd::take()?;
    let workers = options.workers.unwrap_or_else(|| {
        // The cores this process may run on: `taskset -c 0` means one.
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    });
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    let runtime = builder.enable_all().build().map_err(|e| ConfigError {
        what: "startup".into(),
        problem: format!("cannot start the runtime: {e}"),
    })?;
    // The database's pool and the Redis connection live on this runtime;
    // the app lists the scopes the database reads.
    let connected = store::connect(&runtime, &config.users);
    // The clients table's first read goes into the config.
    #[cfg(all(feature = "clients", feature = "postgres"))]
    let (config, clients_table) = {
        let mut config = config;
        let table = clients_table::open(options, &runtime, &mut config)?;
        (config, table)
    };
    let app = Arc::new(App::new(options.connect_redis(&runtime, config)?));
    runtime.block_on(async {
        let listener = match inherited {
            Some(listener) => systemd::into_tokio(listener)?,
            None => bind(&options.host, options.port).await?,
        };
        let local = listener.local_addr().map_err(|e| ConfigError {
            what: "--port".into(),
            problem: e.to_string(),
        })?;
        let signals = signals().map_err(|e| ConfigError {
            what: "startup".into(),
            problem: format!("cannot handle signals: {e}"),
        })?;
        if let Some(addr) = &options.metrics_addr {
            start_metrics(addr, &app).await?;
        }
        for warning in &unknown_variables {
            stderr_log::write_now(format_args!("password-bearer: warning: {warning}"));
        }
        if let Some(warning) = warning {
            stderr_log::write_now(format_args!("password-bearer: warning: {warning}"));
        }
        if options.users.is_none() {
            // The names only: their passwords are in the README, not in logs.
            stderr_log::write_now(format_args!(
                "password-bearer: warning: serving {} (no --users): not for production, \
                 give --users FILE",
                cli::DEMO_USERS
            ));
        }
        if let Some(connected) = connected {
            stderr_log::write_now(format_args!("password-bearer: {connected}"));
        }
        #[cfg(all(feature = "clients", feature = "postgres"))]
        if let Some((table, line)) = clients_table {
            stderr_log::write_now(format_args!("password-bearer: {line}"));
            table.spawn(&app);
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        stderr_log::write_now(format_args!("listening on {scheme}://{local}"));
        systemd::notify::ready();
        // The first signal shuts the server down gracefully; a second one,
        // during the grace period, exits at once: an operator pressing
        // Ctrl-C twice means it.
        let (shut_down, shutdown) = tokio::sync::oneshot::channel();
        let reload_app = app.clone();
        let reload_tls = tls.clone();
        let watch = async move {
            let mut signals = signals;
            while signals.next().await == Signal::Reload {
                reload(options, &reload_app, reload_tls.as_ref()).await;
            }
            systemd::notify::stopping();
            log::info!(target: "password_bearer::server", "password-bearer: shutting down");
            let _ = shut_down.send(());
            loop {
                match signals.next().await {
                    Signal::Reload => reload(options, &reload_app, reload_tls.as_ref()).await,
                    Signal::Stop(code) => return code,
                }
            }
        };
        let shutdown = async {
            let _ = shutdown.await;
        };
        let served = async {
            match tls {
                None => serve(listener, app, shutdown).await,
                #[cfg(feature = "tls")]
                Some(tls) => password_bearer::serve_tls(listener, app, tls, shutdown).await,
                #[cfg(not(feature = "tls"))]
                Some(tls) => match *tls {},
            }
        };
        tokio::select! {
            () = served => Ok(()),
            code = watch => {
                stderr_log::write_now(format_args!(
                    "password-bearer: second signal: exiting without waiting"
                ));
                // A moment for the line, never more: this exit must not wait.
                stderr_log::flush(Duration::from_millis(200));
                std::process::exit(code);
            }
        }
    })
}

/// Listens on `--metrics-addr` and serves `/metrics` there until the
/// process ends: through the grace period too, so that the drain can be
/// watched.
async fn start_metrics(addr: &str, app: &Arc<App<Store>>) -> Result<(), ConfigError> {
    let cannot_listen = |e: std::io::Error| ConfigError {
        what: format!("--metrics-addr {addr}"),
        problem: format!("cannot listen: {e}"),
    };
    let listener = TcpListener::bind(addr).await.map_err(cannot_listen)?;
    let local = listener.local_addr().map_err(cannot_listen)?;
    stderr_log::write_now(format_args!("metrics on http://{local}/metrics"));
    tokio::spawn(serve_metrics(listener, app.clone(), std::future::pending()));
    Ok(())
}

/// SIGHUP: the users and key files, the clients file with `--clients`,
/// and the certificate and key with `--tls-cert`, read again and swapped in at once ([`App::reload`],
/// `Tls::renew`); connections stay open, and keep the certificate they
/// negotiated. A file that fails to load changes nothing: the running set
/// stays, and one line names the file and the problem. Without
/// `--secret-key-file`, the random key stays. The sessions of users the
/// new file removed, disabled or gave another password are then ended.
/// With `--clients postgres://…` the clients table is read again by its
/// own task (`clients_table`), which hears SIGHUP too: all or nothing,
/// whatever the files did (a database down must not hold back a key
/// rotation, and a broken file must not hold back the table, which is
/// read every 0.5 s anyway).
async fn reload(options: &Options, app: &App<Store>, tls: Option<&cli::Tls>) {
    // systemd's `Type=notify-reload` (and `systemctl reload` on a
    // `Type=notify` unit) waits for READY=1 again, sent whatever the outcome:
    // a failed reload still serves.
    systemd::notify::reloading();
    let ending = reload_files(options, app, tls);
    systemd::notify::ready();
    if let Some(ending) = ending {
        ending.await;
    }
}

/// [`reload`]'s work: read every file, then swap, or log why not; what
/// is left to do, the sessions to end, when swapped.
fn reload_files(
    options: &Options,
    app: &App<Store>,
    tls: Option<&cli::Tls>,
) -> Option<impl std::future::Future<Output = ()>> {
    let read = options
        .read_files(Some(app.users_and_keys().users()))
        .and_then(|(users, keys)| {
            #[cfg(feature = "signing")]
            let keys = (keys, options.read_signing_keys()?);
            #[cfg(feature = "clients")]
            let keys = (keys, options.read_clients()?);
            let renewal = tls.map(|tls| options.read_tls(tls)).transpose()?;
            Ok((users, keys, renewal))
        });
    match read {
        Ok((users, keys, renewal)) => {
            #[cfg(feature = "clients")]
            let (keys, clients) = keys;
            #[cfg(feature = "signing")]
            let (keys, signing) = keys;
            #[cfg(feature = "signing")]
            let signing_count = signing.len();
            #[cfg(not(feature = "signing"))]
            let signing_count = 0;
            let count = store::summary(&users);
            let mut keys = keys.into_iter();
            let (key, old_keys) = match keys.next() {
                Some(key) => (key, keys.collect()),
                None => {
                    let running = app.users_and_keys();
                    (running.key().clone(), running.keys()[1..].to_vec())
                }
            };
            let verifying = old_keys.len() + 1 + signing_count;
            #[cfg(feature = "signing")]
            let ending = app.reload_with_signing_keys(users, key, old_keys, signing);
            #[cfg(not(feature = "signing"))]
            let ending = app.reload(users, key, old_keys);
            if let (Some(tls), Some(renewal)) = (tls, renewal) {
                cli::renew_tls(tls, renewal);
            }
            let certificate = if tls.is_some() {
                ", the certificate"
            } else {
                ""
            };
            #[cfg(feature = "clients")]
            let clients = reload_clients(app, clients);
            #[cfg(not(feature = "clients"))]
            let clients = "";
            log::info!(
                target: "password_bearer::server",
                "password-bearer: reloaded: {count}, {verifying} keys{clients}{certificate}"
            );
            Some(ending)
        }
        Err(e) => {
            // A clients table is read on its own, not with the files.
            let clients_file = options
                .clients
                .as_deref()
                .is_some_and(|c| !store::names_postgres(&c.to_string_lossy()));
            let what = match (tls.is_some(), clients_file) {
                (true, true) => "users, keys, clients and certificate",
                (true, false) => "users, keys and certificate",
                (false, true) => "users, keys and clients",
                (false, false) => "users and keys",
            };
            log::error!(
                target: "password_bearer::server",
                "password-bearer: reload failed, still serving the previous {what}: {e}"
            );
            None
        }
    }
}

/// Swaps in the clients read again, if `--clients` names a file: what the
/// reload's line says of them.
#[cfg(feature = "clients")]
fn reload_clients(app: &App<Store>, clients: Option<Clients>) -> String {
    clients
        .map(|clients| {
            let count = clients.len();
            let _ = app.reload_clients(clients);
            format!(", {count} clients")
        })
        .unwrap_or_default()
}

/// Resolves `host` and listens on the first address it names.
async fn bind(host: &str, port: u16) -> Result<TcpListener, ConfigError> {
    let what = format!("--host {host} --port {port}");
    let addr: SocketAddr = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ConfigError {
            what: what.clone(),
            problem: format!("cannot resolve the host: {e}"),
        })?
        .next()
        .ok_or_else(|| ConfigError {
            what: what.clone(),
            problem: "the host resolves to no address".into(),
        })?;
    let cannot_listen = |e: std::io::Error| ConfigError {
        what: what.clone(),
        problem: format!("cannot listen on {addr}: {e}"),
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(cannot_listen)?;
    // Restarting must not wait for the old process's TIME_WAIT sockets.
    socket.set_reuseaddr(true).map_err(cannot_listen)?;
    socket.bind(addr).map_err(cannot_listen)?;
    socket.listen(LISTEN_BACKLOG).map_err(cannot_listen)
}

/// What a signal asks of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// SIGHUP: read the users and key files again.
    Reload,
    /// SIGINT or SIGTERM: stop; the exit code a shell reports for a
    /// process the signal killed (128 + its number), for a second one.
    Stop(i32),
}

/// SIGINT (Ctrl-C), SIGTERM (`kill`, container runtimes) and SIGHUP
/// (`systemctl reload`), registered at once, so that a signal sent right
/// after the startup line is not lost to the default action (which, for
/// SIGHUP too, ends the process).
#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
fn signals() -> std::io::Result<Signals> {
    use tokio::signal::unix::{signal, SignalKind};
    Ok(Signals {
        interrupt: signal(SignalKind::interrupt())?,
        terminate: signal(SignalKind::terminate())?,
        hangup: signal(SignalKind::hangup())?,
    })
}

#[cfg(unix)]
impl Signals {
    /// The next signal.
    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::Stop(130),
            _ = self.terminate.recv() => Signal::Stop(143),
            _ = self.hangup.recv() => Signal::Reload,
        }
    }
}

/// Elsewhere, Ctrl-C.
#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
fn signals() -> std::io::Result<Signals> {
    Ok(Signals)
}

#[cfg(not(unix))]
impl Signals {
    async fn next(&mut self) -> Signal {
        let _ = tokio::signal::ctrl_c().await;
        Signal::Stop(130)
    }
}
