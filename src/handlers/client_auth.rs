//! Client authentication (RFC 6749 §2.3.1), for the client credentials
//! grant, `POST /introspect` and `POST /revoke`: the id and secret from
//! `Authorization: Basic` (`client_secret_basic`) or from the form's
//! `client_id` and `client_secret` (`client_secret_post`), never both;
//! admitted by the failed-login limiter under the client's id and the
//! address, as a login is; checked against the clients in constant time.
//! Each failure is counted and gets one audit line, which names a known
//! client and never a secret.

use super::refused;
use crate::app::App;
use crate::clients::{is_client_id, Client};
use crate::error::ApiError;
use crate::limiter::Refused;
use crate::logging::{self, Peer, Quoted, AUDIT};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hyper::header::HeaderValue;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// The credentials a request presented.
struct Presented {
    id: String,
    secret: String,
    /// In `Authorization: Basic`: a failure is then challenged.
    basic: bool,
}

/// The client a request authenticates as: `Ok(None)` when it carries no
/// client credentials (no `Authorization: Basic`, no `client_secret`; a
/// `client_id` alone is the public client's, as the seed's form sends).
/// Credentials that fail are [`ApiError::InvalidClient`] (401); sent both
/// ways, [`ApiError::ClientAuthTwice`] (400); a throttled client or
/// address 429, as a login; a limiter that cannot be reached, 503.
pub(super) async fn authenticate<S>(
    app: &App<S>,
    authorization: Option<&HeaderValue>,
    (form_id, form_secret): (Option<&str>, Option<&str>),
    peer: Option<SocketAddr>,
) -> Result<Option<Arc<Client>>, ApiError> {
    let Some(presented) = presented(app, authorization, (form_id, form_secret), peer)? else {
        return Ok(None);
    };
    let ip = peer.map(|p| p.ip());
    let key = throttle_key(&presented.id);
    let Some(clients) = app.clients() else {
        return Err(refuse(app, &presented, false, peer));
    };
    if !is_client_id(&presented.id) {
        // No client has such an id: refused without being counted, as an
        // over-long password is, so junk cannot fill the throttle's
        // tables; a throttled address still gets its 429.
        if let Err(refused) = app.limiter.check(&key, ip).await {
            return Err(refused_client(app, refused, &presented, peer));
        }
        return Err(refuse(app, &presented, false, peer));
    }
    let attempt = match app.limiter.admit(&key, ip, app.verifier.deadline()).await {
        Ok(attempt) => attempt,
        Err(refused) => return Err(refused_client(app, refused, &presented, peer)),
    };
    match clients.authenticate(&presented.id, &presented.secret) {
        Some(client) => {
            attempt.succeeded().await;
            Ok(Some(client.clone()))
        }
        None => {
            attempt.failed();
            let known = clients.get(&presented.id).is_some();
            Err(refuse(app, &presented, known, peer))
        }
    }
}

/// The client a request that needs one authenticates as: [`authenticate`],
/// and a request without client credentials is [`missing`] them.
pub(super) async fn required<S>(
    app: &App<S>,
    authorization: Option<&HeaderValue>,
    form: (Option<&str>, Option<&str>),
    peer: Option<SocketAddr>,
) -> Result<Arc<Client>, ApiError> {
    authenticate(app, authorization, form, peer)
        .await?
        .ok_or_else(|| missing(app, peer))
}

/// The answer to a request that needed client credentials and carried
/// none: counted, one audit line, 401 `invalid_client`.
fn missing<S>(app: &App<S>, peer: Option<SocketAddr>) -> ApiError {
    count_failure(app);
    logging::emit(
        AUDIT,
        format_args!(
            "client authentication failed: no client credentials peer={}",
            Peer(peer)
        ),
    );
    ApiError::InvalidClient { basic: false }
}

/// The credentials in the request, checked for shape.
fn presented<S>(
    app: &App<S>,
    authorization: Option<&HeaderValue>,
    (form_id, form_secret): (Option<&str>, Option<&str>),
    peer: Option<SocketAddr>,
) -> Result<Option<Presented>, ApiError> {
    if let Some(basic) = authorization.and_then(|value| basic_credentials(value.as_bytes())) {
        let Some((id, secret)) = basic else {
            count_failure(app);
            logging::emit(
                AUDIT,
                format_args!(
                    "client authentication failed: malformed Basic credentials peer={}",
                    Peer(peer)
                ),
            );
            return Err(ApiError::InvalidClient { basic: true });
        };
        if form_secret.is_some() || form_id.is_some_and(|form_id| form_id != id) {
            return Err(ApiError::ClientAuthTwice);
        }
        return Ok(Some(Presented {
            id,
            secret,
            basic: true,
        }));
    }
    match (form_id, form_secret) {
        (Some(id), Some(secret)) => Ok(Some(Presented {
            id: id.to_owned(),
            secret: secret.to_owned(),
            basic: false,
        })),
        (None, Some(_)) => {
            count_failure(app);
            logging::emit(
                AUDIT,
                format_args!(
                    "client authentication failed: client_secret without client_id peer={}",
                    Peer(peer)
                ),
            );
            Err(ApiError::InvalidClient { basic: false })
        }
        _ => Ok(None),
    }
}

