//! The client credentials grant (RFC 6749 §4.4), `POST /token` with
//! `grant_type=client_credentials`, served with clients configured: the
//! client authenticated (`client_auth.rs`), the scopes it asked for, all
//! of which it must be allowed (else `invalid_scope`), or all of its own
//! when it asked for none; then an access token whose `sub` and
//! `client_id` are the client's id, marked as a client's (`gty`), with a
//! `jti` when it can be revoked (sessions on) or RFC 9068 wants one (an
//! issuer). Never a refresh token: the client holds its secret, and asks
//! again.

use super::client_auth;
use super::token::TokenResponse;
use crate::app::App;
use crate::auth::store_unavailable;
use crate::clients::Client;
use crate::clock::unix_now;
use crate::error::{json_response, ApiError};
use crate::form::TokenForm;
use crate::sessions::TokenId;
use crate::token;
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use std::net::SocketAddr;

/// `grant_type=client_credentials`: see the module's header.
pub(super) async fn client_credentials<S: UserStore>(
    app: &App<S>,
    form: TokenForm,
    authorization: Option<HeaderValue>,
    peer: Option<SocketAddr>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let client = client_auth::required(
        app,
        authorization.as_ref(),
        (form.client_id.as_deref(), form.client_secret.as_deref()),
        peer,
    )
    .await?;
    let mut requested: Vec<&str> = Vec::new();
    for scope in &form.scopes {
        if !requested.contains(&scope.as_str()) {
            requested.push(scope);
        }
    }
    let granted = granted(&client, &requested)?;
    issue(app, &client, &requested, &granted)
}

/// The scopes granted: those requested, each one the client's, or all of
/// the client's when none was requested.
fn granted<'a>(client: &'a Client, requested: &[&'a str]) -> Result<Vec<&'a str>, ApiError> {
    if requested.is_empty() {
        return Ok(client.scopes().iter().map(String::as_str).collect());
    }
    if requested.iter().any(|scope| !client.allows(scope)) {
        return Err(ApiError::ClientScope);
    }
    Ok(requested.to_vec())
}

/// The token response for `client`, granted `granted`; `scope` is shown
/// when it is not what was requested (RFC 6749 §5.1).
fn issue<S: UserStore>(
    app: &App<S>,
    client: &Client,
    requested: &[&str],
    granted: &[&str],
) -> Result<Response<Full<Bytes>>, ApiError> {
    let keys = app.users_and_keys();
    let scope = granted.join(" ");
    let claimed = (!scope.is_empty()).then_some(scope.as_str());
    let now = unix_now();
    #[cfg(feature = "signing")]
    let wants_jti = app.sessions.is_some() || keys.profile().issuer.is_some();
    #[cfg(not(feature = "signing"))]
    let wants_jti = app.sessions.is_some();
    let jti = match wants_jti {
        true => Some(
            TokenId::random()
                .map_err(|e| store_unavailable(&e))?
                .encode(),
        ),
        false => None,
    };
    #[cfg(feature = "signing")]
    let access_token = token::issue_client_access(
        keys.signer(),
        keys.profile(),
        client.client_id(),
        claimed,
        jti.as_deref(),
        now,
        app.token_ttl_secs,
    );
    #[cfg(not(feature = "signing"))]
    let access_token = token::issue_for_client(
        keys.key(),
        client.client_id(),
        claimed,
        jti.as_deref(),
        now,
        app.token_ttl_secs,
    );
    let body = serde_json::to_vec(&TokenResponse {
        access_token: &access_token,
        token_type: "bearer",
        expires_in: app.token_ttl_secs,
        refresh_token: None,
        scope: (granted != requested).then_some(scope.as_str()),
    })
    .expect("strings and integers always serialize");
    Ok(json_response(StatusCode::OK, body.into()))
}
