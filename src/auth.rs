//! The seed's dependency chain, as two functions called one after the other:
//! [`current_user`] (FastAPI's `get_current_user`) then
//! [`current_active_user`] (`get_current_active_user`).

use crate::app::App;
use crate::error::ApiError;
use crate::token;
use crate::users::User;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The user a bearer token names: the token must verify (signature,
/// algorithm, expiry) and its `sub` must be an existing user. Every failure
/// is the same [`ApiError::InvalidCredentials`], so a client learns nothing
/// about why.
pub fn current_user<'a>(app: &'a App, token: &str) -> Result<&'a Arc<User>, ApiError> {
    let claims = token::verify(&app.key, token, unix_now(), app.leeway_secs)
        .map_err(|_| ApiError::InvalidCredentials)?;
    app.users
        .get(&claims.sub)
        .ok_or(ApiError::InvalidCredentials)
}

/// The user, if not disabled; else [`ApiError::InactiveUser`].
pub fn current_active_user(user: &Arc<User>) -> Result<&Arc<User>, ApiError> {
    if user.is_disabled() {
        return Err(ApiError::InactiveUser);
    }
    Ok(user)
}

/// Seconds since the Unix epoch. A clock set before 1970 is broken; it
/// reads as 0 rather than panicking a request.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
