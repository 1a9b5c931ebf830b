//! `POST /token`: the password grant of FastAPI's tutorial (RFC 6749
//! §4.3), and the answer every grant gives, an access token and, with
//! sessions on, a refresh token (RFC 6749 §5.1). A form with
//! `grant_type=refresh_token` is the refresh grant's (`refresh.rs`); one
//! with `grant_type=client_credentials`, where clients are served, the
//! client credentials grant's (`client_credentials.rs`).
//!
//! The password grant's order: the form read; the attempt admitted by the
//! limiter (throttled: 429 at once, before any lookup or hash); the user
//! looked up and the password verified by the bounded verifier (a wrong
//! one padded to the slowest hash's time); the granted scopes; with
//! sessions on, a session started; the tokens issued.

use super::body::read_form;
use super::{client_credentials, refresh, refused};
use crate::app::{App, UsersAndKeys, MAX_PASSWORD_BYTES};
use crate::auth::store_unavailable;
use crate::clock::unix_now;
use crate::counters::Login;
use crate::error::{json_response, ApiError};
use crate::limiter::Admitted;
use crate::logging::{self, Peer, Quoted, LOGIN, LOGIN_REFUSED};
use crate::password::Busy;
use crate::sessions::{Session, TokenId};
use crate::token;
use crate::users::{User, UserStore};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use std::net::SocketAddr;

/// `POST /token`: the password grant.
pub(super) async fn token<S, B>(
    app: &App<S>,
    request: Request<B>,
    peer: Option<SocketAddr>,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    S: UserStore,
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (form, authorization) = read_form(app, request).await?;
    if form.is_client_credentials() {
        return client_credentials::client_credentials(app, form, authorization, peer).await;
    }
    if form.is_refresh() {
        let answer = refresh::refresh(app, form, peer).await;
        app.counters.refresh(&answer);
        return answer;
    }
    let ip = peer.map(|p| p.ip());
    if form.password.len() > MAX_PASSWORD_BYTES {
        // Never hashed, and never counted: a failure that costs nothing
        // would be a free way to fill the throttle's tables. A throttled
        // client still gets its 429, which tells it nothing new.
        if let Err(refused) = app.limiter.check(&form.username, ip).await {
            refused.count(&app.counters);
            return Err(refused::refused(app, refused, &form.username, peer));
        }
        app.counters.login(Login::Failed);
        log_login(app, "failed", &form.username, peer);
        return Err(ApiError::IncorrectLogin);
    }
    // Admitted before any lookup or hash, in flight against the username
    // and the address; throttled, answered at once, right password or
    // not, so a guesser gains nothing and costs us nothing. Past the
    // attempts in flight a key allows, it waits for its turn, then for
    // a hash slot, both within the login queue's one wait.
    let deadline = app.verifier.deadline();
    let attempt = match app.limiter.admit(&form.username, ip, deadline).await {
        Ok(attempt) => Unhashed(Some(attempt)),
        Err(refused) => {
            refused.count(&app.counters);
            return Err(refused::refused(app, refused, &form.username, peer));
        }
    };
    // One set of users and keys for the whole login (see `App::reload`).
    let users_and_keys = app.users_and_keys();
    let user = match users_and_keys.users().find(&form.username).await {
        Ok(user) => user,
        Err(e) => {
            attempt.refund().await;
            return Err(store_unavailable(&e));
        }
    };
    let hash = user.as_ref().map(|u| u.hashed_password().clone());
    let slot = match app.verifier.slot_by(deadline).await {
        Ok(slot) => slot,
        Err(Busy { retry_after }) => {
            attempt.refund().await;
            app.counters.login(Login::Busy);
            logging::tally(
                LOGIN_REFUSED,
                format_args!("login refused: no password hash slot within the login queue's wait"),
            );
            return Err(ApiError::Unavailable(retry_after.as_secs()));
        }
    };
    // The hash starts at the next poll, with no `.await` before it: from
    // here on, dropped unsettled, the attempt counts as failed.
    let attempt = attempt.hashing();
    let verdict = app
        .verifier
        .verify_in(slot, hash, form.password.as_bytes())
        .await;
    let Some(user) = user.filter(|_| verdict.verified) else {
        // Settled at once, so that the logins waiting for their turn
        // behind this one learn of it; answered after the padding, so
        // that the answer's time tells nothing of the user's hash.
        attempt.failed();
        app.counters.login(Login::Failed);
        log_login(app, "failed", &form.username, peer);
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
    let session = match start_session(app, &user, &granted).await {
        Ok(session) => session,
        Err(e) => {
            attempt.refund().await;
            return Err(e);
        }
    };
    attempt.succeeded().await;
    app.counters.login(Login::Ok);
    log_login(app, "ok", &form.username, peer);
    token_response(
        app,
        &users_and_keys,
        user.username(),
        &requested,
        &granted,
        session.as_ref().map(|s| (s, 0)),
    )
}

/// An admitted login until its hash starts. Dropped before then (its
/// client gone while it waited for the user store or a hash slot), it is
/// refunded: it cost no hash, so it is nobody's failure, and a flood of
/// right passwords whose clients leave does not lock their user out. From
/// its hash on ([`Unhashed::hashing`]), dropped unsettled it counts as a
/// failure, as any attempt that may have cost a hash.
struct Unhashed<'a>(Option<Admitted<'a>>);

