//! The in-process servers: `serve` on `127.0.0.1:0` with the test key,
//! stopped when dropped, and the serving loops of the tests' own (as an
//! embedder writes them) run the same way; users files for them.

use password_bearer::token::SecretKey;
use password_bearer::users::{UserStore, Users};
use password_bearer::{serve, App, Config};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The signing key of every in-process server, so tests can check the
/// tokens it issues and forge tokens it must accept or refuse.
pub(crate) const TEST_KEY: &[u8] = b"integration-tests-key-0123456789-abcdefghij";

pub(crate) fn test_key() -> SecretKey {
    SecretKey::new(TEST_KEY).expect("the test key is long enough")
}

/// A running in-process server. Dropping it fires the shutdown signal, so a
/// failing test does not leave a server behind.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Fires the shutdown signal without waiting: the server keeps serving
    /// in-flight requests for its grace period.
    pub(crate) fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Fires the shutdown signal and waits for `serve` to return, failing
    /// if it does not within `limit`.
    pub(crate) async fn shutdown_within(mut self, limit: Duration) {
        self.trigger_shutdown();
        let task = self.task.take().expect("the server task is joined once");
        tokio::time::timeout(limit, task)
            .await
            .expect("serve returned within the limit")
            .expect("the serve task did not panic")
    }

    /// Whether `serve` has returned.
    pub(crate) fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.trigger_shutdown();
    }
}

/// A server with the demo users (johndoe active, alice disabled), the test
/// key and every other setting at its default.
pub(crate) async fn start() -> TestServer {
    start_with(Config::new(Users::demo(), test_key())).await
}

/// A server with a custom configuration.
pub(crate) async fn start_with(config: Config) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound address");
    let app = Arc::new(App::new(config));
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app, async move {
        // A dropped sender (test over) is a shutdown too.
        let _ = rx.await;
    }));
    TestServer {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// Runs a serving loop of `serve`'s shape on `127.0.0.1:0` as a
/// [`TestServer`]: `run` gets the listener and the shutdown signal (which
/// also fires when the `TestServer` is dropped).
pub(crate) async fn start_loop<F, Fut>(run: F) -> TestServer
where
    F: FnOnce(TcpListener, std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound address");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(run(
        listener,
        Box::pin(async move {
            let _ = rx.await;
        }),
    ));
    TestServer {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// [`start_with`] for any user store.
pub(crate) async fn start_store<S: password_bearer::users::UserStore>(
    config: Config<S>,
) -> TestServer {
    let app = Arc::new(App::new(config));
    start_loop(|listener, shutdown| serve(listener, app, shutdown)).await
}

/// A hyper service of the test's own, on the settings `serve` uses (a
/// timer and a header-read timeout): `handler` answers every request with
/// the client's address.
pub(crate) async fn start_service<H, Fut>(handler: H) -> TestServer
where
    H: Fn(hyper::Request<hyper::body::Incoming>, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = hyper::Response<http_body_util::Full<bytes::Bytes>>>
        + Send
        + 'static,
{
    let handler = Arc::new(handler);
    start_loop(|listener, mut shutdown| async move {
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10));
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => continue,
                },
                () = &mut shutdown => return,
            };
            let handler = handler.clone();
            let service = hyper::service::service_fn(move |request| {
                let answer = handler(request, peer);
                async move { Ok::<_, std::convert::Infallible>(answer.await) }
            });
            let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    })
    .await
}

/// Users for tests that need someone other than the demo users: each
/// `(username, password, disabled)` is hashed for real.
pub(crate) fn users_with(entries: &[(&str, &str, bool)]) -> Users {
    Users::from_json(&users_json(entries)).expect("the generated users JSON is valid")
}

/// The users-file JSON (the seed's `fake_users_db` shape) for `entries`.
pub(crate) fn users_json(entries: &[(&str, &str, bool)]) -> String {
    let mut map = serde_json::Map::new();
    for (username, password, disabled) in entries {
        let hash = password_bearer::password::hash_password(password).expect("hashing succeeds");
        map.insert(
            (*username).to_owned(),
            serde_json::json!({
                "username": username,
                "full_name": format!("Full {username}"),
                "email": format!("{username}@example.com"),
                "hashed_password": hash,
                "disabled": disabled,
            }),
        );
    }
    Value::Object(map).to_string()
}

/// No login log lines: for tests whose floods of logins would fill stderr.
pub(crate) fn quiet(config: &mut Config<impl UserStore>) {
    config.login_log = false;
}
