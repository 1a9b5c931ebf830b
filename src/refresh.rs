//! Sessions on the wire: the tokens a grant answers with, the refresh grant
//! (`POST /token` with `grant_type=refresh_token`, RFC 6749 §6) and
//! `POST /revoke` (RFC 7009).
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

use crate::app::App;
use crate::auth::store_unavailable;
use crate::clock::unix_now;
use crate::error::{json_response, ApiError};
use crate::form::TokenForm;
use crate::logging::{self, Peer, Quoted, LOGIN, LOGIN_REFUSED};
use crate::sessions::{Advance, RefreshToken, Revocation, Session, TokenId};
use crate::token::{self, SecretKey};
use crate::users::{User, UserStore};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::{Response, StatusCode};
use serde::Serialize;
use std::net::SocketAddr;

/// RFC 6749 §5.1's successful token response.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    /// With sessions on.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    /// Present when the granted scopes differ from the requested ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

impl<S: UserStore> App<S> {
    /// The answer to a grant for `username`: an access token for `granted`
    /// signed with `key`, and with a session, its `jti` and `sid` and the
    /// refresh token of number `counter`. `scope` is shown when `granted`
    /// is not `requested` (RFC 6749 §5.1).
    pub(crate) fn token_response(
        &self,
        key: &SecretKey,
        username: &str,
        requested: &[&str],
        granted: &[&str],
        session: Option<(&Session, u32)>,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let scope = granted.join(" ");
        let claimed = (!scope.is_empty()).then_some(scope.as_str());
        let now = unix_now();
        let (access_token, refresh_token) = match session {
            Some((session, counter)) => {
                let jti = TokenId::random().map_err(|e| store_unavailable(&e))?;
                let access = token::issue_in_session(
                    key,
                    username,
                    claimed,
                    (&jti.encode(), &session.id.encode()),
                    now,
                    self.token_ttl_secs,
                );
                (access, Some(session.refresh_token(counter)))
            }
            None => {
                let access = token::issue_scoped(key, username, claimed, now, self.token_ttl_secs);
                (access, None)
            }
        };
        let body = serde_json::to_vec(&TokenResponse {
            access_token: &access_token,
            token_type: "bearer",
            expires_in: self.token_ttl_secs,
            refresh_token: refresh_token.as_deref(),
            scope: (granted != requested).then_some(scope.as_str()),
        })
        .expect("strings and integers always serialize");
        Ok(json_response(StatusCode::OK, body.into()))
    }

