//! `GET /users/me`, the seed's chain as FastAPI's tutorial writes it: the
//! bearer token (`oauth2_scheme`), [`current_user`], then
//! [`current_active_user`], then the user:
//!
//! ```text
//! bearer_token ─▶ current_user ─▶ current_active_user ─▶ the user's body
//!                 (token half,      (store half, after
//!                  in verify)        the wait, in answer)
//! ```
//!
//! Cut in two around its one wait, the user store's lookup: [`verify`]
//! runs while the request is routed, so that the future hyper keeps per
//! connection holds the claims across the `await`, not the request;
//! [`answer`] is that future's work. An embedder's own route calls the
//! same chain whole (`current_user`, then `current_active_user`).
//!
//! [`current_user`]: crate::auth::current_user

use crate::app::{App, UsersAndKeys};
use crate::auth::{current_active_user, user_named_by, verify_token};
use crate::bearer::bearer_bytes;
use crate::error::{json_response, ApiError};
use crate::token::Claims;
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::AUTHORIZATION;
use hyper::{Request, Response, StatusCode};
use std::sync::Arc;

/// The chain up to its wait: the `Authorization` header's bearer token,
/// then `current_user`'s first half, the token's claims under the users
/// and keys this request takes (and keeps to its end).
pub(super) fn verify<S: UserStore, B>(
    app: &App<S>,
    request: &Request<B>,
) -> Result<(Arc<Claims>, Arc<UsersAndKeys<S>>), ApiError> {
    // A scan of the few headers a request has costs less than
    // `HeaderMap::get`'s hash and probe; it finds the same, first, value.
    let authorization = request
        .headers()
        .iter()
        .find(|(name, _)| *name == AUTHORIZATION)
        .map(|(_, value)| value.as_bytes());
    let users_and_keys = app.users_and_keys();
    let token = bearer_bytes(authorization)?;
    let claims = verify_token(app, &users_and_keys, token)?;
    Ok((claims, users_and_keys))
}

/// The rest of the chain: `current_user`'s second half (the user the
/// claims name, from the store), `current_active_user`, and the user.
pub(super) async fn answer<S: UserStore>(
    claims: Arc<Claims>,
    users_and_keys: Arc<UsersAndKeys<S>>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let current = user_named_by(&users_and_keys, claims).await?;
    let current = current_active_user(current)?;
    Ok(json_response(
        StatusCode::OK,
        current.user.me_body().clone(),
    ))
}
