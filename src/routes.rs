//! Routing and handlers: a plain `match` on method and path, the two
//! endpoints of the seed, `POST /token` and `GET /users/me`, and
//! `GET /healthz`.

use crate::app::{App, Loaded, MAX_PASSWORD_BYTES};
use crate::auth::{current_active_user, store_unavailable, user_named_by, verify_token};
use crate::bearer::bearer_bytes;
use crate::counters::{Counters, Endpoint, Login};
use crate::deadline::Answered;
use crate::error::{json_response, no_store, ApiError};
use crate::form::{parse_revoke_body, parse_token_body, BodyError, TokenForm};
use crate::limiter::Refused;
use crate::logging::{self, Peer, Quoted, ACCESS, LOGIN, LOGIN_REFUSED, STORE_DOWN};
use crate::openapi::Docs;
use crate::password::Busy;
use crate::throttle::Throttled;
use crate::token::Claims;
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The paths we always serve, for the trailing-slash redirect; `/revoke`
/// and the docs pages are served when on.
const ROUTES: [&str; 3] = ["/token", "/users/me", "/healthz"];

impl<S: UserStore> App<S> {
    /// Answers one request from `client`, the peer's address: failed logins
    /// are throttled per address with it, and log lines name it. Pass `None`
    /// only where there is no client address (a call without sockets);
    /// behind a proxy, the client's address as your proxy reports it.
    ///
    /// Mount it inside your own hyper service, or call it without sockets.
    /// Never fails: every error is already the contract's response, so hyper
    /// never has to abort a connection. The request timeout and the
    /// connection caps are the serving loop's ([`crate::serve`],
    /// [`crate::server::serve_with`]); a loop of your own sets its own.
    pub fn handle<B>(
        &self,
        request: Request<B>,
        client: Option<SocketAddr>,
    ) -> impl Future<Output = Response<Full<Bytes>>> + '_
    where
        B: Body + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        catch_panic(move || route(self, request, client))
    }

    /// [`App::handle`] as [`crate::serve`]'s hyper service calls it: the
    /// app owned, the peer known, the request timeout applied, and the
    /// `Result` hyper wants, with no `async` block between hyper and
    /// [`route`].
    pub(crate) fn serve_request<B>(
        self: Arc<Self>,
        request: Request<B>,
        peer: SocketAddr,
    ) -> Infallibly<Answered<impl Future<Output = Response<Full<Bytes>>>>>
    where
        B: Body + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (timeout, counters) = (self.request_timeout, self.counters.clone());
        guarded(timeout, counters, move || route(self, request, Some(peer)))
    }

    /// Whether `path` is one of the routes this app serves.
    fn serves(&self, path: &str) -> bool {
        ROUTES.contains(&path)
            || (path == "/revoke" && self.sessions.is_some())
            || ((path == "/openapi.json" || path == "/docs") && self.docs.is_some())
    }

    /// `POST /token`: the password grant.
    async fn login<B>(
        &self,
        request: Request<B>,
        peer: Option<SocketAddr>,
    ) -> Result<Response<Full<Bytes>>, ApiError>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let form = self.read_form(request).await?;
        if form.is_refresh() {
            let answer = self.refresh(form, peer).await;
            self.counters.refresh(&answer);
            return answer;
        }
        let ip = peer.map(|p| p.ip());
        if form.password.len() > MAX_PASSWORD_BYTES {
            // Never hashed, and never counted: a failure that costs nothing
            // would be a free way to fill the throttle's tables. A throttled
            // client still gets its 429, which tells it nothing new.
            if let Err(refused) = self.throttle.check(&form.username, ip).await {
                refused.count(&self.counters);
                return Err(self.refused(refused, &form.username, peer));
            }
            self.counters.login(Login::Failed);
            self.log_login("failed", &form.username, peer);
            return Err(ApiError::IncorrectLogin);
        }
        // Admitted before any lookup or hash, in flight against the username
        // and the address; throttled, answered at once, right password or
        // not, so a guesser gains nothing and costs us nothing. Past the
        // attempts in flight a key allows, it waits for its turn, then for
        // a hash slot, both within the login queue's one wait.
        let deadline = self.verifier.deadline();
        let attempt = match self.throttle.admit(&form.username, ip, deadline).await {
            Ok(attempt) => attempt,
            Err(refused) => {
                refused.count(&self.counters);
                return Err(self.refused(refused, &form.username, peer));
            }
        };
        // One set of users and keys for the whole login (see `App::reload`).
        let loaded = self.loaded();
        let user = match loaded.users().find(&form.username).await {
            Ok(user) => user,
            Err(e) => {
                attempt.refund().await;
                return Err(store_unavailable(&e));
            }
        };
        let hash = user.as_ref().map(|u| u.hashed_password().clone());
        let verdict = match self
            .verifier
            .verify_by(hash, form.password.as_bytes(), deadline)
            .await
        {
            Ok(verdict) => verdict,
            Err(Busy { retry_after }) => {
                attempt.refund().await;
                self.counters.login(Login::Busy);
                logging::tally(
                    LOGIN_REFUSED,
                    format_args!(
                        "login refused: no password hash slot within the login queue's wait"
                    ),
                );
                return Err(ApiError::Unavailable(retry_after.as_secs()));
            }
        };
        let Some(user) = user.filter(|_| verdict.verified) else {
            // Settled at once, so that the logins waiting for their turn
            // behind this one learn of it; answered after the padding, so
            // that the answer's time tells nothing of the user's hash.
            attempt.failed();
            self.counters.login(Login::Failed);
            self.log_login("failed", &form.username, peer);
            verdict.padded().await;
            return Err(ApiError::IncorrectLogin);
        };
        // Grant what was asked and is allowed, each scope once; tell the
        // client when that differs from its request (RFC 6749 §5.1).
        let mut requested: Vec<&str> = Vec::new();
        for scope in &form.scopes {
            if !requested.contains(&scope.as_str()) {
                requested.push(scope);
            }
        }
        let granted: Vec<&str> = requested
            .iter()
            .copied()
            .filter(|s| user.allows(s))
            .collect();
        // With sessions on, the login starts one: a store that cannot keep
        // it answers 503, and the attempt counts as nobody's failure.
        let session = match self.start_session(&user, &granted).await {
            Ok(session) => session,
            Err(e) => {
                attempt.refund().await;
                return Err(e);
            }
        };
        attempt.succeeded().await;
        self.counters.login(Login::Ok);
        self.log_login("ok", &form.username, peer);
        self.token_response(
            loaded.key(),
            user.username(),
            &requested,
            &granted,
            session.as_ref().map(|s| (s, 0)),
        )
    }

    /// `POST /revoke`: the body read as a form, then [`App::revoke`].
    async fn revoke_request<B>(
        &self,
        request: Request<B>,
    ) -> Result<Response<Full<Bytes>>, ApiError>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (content_type, body) = self.read_body(request).await?;
        let form = parse_revoke_body(content_type.as_ref().map(HeaderValue::as_bytes), &body)
            .map_err(body_error)?;
        self.revoke(&form.token).await
    }

    /// Reads the body (bounded) and validates the `/token` form.
    async fn read_form<B>(&self, request: Request<B>) -> Result<TokenForm, ApiError>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (content_type, body) = self.read_body(request).await?;
        let content_type = content_type.as_ref().map(HeaderValue::as_bytes);
        parse_token_body(content_type, &body, self.sessions.is_some()).map_err(body_error)
    }

    /// Reads a form's body, bounded, and its `Content-Type`.
    async fn read_body<B>(
        &self,
        request: Request<B>,
    ) -> Result<(Option<HeaderValue>, Bytes), ApiError>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (mut parts, body) = request.into_parts();
        // A declared length over the limit is refused before reading a byte;
        // `Limited` catches bodies that lie or are chunked.
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.body_limit as u64) {
            return Err(ApiError::BodyTooLarge);
        }
        let body = Limited::new(body, self.body_limit)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    ApiError::BodyTooLarge
                } else {
                    ApiError::BadBody
                }
            })?
            .to_bytes();
        Ok((parts.headers.remove(CONTENT_TYPE), body))
    }

    /// The answer to a refused attempt: 429 and its log tally when
    /// throttled, 503 when its wait ran out or the shared counts cannot be
    /// reached.
    pub(crate) fn refused(
        &self,
        refused: Refused,
        username: &str,
        peer: Option<SocketAddr>,
    ) -> ApiError {
        match refused {
            Refused::Throttled(throttled) => self.throttled(throttled, username, peer),
            Refused::Busy(retry_after) => {
                logging::tally(
                    LOGIN_REFUSED,
                    format_args!(
                        "login refused: attempts in flight for its username or address did \
                         not settle within the login queue's wait"
                    ),
                );
                ApiError::Unavailable(retry_after.as_secs())
            }
            Refused::Unavailable(e) => store_unavailable(&e),
        }
    }

    /// The 429 of a throttled attempt, tallied in the log: one line per
    /// username (or address) a minute, however many attempts.
    pub(crate) fn throttled(
        &self,
        throttled: Throttled,
        username: &str,
        peer: Option<SocketAddr>,
    ) -> ApiError {
        if self.login_log {
            match peer.filter(|_| throttled.address && !throttled.username) {
                Some(peer) => logging::tally(
                    LOGIN_REFUSED,
                    format_args!(
                        "login throttled address={}",
                        crate::addr::address_key(peer.ip())
                    ),
                ),
                None => logging::tally(
                    LOGIN_REFUSED,
                    format_args!("login throttled username={}", Quoted(username)),
                ),
            }
        }
        ApiError::TooManyAttempts(throttled.retry_after.as_secs().max(1))
    }

    /// `GET /healthz`: whether the user store, the session store and the
    /// failed-login counts can answer.
    async fn health(&self) -> Response<Full<Bytes>> {
        let mut health = self.loaded().users().health().await;
        if let (Ok(()), Some(sessions)) = (&health, &self.sessions) {
            health = sessions.store.health().await;
        }
        if health.is_ok() {
            health = self.throttle.health().await;
        }
        match health {
            Ok(()) => json_response(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#)),
            Err(e) => {
                logging::tally(STORE_DOWN, format_args!("health check failed: {e}"));
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Bytes::from_static(br#"{"status":"unavailable"}"#),
                )
            }
        }
    }

    fn log_login(&self, outcome: &str, username: &str, peer: Option<SocketAddr>) {
        if self.login_log {
            logging::emit(
                LOGIN,
                format_args!(
                    "login {outcome} username={} peer={}",
                    Quoted(username),
                    Peer(peer)
                ),
            );
        }
    }
}

