//! `POST /revoke` (RFC 7009): a refresh token ends its session, an access
//! token ends itself; and revoking a session, which the refresh grant
//! does too (a reuse, a user changed). With the `clients` feature, a
//! request with client credentials (Basic, or `client_secret` in the form)
//! is a client's: it must authenticate, and may revoke only the tokens
//! issued to it.

use super::body::{body_error, read_body};
#[cfg(feature = "clients")]
use super::client_auth;
use crate::app::App;
use crate::auth::store_unavailable;
#[cfg(feature = "clients")]
use crate::clients::Client;
use crate::clock::unix_now;
use crate::error::ApiError;
use crate::form::parse_revoke_body;
#[cfg(feature = "clients")]
use crate::logging::{self, Peer, Quoted, AUDIT};
use crate::sessions::{RefreshToken, Revocation, Session, TokenId};
use crate::token;
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::{Request, Response};
use std::net::SocketAddr;

/// `POST /revoke`: the body read as a form, the client authenticated if
/// it sent credentials (the `clients` feature: then `revoke_own`), then
/// [`revoke_token`].
pub(super) async fn revoke<S: UserStore, B>(
    app: &App<S>,
    request: Request<B>,
    // For the clients' throttle and audit lines.
    #[cfg_attr(not(feature = "clients"), allow(unused_variables))] peer: Option<SocketAddr>,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let read = read_body(app, request).await?;
    let content_type = read.content_type.as_ref().map(HeaderValue::as_bytes);
    let form = parse_revoke_body(content_type, &read.body).map_err(body_error)?;
    #[cfg(feature = "clients")]
    if let Some(client) = client_auth::authenticate(
        app,
        read.authorization.as_ref(),
        (form.client_id.as_deref(), form.client_secret.as_deref()),
        peer,
    )
    .await?
    {
        return revoke_own(app, &form.token, &client, peer).await;
    }
    revoke_token(app, &form.token).await
}

/// `POST /revoke` (RFC 7009): a refresh token ends its session, an
/// access token ends itself; 200 with an empty body whatever the token
/// was, unknown or already revoked included. The hint is not needed:
/// the two kinds of token cannot be mistaken for each other.
async fn revoke_token<S: UserStore>(
    app: &App<S>,
    token: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let Some(sessions) = &app.sessions else {
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
            revoke_session(app, &session, now).await?;
        }
    } else if let Ok(claims) = token::verify_with(
        &app.users_and_keys().verification(),
        token,
        now,
        app.leeway_secs,
    ) {
        // A token without `jti` (minted elsewhere) names nothing to
        // revoke; it lives until it expires.
        if let Some(jti) = claims.jti.as_deref().and_then(TokenId::decode) {
            let until = claims.exp.saturating_add(app.leeway_secs);
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
    Ok(revoked())
}

/// RFC 7009 §2.2's answer: 200, an empty body, never stored.
fn revoked() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /revoke` by an authenticated `client`: [`revoke_token`] for a
/// token issued to it, or one that is not good (200, as for anyone); a
/// good token that is not its own (a session's refresh token, a user's
/// access token, another client's) is refused, 400 `unauthorized_client`,
/// and stays good. An access token of its own is verified twice, here and
/// in [`revoke_token`]: one more HMAC, on a rare request.
#[cfg(feature = "clients")]
async fn revoke_own<S: UserStore>(
    app: &App<S>,
    token: &str,
    client: &Client,
    peer: Option<SocketAddr>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let Some(sessions) = &app.sessions else {
        return Err(ApiError::NotFound);
    };
    let now = unix_now();
    if let Some(refresh) = RefreshToken::parse(token) {
        let session = sessions
            .store
            .get(refresh.session, now)
            .await
            .map_err(|e| store_unavailable(&e))?;
        // A session is a user's, never a client's; a refresh token no
        // session issued names nothing to revoke.
        if session.is_some_and(|s| s.issued(&refresh)) {
            return Err(not_its_token(client, peer));
        }
        return Ok(revoked());
    }
    let claims = token::verify_with(
        &app.users_and_keys().verification(),
        token,
        now,
        app.leeway_secs,
    );
    if claims.is_ok_and(|claims| !(claims.client_credentials && claims.sub == client.client_id())) {
        return Err(not_its_token(client, peer));
    }
    revoke_token(app, token).await
}

/// A client's revocation of a token not its own: one audit line, 400.
#[cfg(feature = "clients")]
fn not_its_token(client: &Client, peer: Option<SocketAddr>) -> ApiError {
    logging::emit(
        AUDIT,
        format_args!(
            "revocation refused: not the client's token client_id={} peer={}",
            Quoted(client.client_id()),
            Peer(peer)
        ),
    );
    ApiError::NotClientsToken
}

/// Revokes `session` and every access token issued in it: in the store
/// and in the deny-list, until the last of them has expired.
pub(super) async fn revoke_session<S>(
    app: &App<S>,
    session: &Session,
    now: i64,
) -> Result<(), ApiError> {
    let Some(sessions) = &app.sessions else {
        return Ok(());
    };
    let until = app.revoked_until(now);
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
