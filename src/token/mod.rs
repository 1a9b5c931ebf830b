//! HS256 JSON Web Tokens: minting them and checking every rule.
//!
//! Written directly on `hmac`, `sha2` and `base64` rather than a JWT crate
//! so that the validation rules are ours and visible in one place: only
//! HS256 is accepted (no `alg` confusion, no `none`), the signature is
//! checked in constant time before any JSON is parsed, headers that point
//! at other keys (`jku`, `jwk`, `x5u`, `x5c`) or demand extensions (`crit`)
//! are refused, and the claims are typed strictly (`exp` an integer,
//! duplicate keys refused). Tokens are byte-compatible with PyJWT, so a
//! FastAPI service sharing the key can read ours and we can read its.
//!
//! Keys rotate: several keys may verify ([`verify_any`]), and tokens of a
//! session carry the `kid` of the key that signed them ([`issue_in_session`]).
//! The signature is still checked before any JSON is read: each key is
//! tried in turn (the signing key first), and only then is the header's
//! `kid`, if any, required to name the key that matched.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

#[cfg(feature = "signing")]
mod access;
#[cfg(feature = "signing")]
pub use access::{issue_access, issue_client_access, Profile, Signer};
#[cfg(feature = "signing")]
mod signing;
#[cfg(feature = "signing")]
use signing::ASYMMETRIC_SIGNATURE_LEN;
#[cfg(feature = "signing")]
pub use signing::{SigningKey, SigningKeyError, VerifyingKey};

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted, in bytes. Checked before anything else so that
/// the work done on an unauthenticated input is bounded; real tokens of
/// this service are under 200 bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Bytes of an HS256 signature.
const SIGNATURE_LEN: usize = 32;

/// `base64url({"alg":"HS256","typ":"JWT"})`: the header is the same for
/// every token we mint, and this is exactly PyJWT's, so encoding it per
/// call would be wasted work (a test checks it against the JSON).
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// An HS256 key: the HMAC state keyed once, cloned per use (saves
/// re-deriving ipad/opad per request), and its key id.
#[derive(Clone)]
pub struct SecretKey {
    mac: HmacSha256,
    /// `kid`: 64 bits of a SHA-256 of the key, base64url. The same key
    /// gets the same id in every process, and the id tells nothing of the key.
    kid: String,
    /// `base64url({"alg":"HS256","kid":KID,"typ":"JWT"})`, PyJWT's header
    /// with this `kid` (sorted keys), encoded once.
    header_b64: String,
}

impl SecretKey {
    /// Shortest key accepted, in bytes: RFC 7518 §3.2 requires a key at
    /// least as long as the hash output.
    pub const MIN_LEN: usize = 32;

    /// A key from raw bytes; fails if it is shorter than [`Self::MIN_LEN`].
    pub fn new(bytes: &[u8]) -> Result<SecretKey, KeyError> {
        if bytes.len() < Self::MIN_LEN {
            return Err(KeyError::TooShort { len: bytes.len() });
        }
        let mac = HmacSha256::new_from_slice(bytes)
            .expect("HMAC accepts keys of any length; longer ones are hashed");
        let digest = Sha256::new()
            .chain_update(b"password-bearer key id\0")
            .chain_update(bytes)
            .finalize();
        let kid = URL_SAFE_NO_PAD.encode(&digest[..8]);
        let header = format!(r#"{{"alg":"HS256","kid":"{kid}","typ":"JWT"}}"#);
        Ok(SecretKey {
            mac,
            header_b64: URL_SAFE_NO_PAD.encode(header),
            kid,
        })
    }

    /// The key's id, as tokens carry it in their `kid` header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A fresh key of [`Self::MIN_LEN`] bytes from the operating system's
    /// random source; fails only if that source cannot be read.
    pub fn random() -> Result<SecretKey, KeyError> {
        let mut bytes = [0u8; Self::MIN_LEN];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        SecretKey::new(&bytes)
    }

    /// The key in the file at `path`: its bytes with leading and trailing
    /// ASCII whitespace trimmed, as the binary's `--secret-key-file` reads
    /// it (a key written with `echo` or an editor ends in a newline). An
    /// embedded app and the binary sharing one key file thus accept each
    /// other's tokens; `SecretKey::new(&fs::read(path)?)` would key the
    /// newline too, and the only symptom would be a 401. The error does not
    /// name `path`: the caller knows which file it gave.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<SecretKey, KeyError> {
        let bytes = std::fs::read(path).map_err(|e| KeyError::Read {
            kind: e.kind(),
            message: e.to_string(),
        })?;
        SecretKey::new(bytes.trim_ascii())
    }
}

