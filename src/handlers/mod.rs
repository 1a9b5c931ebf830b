//! The handlers, one per file, and the one route table ([`ROUTES`]) they
//! are reached through. Each handler is a free function taking the
//! [`App`]; none is a method of it.
//!
//! - `token.rs`: `POST /token`, the password grant (and, for
//!   `grant_type=refresh_token`, the hand-over to `refresh.rs`);
//! - `refresh.rs`: the refresh grant;
//! - `revoke.rs`: `POST /revoke`;
//! - `client_credentials.rs`: the client credentials grant, for
//!   `grant_type=client_credentials`;
//! - `introspect.rs`: `POST /introspect` (RFC 7662);
//! - `client_auth.rs`: client authentication, HTTP Basic or the form;
//! - `users_me.rs`: `GET /users/me`, the seed's chain;
//! - `health.rs`: `GET /healthz`;
//! - `docs.rs`: `GET /openapi.json`, `GET /docs` and Swagger UI's files;
//! - `discovery.rs`: `GET /.well-known/jwks.json` and
//!   `GET /.well-known/oauth-authorization-server`;
//! - `body.rs`: reading a form's body, bounded, and its errors;
//! - `refused.rs`: the answer to a refused login (429 or 503).
//!
//! Which paths exist is written once, in [`ROUTES`]: the dispatcher
//! ([`route`]), the trailing-slash redirect and the metrics' route label
//! read it, and a test holds the OpenAPI documents to it.

mod body;
mod client_auth;
mod client_credentials;
mod discovery;
mod docs;
mod health;
mod introspect;
mod refresh;
mod refused;
mod revoke;
mod token;
mod users_me;

use crate::app::{App, UsersAndKeys};
use crate::auth::Verified;
use crate::counters::Endpoint;
use crate::error::{no_store, ApiError};
use crate::openapi::Docs;
use crate::server::access_log::{finish, AccessEntry};
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::{Method, Request, Response};
use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Every path the API serves, each once: its method, its handler, its
/// label in the metrics, when it is served, whether the OpenAPI documents
/// list it, and whether the path with a trailing slash redirects to it.
/// `GET /users/me` first: the hot path finds its route at the first
/// comparison.
pub(crate) const ROUTES: [Route; 11] = [
    Route {
        path: "/users/me",
        method: Verb::Get,
        handler: Handler::UsersMe,
        endpoint: Endpoint::UsersMe,
        when: When::Always,
        openapi: true,
        slash_redirects: true,
    },
    Route {
        path: "/token",
        method: Verb::Post,
        handler: Handler::Token,
        endpoint: Endpoint::Token,
        when: When::Always,
        openapi: true,
        slash_redirects: true,
    },
    Route {
        path: "/revoke",
        method: Verb::Post,
        handler: Handler::Revoke,
        endpoint: Endpoint::Revoke,
        when: When::Sessions,
        openapi: true,
        slash_redirects: true,
    },
    // Not in the OpenAPI documents: it is for resource servers, not for
    // the API's clients (docs/clients.md documents it).
    Route {
        path: "/introspect",
        method: Verb::Post,
        handler: Handler::Introspect,
        endpoint: Endpoint::Introspect,
        when: When::Clients,
        openapi: false,
        slash_redirects: true,
    },
    Route {
        path: "/healthz",
        method: Verb::Get,
        handler: Handler::Health,
        endpoint: Endpoint::Healthz,
        when: When::Always,
        openapi: false,
        slash_redirects: true,
    },
    Route {
        path: "/openapi.json",
        method: Verb::Get,
        handler: Handler::Openapi,
        endpoint: Endpoint::Openapi,
        when: When::Docs,
        openapi: false,
        slash_redirects: true,
    },
    Route {
        path: "/docs",
        method: Verb::Get,
        handler: Handler::SwaggerUi,
        endpoint: Endpoint::Docs,
        when: When::Docs,
        openapi: false,
        slash_redirects: true,
    },
    Route {
        path: "/docs/swagger-ui-bundle.js",
        method: Verb::Get,
        handler: Handler::Asset,
        endpoint: Endpoint::Docs,
        when: When::LocalAssets,
        openapi: false,
        slash_redirects: false,
    },
    Route {
        path: "/docs/swagger-ui.css",
        method: Verb::Get,
        handler: Handler::Asset,
        endpoint: Endpoint::Docs,
        when: When::LocalAssets,
        openapi: false,
        slash_redirects: false,
    },
    // Not in the OpenAPI documents: they are for verifiers, not for the
    // API's clients, and the seed's document stays as it was.
    Route {
        path: "/.well-known/jwks.json",
        method: Verb::Get,
        handler: Handler::Jwks,
        endpoint: Endpoint::Other,
        when: When::SigningKeys,
        openapi: false,
        slash_redirects: false,
    },
    Route {
        path: "/.well-known/oauth-authorization-server",
        method: Verb::Get,
        handler: Handler::Metadata,
        endpoint: Endpoint::Other,
        when: When::Issuer,
        openapi: false,
        slash_redirects: false,
    },
];

