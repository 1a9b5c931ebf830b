//! The contract's exact bodies (FastAPI's bytes where the seed has them)
//! and the assertions that compare a [`Response`] with them: status,
//! headers and body byte for byte.

use super::http::Response;
use serde_json::Value;

/// FastAPI's validation entries, byte for byte as in the seed transcript.
pub(crate) const MISSING_USERNAME: &str =
    r#"{"type":"missing","loc":["body","username"],"msg":"Field required","input":null}"#;
/// See [`MISSING_USERNAME`].
pub(crate) const MISSING_PASSWORD: &str =
    r#"{"type":"missing","loc":["body","password"],"msg":"Field required","input":null}"#;

/// FastAPI's `string_pattern_mismatch` entry for a `grant_type` of `input`.
pub(crate) fn grant_type_mismatch(input: &str) -> String {
    format!(
        r#"{{"type":"string_pattern_mismatch","loc":["body","grant_type"],"msg":"String should match pattern '^password$'","input":{},"ctx":{{"pattern":"^password$"}}}}"#,
        Value::String(input.to_owned())
    )
}

/// The contract's entry for a repeated form field (its deviation from
/// FastAPI, which silently keeps the last value).
pub(crate) fn duplicate(field: &str) -> String {
    format!(
        r#"{{"type":"duplicate","loc":["body","{field}"],"msg":"Field must not be repeated","input":null}}"#
    )
}

/// Status, `application/json`, a `content-length` matching the body, and
/// the body byte for byte.
#[track_caller]
pub(crate) fn assert_json_exact(resp: &Response, status: u16, body: &str) {
    assert_eq!(
        resp.status,
        status,
        "status; body {:?}",
        String::from_utf8_lossy(&resp.body)
    );
    assert_json_headers(resp);
    assert_eq!(resp.text(), body, "body");
}

/// Every JSON response has `content-type: application/json` and a
/// `content-length` equal to the body's length.
#[track_caller]
pub(crate) fn assert_json_headers(resp: &Response) {
    assert_eq!(
        resp.header_all("content-type"),
        ["application/json"],
        "content-type; headers {:?}",
        resp.headers
    );
    let lengths = resp.header_all("content-length");
    assert_eq!(
        lengths.len(),
        1,
        "one content-length; headers {:?}",
        resp.headers
    );
    assert_eq!(lengths[0], resp.body.len().to_string(), "content-length");
}

/// The RFC 6749 §5.1 cache headers every `/token` response carries, and no
/// `www-authenticate` (that header belongs to the resource, not the token
/// endpoint).
#[track_caller]
pub(crate) fn assert_token_endpoint_headers(resp: &Response) {
    assert_eq!(
        resp.header_all("cache-control"),
        ["no-store"],
        "{:?}",
        resp.headers
    );
    assert_eq!(
        resp.header_all("pragma"),
        ["no-cache"],
        "{:?}",
        resp.headers
    );
    assert!(
        resp.header("www-authenticate").is_none(),
        "{:?}",
        resp.headers
    );
}

/// A 401 from `/users/me` with `detail` and the Bearer challenge.
#[track_caller]
pub(crate) fn assert_401(resp: &Response, detail: &str) {
    assert_json_exact(resp, 401, &format!(r#"{{"detail":"{detail}"}}"#));
    assert_eq!(
        resp.header_all("www-authenticate"),
        ["Bearer"],
        "{:?}",
        resp.headers
    );
}

pub(crate) const NOT_AUTHENTICATED: &str = "Not authenticated";
pub(crate) const INVALID_CREDENTIALS: &str = "Invalid authentication credentials";

/// A 422 from `/token`: the body text starts with FastAPI's exact `detail`
/// bytes (compact, in FastAPI's key order) and, parsed, is exactly that
/// `detail` plus `error` and a string `error_description`.
#[track_caller]
pub(crate) fn assert_422(resp: &Response, entries: &[&str], error: &str) {
    assert_eq!(
        resp.status,
        422,
        "status; body {:?}",
        String::from_utf8_lossy(&resp.body)
    );
    assert_json_headers(resp);
    assert_token_endpoint_headers(resp);
    let detail = format!("[{}]", entries.join(","));
    let prefix = format!(r#"{{"detail":{detail}"#);
    assert!(
        resp.text().starts_with(&prefix),
        "body must start with FastAPI's bytes\n expected prefix: {prefix}\n             body: {}",
        resp.text()
    );
    let body = resp.json();
    let object = body.as_object().expect("a JSON object");
    let mut keys: Vec<_> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["detail", "error", "error_description"],
        "keys of {body}"
    );
    let expected: Value = serde_json::from_str(&detail).expect("expected detail is JSON");
    assert_eq!(object["detail"], expected, "detail");
    assert_eq!(object["error"], error, "error");
    assert!(
        object["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "error_description is a non-empty string: {body}"
    );
}

/// The 503 of a request the server cannot take now (no hash slot within
/// the login queue's wait, or a user store that cannot answer).
pub(crate) const BUSY: &str = r#"{"detail":"Server busy, try again later","error":"temporarily_unavailable","error_description":"The server cannot take this request now; retry after the number of seconds in Retry-After"}"#;

/// [`BUSY`], with its `Retry-After` (whole seconds, at least 1) and
/// `Cache-Control: no-store`.
#[track_caller]
pub(crate) fn assert_busy(resp: &Response) {
    assert_json_exact(resp, 503, BUSY);
    assert!(
        resp.header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)),
        "{:?}",
        resp.headers
    );
    assert_eq!(
        resp.header_all("cache-control"),
        ["no-store"],
        "{:?}",
        resp.headers
    );
}

/// Answers to right-password logins, counted: each must be 200 or the
/// busy 503 ([`assert_busy`]), never a failure or a 429.
#[derive(Debug, Default)]
pub(crate) struct RightLogins {
    pub(crate) ok: usize,
    pub(crate) busy: usize,
}

impl RightLogins {
    /// Counts `resp`, asserting it is one of the two.
    #[track_caller]
    pub(crate) fn count(&mut self, resp: &Response) {
        match resp.status {
            200 => self.ok += 1,
            503 => {
                assert_busy(resp);
                self.busy += 1;
            }
            other => panic!("a right password answered {other}: {}", resp.text()),
        }
    }
}

/// The exact 400 of a failed login.
#[track_caller]
pub(crate) fn assert_invalid_grant(resp: &Response) {
    assert_eq!(
        resp.status,
        400,
        "status; body {:?}",
        String::from_utf8_lossy(&resp.body)
    );
    assert_json_headers(resp);
    assert_token_endpoint_headers(resp);
    let body = resp.json();
    assert_eq!(
        body,
        serde_json::json!({
            "detail": "Incorrect username or password",
            "error": "invalid_grant",
            "error_description": "Incorrect username or password",
        })
    );
    // FastAPI's clients read `detail` first; keep its bytes first too.
    assert!(resp
        .text()
        .starts_with(r#"{"detail":"Incorrect username or password","#));
}

/// The exact `/users/me` body of the demo's johndoe.
pub(crate) const JOHNDOE_ME: &str = r#"{"username":"johndoe","email":"johndoe@example.com","full_name":"John Doe","disabled":false}"#;

pub(crate) const NOT_ENOUGH_PERMISSIONS: &str = r#"{"detail":"Not enough permissions"}"#;