impl fmt::Debug for SecretKey {
    // The HMAC state is derived from the key, so none of it may be shown;
    // the id is a one-way digest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(kid={})", self.kid)
    }
}

/// Why a [`SecretKey`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The key has fewer than [`SecretKey::MIN_LEN`] bytes.
    TooShort {
        /// Length of the rejected key, in bytes.
        len: usize,
    },
    /// The operating system's random source failed; holds its message.
    Random(String),
    /// [`SecretKey::from_file`] could not read the file.
    Read {
        /// The I/O error's kind (`NotFound`, `PermissionDenied`, ...).
        kind: std::io::ErrorKind,
        /// The I/O error's message.
        message: String,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::TooShort { len } => write!(
                f,
                "secret key is {len} bytes; at least {} are required",
                SecretKey::MIN_LEN
            ),
            KeyError::Random(msg) => write!(f, "cannot read random bytes from the OS: {msg}"),
            KeyError::Read { message, .. } => write!(f, "cannot read: {message}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// A JWS algorithm this crate signs or verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC with SHA-256, a shared secret ([`SecretKey`]).
    HS256,
    /// Ed25519 signatures (RFC 8037).
    EdDSA,
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4).
    ES256,
}

impl Algorithm {
    /// The name a JWS header's `alg` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
        }
    }

    /// The algorithm `name` names, exactly (case included).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "HS256" => Some(Algorithm::HS256),
            "EdDSA" => Some(Algorithm::EdDSA),
            "ES256" => Some(Algorithm::ES256),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Verified claims.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claims {
    /// Subject: the username the token was issued to.
    pub sub: String,
    /// Issued-at, Unix seconds, if the token carries it.
    pub iat: Option<i64>,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Not-before, Unix seconds, if the token carries it.
    pub nbf: Option<i64>,
    /// The granted scopes, space-separated (RFC 8693's `scope` claim), if
    /// any were granted.
    pub scope: Option<String>,
    /// The token's id (`jti`), when it was issued in a session: what
    /// revoking this one token names.
    pub jti: Option<String>,
    /// The session it was issued in (`sid`): revoking the session revokes
    /// every token that names it.
    pub sid: Option<String>,
    /// The issuer (`iss`), if the token names one (read with the `signing`
    /// feature; always `None` without it).
    pub iss: Option<String>,
    /// The audiences (`aud`, a string or a list of strings), empty when the
    /// token names none (read with the `signing` feature).
    pub aud: Vec<String>,
    /// The client the token was issued to (`client_id`, RFC 9068), if any:
    /// [`PASSWORD_GRANT_CLIENT_ID`] for a password
    /// grant's token with an issuer, the client's id for the client
    /// credentials grant's.
    pub client_id: Option<String>,
    /// The token was issued by the client credentials grant to the client
    /// `client_id` (its `gty` claim is [`CLIENT_CREDENTIALS_GTY`]): it names
    /// a client, not a user, and `/users/me` refuses it.
    pub client_credentials: bool,
}

impl Claims {
    /// The granted scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
    }
}

