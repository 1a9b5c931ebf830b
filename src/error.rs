//! Every error a client can see, and the one `match` that turns each into the
//! wire contract's status, JSON body and headers.

use crate::form::{FieldError, FormError, MultipartError};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderValue, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, LOCATION, PRAGMA, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use hyper::{Response, StatusCode};
use std::fmt;

/// An answer other than success, from any route or from the auth chain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// No bearer credentials at all (401).
    NotAuthenticated,
    /// Bearer credentials that do not name an existing user (401).
    InvalidCredentials,
    /// A valid token for a disabled user (400).
    InactiveUser,
    /// A valid token without the scopes a route requires (401); holds the
    /// required scopes, space-separated, for `WWW-Authenticate`.
    NotEnoughPermissions(String),
    /// `/token`: unknown user or wrong password, indistinguishable (400).
    IncorrectLogin,
    /// `/token`'s refresh grant: a refresh token unknown, expired, revoked
    /// or used up, or a session whose user is disabled or gone (400
    /// `invalid_grant`).
    InvalidRefreshToken,
    /// `/token`'s refresh grant: a scope the session was not granted (400
    /// `invalid_scope`).
    InvalidScope,
    /// `/token`: the form failed validation (422).
    Validation(FormError),
    /// `/token`: a multipart body that could not be read (400, Starlette's
    /// `detail`).
    Multipart(MultipartError),
    /// `/token`: too many failed logins for this username or address (429);
    /// holds the seconds until the next attempt may succeed.
    TooManyAttempts(u64),
    /// The server cannot take this request now (503): no password hash
    /// slot within the login queue's wait, or a user store that cannot
    /// answer. Holds the seconds for `Retry-After`.
    Unavailable(u64),
    /// The request was not answered within the request timeout, its body
    /// having stopped arriving (408); the connection is closed after it.
    RequestTimeout,
    /// A request body over the limit (413).
    BodyTooLarge,
    /// The request body could not be read (400).
    BadBody,
    /// No such path (404).
    NotFound,
    /// Known path, other method (405); holds the `Allow` value.
    MethodNotAllowed(&'static str),
    /// A known path with a trailing slash (307); holds the `Location`.
    TrailingSlash(String),
    /// A fault of ours (500); the detail stays in the process.
    Internal,
    /// Client authentication failed: an unknown client, a wrong secret, a
    /// malformed `Authorization: Basic`, or none where one is needed (401
    /// `invalid_client`); `basic` when the client used HTTP Basic, which
    /// then gets a `WWW-Authenticate: Basic` challenge (RFC 6749 §5.2).
    InvalidClient {
        /// The credentials came in `Authorization: Basic`.
        basic: bool,
    },
    /// Client credentials sent both in `Authorization: Basic` and in the
    /// form, or a Basic client id the form's `client_id` contradicts (400
    /// `invalid_request`, RFC 6749 §2.3).
    ClientAuthTwice,
    /// The client credentials grant asked for a scope the client may not
    /// be granted (400 `invalid_scope`).
    ClientScope,
    /// `POST /introspect` by a client not allowed to introspect (403
    /// `unauthorized_client`).
    IntrospectionNotAllowed,
    /// `POST /revoke` by a client of a token that is not its own (400
    /// `unauthorized_client`); the token stays valid.
    NotClientsToken,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ApiError::NotAuthenticated => "not authenticated",
            ApiError::InvalidCredentials => "invalid authentication credentials",
            ApiError::InactiveUser => "inactive user",
            ApiError::NotEnoughPermissions(_) => "not enough permissions",
            ApiError::IncorrectLogin => "incorrect username or password",
            ApiError::InvalidRefreshToken => "invalid refresh token",
            ApiError::InvalidScope => "scope beyond the session's grant",
            ApiError::Validation(_) => "request validation failed",
            ApiError::Multipart(_) => "multipart body could not be read",
            ApiError::TooManyAttempts(_) => "too many failed login attempts",
            ApiError::Unavailable(_) => "server busy",
            ApiError::RequestTimeout => "request timeout",
            ApiError::BodyTooLarge => "request body too large",
            ApiError::BadBody => "request body could not be read",
            ApiError::NotFound => "not found",
            ApiError::MethodNotAllowed(_) => "method not allowed",
            ApiError::TrailingSlash(_) => "redirect to the path without a trailing slash",
            ApiError::Internal => "internal server error",
            ApiError::InvalidClient { .. } => "client authentication failed",
            ApiError::ClientAuthTwice => "client credentials sent twice",
            ApiError::ClientScope => "scope beyond the client's",
            ApiError::IntrospectionNotAllowed => "client may not introspect",
            ApiError::NotClientsToken => "token not issued to this client",
        };
        f.write_str(text)
    }
}

