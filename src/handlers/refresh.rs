//! The refresh grant: `POST /token` with `grant_type=refresh_token` (RFC
//! 6749 §6), handed over by `token.rs`; its answer is `token.rs`'s too.
//!
//! A refresh costs no password hash: the refresh token is checked against
//! its session's secret (an HMAC), the user is looked up to see that it
//! still exists, is active and has the password hash the session started
//! with (its fingerprint), and the session's counter moves on, so the
//! presented token is used up and the answer carries the next one. A used
//! token presented again means it was stolen: the session is revoked, and
//! with it every access token issued in it; except the token just used
//! up, retried once within the retry window, whose answer was perhaps
//! lost (see `sessions`). A user gone, disabled or whose password changed
//! ends the session the same way: re-enabled, or re-created under the
//! same name, the user starts again with no session.

use super::refused;
use super::revoke::revoke_session;
use super::token::token_response;
use crate::app::App;
use crate::auth::store_unavailable;
use crate::clock::unix_now;
use crate::error::ApiError;
use crate::form::TokenForm;
use crate::logging::{self, Peer, Quoted, LOGIN, LOGIN_REFUSED};
use crate::sessions::{Advance, RefreshToken, Revocation, Session};
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use std::net::SocketAddr;

/// `POST /token` with `grant_type=refresh_token`. Every failure counts
/// against the client's address, as a failed login does.
pub(super) async fn refresh<S: UserStore>(
    app: &App<S>,
    form: TokenForm,
    peer: Option<SocketAddr>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let Some(sessions) = &app.sessions else {
        // The form refuses the grant when sessions are off.
        return Err(ApiError::Internal);
    };
    let attempt = match app.limiter.admit_address(peer.map(|p| p.ip())).await {
        Ok(attempt) => attempt,
        Err(refused) => return Err(refused::refused(app, refused, "", peer)),
    };
    let now = unix_now();
    let presented = form.refresh_token.as_deref().and_then(RefreshToken::parse);
    let session = match presented {
        Some(token) => match sessions.store.get(token.session, now).await {
            Ok(session) => session.filter(|s| s.issued(&token)),
            Err(e) => {
                attempt.refund().await;
                return Err(store_unavailable(&e));
            }
        },
        None => None,
    };
    let (Some(token), Some(session)) = (presented, session) else {
        attempt.failed();
        return Err(ApiError::InvalidRefreshToken);
    };
    // The store's rule, on the copy read: no need to look the user up
    // for a token that is a reuse as it stands.
    if session.clone().rotate(token.counter, now, now) == Advance::Reused {
        // Used before (and not a retry within its window): whoever
        // presents it now, or presented it then, is not the session's
        // rightful holder.
        attempt.failed();
        return reused(app, &session, peer, now).await;
    }
    // The user must still exist, be allowed in, and have the password
    // the session started with. One set of users and keys for the rest
    // of the grant (see `App::reload`).
    let users_and_keys = app.users_and_keys();
    let user = match users_and_keys.users().find(&session.username).await {
        Ok(user) => user,
        Err(e) => {
            attempt.refund().await;
            return Err(store_unavailable(&e));
        }
    };
    let user = match user {
        Some(user) if !user.is_disabled() && session.started_with(user.hashed_password()) => user,
        other => {
            let why = match other {
                None => "user gone",
                Some(user) if user.is_disabled() => "user disabled",
                Some(_) => "password changed",
            };
            attempt.failed();
            return user_changed(app, &session, why, peer, now).await;
        }
    };
    // A scope may only narrow the session's grant; none asks for all of
    // it. What the user may no longer have is dropped.
    let session_scopes: Vec<&str> = session.scope.split(' ').filter(|s| !s.is_empty()).collect();
    let mut requested: Vec<&str> = Vec::new();
    for scope in &form.scopes {
        if !requested.contains(&scope.as_str()) {
            requested.push(scope);
        }
    }
    if requested.iter().any(|s| !session_scopes.contains(s)) {
        attempt.failed();
        return Err(ApiError::InvalidScope);
    }
    if form.scopes.is_empty() {
        requested = session_scopes;
    }
    let granted: Vec<&str> = requested
        .iter()
        .copied()
        .filter(|s| user.allows(s))
        .collect();

    let revoke_until = app.revoked_until(now);
    let retry_until = now.saturating_add(sessions.retry_secs);
    let (next, retried) = match sessions
        .store
        .advance(session.id, token.counter, now, retry_until, revoke_until)
        .await
    {
        Ok(Advance::Advanced) => (token.counter.saturating_add(1), false),
        // The token before the current one: the answer that carried
        // the current one never reached this client, so it gets the
        // next (and the lost one is used up).
        Ok(Advance::Retried) => (token.counter.saturating_add(2), true),
        Ok(Advance::Reused) => {
            // Another refresh with the same token got there first; the
            // store has revoked the session in the same step.
            attempt.failed();
            sessions.revocations.add(
                Revocation::Session(session.id, revoke_until),
                Some(&session.username),
                now,
            );
            return reused_answer(app, &session, peer);
        }
        Ok(_) => {
            attempt.failed();
            return Err(ApiError::InvalidRefreshToken);
        }
        Err(e) => {
            attempt.refund().await;
            return Err(store_unavailable(&e));
        }
    };
    attempt.refund().await;
    if app.login_log {
        logging::emit(
            LOGIN,
            format_args!(
                "refresh ok{} username={} peer={}",
                if retried {
                    " (the previous token, retried within its window)"
                } else {
                    ""
                },
                Quoted(user.username()),
                Peer(peer)
            ),
        );
    }
    token_response(
        app,
        &users_and_keys,
        user.username(),
        &requested,
        &granted,
        Some((&session, next)),
    )
}

/// A session whose user is gone, disabled or has another password
/// since it started (`why`): it is ended, with its access tokens, and
/// the answer is `invalid_grant` like any other bad refresh token. So
/// the user re-enabled, or re-created under the name, has no session
/// from before.
async fn user_changed<S>(
    app: &App<S>,
    session: &Session,
    why: &str,
    peer: Option<SocketAddr>,
    now: i64,
) -> Result<Response<Full<Bytes>>, ApiError> {
    revoke_session(app, session, now).await?;
    logging::emit(
        LOGIN_REFUSED,
        format_args!(
            "refresh refused, {why}: session ended username={} peer={}",
            Quoted(&session.username),
            Peer(peer)
        ),
    );
    Err(ApiError::InvalidRefreshToken)
}

/// A used-up refresh token presented again: the session is revoked, and
/// the answer is `invalid_grant` like any other bad refresh token.
async fn reused<S>(
    app: &App<S>,
    session: &Session,
    peer: Option<SocketAddr>,
    now: i64,
) -> Result<Response<Full<Bytes>>, ApiError> {
    revoke_session(app, session, now).await?;
    reused_answer(app, session, peer)
}

/// The log line and answer of a reuse, the session revoked.
fn reused_answer<S>(
    app: &App<S>,
    session: &Session,
    peer: Option<SocketAddr>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    app.counters.refresh_reused();
    logging::emit(
        LOGIN_REFUSED,
        format_args!(
            "refresh token reused: session revoked username={} peer={}",
            Quoted(&session.username),
            Peer(peer)
        ),
    );
    Err(ApiError::InvalidRefreshToken)
}