/// Why a token was refused. Carries nothing from the token, so it is safe
/// to log or show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_LEN`] bytes.
    TooLong,
    /// Not three canonical base64url segments, or the header is not a JSON
    /// object, or the claims are not JSON.
    Malformed,
    /// The signature is not 32 bytes (64 for an asymmetric key) or matches
    /// no key.
    BadSignature,
    /// The header's `alg` is not the algorithm of the key that verified
    /// the signature (`"HS256"` for a secret key), or not an allowed one.
    Algorithm,
    /// The header has `jku`, `jwk`, `x5u`, `x5c` or `crit`.
    ForbiddenHeader,
    /// The claims are not an object, lack `sub` or `exp`, have a wrongly
    /// typed `sub`, `exp`, `iat` or `nbf`, or repeat a key.
    InvalidClaims,
    /// `exp` has passed (allowing for the leeway).
    Expired,
    /// `nbf` has not been reached (allowing for the leeway).
    NotYetValid,
    /// The header's `kid` names a key other than the one that signed it.
    UnknownKey,
    /// The token, or its session, was revoked.
    Revoked,
    /// The header's `typ` is not RFC 9068's `at+jwt`, where it must be.
    Type,
    /// The issuer (`iss`) is not the one expected, or is missing.
    Issuer,
    /// The audience (`aud`) does not include the one expected.
    Audience,
    /// A client credentials grant's token where a user's is needed
    /// (`GET /users/me`): it names a client.
    ClientToken,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            TokenError::TooLong => "token is too long",
            TokenError::Malformed => "token is malformed",
            TokenError::BadSignature => "token signature is invalid",
            TokenError::Algorithm => "token algorithm is not the one of its key",
            TokenError::ForbiddenHeader => "token header has a forbidden parameter",
            TokenError::InvalidClaims => "token claims are invalid",
            TokenError::Expired => "token has expired",
            TokenError::NotYetValid => "token is not yet valid",
            TokenError::UnknownKey => "token names an unknown key",
            TokenError::Revoked => "token has been revoked",
            TokenError::Type => "token type is not at+jwt",
            TokenError::Issuer => "token issuer is not the expected one",
            TokenError::Audience => "token audience does not include the expected one",
            TokenError::ClientToken => "token was issued to a client, not a user",
        };
        f.write_str(msg)
    }
}

impl std::error::Error for TokenError {}

/// The claims we mint, in PyJWT's order for `{"sub", "iat", "exp"}` so
/// that the same inputs give the same token.
#[derive(Serialize)]
struct IssuedClaims<'a> {
    sub: &'a str,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gty: Option<&'a str>,
}

/// The `client_id` of a token from the password grant, which names no
/// authenticated client (its form's `client_id` is anyone's to write): the
/// one public client this server has. In the token with an issuer (RFC
/// 9068), and in every user's token's introspection.
pub const PASSWORD_GRANT_CLIENT_ID: &str = "password-bearer";

/// The `gty` claim of a token the client credentials grant issued (the
/// name and value Auth0 uses): what tells a client's token from a user's,
/// whose `sub` may be the same string.
pub const CLIENT_CREDENTIALS_GTY: &str = "client-credentials";

/// Mint a token: header exactly `{"alg":"HS256","typ":"JWT"}`, claims
/// exactly `{"sub":..,"iat":now,"exp":now+ttl_secs}` in that order, compact
/// JSON, base64url without padding. `exp` saturates rather than overflow.
pub fn issue(key: &SecretKey, sub: &str, now: i64, ttl_secs: i64) -> String {
    issue_scoped(key, sub, None, now, ttl_secs)
}

/// Like [`issue`], with a `scope` claim (space-separated scopes) after
/// `exp` when `scope` is `Some`.
pub fn issue_scoped(
    key: &SecretKey,
    sub: &str,
    scope: Option<&str>,
    now: i64,
    ttl_secs: i64,
) -> String {
    let claims = IssuedClaims {
        sub,
        iat: now,
        exp: now.saturating_add(ttl_secs),
        scope,
        jti: None,
        sid: None,
        client_id: None,
        gty: None,
    };
    sign_claims(key, HEADER_B64, &claims)
}

/// A token issued in a session: [`issue_scoped`]'s claims, then `jti` (this
/// token's id) and `sid` (the session's), and the signing key's `kid` in the
/// header, so that the key can be rotated without logging anyone out.
pub fn issue_in_session(
    key: &SecretKey,
    sub: &str,
    scope: Option<&str>,
    (jti, sid): (&str, &str),
    now: i64,
    ttl_secs: i64,
) -> String {
    let claims = IssuedClaims {
        sub,
        iat: now,
        exp: now.saturating_add(ttl_secs),
        scope,
        jti: Some(jti),
        sid: Some(sid),
        client_id: None,
        gty: None,
    };
    sign_claims(key, &key.header_b64, &claims)
}