/// One row of [`ROUTES`].
pub(crate) struct Route {
    pub(crate) path: &'static str,
    /// The one method it answers; another gets 405 naming this one (404
    /// for Swagger UI's files, as a path that is not there).
    pub(crate) method: Verb,
    handler: Handler,
    /// Its `route` label in `password_bearer_requests_total`.
    pub(crate) endpoint: Endpoint,
    pub(crate) when: When,
    /// Listed in `/openapi.json` (`src/openapi.json`, and
    /// `src/openapi_sessions.json` when sessions are on); the documents are
    /// written by hand, and a test holds them to this.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) openapi: bool,
    /// `path/` (any number of slashes) answers 307 to `path`, as FastAPI's
    /// `redirect_slashes` does, while the route is served.
    pub(crate) slash_redirects: bool,
}

/// The method a route answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    Post,
}

impl Verb {
    fn is(self, method: &Method) -> bool {
        match self {
            Verb::Get => method == Method::GET,
            Verb::Post => method == Method::POST,
        }
    }

    /// As the 405's `Allow` header names it.
    fn name(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
        }
    }
}

/// When a route is served; otherwise its path is unknown (404).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum When {
    Always,
    /// With sessions on (`Config::refresh_token_ttl` not zero).
    Sessions,
    /// With the docs on (`Config::docs`).
    Docs,
    /// With the docs on and Swagger UI's files served by the app
    /// (`Config::docs_assets`).
    LocalAssets,
    /// With EdDSA or ES256 keys (`Config::signing_keys`).
    SigningKeys,
    /// With an issuer (`Config::issuer`).
    Issuer,
    /// With clients (`Config::clients`).
    Clients,
}

impl When {
    fn holds<S>(self, app: &App<S>) -> bool {
        match self {
            When::Always => true,
            When::Sessions => app.sessions.is_some(),
            When::Docs => app.docs.is_some(),
            When::LocalAssets => app.docs.as_ref().is_some_and(Docs::serves_assets),
            When::SigningKeys => app.serves_jwks,
            When::Issuer => app.serves_metadata,
            When::Clients => app.clients.is_some(),
        }
    }
}

/// Which handler answers a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handler {
    UsersMe,
    Token,
    Revoke,
    Introspect,
    Health,
    Openapi,
    SwaggerUi,
    Asset,
    Jwks,
    Metadata,
}

/// The route of `path`, served or not.
fn route_of(path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|route| route.path == path)
}

/// Whether `path` is one of the routes `app` serves, for the trailing-slash
/// redirect.
fn redirects_to<S>(app: &App<S>, path: &str) -> bool {
    ROUTES
        .iter()
        .any(|route| route.slash_redirects && route.path == path && route.when.holds(app))
}

/// Every answer.
type Reply = Response<Full<Bytes>>;

/// What a request comes to once its synchronous part is done.
enum Outcome<S> {
    /// Answered without waiting.
    Ready(Response<Full<Bytes>>),
    /// `/users/me` with a verified token: the store lookup is left, in the
    /// users of the set whose keys verified it.
    UsersMe(Verified, Arc<UsersAndKeys<S>>),
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
    /// `POST /introspect`: the body, the form, the client and the token.
    Introspect,
}