/// A form that could not be read or failed validation, as its answer.
fn body_error(error: BodyError) -> ApiError {
    match error {
        BodyError::Invalid(form) => ApiError::Validation(form),
        BodyError::Multipart(e) => ApiError::Multipart(e),
    }
}

/// Every answer.
type Reply = Response<Full<Bytes>>;

/// What a request comes to once its synchronous part is done.
enum Outcome<S> {
    /// Answered without waiting.
    Ready(Response<Full<Bytes>>),
    /// `/users/me` with a verified token: the store lookup is left, in the
    /// users of the set whose keys verified it.
    UsersMe(Arc<Claims>, Arc<Loaded<S>>),
    /// A form to read and answer: `/token` or `/revoke`.
    Form(FormRoute),
    /// `/healthz`: the store's answer is left.
    Health,
}

/// The routes that read a form.
#[derive(Clone, Copy)]
enum FormRoute {
    /// `POST /token`: the body, the form and the hash (or the session).
    Token,
    /// `POST /revoke`: the body, the form and the session store.
    Revoke,
}

/// Routes a request: everything that needs no waiting is done here, before
/// the future exists, so that the future hyper keeps per connection (for the
/// connection's life, 10,000 of them for 10,000 idle clients) holds only
/// what the waiting needs: for `/users/me` the claims and the app, not the
/// 256-byte request. Generic over how the app is held: borrowed by
/// [`App::handle`], owned (an `Arc`) by [`App::serve_request`].
fn route<S, A, B>(
    app: A,
    request: Request<B>,
    peer: Option<SocketAddr>,
) -> RouteFuture<
    impl Future<Output = Reply>,
    impl Future<Output = Reply>,
    impl Future<Output = Reply>,