    /// A new session for `user`'s password login, when sessions are on.
    pub(crate) async fn start_session(
        &self,
        user: &User,
        granted: &[&str],
    ) -> Result<Option<Session>, ApiError> {
        let Some(sessions) = &self.sessions else {
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

    /// `POST /token` with `grant_type=refresh_token`. Every failure counts
    /// against the client's address, as a failed login does.
    pub(crate) async fn refresh(
        &self,
        form: TokenForm,
        peer: Option<SocketAddr>,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let Some(sessions) = &self.sessions else {
            // The form refuses the grant when sessions are off.
            return Err(ApiError::Internal);
        };
        let attempt = match self.throttle.admit_address(peer.map(|p| p.ip())).await {
            Ok(attempt) => attempt,
            Err(refused) => return Err(self.refused(refused, "", peer)),
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
            return self.reused(&session, peer, now).await;
        }
        // The user must still exist, be allowed in, and have the password
        // the session started with. One set of users and keys for the rest
        // of the grant (see `App::reload`).
        let loaded = self.loaded();
        let user = match loaded.users().find(&session.username).await {
            Ok(user) => user,
            Err(e) => {
                attempt.refund().await;
                return Err(store_unavailable(&e));
            }
        };
        let user = match user {
            Some(user) if !user.is_disabled() && session.started_with(user.hashed_password()) => {
                user
            }
            other => {
                let why = match other {
                    None => "user gone",
                    Some(user) if user.is_disabled() => "user disabled",
                    Some(_) => "password changed",
                };
                attempt.failed();
                return self.user_changed(&session, why, peer, now).await;
            }
        };
        // A scope may only narrow the session's grant; none asks for all of
        // it. What the user may no longer have is dropped.
        let session_scopes: Vec<&str> =
            session.scope.split(' ').filter(|s| !s.is_empty()).collect();
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

        let revoke_until = self.revoked_until(now);
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
                return self.reused_answer(&session, peer);
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
        if self.login_log {
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
        self.token_response(
            loaded.key(),
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
    async fn user_changed(
        &self,
        session: &Session,
        why: &str,
        peer: Option<SocketAddr>,
        now: i64,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        self.revoke_session(session, now).await?;
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
    async fn reused(
        &self,
        session: &Session,
        peer: Option<SocketAddr>,
        now: i64,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        self.revoke_session(session, now).await?;
        self.reused_answer(session, peer)
    }

    /// The log line and answer of a reuse, the session revoked.
    fn reused_answer(
        &self,
        session: &Session,
        peer: Option<SocketAddr>,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        self.counters.refresh_reused();
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

    /// How long a session revoked at `now` stays on the deny-list: until the
    /// last access token it may have issued has expired.
    fn revoked_until(&self, now: i64) -> i64 {
        now.saturating_add(self.token_ttl_secs)
            .saturating_add(self.leeway_secs)
    }

    /// Revokes `session` and every access token issued in it: in the store
    /// and in the deny-list, until the last of them has expired.
    async fn revoke_session(&self, session: &Session, now: i64) -> Result<(), ApiError> {
        let Some(sessions) = &self.sessions else {
            return Ok(());
        };
        let until = self.revoked_until(now);
        sessions
            .store
            .revoke_session(session.id, &session.username, until)
            .await
            .map_err(|e| store_unavailable(&e))?;
        sessions.revocations.add(
            Revocation::Session(session.id, until),
            Some(&session.username),
            now,
        );
        Ok(())
    }

    /// Ends every session of each of `usernames`, with their access
    /// tokens, when awaited: a reload removed, disabled or gave another
    /// password to each (see [`App::reload`]). Awaited where it is called
    /// (no task of its own: each task type costs the binary its own copy
    /// of tokio's task code). A store that fails stops it at once, so that
    /// a store down delays the caller by one call's deadline: the sessions
    /// left are refused at their next refresh, which looks at the user too.
    pub(crate) fn end_sessions_of(
        &self,
        usernames: Vec<String>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let sessions = self
            .sessions
            .as_ref()
            .map(|s| (s.store.clone(), s.revocations.clone()));
        let until = self.revoked_until(unix_now());
        let login_log = self.login_log;
        async move {
            let Some((store, revocations)) = sessions else {
                return;
            };
            for (done, username) in usernames.iter().enumerate() {
                let ended = match store.end_sessions_of(username.clone(), until).await {
                    Ok(ended) => ended,
                    Err(e) => {
                        logging::emit(
                            logging::STORE_DOWN,
                            format_args!(
                                "password-bearer: the sessions of {} users were not ended by \
                                 the reload ({e}); each is refused at its next refresh",
                                usernames.len() - done
                            ),
                        );
                        return;
                    }
                };
                if login_log && !ended.is_empty() {
                    logging::emit(
                        LOGIN,
                        format_args!(
                            "sessions ended by the reload: {} username={}",
                            ended.len(),
                            Quoted(username)
                        ),
                    );
                }
                let now = unix_now();
                for id in ended {
                    revocations.add(Revocation::Session(id, until), Some(username), now);
                }
            }
        }
    }

    /// `POST /revoke` (RFC 7009): a refresh token ends its session, an
    /// access token ends itself; 200 with an empty body whatever the token
    /// was, unknown or already revoked included. The hint is not needed:
    /// the two kinds of token cannot be mistaken for each other.
    pub(crate) async fn revoke(&self, token: &str) -> Result<Response<Full<Bytes>>, ApiError> {
        let Some(sessions) = &self.sessions else {
            return Err(ApiError::NotFound);
        };
        let now = unix_now();
        if let Some(refresh) = RefreshToken::parse(token) {
            let session = sessions
                .store
                .get(refresh.session, now)
                .await
                .map_err(|e| store_unavailable(&e))?;
            // Any token the session issued, used up or current, ends it.
            if let Some(session) = session.filter(|s| s.issued(&refresh)) {
                self.revoke_session(&session, now).await?;
            }
        } else if let Ok(claims) =
            token::verify_any(self.loaded().keys(), token, now, self.leeway_secs)
        {
            // A token without `jti` (minted elsewhere) names nothing to
            // revoke; it lives until it expires.
            if let Some(jti) = claims.jti.as_deref().and_then(TokenId::decode) {
                let until = claims.exp.saturating_add(self.leeway_secs);
                sessions
                    .store
                    .revoke_token(jti, &claims.sub, until)
                    .await
                    .map_err(|e| store_unavailable(&e))?;
                sessions
                    .revocations
                    .add(Revocation::Token(jti, until), Some(&claims.sub), now);
            }
        }
        let mut response = Response::new(Full::new(Bytes::new()));
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }
}