/// The credentials of an `Authorization: Basic` value: `None` for
/// another scheme (not ours to judge), `Some(None)` for a Basic value that
/// is not base64 of `id:secret`, each form-urlencoded (RFC 6749 §2.3.1).
fn basic_credentials(value: &[u8]) -> Option<Option<(String, String)>> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim_ascii()).ok();
    Some(decoded.and_then(|bytes| {
        let text = String::from_utf8(bytes).ok()?;
        let (id, secret) = text.split_once(':')?;
        Some((form_decode(id)?, form_decode(secret)?))
    }))
}

/// `text` decoded as `application/x-www-form-urlencoded` encodes a value:
/// `+` a space, `%XX` a byte; `None` when the bytes are not UTF-8. Client
/// ids hold neither `+` nor `%`, and generated secrets are base64url, so a
/// client that does not encode (Python's requests) sends the same bytes.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |at: usize| bytes.get(at).and_then(|&h| (h as char).to_digit(16));
        match b {
            b'+' => out.push(b' '),
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The failed-login counts' key for a client id, apart from the
/// usernames' (a user named `client:billing` would share the client
/// `billing`'s counts: nothing an attacker could not do to either anyway).
fn throttle_key(id: &str) -> String {
    format!("client:{id}")
}

fn count_failure<S>(app: &App<S>) {
    app.counters.client_auth_failures.fetch_add(1, Relaxed);
}

/// A failed authentication: counted, one audit line, 401. The id is
/// logged only when it names a client: an unknown one may be a secret
/// pasted into the wrong field.
fn refuse<S>(
    app: &App<S>,
    presented: &Presented,
    known: bool,
    peer: Option<SocketAddr>,
) -> ApiError {
    count_failure(app);
    let method = if presented.basic { "basic" } else { "post" };
    if known {
        logging::emit(
            AUDIT,
            format_args!(
                "client authentication failed: wrong secret client_id={} method={method} peer={}",
                Quoted(&presented.id),
                Peer(peer)
            ),
        );
    } else {
        logging::emit(
            AUDIT,
            format_args!(
                "client authentication failed: unknown client (id not logged) method={method} peer={}",
                Peer(peer)
            ),
        );
    }
    ApiError::InvalidClient {
        basic: presented.basic,
    }
}

/// A client authentication the limiter refused: throttled, 429 and a
/// tallied audit line; busy or unreachable, as a login.
fn refused_client<S>(
    app: &App<S>,
    refused: Refused,
    presented: &Presented,
    peer: Option<SocketAddr>,
) -> ApiError {
    match refused {
        Refused::Throttled(throttled) => {
            logging::tally(
                AUDIT,
                format_args!("client authentication throttled peer={}", PeerIp(peer)),
            );
            ApiError::TooManyAttempts(throttled.retry_after.as_secs().max(1))
        }
        other => refused::refused(app, other, &throttle_key(&presented.id), peer),
    }
}

/// A peer's address without its port, so a tally counts one address once.
struct PeerIp(Option<SocketAddr>);

impl std::fmt::Display for PeerIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(peer) => write!(f, "{}", crate::addr::address_key(peer.ip())),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(id: &str, secret: &str) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))).into_bytes()
    }

    #[test]
    fn basic_credentials_are_decoded() {
        assert_eq!(
            basic_credentials(&basic("billing", "s3cr-t_")),
            Some(Some(("billing".into(), "s3cr-t_".into())))
        );
        // Form-urlencoded, as RFC 6749 §2.3.1 has clients send them.
        assert_eq!(
            basic_credentials(&basic("a%2Fb", "x+y%3A")),
            Some(Some(("a/b".into(), "x y:".into())))
        );
        // The scheme is case-insensitive; the secret may hold ':'.
        let lower = format!("basic {}", STANDARD.encode("id:a:b"));
        assert_eq!(
            basic_credentials(lower.as_bytes()),
            Some(Some(("id".into(), "a:b".into())))
        );
    }

    #[test]
    fn other_schemes_are_not_ours_and_bad_basic_is_refused() {
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basic"), None);
        assert_eq!(basic_credentials(b"Basic !!!"), Some(None));
        let no_colon = format!("Basic {}", STANDARD.encode("billing"));
        assert_eq!(basic_credentials(no_colon.as_bytes()), Some(None));
        let not_utf8 = format!("Basic {}", STANDARD.encode([0xff, b':', b'a']));
        assert_eq!(basic_credentials(not_utf8.as_bytes()), Some(None));
    }

    #[test]
    fn form_decoding_keeps_a_lone_percent() {
        assert_eq!(form_decode("100%").as_deref(), Some("100%"));
        assert_eq!(form_decode("%zz").as_deref(), Some("%zz"));
        assert_eq!(form_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(form_decode("%ff"), None);
    }
}
