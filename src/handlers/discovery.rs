//! What other services read to verify our tokens by themselves:
//! `GET /.well-known/jwks.json`, the public keys (served with signing keys
//! configured, else 404), and `GET /.well-known/oauth-authorization-server`,
//! RFC 8414's metadata (served with an issuer, else 404: its `issuer` is
//! required, and a guess from the request's `Host` would let a client
//! choose it).
//!
//! Each handler is `#[cold]` and out of line: both are rare, and the
//! dispatcher they are reached from is `/users/me`'s too.

use crate::app::App;
#[cfg(feature = "signing")]
use crate::error::json_response;
#[cfg(feature = "signing")]
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::Full;
#[cfg(feature = "signing")]
use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::Response;
#[cfg(feature = "signing")]
use hyper::StatusCode;
#[cfg(feature = "signing")]
use serde::Serialize;

/// How long a verifier may keep the JWKS: 5 minutes. The rotation steps
/// (docs/configuration.md) wait this long between publishing a new key and
/// signing with it, so every verifier has it before any token does; short,
/// so a rotation takes minutes, and a verifier fetches at most once per
/// 5 minutes per instance, plus once per unknown `kid` (with a cooldown).
#[cfg(feature = "signing")]
const CACHE_CONTROL_VALUE: &str = "public, max-age=300";

/// A 200 with a JSON `body` that verifiers may keep for
/// [`CACHE_CONTROL_VALUE`]'s `max-age`.
#[cfg(feature = "signing")]
fn cacheable(body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = json_response(StatusCode::OK, body.into());
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL_VALUE));
    response
}

/// `{"keys":[...]}`, the public keys of the current set, the signing key
/// first.
#[cfg(feature = "signing")]
#[cold]
#[inline(never)]
pub(super) fn jwks<S: UserStore>(app: &App<S>) -> Response<Full<Bytes>> {
    let body = {
        let keys = app.users_and_keys();
        let keys: Vec<serde_json::Value> = keys
            .published_keys()
            .iter()
            .map(crate::token::VerifyingKey::to_jwk)
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    };
    cacheable(body)
}

/// Without the `signing` feature neither route is ever served
/// (`When::SigningKeys` and `When::Issuer` never hold): 404, as any path
/// that is not there.
#[cfg(not(feature = "signing"))]
#[cold]
#[inline(never)]
pub(super) fn jwks<S>(_app: &App<S>) -> Response<Full<Bytes>> {
    crate::error::ApiError::NotFound.into_response()
}

/// [`jwks`]'s twin without the feature.
#[cfg(not(feature = "signing"))]
#[cold]
#[inline(never)]
pub(super) fn metadata<S>(_app: &App<S>) -> Response<Full<Bytes>> {
    crate::error::ApiError::NotFound.into_response()
}

/// RFC 8414's metadata, as served. A struct rather than a JSON tree: the
/// tree's code would cost the default binary more than this route.
#[cfg(feature = "signing")]
#[derive(Serialize)]
struct Metadata<'a> {
    issuer: &'a str,
    token_endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_endpoint_auth_methods_supported: Option<&'a [&'static str]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    introspection_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    introspection_endpoint_auth_methods_supported: Option<&'a [&'static str]>,
    grant_types_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: &'a [&'static str],
    response_types_supported: [&'static str; 0],
    scopes_supported: Vec<String>,
}

/// RFC 8414's authorization server metadata, built from `--issuer`. Every
/// endpoint is the issuer followed by its path, so the issuer is the
/// origin (and path prefix, behind a proxy) clients reach the server at.
#[cfg(feature = "signing")]
#[cold]
#[inline(never)]
pub(super) fn metadata<S: UserStore>(app: &App<S>) -> Response<Full<Bytes>> {
    let keys = app.users_and_keys();
    let issuer = keys.profile().issuer.as_deref().unwrap_or_default();
    let base = issuer.trim_end_matches('/');
    let sessions = app.sessions.is_some();
    let clients = app.clients.is_some();
    // The password grant names no client: there is no client to
    // authenticate (RFC 7591's "none"); clients authenticate with their
    // secret, in Basic or in the form.
    let auth_methods: &[&str] = if clients {
        &["none", "client_secret_basic", "client_secret_post"]
    } else {
        &["none"]
    };
    let mut grant_types = vec!["password"];
    if sessions {
        grant_types.push("refresh_token");
    }
    if clients {
        grant_types.push("client_credentials");
    }
    let metadata = Metadata {
        issuer,
        token_endpoint: format!("{base}/token"),
        jwks_uri: app
            .serves_jwks
            .then(|| format!("{base}/.well-known/jwks.json")),
        revocation_endpoint: sessions.then(|| format!("{base}/revoke")),
        revocation_endpoint_auth_methods_supported: sessions.then_some(auth_methods),
        introspection_endpoint: clients.then(|| format!("{base}/introspect")),
        introspection_endpoint_auth_methods_supported: clients
            .then_some(&["client_secret_basic", "client_secret_post"]),
        grant_types_supported: grant_types,
        token_endpoint_auth_methods_supported: auth_methods,
        // No authorization endpoint, so no response type.
        response_types_supported: [],
        scopes_supported: keys.users().scopes(),
    };
    let body = serde_json::to_vec(&metadata).expect("strings always serialize");
    cacheable(body)
}