>
where
    S: UserStore,
    A: Deref<Target = App<S>>,
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Off, the access log costs one branch: no clock read, no copies.
    let access = app.access_log.then(|| {
        Box::new(AccessEntry::start(
            request.method(),
            request.uri().path(),
            peer,
        ))
    });
    let path = request.uri().path();
    let docs = app.docs.as_ref();
    let outcome = match (request.method(), path) {
        (&Method::POST, "/token") => Outcome::Form(FormRoute::Token),
        (_, "/token") => {
            let mut response = ApiError::MethodNotAllowed("POST").into_response();
            no_store(&mut response);
            Outcome::Ready(response)
        }
        // The seed's chain: the bearer token, `current_user` (its token
        // half here, its store half below), then `current_active_user`.
        (&Method::GET, "/users/me") => {
            // A scan of the few headers a request has costs less than
            // `HeaderMap::get`'s hash and probe; it finds the same, first,
            // value.
            let authorization = request
                .headers()
                .iter()
                .find(|(name, _)| *name == AUTHORIZATION)
                .map(|(_, value)| value.as_bytes());
            let loaded = app.loaded();
            match bearer_bytes(authorization).and_then(|token| verify_token(&app, &loaded, token)) {
                Ok(claims) => Outcome::UsersMe(claims, loaded),
                Err(e) => Outcome::Ready(e.into_response()),
            }
        }
        (_, "/users/me") => Outcome::Ready(ApiError::MethodNotAllowed("GET").into_response()),
        (&Method::POST, "/revoke") if app.sessions.is_some() => Outcome::Form(FormRoute::Revoke),
        (_, "/revoke") if app.sessions.is_some() => {
            let mut response = ApiError::MethodNotAllowed("POST").into_response();
            no_store(&mut response);
            Outcome::Ready(response)
        }
        (&Method::GET, "/healthz") => Outcome::Health,
        (_, "/healthz") => Outcome::Ready(ApiError::MethodNotAllowed("GET").into_response()),
        (&Method::GET, "/docs/swagger-ui-bundle.js" | "/docs/swagger-ui.css")
            if docs.is_some_and(Docs::serves_assets) =>
        {
            let asset = docs.and_then(|docs| docs.asset_response(path));
            Outcome::Ready(asset.unwrap_or_else(|| ApiError::NotFound.into_response()))
        }
        (method, "/openapi.json" | "/docs") if docs.is_some() => {
            Outcome::Ready(match (method, docs) {
                (&Method::GET, Some(docs)) if path == "/docs" => docs.swagger_ui_response(),
                (&Method::GET, Some(docs)) => docs.openapi_response(),
                _ => ApiError::MethodNotAllowed("GET").into_response(),
            })
        }
        // FastAPI's redirect_slashes: the path without its trailing slashes
        // (all of them, as Starlette's `rstrip("/")`), query kept; 307 so
        // that a POST stays a POST.
        (_, _) => Outcome::Ready(
            match path.strip_suffix('/').map(|p| p.trim_end_matches('/')) {
                Some(bare) if app.serves(bare) => {
                    let location = match request.uri().query() {
                        Some(query) => format!("{bare}?{query}"),
                        None => bare.to_owned(),
                    };
                    ApiError::TrailingSlash(location).into_response()
                }
                _ => ApiError::NotFound.into_response(),
            },
        ),
    };
    match outcome {
        Outcome::Ready(response) => {
            app.counters.request(Endpoint::of(path), response.status());
            finish(access, &response);
            RouteFuture::Ready {
                response: Some(response),
            }
        }
        Outcome::UsersMe(claims, loaded) => RouteFuture::UsersMe {
            lookup: async move {
                let response = match user_named_by(&loaded, claims)
                    .await
                    .and_then(current_active_user)
                {
                    Ok(current) => json_response(StatusCode::OK, current.user.me_body().clone()),
                    Err(e) => e.into_response(),
                };
                app.counters.request(Endpoint::UsersMe, response.status());
                finish(access, &response);
                response
            },
        },
        // Boxed: the login's state (body, form, hash) would otherwise size
        // every connection's future; one allocation per login costs nothing
        // beside an argon2 hash.
        Outcome::Form(form) => RouteFuture::Login {
            login: Box::pin(async move {
                let (answer, endpoint) = match form {
                    FormRoute::Token => (app.login(request, peer).await, Endpoint::Token),
                    FormRoute::Revoke => (app.revoke_request(request).await, Endpoint::Revoke),
                };
                let mut response = answer.unwrap_or_else(ApiError::into_response);
                no_store(&mut response);
                app.counters.request(endpoint, response.status());
                finish(access, &response);
                response
            }),
        },
        // Boxed like a login: rare, and its state must not size the rest.
        Outcome::Health => RouteFuture::Health {
            health: Box::pin(async move {
                let response = app.health().await;
                app.counters.request(Endpoint::Healthz, response.status());
                finish(access, &response);
                response
            }),
        },
    }
}