impl std::error::Error for ApiError {}

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

impl ApiError {
    /// The contract's response for this error.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let (status, body): (StatusCode, Bytes) = match &self {
            ApiError::NotAuthenticated => (
                StatusCode::UNAUTHORIZED,
                Bytes::from_static(br#"{"detail":"Not authenticated"}"#),
            ),
            ApiError::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                Bytes::from_static(br#"{"detail":"Invalid authentication credentials"}"#),
            ),
            ApiError::InactiveUser => (
                StatusCode::BAD_REQUEST,
                Bytes::from_static(br#"{"detail":"Inactive user"}"#),
            ),
            ApiError::NotEnoughPermissions(_) => (
                StatusCode::UNAUTHORIZED,
                Bytes::from_static(br#"{"detail":"Not enough permissions"}"#),
            ),
            ApiError::IncorrectLogin => (
                StatusCode::BAD_REQUEST,
                Bytes::from_static(
                    br#"{"detail":"Incorrect username or password","error":"invalid_grant","error_description":"Incorrect username or password"}"#,
                ),
            ),
            ApiError::InvalidRefreshToken => (
                StatusCode::BAD_REQUEST,
                Bytes::from_static(
                    br#"{"detail":"Invalid refresh token","error":"invalid_grant","error_description":"The refresh token is unknown, expired, revoked or used up, or its user can no longer log in"}"#,
                ),
            ),
            ApiError::InvalidScope => (
                StatusCode::BAD_REQUEST,
                Bytes::from_static(
                    br#"{"detail":"Invalid scope","error":"invalid_scope","error_description":"The requested scope is beyond the scope granted at login"}"#,
                ),
            ),
            ApiError::Validation(form) => (StatusCode::UNPROCESSABLE_ENTITY, validation_body(form)),
            ApiError::Multipart(e) => (StatusCode::BAD_REQUEST, multipart_body(*e)),
            ApiError::TooManyAttempts(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                Bytes::from_static(
                    br#"{"detail":"Too many failed login attempts, try again later","error":"temporarily_unavailable","error_description":"Too many failed login attempts for this username or from this address; retry after the number of seconds in Retry-After"}"#,
                ),
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Bytes::from_static(
                    br#"{"detail":"Server busy, try again later","error":"temporarily_unavailable","error_description":"The server cannot take this request now; retry after the number of seconds in Retry-After"}"#,
                ),
            ),
            ApiError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                Bytes::from_static(br#"{"detail":"Request timeout"}"#),
            ),
            ApiError::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Bytes::from_static(br#"{"detail":"Request body too large"}"#),
            ),
            ApiError::BadBody => (
                StatusCode::BAD_REQUEST,
                Bytes::from_static(br#"{"detail":"There was an error parsing the body"}"#),
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                Bytes::from_static(br#"{"detail":"Not Found"}"#),
            ),
            ApiError::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                Bytes::from_static(br#"{"detail":"Method Not Allowed"}"#),
            ),
            ApiError::TrailingSlash(_) => (StatusCode::TEMPORARY_REDIRECT, Bytes::new()),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from_static(br#"{"detail":"Internal Server Error"}"#),
            ),
            ApiError::InvalidClient { .. } => (
                StatusCode::UNAUTHORIZED,
                Bytes::from_static(
                    br#"{"detail":"Invalid client credentials","error":"invalid_client","error_description":"Client authentication failed: unknown client, wrong secret, or none sent"}"#,
                ),
            ),
            ApiError::ClientAuthTwice => (
                StatusCode::BAD_REQUEST,
                Bytes::from_static(
                    br#"{"detail":"Client credentials sent twice","error":"invalid_request","error_description":"Send the client credentials in Authorization: Basic or in the form, not both"}"#,
                ),
            ),
            ApiError::ClientScope => (
                StatusCode::BAD_REQUEST,
                Bytes::from_static(
                    br#"{"detail":"Invalid scope","error":"invalid_scope","error_description":"The requested scope is beyond the scopes this client may be granted"}"#,
                ),
            ),
            ApiError::IntrospectionNotAllowed => (
                StatusCode::FORBIDDEN,
                Bytes::from_static(
                    br#"{"detail":"Not allowed to introspect","error":"unauthorized_client","error_description":"This client may not call the introspection endpoint"}"#,
                ),
            ),
            ApiError::NotClientsToken => (
                StatusCode::BAD_REQUEST,
                Bytes::from_static(
                    br#"{"detail":"Not this client's token","error":"unauthorized_client","error_description":"A client may revoke only the tokens issued to it"}"#,
                ),
            ),
        };
        let mut response = if body.is_empty() {
            Response::new(Full::new(body))
        } else {
            json_response(status, body)
        };
        *response.status_mut() = status;
        let headers = response.headers_mut();
        match self {
            ApiError::NotAuthenticated | ApiError::InvalidCredentials => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::NotEnoughPermissions(scope) => {
                // FastAPI's scopes chapter: the challenge names what is
                // required (RFC 6750 §3). Scopes are checked scope tokens,
                // so the value is always a valid header.
                let value = match scope.is_empty() {
                    true => HeaderValue::from_static("Bearer"),
                    false => HeaderValue::try_from(format!("Bearer scope=\"{scope}\""))
                        .unwrap_or(HeaderValue::from_static("Bearer")),
                };
                headers.insert(WWW_AUTHENTICATE, value);
            }
            ApiError::InvalidClient { basic: true } => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"password-bearer\", charset=\"UTF-8\""),
                );
            }
            ApiError::MethodNotAllowed(allow) => {
                headers.insert(ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::TooManyAttempts(seconds) => {
                headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
            }
            ApiError::Unavailable(seconds) => {
                headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
                // From /users/me too: an answer about now, not the resource.
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            ApiError::RequestTimeout => {
                // The body's rest may still arrive; it must not be read as
                // the next request.
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            ApiError::TrailingSlash(location) => {
                // The location is the request's own path, which hyper already
                // accepted as header-safe; an impossible failure degrades to "/".
                let value =
                    HeaderValue::try_from(location).unwrap_or(HeaderValue::from_static("/"));
                headers.insert(LOCATION, value);
            }
            _ => {}
        }
        response
    }
}

/// What a connection over its address's cap is told before it is closed:
/// written straight to the socket, since the connection is never served.
pub(crate) const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
content-length: 51\r\n\
retry-after: 1\r\n\
connection: close\r\n\r\n\
{\"detail\":\"Too many connections from this address\"}";

/// A JSON response; hyper adds `Content-Length` from the full body.
pub fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, APPLICATION_JSON);
    response
}

/// Marks a `/token` response as not cacheable (RFC 6749 §5.1).
pub fn no_store(response: &mut Response<Full<Bytes>>) {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

/// FastAPI's validation body, plus RFC 6749's `error` and
/// `error_description`: `{"detail":[entry, ...],"error":...,
/// "error_description":...}`, each entry's keys in FastAPI's order (`type`,
/// `loc`, `msg`, `input`, then `ctx` when there is one). Written out, with
/// only the strings through serde_json's escaping: derived `Serialize`s
/// for the entry's shapes cost the binary 1.5 KB more than this (the
/// integration tests check these bodies byte for byte).
fn validation_body(form: &FormError) -> Bytes {
    let mut body = br#"{"detail":["#.to_vec();
    for (i, e) in form.errors.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let (kind, field, msg) = match e {
            FieldError::Missing(field) => ("missing", *field, "Field required"),
            FieldError::GrantType(_) => (
                "string_pattern_mismatch",
                "grant_type",
                "String should match pattern '^password$'",
            ),
            FieldError::Duplicate(field) => ("duplicate", *field, "Field must not be repeated"),
            FieldError::File { field, .. } => {
                ("string_type", *field, "Input should be a valid string")
            }
        };
        body.extend_from_slice(br#"{"type":""#);
        body.extend_from_slice(kind.as_bytes());
        body.extend_from_slice(br#"","loc":["body","#);
        json_string(&mut body, field);
        body.extend_from_slice(br#"],"msg":"#);
        json_string(&mut body, msg);
        body.extend_from_slice(br#","input":"#);
        match e {
            FieldError::Missing(_) | FieldError::Duplicate(_) => body.extend_from_slice(b"null"),
            FieldError::GrantType(input) => {
                json_string(&mut body, input);
                body.extend_from_slice(br#","ctx":{"pattern":"^password$"}"#);
            }
            FieldError::File { filename, size, .. } => {
                body.extend_from_slice(br#"{"filename":"#);
                json_string(&mut body, filename);
                body.extend_from_slice(br#","size":"#);
                body.extend_from_slice(size.to_string().as_bytes());
                body.push(b'}');
            }
        }
        body.push(b'}');
    }
    body.extend_from_slice(br#"],"error":""#);
    body.extend_from_slice(if form.is_unsupported_grant_type() {
        b"unsupported_grant_type"
    } else {
        b"invalid_request"
    });
    body.extend_from_slice(br#"","error_description":"#);
    json_string(&mut body, &describe(form));
    body.push(b'}');
    body.into()
}

/// `text` as a JSON string, quoted and escaped by serde_json.
fn json_string(out: &mut Vec<u8>, text: &str) {
    // Writing to a Vec cannot fail, and a str always serializes.
    let _ = serde_json::to_writer(out, text);
}

/// `{"detail": message, "error": "invalid_request", "error_description":
/// message}`: FastAPI's body for a multipart body it could not read, and
/// RFC 6749's code for it. Written out rather than serialized: three
/// constants cost less binary than a serializer (a test checks they are the
/// messages, escaped).
fn multipart_body(error: MultipartError) -> Bytes {
    Bytes::from_static(match error {
        MultipartError::MissingBoundary => br#"{"detail":"Missing boundary in multipart.","error":"invalid_request","error_description":"Missing boundary in multipart."}"#,
        MultipartError::Invalid => br#"{"detail":"Invalid multipart data.","error":"invalid_request","error_description":"Invalid multipart data."}"#,
        MultipartError::MissingName => br#"{"detail":"The Content-Disposition header field \"name\" must be provided.","error":"invalid_request","error_description":"The Content-Disposition header field \"name\" must be provided."}"#,
    })
}

/// One sentence for `error_description`: which fields are wrong and how.
fn describe(form: &FormError) -> String {
    let parts: Vec<String> = form
        .errors
        .iter()
        .map(|e| match e {
            FieldError::Missing(f) => format!("{f} is required"),
            FieldError::GrantType(_) => "grant_type is not a grant this server supports".to_owned(),
            FieldError::Duplicate(f) => format!("{f} must not be repeated"),
            FieldError::File { field, .. } => format!("{field} must be text, not a file"),
        })
        .collect();
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_multipart_bodies_are_their_messages() {
        for error in [
            MultipartError::MissingBoundary,
            MultipartError::Invalid,
            MultipartError::MissingName,
        ] {
            let expected = serde_json::json!({
                "detail": error.message(),
                "error": "invalid_request",
                "error_description": error.message(),
            });
            let body: serde_json::Value = serde_json::from_slice(&multipart_body(error)).unwrap();
            assert_eq!(body, expected);
            assert!(multipart_body(error).starts_with(br#"{"detail":"#));
        }
    }

    #[test]
    fn the_canned_503_is_well_framed_json() {
        let text = std::str::from_utf8(TOO_MANY_CONNECTIONS).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        let length = format!("content-length: {}", body.len());
        assert!(head.lines().any(|l| l == length), "{head}");
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }
}
