//! `POST /introspect` (RFC 7662), served with clients configured: a
//! resource server that cannot verify our JWTs itself asks whether a token
//! is good. Only an authenticated client allowed to (`introspect: true`)
//! may ask: bad or missing client credentials are 401 `invalid_client`, a
//! client not allowed 403 `unauthorized_client`.
//!
//! A good access token, a user's or a client's, answers `active: true`
//! with its claims; anything else answers `{"active":false}` and nothing
//! more: revoked (the deny-list, which Redis keeps in step across
//! instances), expired, forged, unknown, a refresh token (resource servers
//! never hold one), a user now disabled or gone, a client no longer
//! configured. Unlike a JWT checked alone, introspection sees the user.

use super::body::{body_error, read_body, Read};
use super::client_auth;
use crate::app::App;
use crate::auth::store_unavailable;
use crate::clock::unix_now;
use crate::error::{json_response, ApiError};
use crate::form::parse_revoke_body;
use crate::logging::{self, Peer, Quoted, AUDIT};
use crate::sessions::RefreshToken;
use crate::token::{self, Claims, PASSWORD_GRANT_CLIENT_ID};
use crate::token_cache::denied;
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

/// The answer for every token that is not good.
const INACTIVE: &[u8] = br#"{"active":false}"#;

/// `POST /introspect`: the form (`token`, `token_type_hint`, and the
/// client's credentials when it sends them so), the client, the answer.
pub(super) async fn introspect<S: UserStore, B>(
    app: &App<S>,
    request: Request<B>,
    peer: Option<SocketAddr>,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Read {
        content_type,
        authorization,
        body,
    } = read_body(app, request).await?;
    let form = parse_revoke_body(content_type.as_ref().map(HeaderValue::as_bytes), &body)
        .map_err(body_error)?;
    let client = client_auth::required(
        app,
        authorization.as_ref(),
        (form.client_id.as_deref(), form.client_secret.as_deref()),
        peer,
    )
    .await?;
    if !client.may_introspect() {
        app.counters.introspection_refused.fetch_add(1, Relaxed);
        logging::emit(
            AUDIT,
            format_args!(
                "introspection refused: client not allowed client_id={} peer={}",
                Quoted(client.client_id()),
                Peer(peer)
            ),
        );
        return Err(ApiError::IntrospectionNotAllowed);
    }
    let body = match active_claims(app, &form.token).await? {
        Some((claims, username)) => active_body(&claims, username),
        None => Bytes::from_static(INACTIVE),
    };
    Ok(json_response(StatusCode::OK, body))
}

/// The claims of `token` when it is a good access token now, with the
/// username when it is a user's; `None` when it is not. A user store that
/// cannot answer is 503: the token may well be good.
async fn active_claims<S: UserStore>(
    app: &App<S>,
    token: &str,
) -> Result<Option<(Claims, bool)>, ApiError> {
    if RefreshToken::parse(token).is_some() {
        return Ok(None);
    }
    let now = unix_now();
    let users_and_keys = app.users_and_keys();
    let Ok(claims) =
        token::verify_with(&users_and_keys.verification(), token, now, app.leeway_secs)
    else {
        return Ok(None);
    };
    if app
        .revocations()
        .is_some_and(|revocations| denied(revocations, &claims, now))
    {
        return Ok(None);
    }
    if claims.client_credentials {
        let known = app
            .clients()
            .is_some_and(|clients| clients.get(&claims.sub).is_some());
        return Ok(known.then_some((claims, false)));
    }
    let user = users_and_keys
        .users()
        .find(&claims.sub)
        .await
        .map_err(|e| store_unavailable(&e))?;
    Ok(user
        .filter(|user| !user.is_disabled())
        .map(|_| (claims, true)))
}

/// RFC 7662 §2.2's answer for a good token.
#[derive(Serialize)]
struct Active<'a> {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    token_type: &'static str,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<Audience<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<&'a str>,
}

/// `aud`: one string, or a list when the token names several (RFC 7662
/// §2.2 takes either).
#[derive(Serialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(&'a str),
    Many(&'a [String]),
}

fn active_body(claims: &Claims, user: bool) -> Bytes {
    let aud = match claims.aud.as_slice() {
        [] => None,
        [one] => Some(Audience::One(one)),
        many => Some(Audience::Many(many)),
    };
    let body = serde_json::to_vec(&Active {
        active: true,
        scope: claims.scope.as_deref().filter(|s| !s.is_empty()),
        // A user's token names the password grant's public client, with an
        // issuer in the token itself, without one here alone.
        client_id: claims
            .client_id
            .as_deref()
            .unwrap_or(PASSWORD_GRANT_CLIENT_ID),
        username: user.then_some(claims.sub.as_str()),
        token_type: "Bearer",
        exp: claims.exp,
        iat: claims.iat,
        nbf: claims.nbf,
        sub: &claims.sub,
        aud,
        iss: claims.iss.as_deref(),
        jti: claims.jti.as_deref(),
    })
    .expect("strings and integers always serialize");
    body.into()
}