/// Writes the access-log line, when the log is on.
fn finish(access: Option<Box<AccessEntry>>, response: &Response<Full<Bytes>>) {
    if let Some(access) = access {
        access.finish(response.status());
    }
}

pin_project_lite::pin_project! {
    /// The future of [`route`]: one of four small states.
    #[project = RouteProj]
    enum RouteFuture<M, L, H> {
        Ready { response: Option<Response<Full<Bytes>>> },
        UsersMe { #[pin] lookup: M },
        Login { login: Pin<Box<L>> },
        Health { health: Pin<Box<H>> },
    }
}

impl<M, L, H> Future for RouteFuture<M, L, H>
where
    M: Future<Output = Response<Full<Bytes>>>,
    L: Future<Output = Response<Full<Bytes>>>,
    H: Future<Output = Response<Full<Bytes>>>,
{
    type Output = Response<Full<Bytes>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            // Polled again after the answer (a caller's bug): a 500, not a
            // panic.
            RouteProj::Ready { response } => Poll::Ready(
                response
                    .take()
                    .unwrap_or_else(|| ApiError::Internal.into_response()),
            ),
            RouteProj::UsersMe { lookup } => lookup.poll(cx),
            RouteProj::Login { login } => login.as_mut().poll(cx),
            RouteProj::Health { health } => health.as_mut().poll(cx),
        }
    }
}

