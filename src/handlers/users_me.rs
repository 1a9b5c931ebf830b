//! `GET /users/me`, the seed's chain as FastAPI's tutorial writes it: the
//! bearer token (`oauth2_scheme`), [`current_user`], then
//! [`current_active_user`], then the user:
//!
//! ```text
//! verify:  bearer_token (the header) → current_user, token half (the claims)
//!            … the wait: the user store's lookup …
//! answer:  current_user, store half (the user) → current_active_user → the body
//! ```
//!
//! Cut in two around that wait: [`verify`] runs while the request is
//! routed, so that the future hyper keeps per connection holds the claims
//! across the `await`, not the request; [`answer`] is that future. An
//! embedder's own route calls the same chain whole (`current_user`, then
//! `current_active_user`).
//!
//! [`current_user`]: crate::auth::current_user

use crate::app::{App, UsersAndKeys};
use crate::auth::{current_active_user, user_named_by, verify_token, Verified};
use crate::bearer::bearer_bytes;
use crate::counters::Endpoint;
use crate::error::{json_response, ApiError};
use crate::server::access_log::{finish, AccessEntry};
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::AUTHORIZATION;
use hyper::{Request, Response, StatusCode};
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

/// The chain up to its wait: the `Authorization` header's bearer token,
/// then `current_user`'s first half, the token's claims under the users
/// and keys this request takes (and keeps to its end).
#[inline]
pub(super) fn verify<S: UserStore, B>(
    app: &App<S>,
    request: &Request<B>,
) -> Result<(Verified, Arc<UsersAndKeys<S>>), ApiError> {
    // A scan of the few headers a request has costs less than
    // `HeaderMap::get`'s hash and probe; it finds the same, first, value.
    let authorization = request
        .headers()
        .iter()
        .find(|(name, _)| *name == AUTHORIZATION)
        .map(|(_, value)| value.as_bytes());
    let users_and_keys = app.users_and_keys();
    let verified =
        bearer_bytes(authorization).and_then(|token| verify_token(app, &users_and_keys, token))?;
    Ok((verified, users_and_keys))
}

/// The rest of the chain, the future hyper keeps: `current_user`'s second
/// half (the user the claims name, from the store), then
/// `current_active_user`, then the user's body; counted and logged as the
/// dispatcher counts and logs every answer. The whole future is this one
/// `async` block, returned by a plain function: an `async` block of its
/// own inside the dispatcher's cost about 100 instructions per request,
/// and an `async fn`, which moves its arguments once more at its first
/// poll, 10 (`benches/instructions.sh`).
#[allow(clippy::manual_async_fn)]
pub(super) fn answer<S, A>(
    app: A,
    verified: Verified,
    users_and_keys: Arc<UsersAndKeys<S>>,
    access: Option<Box<AccessEntry>>,
) -> impl Future<Output = Response<Full<Bytes>>>
where
    S: UserStore,
    A: Deref<Target = App<S>>,
{
    async move {
        let response = match user_named_by(&users_and_keys, verified)
            .await
            .and_then(current_active_user)
        {
            Ok(current) => json_response(StatusCode::OK, current.user.me_body().clone()),
            Err(e) => e.into_response(),
        };
        app.counters.request(Endpoint::UsersMe, response.status());
        finish(access, &response);
        response
    }
}