/// A token of the client credentials grant (RFC 6749 §4.4) for the client
/// `client_id`: `sub` and `client_id` are its id, `gty` is
/// [`CLIENT_CREDENTIALS_GTY`], with `scope` and `jti` (revocable by it)
/// when given, and the key's `kid` in the header.
pub fn issue_for_client(
    key: &SecretKey,
    client_id: &str,
    scope: Option<&str>,
    jti: Option<&str>,
    now: i64,
    ttl_secs: i64,
) -> String {
    let claims = IssuedClaims {
        sub: client_id,
        iat: now,
        exp: now.saturating_add(ttl_secs),
        scope,
        jti,
        sid: None,
        client_id: Some(client_id),
        gty: Some(CLIENT_CREDENTIALS_GTY),
    };
    sign_claims(key, &key.header_b64, &claims)
}

fn sign_claims(key: &SecretKey, header_b64: &str, claims: &IssuedClaims<'_>) -> String {
    let json =
        serde_json::to_vec(claims).expect("a struct of strings and integers always serializes");
    let mut token = String::with_capacity(header_b64.len() + json.len() * 4 / 3 + 48);
    token.push_str(header_b64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&json, &mut token);
    let mut mac = key.mac.clone();
    mac.update(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
    token
}

/// Check a token. `now` is Unix seconds; `leeway` seconds (caller
/// guarantees 0..=60) tolerated on `exp` and `nbf`.
///
/// The signature is verified before any JSON is read, so nothing an
/// attacker writes without the key reaches the JSON parser.
pub fn verify(key: &SecretKey, token: &str, now: i64, leeway: i64) -> Result<Claims, TokenError> {
    verify_any(std::slice::from_ref(key), token, now, leeway)
}

/// [`verify`] against several keys (a rotation: the new key first). The
/// signature is tried against each key in turn, before any JSON is read; a
/// header `kid` must then name the key that matched, so a token signed by
/// one key cannot pass under another's id.
pub fn verify_any(
    keys: &[SecretKey],
    token: &str,
    now: i64,
    leeway: i64,
) -> Result<Claims, TokenError> {
    let keys = Verification {
        secrets: keys,
        ..Verification::default()
    };
    verify_with(&keys, token, now, leeway)
}

/// The keys a token may be verified under, the algorithms allowed, and
/// what its `iss` and `aud` must say: the rules [`verify_with`] applies.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verification<'a> {
    /// HS256 keys.
    pub secrets: &'a [SecretKey],
    /// Ed25519 and P-256 public keys.
    #[cfg(feature = "signing")]
    pub public: &'a [VerifyingKey],
    /// The algorithms accepted; empty: those of the keys given.
    pub algorithms: &'a [Algorithm],
    /// When set, `iss` must be exactly this.
    #[cfg(feature = "signing")]
    pub issuer: Option<&'a str>,
    /// When set, `aud` must be, or list, this.
    #[cfg(feature = "signing")]
    pub audience: Option<&'a str>,
    /// The header's `typ` must be `at+jwt` (or `application/at+jwt`), as
    /// RFC 9068 §4 has a resource server check, so that no other kind of
    /// JWT signed by the same key passes as an access token.
    #[cfg(feature = "signing")]
    pub access_token_typ: bool,
}

