//! Access tokens as the server mints them with the `signing` feature:
//! signed by an HS256 secret or an EdDSA/ES256 key ([`Signer`]), with the
//! `iss` and `aud` of a [`Profile`] and, with an issuer, RFC 9068's claims.
//! Without the feature the server mints the seed's tokens only
//! ([`super::issue_scoped`], [`super::issue_in_session`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::Mac as _;
use serde::Serialize;

use super::{
    issue_for_client, issue_in_session, issue_scoped, Algorithm, SecretKey, SigningKey,
    CLIENT_CREDENTIALS_GTY, PASSWORD_GRANT_CLIENT_ID,
};

/// What an access token says of who issued it and for whom: `iss` and
/// `aud`. Empty (the default), tokens are exactly the seed's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Profile {
    /// `iss`; when set, tokens follow RFC 9068 (`typ: at+jwt`, with
    /// `client_id` and `jti`).
    pub issuer: Option<String>,
    /// `aud`.
    pub audience: Option<String>,
}

impl Profile {
    /// `iss` and `aud`, either or both.
    pub fn new(issuer: Option<String>, audience: Option<String>) -> Profile {
        Profile { issuer, audience }
    }

    /// Whether tokens carry neither, as the seed's.
    pub fn is_empty(&self) -> bool {
        self.issuer.is_none() && self.audience.is_none()
    }
}

/// The key an access token is signed with.
#[derive(Debug, Clone, Copy)]
pub enum Signer<'a> {
    /// HS256 with a shared secret.
    Secret(&'a SecretKey),
    /// EdDSA or ES256 with a private key.
    Key(&'a SigningKey),
}

/// The claims of [`issue_access`], in RFC 9068's order.
#[derive(Serialize)]
struct ProfiledClaims<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gty: Option<&'a str>,
}

/// An access token as the server mints it: with a secret key and an empty
/// profile, exactly [`issue_in_session`] (with both `jti` and `sid`) or
/// [`issue_scoped`] (PyJWT's bytes). Otherwise the header names the
/// algorithm and the key's `kid`, and with an issuer the token follows
/// RFC 9068: `typ: at+jwt`, `iss`, `sub`, `aud`, `client_id`
/// ([`PASSWORD_GRANT_CLIENT_ID`]), `iat`, `exp`, `jti` (the caller gives
/// one), then `scope` and `sid` when given.
#[allow(clippy::too_many_arguments)]
pub fn issue_access(
    signer: Signer<'_>,
    profile: &Profile,
    sub: &str,
    scope: Option<&str>,
    (jti, sid): (Option<&str>, Option<&str>),
    now: i64,
    ttl_secs: i64,
) -> String {
    if let (Signer::Secret(key), true) = (signer, profile.is_empty()) {
        return match (jti, sid) {
            (Some(jti), Some(sid)) => issue_in_session(key, sub, scope, (jti, sid), now, ttl_secs),
            _ => issue_scoped(key, sub, scope, now, ttl_secs),
        };
    }
    let claims = ProfiledClaims {
        iss: profile.issuer.as_deref(),
        sub,
        aud: profile.audience.as_deref(),
        client_id: profile.issuer.is_some().then_some(PASSWORD_GRANT_CLIENT_ID),
        iat: now,
        exp: now.saturating_add(ttl_secs),
        scope,
        jti,
        sid,
        gty: None,
    };
    sign_profiled(signer, profile, &claims)
}

/// A token of the client credentials grant as the server mints it: with a
/// secret key and an empty profile, exactly [`issue_for_client`];
/// otherwise [`issue_access`]'s header and claims, with `sub` and
/// `client_id` the client's id, `gty` [`CLIENT_CREDENTIALS_GTY`] and no
/// `sid`.
pub fn issue_client_access(
    signer: Signer<'_>,
    profile: &Profile,
    client_id: &str,
    scope: Option<&str>,
    jti: Option<&str>,
    now: i64,
    ttl_secs: i64,
) -> String {
    if let (Signer::Secret(key), true) = (signer, profile.is_empty()) {
        return issue_for_client(key, client_id, scope, jti, now, ttl_secs);
    }
    let claims = ProfiledClaims {
        iss: profile.issuer.as_deref(),
        sub: client_id,
        aud: profile.audience.as_deref(),
        client_id: Some(client_id),
        iat: now,
        exp: now.saturating_add(ttl_secs),
        scope,
        jti,
        sid: None,
        gty: Some(CLIENT_CREDENTIALS_GTY),
    };
    sign_profiled(signer, profile, &claims)
}

/// `claims` signed by `signer`, under the header `profile` calls for.
fn sign_profiled(signer: Signer<'_>, profile: &Profile, claims: &ProfiledClaims<'_>) -> String {
    let (alg, kid) = match signer {
        Signer::Secret(key) => (Algorithm::HS256, key.kid()),
        Signer::Key(key) => (key.algorithm(), key.kid()),
    };
    let typ = if profile.issuer.is_some() {
        "at+jwt"
    } else {
        "JWT"
    };
    let header = format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"{typ}"}}"#);
    let json =
        serde_json::to_vec(claims).expect("a struct of strings and integers always serializes");
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&json, &mut token);
    let signature = match signer {
        Signer::Secret(key) => {
            let mut mac = key.mac.clone();
            mac.update(token.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Signer::Key(key) => key.sign(token.as_bytes()),
    };
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    token
}