/// Routes a request: everything that needs no waiting is done here, before
/// the future exists, so that the future hyper keeps per connection (for the
/// connection's life, 10,000 of them for 10,000 idle clients) holds only
/// what the waiting needs: for `/users/me` the claims and the app, not the
/// 256-byte request. Generic over how the app is held: borrowed by
/// [`App::handle`], owned (an `Arc`) by the serving loop.
pub(crate) fn route<S, A, B>(
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
    let route = route_of(path);
    let outcome = match route {
        Some(route) if route.when.holds(&*app) => {
            if route.method.is(request.method()) {
                match route.handler {
                    Handler::UsersMe => match users_me::verify(&*app, &request) {
                        Ok((verified, users_and_keys)) => {
                            Outcome::UsersMe(verified, users_and_keys)
                        }
                        Err(e) => Outcome::Ready(e.into_response()),
                    },
                    Handler::Token => Outcome::Form(FormRoute::Token),
                    Handler::Revoke => Outcome::Form(FormRoute::Revoke),
                    Handler::Introspect => Outcome::Form(FormRoute::Introspect),
                    Handler::Health => Outcome::Health,
                    Handler::Openapi => Outcome::Ready(docs::openapi(&*app)),
                    Handler::SwaggerUi => Outcome::Ready(docs::swagger_ui(&*app)),
                    Handler::Asset => Outcome::Ready(docs::asset(&*app, path)),
                    Handler::Jwks => Outcome::Ready(discovery::jwks(&*app)),
                    Handler::Metadata => Outcome::Ready(discovery::metadata(&*app)),
                }
            } else {
                Outcome::Ready(match route.handler {
                    // As a path that is not there.
                    Handler::Asset => ApiError::NotFound.into_response(),
                    // The forms' answers are never stored, their 405s
                    // included.
                    Handler::Token | Handler::Revoke | Handler::Introspect => {
                        let mut response =
                            ApiError::MethodNotAllowed(route.method.name()).into_response();
                        no_store(&mut response);
                        response
                    }
                    _ => ApiError::MethodNotAllowed(route.method.name()).into_response(),
                })
            }
        }
        // FastAPI's redirect_slashes: the path without its trailing slashes
        // (all of them, as Starlette's `rstrip("/")`), query kept; 307 so
        // that a POST stays a POST.
        _ => Outcome::Ready(
            match path.strip_suffix('/').map(|p| p.trim_end_matches('/')) {
                Some(bare) if redirects_to(&*app, bare) => {
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
            let endpoint = route.map_or(Endpoint::Other, |route| route.endpoint);
            app.counters.request(endpoint, response.status());
            finish(access, &response);
            RouteFuture::Ready {
                response: Some(response),
            }
        }
        Outcome::UsersMe(verified, users_and_keys) => RouteFuture::UsersMe {
            lookup: users_me::answer(app, verified, users_and_keys, access),
        },
        // Boxed: the login's state (body, form, hash) would otherwise size
        // every connection's future; one allocation per login costs nothing
        // beside an argon2 hash.
        Outcome::Form(form) => RouteFuture::Login {
            login: Box::pin(async move {
                let (answer, endpoint) = match form {
                    FormRoute::Token => (token::token(&*app, request, peer).await, Endpoint::Token),
                    FormRoute::Revoke => {
                        (revoke::revoke(&*app, request, peer).await, Endpoint::Revoke)
                    }
                    FormRoute::Introspect => (
                        introspect::introspect(&*app, request, peer).await,
                        Endpoint::Introspect,
                    ),
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
                let response = health::health(&*app).await;
                app.counters.request(Endpoint::Healthz, response.status());
                finish(access, &response);
                response
            }),
        },
    }
}

pin_project_lite::pin_project! {
    /// The future of [`route`]: one of four small states.
    #[project = RouteProj]
    pub(crate) enum RouteFuture<M, L, H> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The metrics' label of `path`: its route's, whether or not the route is
    /// served, else [`Endpoint::Other`], so no client can add series.
    fn endpoint_of(path: &str) -> Endpoint {
        route_of(path).map_or(Endpoint::Other, |route| route.endpoint)
    }

    #[test]
    fn paths_map_to_a_fixed_set_of_routes() {
        assert_eq!(endpoint_of("/users/me"), Endpoint::UsersMe);
        assert_eq!(endpoint_of("/docs/swagger-ui.css"), Endpoint::Docs);
        assert_eq!(endpoint_of("/users/me/"), Endpoint::Other);
        assert_eq!(endpoint_of("/anything/else"), Endpoint::Other);
    }

    #[test]
    fn each_path_is_in_the_table_once() {
        let paths: BTreeSet<&str> = ROUTES.iter().map(|route| route.path).collect();
        assert_eq!(paths.len(), ROUTES.len());
    }

    /// The paths of an OpenAPI document.
    fn documented(text: &str) -> BTreeSet<String> {
        let document: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
        document["paths"]
            .as_object()
            .expect("a paths object")
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn the_openapi_documents_list_the_routes_the_table_says() {
        let always = documented(include_str!("../openapi.json"));
        let sessions = documented(include_str!("../openapi_sessions.json"));
        let in_table = |with_sessions: bool| -> BTreeSet<String> {
            ROUTES
                .iter()
                .filter(|route| route.openapi)
                .filter(|route| with_sessions || route.when != When::Sessions)
                .map(|route| route.path.to_owned())
                .collect()
        };
        assert_eq!(always, in_table(false));
        let both: BTreeSet<String> = always.union(&sessions).cloned().collect();
        assert_eq!(both, in_table(true));
        // And each documented path with the method the table gives it.
        for (text, path) in [
            (include_str!("../openapi.json"), "/token"),
            (include_str!("../openapi.json"), "/users/me"),
            (include_str!("../openapi_sessions.json"), "/revoke"),
        ] {
            let document: serde_json::Value = serde_json::from_str(text).unwrap();
            let method = route_of(path).unwrap().method.name().to_ascii_lowercase();
            assert!(
                document["paths"][path][&method].is_object(),
                "{path} is documented with {method}"
            );
        }
    }
}
