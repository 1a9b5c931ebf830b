//! The `password-bearer` binary: parses the command line, binds, and hands
//! the listener to the library's `serve`. Bad configuration is one line on
//! stderr and exit code 2.

use password_bearer::config::{self, Command, ConfigError, Options};
use password_bearer::{log, password, serve, App};
use std::io::Read;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket};

/// Pending connections the kernel queues for us: enough for a burst of
/// clients arriving together.
const LISTEN_BACKLOG: u32 = 4096;

fn main() -> ExitCode {
    let outcome = match config::parse_args(std::env::args_os().skip(1)) {
        Ok(Command::Help) => {
            print!("{}", config::USAGE);
            Ok(())
        }
        Ok(Command::HashPassword) => hash_password(),
        Ok(Command::Serve(options)) => run(&options),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::line(format_args!("password-bearer: {e}"));
            ExitCode::from(2)
        }
    }
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

/// Serves on `workers` threads, each running its own single-threaded
/// runtime on its own listener; the kernel spreads new connections over the
/// listeners by a hash of the client's address and port (`SO_REUSEPORT`),
/// and a connection stays on its thread for life. No request pays for a
/// work-stealing scheduler's cross-thread bookkeeping: about 900 fewer
/// instructions per `GET /users/me` than one multi-threaded runtime
/// (`benches/instructions.sh`), and one thread less. Password hashes still
/// run on each runtime's blocking pool, bounded by the app's verifier, so a
/// login never stalls the requests of its thread.
fn run(options: &Options) -> Result<(), ConfigError> {
    let (config, warning) = options.load()?;
    let app = Arc::new(App::new(config));
    let workers = options.workers.unwrap_or_else(|| {
        // The cores this process may run on: `taskset -c 0` means one.
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    });
    let startup = |problem: String| ConfigError {
        what: "startup".into(),
        problem,
    };
    let runtime = current_thread_runtime().map_err(|e| startup(e.to_string()))?;
    runtime.block_on(async {
        let mut listeners = bind(&options.host, options.port, workers)
            .await?
            .into_iter();
        let listener = listeners.next().expect("bind opens at least one listener");
        let local = listener.local_addr().map_err(|e| ConfigError {
            what: "--port".into(),
            problem: e.to_string(),
        })?;
        let signal =
            shutdown_signal().map_err(|e| startup(format!("cannot handle signals: {e}")))?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut threads = Vec::new();
        for (n, other) in listeners.enumerate() {
            // Out of this runtime's reactor, into the worker's.
            let other = other.into_std().map_err(|e| startup(e.to_string()))?;
            let (app, mut stopped) = (app.clone(), stopped.clone());
            let thread = std::thread::Builder::new()
                .name(format!("worker-{}", n + 1))
                .spawn(move || -> std::io::Result<()> {
                    current_thread_runtime()?.block_on(async move {
                        let listener = TcpListener::from_std(other)?;
                        let shutdown = async move {
                            let _ = stopped.wait_for(|&stop| stop).await;
                        };
                        serve(listener, app, shutdown).await
                    })
                })
                .map_err(|e| startup(format!("cannot start a worker thread: {e}")))?;
            threads.push(thread);
        }
        if let Some(warning) = warning {
            log::line(format_args!("password-bearer: warning: {warning}"));
        }
        log::line(format_args!("listening on http://{local}"));
        let shutdown = async move {
            signal.await;
            let _ = stop.send(true);
        };
        let mut outcome = serve(listener, app, shutdown).await;
        for thread in threads {
            let finished = thread
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("a worker thread panicked")));
            outcome = outcome.and(finished);
        }
        outcome.map_err(|e| ConfigError {
            what: "serve".into(),
            problem: e.to_string(),
        })
    })
}

fn current_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Resolves `host` and opens `count` listeners on the first address it
/// names: one, or a group sharing the port through `SO_REUSEPORT`.
async fn bind(host: &str, port: u16, count: usize) -> Result<Vec<TcpListener>, ConfigError> {
    let what = format!("--host {host} --port {port}");
    let mut addr: SocketAddr = tokio::net::lookup_host((host, port))
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
    let shared = count > 1;
    if shared {
        // A port held by anyone, even another `SO_REUSEPORT` group (a second
        // copy of this server, say), fails here: a group would silently
        // join it and split the clients. The probe also picks the port
        // when it is 0.
        addr = listen(addr, false)
            .and_then(|probe| probe.local_addr())
            .map_err(|e| cannot_listen(&what, addr, e))?;
    }
    (0..count)
        .map(|_| listen(addr, shared).map_err(|e| cannot_listen(&what, addr, e)))
        .collect()
}

fn listen(addr: SocketAddr, shared: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }?;
    // Restarting must not wait for the old process's TIME_WAIT sockets.
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(shared)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn cannot_listen(what: &str, addr: SocketAddr, e: std::io::Error) -> ConfigError {
    ConfigError {
        what: what.to_owned(),
        problem: format!("cannot listen on {addr}: {e}"),
    }
}

/// Registers SIGINT (Ctrl-C) and SIGTERM (`kill`, container runtimes) at
/// once, so a signal sent right after the startup line is not lost to the
/// default action, and returns a future that resolves on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        log::line(format_args!("password-bearer: shutting down"));
    })
}