/// Check a token under several keys, secret and public, and the claim
/// rules of `rules`. The signature is checked first, against each key of
/// the kind its length says (32 bytes: the HS256 keys; 64: the public
/// keys), before any JSON is read; then the header's `alg` must be the
/// algorithm of the key that matched (so no HS256 token keyed with a
/// public key, no `none`), and its `kid`, if any, must name that key.
pub fn verify_with(
    rules: &Verification<'_>,
    token: &str,
    now: i64,
    leeway: i64,
) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    let mut segments = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(TokenError::Malformed);
    };
    if header_b64.is_empty() || payload_b64.is_empty() {
        return Err(TokenError::Malformed);
    }
    // The strict engine refuses padding and non-zero trailing bits, so each
    // token has one spelling: no variants that share a signature.
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Malformed);
    let header = decode(header_b64)?;
    let payload = decode(payload_b64)?;
    let signature = decode(sig_b64)?;

    let (alg, kid) = match signature.len() {
        SIGNATURE_LEN => rules
            .secrets
            .iter()
            .find(|key| {
                let mut mac = key.mac.clone();
                mac.update(header_b64.as_bytes());
                mac.update(b".");
                mac.update(payload_b64.as_bytes());
                mac.verify_slice(&signature).is_ok()
            })
            .map(|key| (Algorithm::HS256, key.kid.as_str())),
        #[cfg(feature = "signing")]
        ASYMMETRIC_SIGNATURE_LEN => {
            let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
            rules
                .public
                .iter()
                .find(|key| key.verifies(signed.as_bytes(), &signature))
                .map(|key| (key.algorithm(), key.kid()))
        }
        _ => None,
    }
    .ok_or(TokenError::BadSignature)?;

    let parsed: Header = serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
    if !is_object(&header) {
        return Err(TokenError::Malformed);
    }
    let header = parsed;
    if header.alg != Some(alg) || !(rules.algorithms.is_empty() || rules.algorithms.contains(&alg))
    {
        return Err(TokenError::Algorithm);
    }
    #[cfg(feature = "signing")]
    if rules.access_token_typ
        && !matches!(header.typ.as_deref(), Some("at+jwt" | "application/at+jwt"))
    {
        return Err(TokenError::Type);
    }
    if header.jku || header.jwk || header.x5u || header.x5c || header.crit {
        return Err(TokenError::ForbiddenHeader);
    }
    if header.kid.is_some_and(|named| named != kid) {
        return Err(TokenError::UnknownKey);
    }

    let claims: WireClaims = serde_json::from_slice(&payload).map_err(|e| {
        // Bad JSON is a malformed token; good JSON of the wrong shape
        // (not an object, missing or mistyped field, duplicate key) is a
        // claims problem.
        if e.is_data() {
            TokenError::InvalidClaims
        } else {
            TokenError::Malformed
        }
    })?;
    if !is_object(&payload) {
        return Err(TokenError::InvalidClaims);
    }

    check_times(claims.exp, claims.nbf, now, leeway)?;
    #[cfg(feature = "signing")]
    if rules
        .issuer
        .is_some_and(|issuer| claims.iss.as_deref() != Some(issuer))
    {
        return Err(TokenError::Issuer);
    }
    #[cfg(feature = "signing")]
    let (iss, aud) = (
        claims.iss,
        claims.aud.map(Audiences::into_vec).unwrap_or_default(),
    );
    // Without the feature these claims are neither read nor checked, as
    // before it.
    #[cfg(not(feature = "signing"))]
    let (iss, aud) = (None, Vec::new());
    #[cfg(feature = "signing")]
    if rules
        .audience
        .is_some_and(|audience| !aud.iter().any(|a| a == audience))
    {
        return Err(TokenError::Audience);
    }
    let client_credentials = claims.gty.as_deref() == Some(CLIENT_CREDENTIALS_GTY)
        && claims.client_id.as_deref() == Some(claims.sub.as_str());
    Ok(Claims {
        sub: claims.sub,
        iat: claims.iat,
        exp: claims.exp,
        nbf: claims.nbf,
        scope: claims.scope,
        jti: claims.jti,
        sid: claims.sid,
        iss,
        aud,
        client_credentials,
        client_id: claims.client_id,
    })
}

/// Whether valid JSON is an object. Needed because serde's derived structs
/// also accept an array, filling fields by position: `["HS256"]` would
/// otherwise pass as a header. A JSON value's type is set by its first
/// non-blank byte.
fn is_object(json: &[u8]) -> bool {
    json.trim_ascii_start().first() == Some(&b'{')
}

