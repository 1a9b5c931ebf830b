//! Embedding `password-bearer` in a hyper service of your own: the crate
//! answers `POST /token` and `GET /users/me` (and the docs pages), and the
//! service adds a route of its own, `GET /users/me/items` (FastAPI's next
//! chapter), protected by the crate's chain: `bearer_token`, then
//! `current_user` and `current_active_user`, then `require_scopes(["items"])`.
//! Users come from a store of our own (standing in for a database) instead of
//! the users file; its one user is hashed at startup.
//!
//! ```sh
//! cargo run --example embed           # http://127.0.0.1:8001 (`-- 0`: any free port)
//! TOKEN=$(curl -s -d 'username=johndoe&password=secret&scope=me+items' \
//!     http://127.0.0.1:8001/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
//! curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/users/me/items
//! ```
//!
//! A token without the `items` scope gets 401 `{"detail":"Not enough
//! permissions"}` with `WWW-Authenticate: Bearer scope="items"`. Ctrl-C stops
//! the server.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use password_bearer::auth::{current_active_user, current_user, require_scopes};
use password_bearer::bearer::bearer_token;
use password_bearer::error::{json_response, ApiError};
use password_bearer::password::hash_password;
use password_bearer::server::serve_with;
use password_bearer::token::SecretKey;
use password_bearer::users::{StoreError, User, UserStore};
use password_bearer::{App, Config};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Our users, standing in for a database table. The lookup is async, as a
/// query would be; `App` never blocks a thread on it.
pub(crate) struct Database {
    users: HashMap<String, Arc<User>>,
}

impl Database {
    /// One user, johndoe / secret, allowed the `me` and `items` scopes.
    /// Hashing takes as long as one login, once, at startup.
    pub(crate) fn with_johndoe() -> Result<Database, Box<dyn std::error::Error>> {
        let hash = hash_password("secret")?;
        let johndoe = User::builder("johndoe", hash)
            .email("johndoe@example.com")
            .full_name("John Doe")
            .disabled(false)
            .scopes(["me", "items"])
            .build()?;
        let users = HashMap::from([(johndoe.username().to_owned(), Arc::new(johndoe))]);
        Ok(Database { users })
    }
}

impl UserStore for Database {
    async fn find(&self, username: &str) -> Result<Option<Arc<User>>, StoreError> {
        // A real store would query here, and return its driver's error as a
        // `StoreError` (`StoreError::new(e)`): the routes answer 503 and
        // count no failed login, where `Ok(None)` is an unknown user.
        Ok(self.users.get(username).cloned())
    }

    // The scopes listed in /openapi.json, so Swagger UI offers them.
    fn scopes(&self) -> Vec<String> {
        vec!["me".to_owned(), "items".to_owned()]
    }
}

/// Our route first, then everything else to the crate.
pub(crate) async fn route(
    app: &App<Database>,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/users/me/items") => read_own_items(app, request.headers())
            .await
            .unwrap_or_else(ApiError::into_response),
        (_, "/users/me/items") => ApiError::MethodNotAllowed("GET").into_response(),
        // The client's address: failed logins are throttled per address
        // with it, and log lines name it.
        _ => app.handle(request, Some(peer)).await,
    }
}

/// `GET /users/me/items`: the chain in three lines; every `?` returns an
/// error that is already the contract's response.
async fn read_own_items(
    app: &App<Database>,
    headers: &HeaderMap,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let token = bearer_token(headers.get(AUTHORIZATION).map(HeaderValue::as_bytes))?;
    let current = current_active_user(current_user(app, token).await?)?;
    require_scopes(&current, &["items"])?;
    let items = serde_json::json!([{"item_id": "Foo", "owner": current.user.username()}]);
    Ok(json_response(StatusCode::OK, items.to_string().into()))
}

/// Serves `app` with our routes until `shutdown` resolves, with the
/// crate's serving loop and limits (header-read and request timeouts,
/// connection caps in total and per address, grace period, panics
/// answered 500).
pub(crate) async fn serve_embedded(
    listener: TcpListener,
    app: Arc<App<Database>>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(
        listener,
        app,
        |app, request, peer| async move { route(&app, request, peer).await },
        shutdown,
    )
    .await
}

#[allow(dead_code)] // tests include this file for `route` and `serve_embedded`
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|_| format!("{arg:?} is not a port"))?,
        None => 8001,
    };
    // A fresh key per start: tokens die with the process. Load one from a
    // file (`SecretKey::new`) to keep them across restarts.
    let config = Config::new(Database::with_johndoe()?, SecretKey::random()?);
    let app = Arc::new(App::new(config));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    serve_embedded(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
