//! The seed's dependency chain, as functions called one after the other:
//! [`current_user`] (FastAPI's `get_current_user`), then
//! [`current_active_user`] (`get_current_active_user`), and, for routes that
//! need them, [`require_scopes`] (the scopes chapter's `SecurityScopes`).
//! Each returns an [`ApiError`] whose `into_response` is the contract's
//! answer, so an embedder's handler is three `?`s.

use crate::app::{App, UsersAndKeys};
use crate::clock::unix_now;
use crate::error::ApiError;
use crate::logging::{self, STORE_DOWN};
use crate::token::Claims;
use crate::users::{is_scope_token, StoreError, User, UserStore};
use std::sync::Arc;

/// A user authenticated by a bearer token, with the token's claims (its
/// granted scopes among them).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CurrentUser {
    /// The user the token names, as the store has it now.
    pub user: Arc<User>,
    /// The verified claims (shared with the verified-token cache).
    pub claims: Arc<Claims>,
}

/// The user a bearer token names: the token must verify (signature,
/// algorithm, expiry, under one of the app's keys), must not be revoked
/// (nor its session), and its `sub` must be an existing user. Every failure
/// is the same [`ApiError::InvalidCredentials`], so a client learns nothing
/// about why; a user store that cannot answer is
/// [`ApiError::Unavailable`] (503): the token may well be good. Both halves
/// use one set of keys and users (see [`App::reload`]).
pub async fn current_user<S: UserStore>(
    app: &App<S>,
    token: &str,
) -> Result<CurrentUser, ApiError> {
    let users_and_keys = app.users_and_keys();
    let verified = verify_token(app, &users_and_keys, token.as_bytes())?;
    user_named_by(&users_and_keys, verified).await
}

/// A verified token's claims, and its user when the store's answer for
/// this set of users is fixed ([`UserStore::fixed_user`]), found with the
/// token in the verified-token cache.
pub(crate) struct Verified {
    pub(crate) claims: Arc<Claims>,
    pub(crate) user: Option<Arc<User>>,
}

/// The first half of [`current_user`], synchronous: the token's claims
/// under `users_and_keys`' keys (and its user, when fixed). The routes call the halves apart so that the
/// future hyper keeps per connection holds the claims across the store's
/// `await`, not the request.
pub(crate) fn verify_token<S: UserStore>(
    app: &App<S>,
    users_and_keys: &UsersAndKeys<S>,
    token: &[u8],
) -> Result<Verified, ApiError> {
    app.tokens
        .verify(
            (users_and_keys, users_and_keys.users()),
            users_and_keys.generation,
            token,
            unix_now(),
            app.leeway_secs,
            app.revocations(),
        )
        .map(|(claims, user)| Verified { claims, user })
        .map_err(|_| ApiError::InvalidCredentials)
}

/// The second half of [`current_user`]: the user verified claims name, in
/// `users_and_keys`' store (unless the cache had it, fixed).
pub(crate) async fn user_named_by<S: UserStore>(
    users_and_keys: &UsersAndKeys<S>,
    Verified { claims, user }: Verified,
) -> Result<CurrentUser, ApiError> {
    if let Some(user) = user {
        return Ok(CurrentUser { user, claims });
    }
    let user = users_and_keys
        .users()
        .find(&claims.sub)
        .await
        .map_err(|e| store_unavailable(&e))?
        .ok_or(ApiError::InvalidCredentials)?;
    Ok(CurrentUser { user, claims })
}

/// Seconds a client is asked to wait when the user store cannot answer.
const STORE_RETRY_AFTER_SECS: u64 = 2;

/// The answer to a request the user store could not serve: 503, and a
/// tallied log line (a store down fails every request, and one line a
/// minute says so as well as thousands).
pub(crate) fn store_unavailable(error: &StoreError) -> ApiError {
    logging::tally(STORE_DOWN, format_args!("password-bearer: {error}"));
    ApiError::Unavailable(STORE_RETRY_AFTER_SECS)
}

/// The user, if not disabled; else [`ApiError::InactiveUser`].
pub fn current_active_user(current: CurrentUser) -> Result<CurrentUser, ApiError> {
    if current.user.is_disabled() {
        return Err(ApiError::InactiveUser);
    }
    Ok(current)
}

/// Whether the token grants every scope in `required`; else
/// [`ApiError::NotEnoughPermissions`] (401, `WWW-Authenticate: Bearer
/// scope="..."` naming them all, as FastAPI's scopes chapter answers).
pub fn require_scopes(current: &CurrentUser, required: &[&str]) -> Result<(), ApiError> {
    if required
        .iter()
        .all(|need| current.claims.scopes().any(|have| have == *need))
    {
        return Ok(());
    }
    // Only scope tokens may reach the header; a route that requires
    // anything else can never be satisfied anyway.
    let named: Vec<&str> = required
        .iter()
        .copied()
        .filter(|s| is_scope_token(s))
        .collect();
    Err(ApiError::NotEnoughPermissions(named.join(" ")))
}