/// The header fields we act on. Any other field (`typ`, ...) is ignored; a
/// repeated known field fails deserialization, so
/// `{"alg":"none","alg":"HS256"}` cannot be read two ways.
#[derive(Deserialize)]
struct Header {
    #[serde(default, deserialize_with = "algorithm")]
    alg: Option<Algorithm>,
    /// Read only where RFC 9068's `at+jwt` is required; any other value
    /// (not a string) is then no `typ`.
    #[cfg(feature = "signing")]
    #[serde(default, deserialize_with = "any_string")]
    typ: Option<String>,
    /// Must be a string when present.
    #[serde(default, deserialize_with = "some_string")]
    kid: Option<String>,
    // Presence, not value, is what is forbidden: `"jku": null` counts too,
    // hence `present` rather than `Option`, which would read null as absent.
    #[serde(default, deserialize_with = "present")]
    jku: bool,
    #[serde(default, deserialize_with = "present")]
    jwk: bool,
    #[serde(default, deserialize_with = "present")]
    x5u: bool,
    #[serde(default, deserialize_with = "present")]
    x5c: bool,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// The algorithm a JSON string names exactly; any other value (another
/// name, null, a number) is a wrong algorithm, not a malformed header.
fn algorithm<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Algorithm>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(value.as_str().and_then(Algorithm::from_name))
}

#[cfg(feature = "signing")]
fn any_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(value.as_str().map(str::to_owned))
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d)?;
    Ok(true)
}

/// The claims as sent. Deserializing `i64` refuses strings, floats
/// (`1.5`, `1e9`) and null; unknown claims are skipped because PyJWT
/// tokens may carry others.
#[derive(Deserialize)]
struct WireClaims {
    sub: String,
    #[serde(default, deserialize_with = "some_i64")]
    iat: Option<i64>,
    exp: i64,
    #[serde(default, deserialize_with = "some_i64")]
    nbf: Option<i64>,
    #[serde(default, deserialize_with = "some_string")]
    scope: Option<String>,
    #[serde(default, deserialize_with = "some_string")]
    jti: Option<String>,
    #[serde(default, deserialize_with = "some_string")]
    sid: Option<String>,
    #[cfg(feature = "signing")]
    #[serde(default, deserialize_with = "some_string")]
    iss: Option<String>,
    #[cfg(feature = "signing")]
    #[serde(default, deserialize_with = "some_audiences")]
    aud: Option<Audiences>,
    /// Read in every build: the client credentials grant's tokens carry it.
    #[serde(default, deserialize_with = "some_string")]
    client_id: Option<String>,
    #[serde(default, deserialize_with = "some_string")]
    gty: Option<String>,
}

/// `aud`: one string or a list of strings (RFC 7519 §4.1.3). Read by a
/// visitor rather than `#[serde(untagged)]`, whose buffering code would
/// cost binaries tens of KB.
#[cfg(feature = "signing")]
struct Audiences(Vec<String>);

#[cfg(feature = "signing")]
impl Audiences {
    fn into_vec(self) -> Vec<String> {
        self.0
    }
}

#[cfg(feature = "signing")]
impl<'de> Deserialize<'de> for Audiences {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Audiences, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Audiences;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Audiences, E> {
                Ok(Audiences(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Audiences, A::Error> {
                let mut all = Vec::new();
                while let Some(one) = seq.next_element::<String>()? {
                    all.push(one);
                }
                Ok(Audiences(all))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(feature = "signing")]
fn some_audiences<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Audiences>, D::Error> {
    Audiences::deserialize(d).map(Some)
}

/// `scope`, `jti`, `sid` and a header's `kid`, when present, must be
/// strings (not null, not a list).
fn some_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// The time rules: expired when `now >= exp + leeway`, not yet valid when
/// `now < nbf - leeway`. Also run on every hit of the verified-token cache.
pub(crate) fn check_times(
    exp: i64,
    nbf: Option<i64>,
    now: i64,
    leeway: i64,
) -> Result<(), TokenError> {
    if now >= exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if nbf.is_some_and(|nbf| now < nbf.saturating_sub(leeway)) {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// An optional integer claim that, when present, must be an integer:
/// plain `Option<i64>` would let `null` through as absent.
fn some_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    i64::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests;
