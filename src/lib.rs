//! # password-bearer
//!
//! The OAuth2 *password* grant and *Bearer* token check of FastAPI's
//! tutorial "Simple OAuth2 with Password and Bearer", served directly on
//! hyper, with the tutorial's wire behaviour and real security: argon2id
//! password hashes, HS256 JWTs with expiry, and RFC 6749/6750 error fields.
//!
//! # Layout
//!
//! - [`server`]: the serving loop, [`serve`].
//! - [`app`]: the state ([`App`]) and its settings ([`Config`]).
//! - [`routes`]: routing and the `/token` and `/users/me` handlers.
//! - [`auth`]: the seed's chain, `current_user` then `current_active_user`.
//! - [`bearer`]: the `Authorization` header.
//! - [`form`]: the `/token` form and its validation errors.
//! - [`token`]: HS256 JWTs: issuing and every verification rule.
//! - [`password`]: argon2id hashes and the bounded verifier.
//! - [`users`]: the users file and the demo users.
//! - [`error`]: every error and its response, in one `match`.
//! - [`openapi`]: `/openapi.json` and `/docs`.
//! - [`config`]: the command line of the binary.
//! - [`log`]: log lines on stderr.

pub mod app;
pub mod auth;
pub mod bearer;
pub mod config;
pub mod error;
pub mod form;
pub mod log;
pub mod openapi;
pub mod password;
pub mod routes;
pub mod server;
pub mod token;
pub mod users;

pub use app::{App, Config};
pub use server::serve;