impl<'a> Unhashed<'a> {
    /// The attempt, its hash about to start.
    fn hashing(mut self) -> Admitted<'a> {
        self.0.take().expect("taken only here or on drop")
    }

    /// [`Admitted::refund`].
    async fn refund(mut self) {
        if let Some(attempt) = self.0.take() {
            attempt.refund().await;
        }
    }
}

impl Drop for Unhashed<'_> {
    fn drop(&mut self) {
        if let Some(attempt) = self.0.take() {
            attempt.refund_now();
        }
    }
}

/// A new session for `user`'s password login, when sessions are on.
async fn start_session<S>(
    app: &App<S>,
    user: &User,
    granted: &[&str],
) -> Result<Option<Session>, ApiError> {
    let Some(sessions) = &app.sessions else {
        return Ok(None);
    };
    let now = unix_now();
    let session = Session::start(
        user.username(),
        user.hashed_password(),
        &granted.join(" "),
        now,
        now.saturating_add(sessions.ttl_secs),
    )
    .map_err(|e| store_unavailable(&e))?;
    sessions
        .store
        .create(session.clone())
        .await
        .map_err(|e| store_unavailable(&e))?;
    Ok(Some(session))
}

/// RFC 6749 §5.1's successful token response.
#[derive(Serialize)]
pub(super) struct TokenResponse<'a> {
    pub(super) access_token: &'a str,
    pub(super) token_type: &'static str,
    pub(super) expires_in: i64,
    /// With sessions on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) refresh_token: Option<&'a str>,
    /// Present when the granted scopes differ from the requested ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) scope: Option<&'a str>,
}

/// The answer to a grant for `username`: an access token for `granted`
/// signed with `keys`' signer and carrying its profile's `iss` and `aud`,
/// and with a session, its `jti` and `sid` and the refresh token of number
/// `counter`. `scope` is shown when `granted` is not `requested` (RFC 6749
/// §5.1).
pub(super) fn token_response<S>(
    app: &App<S>,
    keys: &UsersAndKeys<S>,
    username: &str,
    requested: &[&str],
    granted: &[&str],
    session: Option<(&Session, u32)>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let scope = granted.join(" ");
    let claimed = (!scope.is_empty()).then_some(scope.as_str());
    let now = unix_now();
    // A session's tokens are revocable by their `jti`; RFC 9068 wants one
    // in every token.
    #[cfg(feature = "signing")]
    let wants_jti = session.is_some() || keys.profile().issuer.is_some();
    #[cfg(not(feature = "signing"))]
    let wants_jti = session.is_some();
    let jti = match wants_jti {
        true => Some(
            TokenId::random()
                .map_err(|e| store_unavailable(&e))?
                .encode(),
        ),
        false => None,
    };
    let sid = session.map(|(session, _)| session.id.encode());
    #[cfg(feature = "signing")]
    let access_token = token::issue_access(
        keys.signer(),
        keys.profile(),
        username,
        claimed,
        (jti.as_deref(), sid.as_deref()),
        now,
        app.token_ttl_secs,
    );
    #[cfg(not(feature = "signing"))]
    let access_token = match (jti.as_deref(), sid.as_deref()) {
        (Some(jti), Some(sid)) => token::issue_in_session(
            keys.key(),
            username,
            claimed,
            (jti, sid),
            now,
            app.token_ttl_secs,
        ),
        _ => token::issue_scoped(keys.key(), username, claimed, now, app.token_ttl_secs),
    };
    let refresh_token = session.map(|(session, counter)| session.refresh_token(counter));
    let body = serde_json::to_vec(&TokenResponse {
        access_token: &access_token,
        token_type: "bearer",
        expires_in: app.token_ttl_secs,
        refresh_token: refresh_token.as_deref(),
        scope: (granted != requested).then_some(scope.as_str()),
    })
    .expect("strings and integers always serialize");
    Ok(json_response(StatusCode::OK, body.into()))
}

/// The login log's line, when it is on.
fn log_login<S>(app: &App<S>, outcome: &str, username: &str, peer: Option<SocketAddr>) {
    if app.login_log {
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
