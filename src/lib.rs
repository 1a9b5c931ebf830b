//! # password-bearer
//!
//! The OAuth2 *password* grant and *Bearer* token check of FastAPI's
//! tutorial "Simple OAuth2 with Password and Bearer", served directly on
//! hyper, with the tutorial's wire behaviour and real security: argon2id
//! password hashes, HS256 JWTs with expiry, scopes, and RFC 6749/6750 error
//! fields.
//!
//! Use it as a server ([`serve`], or the `password-bearer` binary; with the
//! `tls` feature, `serve_tls` serves HTTPS with rustls from a reloadable
//! `tls::Tls`), or mount its routes in your own hyper service with
//! [`App::handle`] and protect your own routes with the chain in [`auth`]:
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use hyper::Request;
//! use password_bearer::auth::{current_active_user, current_user, require_scopes};
//! use password_bearer::{bearer::bearer_token, token::SecretKey, users::Users, App, Config};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = App::new(Config::new(Users::demo(), SecretKey::random()?));
//!
//! // POST /token, without a socket.
//! let login = Request::post("/token")
//!     .header("content-type", "application/x-www-form-urlencoded")
//!     .body(Full::new(Bytes::from("username=johndoe&password=secret&scope=items")))?;
//! let response = app.handle(login, None).await;
//! assert_eq!(response.status(), 200);
//! let body = response.into_body().collect().await?.to_bytes();
//! let token: serde_json::Value = serde_json::from_slice(&body)?;
//! let header = format!("Bearer {}", token["access_token"].as_str().unwrap());
//!
//! // What a handler of your own does: three steps, each error a response.
//! let token = bearer_token(Some(header.as_bytes()))?;
//! let current = current_active_user(current_user(&app, token).await?)?;
//! require_scopes(&current, &["items"])?;
//! assert_eq!(current.user.username(), "johndoe");
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - [`server`]: the serving layer, [`serve`] and its kin: the accept
//!   loop, the connection caps (in total and per address), the request
//!   timeout, graceful shutdown, the panic guard, hyper's glue, the access
//!   log, TLS and the `/metrics` listener.
//! - [`app`]: the state ([`App`]), its settings ([`Config`]), the users
//!   and keys a request takes ([`app::UsersAndKeys`]); every `impl App`.
//! - `handlers`: one file per route (`/token`, the refresh grant,
//!   `/revoke`, `/users/me`, `/healthz`, the docs), and the one route
//!   table they are reached through.
//! - [`auth`]: the seed's chain, `current_user` then `current_active_user`,
//!   and `require_scopes`.
//! - [`bearer`]: the `Authorization` header.
//! - [`form`]: the `/token` form, urlencoded or multipart, and its
//!   validation errors; `multipart` reads `multipart/form-data` bodies.
//! - [`token`]: JWTs: HS256 keys, (the `signing` feature) EdDSA and ES256
//!   keys, issuing and every verification rule; `token_cache` keeps
//!   recently verified tokens, in a fixed number of buckets.
//! - `jwks` (the `signing` feature): a JWKS document parsed, and our tokens
//!   verified from it alone, for a service that only verifies.
//! - [`password`]: argon2id hashes and the bounded verifier.
//! - [`sessions`]: refresh tokens, the [`sessions::SessionStore`] trait,
//!   its in-memory store and (the `state-dir` feature) its store on disk
//!   behind `--state-dir`, `sessions::state_dir`, and what was revoked
//!   (the refresh grant and `POST /revoke` are handlers).
//! - [`throttle`]: counting failed logins per username and per address;
//!   `addr` says how the per-address limits count an address; `limiter`
//!   picks the counts in use (in process, or in Redis).
//! - `redis` (the `redis` feature): sessions, revocations and failed-login
//!   counts in Redis, shared by every instance (`--redis-url`).
//! - `tls` (the `tls` feature; `server::tls`): the certificate and key,
//!   reloadable, and the handshake before HTTP/1; served by `serve_tls`.
//! - [`clients`]: the clients (machines with an id and a secret) from the
//!   clients file, their secrets' stored form, and their authentication.
//! - [`users`]: the [`users::UserStore`] trait, the users file, the demo
//!   users; `users::postgres` (the `postgres` feature) keeps them in a
//!   PostgreSQL table that several instances share.
//! - [`error`]: every error and its response, in one `match`.
//! - [`openapi`]: `/openapi.json` and `/docs`.
//! - `logging`: what the server logs, through the `log` facade, repeated
//!   events tallied.
//! - [`metrics`] (`server::metrics`): the Prometheus series
//!   ([`App::metrics`]) and [`serve_metrics`], the `/metrics` listener of
//!   its own.
//!
//! The [`embedding_guide`] walks through embedding step by step; the
//! repository's `ARCHITECTURE.md` is the code map.

#![deny(missing_docs)]

mod addr;
pub mod app;
pub mod auth;
pub mod bearer;
pub mod clients;
mod clock;
mod counters;
pub mod error;
pub mod form;
mod handlers;
#[cfg(feature = "signing")]
pub mod jwks;
mod limiter;
mod logging;
mod multipart;
pub mod openapi;
pub mod password;
#[cfg(feature = "redis")]
pub mod redis;
pub mod server;
pub mod sessions;
pub mod throttle;
pub mod token;
mod token_cache;
pub mod users;

/// The embedding guide (`docs/embedding.md`): mounting the routes in a
/// service of your own, protecting your routes, your own user store, the
/// dev-profile setting your `Cargo.toml` needs. Its code runs as doctests.
#[doc = include_str!("../docs/embedding.md")]
pub mod embedding_guide {}

/// Where the routes were until 0.1: nothing public lived here
/// ([`App::handle`] is `App`'s); the handlers are now one file per route
/// in the crate's `src/handlers/`, behind one route table.
#[deprecated(note = "no public item lived here; App::handle is App's, the handlers are private")]
pub mod routes {}

pub use app::{App, Config};
pub use server::metrics;
pub use server::serve;
pub use server::serve_metrics;
#[cfg(feature = "tls")]
pub use server::tls;
#[cfg(feature = "tls")]
pub use server::{serve_tls, serve_tls_with};
