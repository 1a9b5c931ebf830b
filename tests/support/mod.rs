//! Shared test machinery: an in-process server on `127.0.0.1:0` that stops
//! when dropped, a raw HTTP/1.1 client that shows the exact bytes the server
//! sent, and HS256 helpers to decode our tokens and forge others.
//!
//! The client is hand-written rather than hyper's: the contract is about
//! bytes on the wire (header names, duplicates, exact bodies, when the
//! server closes), which a full client would normalise away.
//!
//! Tests import everything from here (`use crate::support::*;`); the files
//! below are where each piece lives.

mod asserts; // the contract's exact bodies and the assert_* that compare responses with them
mod http; // the raw HTTP/1.1 client: Response, Conn, request/get/post_token, loopback sources, login
mod items; // an embedder's /users/me/items route behind the items scope, and logins asking for scopes
mod jwt; // HS256 by hand: b64, sign/sign_with a forged token, decode_verified, token_claims
#[cfg(any(feature = "postgres", feature = "redis"))]
mod processes; // Frozen: engines stopped with SIGSTOP until dropped
mod server; // TestServer and the start* functions, the test key, users files

pub(crate) use asserts::*;
pub(crate) use http::*;
pub(crate) use items::*;
pub(crate) use jwt::*;
#[cfg(any(feature = "postgres", feature = "redis"))]
pub(crate) use processes::*;
pub(crate) use server::*;
