//! What other services read to verify our tokens by themselves:
//! `GET /.well-known/jwks.json`, the public keys (served with signing keys
//! configured, else 404), and `GET /.well-known/oauth-authorization-server`,
//! RFC 8414's metadata (served with an issuer, else 404: its `issuer` is
//! required, and a guess from the request's `Host` would let a client
//! choose it).

use crate::app::App;
use crate::error::json_response;
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::{Response, StatusCode};

/// How long a verifier may keep the JWKS: 5 minutes. The rotation steps
/// (docs/configuration.md) wait this long between publishing a new key and
/// signing with it, so every verifier has it before any token does; short,
/// so a rotation takes minutes, and a verifier fetches at most once per
/// 5 minutes per instance, plus once per unknown `kid` (with a cooldown).
pub(crate) const JWKS_MAX_AGE_SECS: u32 = 300;

/// `{"keys":[...]}`, the public keys of the current set, the signing key
/// first.
pub(super) fn jwks<S: UserStore>(app: &App<S>) -> Response<Full<Bytes>> {
    #[cfg(feature = "signing")]
    let body = {
        let keys = app.users_and_keys();
        let keys: Vec<serde_json::Value> = keys
            .published_keys()
            .iter()
            .map(crate::token::VerifyingKey::to_jwk)
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    };
    #[cfg(not(feature = "signing"))]
    let body = {
        let _ = app;
        String::from(r#"{"keys":[]}"#)
    };
    let mut response = json_response(StatusCode::OK, Bytes::from(body));
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={JWKS_MAX_AGE_SECS}"))
            .expect("digits are a valid header value"),
    );
    response
}

/// RFC 8414's authorization server metadata, built from `--issuer`. Every
/// endpoint is the issuer followed by its path, so the issuer is the
/// origin (and path prefix, behind a proxy) clients reach the server at.
pub(super) fn metadata<S: UserStore>(app: &App<S>) -> Response<Full<Bytes>> {
    let keys = app.users_and_keys();
    let issuer = keys.profile().issuer.as_deref().unwrap_or_default();
    let base = issuer.trim_end_matches('/');
    let mut grants = vec!["password"];
    if app.sessions.is_some() {
        grants.push("refresh_token");
    }
    let mut metadata = serde_json::json!({
        "issuer": issuer,
        "token_endpoint": format!("{base}/token"),
        "grant_types_supported": grants,
        // The password grant names no client: there is no client to
        // authenticate (RFC 7591's "none").
        "token_endpoint_auth_methods_supported": ["none"],
        // No authorization endpoint, so no response type.
        "response_types_supported": [],
        "scopes_supported": keys.users().scopes(),
    });
    if app.serves_jwks {
        metadata["jwks_uri"] = format!("{base}/.well-known/jwks.json").into();
    }
    if app.sessions.is_some() {
        metadata["revocation_endpoint"] = format!("{base}/revoke").into();
        metadata["revocation_endpoint_auth_methods_supported"] = serde_json::json!(["none"]);
    }
    let mut response = json_response(StatusCode::OK, Bytes::from(metadata.to_string()));
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={JWKS_MAX_AGE_SECS}"))
            .expect("digits are a valid header value"),
    );
    response
}