/// Runs a handler, answering 500 if it panics, in its synchronous part
/// (`start`, which routes) or while polled: one request's bug (or a
/// panicking user store) must not cost its connection, and never the
/// server. The panic message itself goes to stderr through the panic hook.
fn catch_panic<F>(start: impl FnOnce() -> F) -> CatchPanic<F> {
    CatchPanic {
        handler: std::panic::catch_unwind(AssertUnwindSafe(start)).ok(),
    }
}

pin_project_lite::pin_project! {
    /// The future of [`catch_panic`]: the handler, pinned in place (a
    /// wrapping `async` block would store it twice in the per-connection
    /// future); `None` when routing itself panicked.
    pub(crate) struct CatchPanic<F> {
        #[pin]
        handler: Option<F>,
    }
}

impl<F> Future for CatchPanic<F>
where
    F: Future<Output = Response<Full<Bytes>>>,
{
    type Output = Response<Full<Bytes>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(handler) = self.project().handler.as_pin_mut() else {
            return Poll::Ready(ApiError::Internal.into_response());
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| handler.poll(cx))) {
            Ok(poll) => poll,
            // The handler is not polled again after this.
            Err(_) => Poll::Ready(ApiError::Internal.into_response()),
        }
    }
}

/// A handler as a hyper service calls it: panics answered 500
/// ([`catch_panic`]), 408 past the request timeout ([`Answered`]), and the
/// `Result` hyper wants, never an `Err`.
pub(crate) fn guarded<F>(
    timeout: Duration,
    counters: Arc<Counters>,
    start: impl FnOnce() -> F,
) -> Infallibly<Answered<CatchPanic<F>>> {
    Infallibly {
        inner: Answered::new(catch_panic(start), timeout, counters),
    }
}

pin_project_lite::pin_project! {
    /// A response future as hyper's service wants it: never an `Err`.
    pub(crate) struct Infallibly<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for Infallibly<F> {
    type Output = Result<F::Output, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map(Ok)
    }
}

/// An access-log line in the making: what it needs of the request, taken
/// before the request is consumed.
struct AccessEntry {
    start: Instant,
    method: Method,
    path: Box<str>,
    peer: Option<SocketAddr>,
}

impl AccessEntry {
    fn start(method: &Method, path: &str, peer: Option<SocketAddr>) -> AccessEntry {
        AccessEntry {
            start: Instant::now(),
            method: method.clone(),
            path: path.into(),
            peer,
        }
    }

    fn finish(self, status: StatusCode) {
        logging::emit(
            ACCESS,
            format_args!(
                "access method={} path={} status={} us={} peer={}",
                self.method,
                Quoted(&self.path),
                status.as_u16(),
                self.start.elapsed().as_micros(),
                Peer(self.peer),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::SecretKey;
    use crate::users::Users;
    use crate::Config;

    #[tokio::test]
    async fn a_panic_while_routing_or_polled_is_a_500() {
        let routing = catch_panic(|| -> std::future::Ready<Response<Full<Bytes>>> {
            panic!("injected fault while routing")
        });
        assert_eq!(routing.await.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let polled = catch_panic(|| async {
            panic!("injected fault while polled");
            #[allow(unreachable_code)]
            ApiError::NotFound.into_response()
        });
        assert_eq!(polled.await.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let fine = catch_panic(|| std::future::ready(ApiError::NotFound.into_response()));
        assert_eq!(fine.await.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_per_connection_future_stays_small() {
        // hyper allocates the service future once per connection and keeps
        // it for the connection's life: 10,000 idle keep-alive connections
        // hold 10,000 of them. A plain `async fn` route made it 2.9 KB;
        // routing before the future exists makes it 144 bytes.
        let app = App::new(Config::new(
            Users::demo(),
            SecretKey::new(&[7u8; 32]).unwrap(),
        ));
        let request = Request::get("/").body(Full::new(Bytes::new())).unwrap();
        let size = std::mem::size_of_val(&app.handle(request, None));
        assert!(size <= 256, "the handle future is {size} bytes");
        let request = Request::get("/").body(Full::new(Bytes::new())).unwrap();
        let served = Arc::new(app).serve_request(request, ([127, 0, 0, 1], 9).into());
        let size = std::mem::size_of_val(&served);
        assert!(size <= 256, "the service future is {size} bytes");
    }
}
