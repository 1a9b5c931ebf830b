//! Shared test machinery: an in-process server on `127.0.0.1:0` that stops
//! when dropped, a raw HTTP/1.1 client that shows the exact bytes the server
//! sent, and HS256 helpers to decode our tokens and forge others.
//!
//! The client is hand-written rather than hyper's: the contract is about
//! bytes on the wire (header names, duplicates, exact bodies, when the
//! server closes), which a full client would normalise away.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use password_bearer::token::SecretKey;
use password_bearer::users::Users;
use password_bearer::{serve, App, Config};
use serde_json::Value;
use sha2::{Sha256, Sha384, Sha512};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The signing key of every in-process server, so tests can check the
/// tokens it issues and forge tokens it must accept or refuse.
pub(crate) const TEST_KEY: &[u8] = b"integration-tests-key-0123456789-abcdefghij";

/// No single network step of a test may take longer: a server that hangs
/// fails the test instead of hanging the suite.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);

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

pub(crate) fn test_key() -> SecretKey {
    SecretKey::new(TEST_KEY).expect("the test key is long enough")
}

/// A running in-process server. Dropping it fires the shutdown signal, so a
/// failing test does not leave a server behind.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Fires the shutdown signal without waiting: the server keeps serving
    /// in-flight requests for its grace period.
    pub(crate) fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Fires the shutdown signal and waits for `serve` to return, failing
    /// if it does not within `limit`.
    pub(crate) async fn shutdown_within(mut self, limit: Duration) {
        self.trigger_shutdown();
        let task = self.task.take().expect("the server task is joined once");
        tokio::time::timeout(limit, task)
            .await
            .expect("serve returned within the limit")
            .expect("the serve task did not panic")
    }

    /// Whether `serve` has returned.
    pub(crate) fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.trigger_shutdown();
    }
}

/// A server with the demo users (johndoe active, alice disabled), the test
/// key and every other setting at its default.
pub(crate) async fn start() -> TestServer {
    start_with(Config::new(Users::demo(), test_key())).await
}

/// A server with a custom configuration.
pub(crate) async fn start_with(config: Config) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound address");
    let app = Arc::new(App::new(config));
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app, async move {
        // A dropped sender (test over) is a shutdown too.
        let _ = rx.await;
    }));
    TestServer {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// Users for tests that need someone other than the demo users: each
/// `(username, password, disabled)` is hashed for real.
pub(crate) fn users_with(entries: &[(&str, &str, bool)]) -> Users {
    Users::from_json(&users_json(entries)).expect("the generated users JSON is valid")
}

/// The users-file JSON (the seed's `fake_users_db` shape) for `entries`.
pub(crate) fn users_json(entries: &[(&str, &str, bool)]) -> String {
    let mut map = serde_json::Map::new();
    for (username, password, disabled) in entries {
        let hash = password_bearer::password::hash_password(password).expect("hashing succeeds");
        map.insert(
            (*username).to_owned(),
            serde_json::json!({
                "username": username,
                "full_name": format!("Full {username}"),
                "email": format!("{username}@example.com"),
                "hashed_password": hash,
                "disabled": disabled,
            }),
        );
    }
    Value::Object(map).to_string()
}

/// One parsed response, with what the server actually sent.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) status: u16,
    /// Header names lowercased, values trimmed, in order, duplicates kept.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (lowercase).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (lowercase).
    pub(crate) fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("the body is UTF-8")
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// Headers minus `date`, sorted: what must match between two responses
    /// that are meant to be indistinguishable.
    pub(crate) fn headers_without_date(&self) -> Vec<(String, String)> {
        let mut headers: Vec<_> = self
            .headers
            .iter()
            .filter(|(n, _)| n != "date")
            .cloned()
            .collect();
        headers.sort();
        headers
    }
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

/// One client connection, reading responses one after the other (so
/// keep-alive and pipelining can be tested).
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> Conn {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// [`Conn::open`] from the local address `source`: every 127.x.y.z is
    /// loopback, so one test plays clients at several addresses.
    pub(crate) async fn open_from(addr: SocketAddr, source: IpAddr) -> Conn {
        Conn {
            stream: connect_from(addr, source)
                .await
                .unwrap_or_else(|e| panic!("connect from {source}: {e}")),
            buf: Vec::new(),
        }
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        tokio::time::timeout(IO_TIMEOUT, self.stream.write_all(bytes))
            .await
            .expect("write in time")
            .expect("write");
    }

    /// Reads one full response, or fails the test.
    pub(crate) async fn response(&mut self) -> Response {
        tokio::time::timeout(IO_TIMEOUT, self.try_response())
            .await
            .expect("a response in time")
            .expect("a complete response")
    }

    /// Reads one full response; an error when the connection ends first.
    pub(crate) async fn try_response(&mut self) -> io::Result<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            self.fill().await?;
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "non-UTF-8 head"))?;
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad status line {status_line:?}"),
                )
            })?;
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                (name.to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if let Some(length) = response.header("content-length") {
            let length: usize = length
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
            while self.buf.len() < length {
                self.fill().await?;
            }
            response.body = self.buf.drain(..length).collect();
        } else if response
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            response.body = self.chunked_body().await?;
        } else if status != 304 && status != 204 && !(100..200).contains(&status) {
            // No framing: the body runs to the end of the connection.
            while self.fill().await.is_ok() {}
            response.body = std::mem::take(&mut self.buf);
        }
        check_every_response(&response);
        Ok(response)
    }

    async fn chunked_body(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                self.fill().await?;
            };
            let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            self.buf.drain(..line_end + 2);
            while self.buf.len() < size + 2 {
                self.fill().await?;
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
            if size == 0 {
                return Ok(body);
            }
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Waits up to `limit` for the server to close the connection. Returns
    /// what it sent before closing (a 408, say), or `None` if it is still
    /// open when the limit passes.
    pub(crate) async fn closed_within(&mut self, limit: Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(std::mem::take(&mut self.buf)),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Checks that hold for every response any test reads.
#[track_caller]
fn check_every_response(resp: &Response) {
    // No password hash ever leaves the process (the contract's deviation
    // from the seed, which echoes `hashed_password`).
    let everything = format!("{:?}{}", resp.headers, String::from_utf8_lossy(&resp.body));
    assert!(
        !everything.contains("$argon2"),
        "a password hash left the process: {everything}"
    );
    if resp.header("content-type") == Some("application/json") {
        assert_json_headers(resp);
        serde_json::from_slice::<Value>(&resp.body).expect("a JSON response's body is JSON");
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A connection to `addr` from the local address `source`.
pub(crate) async fn connect_from(addr: SocketAddr, source: IpAddr) -> io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    tokio::time::timeout(IO_TIMEOUT, socket.connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
}

/// 127.0.0.`n`: a client address of its own, still loopback.
pub(crate) fn loopback(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

/// The bytes of `POST /token` with `body`, keeping the connection open.
pub(crate) fn token_request(body: &str) -> Vec<u8> {
    format!(
        "POST /token HTTP/1.1\r\nHost: t\r\nContent-Type: {FORM}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `POST /token` with `body` from the local address `source`.
pub(crate) async fn post_token_from(addr: SocketAddr, source: IpAddr, body: &str) -> Response {
    let mut conn = Conn::open_from(addr, source).await;
    conn.send(&token_request(body)).await;
    conn.response().await
}

/// Sends `raw` on a fresh connection and reads one response.
pub(crate) async fn send_raw(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut conn = Conn::open(addr).await;
    conn.send(raw).await;
    conn.response().await
}

/// The bytes of a request with `Host` and `Connection: close`;
/// `Content-Length` is added when there is a body or the method is POST.
pub(crate) fn request_bytes(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("Connection: close\r\n\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    send_raw(addr, &request_bytes(method, path, headers, body)).await
}

pub(crate) async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", path, headers, b"").await
}

pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// `POST /token` with a form body sent as given (no re-encoding).
pub(crate) async fn post_token(addr: SocketAddr, body: &str) -> Response {
    request(
        addr,
        "POST",
        "/token",
        &[("Content-Type", FORM)],
        body.as_bytes(),
    )
    .await
}

/// `GET path` on a fresh connection; an error instead of a failed test
/// when the server closes or refuses it.
pub(crate) async fn try_get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    let stream = TcpStream::connect(addr).await?;
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
    };
    conn.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await;
    conn.try_response().await
}

/// The form body for `username` and `password`, properly encoded.
pub(crate) fn credentials(username: &str, password: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("username", username)
        .append_pair("password", password)
        .finish()
}

/// Logs in and returns the access token, failing on anything but a 200.
pub(crate) async fn login(addr: SocketAddr, username: &str, password: &str) -> String {
    let resp = post_token(addr, &credentials(username, password)).await;
    assert_eq!(resp.status, 200, "login of {username}: {}", resp.text());
    resp.json()["access_token"]
        .as_str()
        .expect("access_token is a string")
        .to_owned()
}

/// `GET /users/me` with `Authorization: authorization`.
pub(crate) async fn get_me(addr: SocketAddr, authorization: &str) -> Response {
    get(addr, "/users/me", &[("Authorization", authorization)]).await
}

/// Seconds since the epoch, as the server counts them.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text)
        .unwrap_or_else(|e| panic!("{text:?} is unpadded base64url: {e}"))
}

/// The HMAC algorithms a forged token can be signed with.
#[derive(Clone, Copy)]
pub(crate) enum Hs {
    S256,
    S384,
    S512,
}

pub(crate) fn mac(alg: Hs, key: &[u8], input: &[u8]) -> Vec<u8> {
    match alg {
        Hs::S256 => {
            let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
            m.update(input);
            m.finalize().into_bytes().to_vec()
        }
        Hs::S384 => {
            let mut m = Hmac::<Sha384>::new_from_slice(key).expect("HMAC takes any key");
            m.update(input);
            m.finalize().into_bytes().to_vec()
        }
        Hs::S512 => {
            let mut m = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
            m.update(input);
            m.finalize().into_bytes().to_vec()
        }
    }
}

/// A JWT of the given header and claims texts (used verbatim, so tests can
/// forge any shape), signed with `alg` and `key`.
pub(crate) fn sign_with(alg: Hs, key: &[u8], header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let signature = mac(alg, key, input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// The header PyJWT writes for HS256.
pub(crate) const HS256_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// A well-formed token as PyJWT would mint it with the test key.
pub(crate) fn sign(claims: &str) -> String {
    sign_with(Hs::S256, TEST_KEY, HS256_HEADER, claims)
}

/// Checks `token`'s HS256 signature with `key` ourselves and returns its
/// header and claims.
#[track_caller]
pub(crate) fn decode_verified(token: &str, key: &[u8]) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "three segments in {token:?}");
    let input = format!("{}.{}", parts[0], parts[1]);
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    m.update(input.as_bytes());
    m.verify_slice(&unb64(parts[2]))
        .expect("the signature is HS256 with the expected key");
    let header = serde_json::from_slice(&unb64(parts[0])).expect("header is JSON");
    let claims = serde_json::from_slice(&unb64(parts[1])).expect("claims are JSON");
    (header, claims)
}

/// The exact `/users/me` body of the demo's johndoe.
pub(crate) const JOHNDOE_ME: &str = r#"{"username":"johndoe","email":"johndoe@example.com","full_name":"John Doe","disabled":false}"#;

// ---------------------------------------------------------------------------
// Embedding: servers of the tests' own around `App` (as an embedder writes
// them), and the scopes side of the contract.

/// The route an embedder adds next to [`App::handle`] (FastAPI's
/// `/users/me/items`), protected by the chain and the `items` scope.
pub(crate) const ITEMS_PATH: &str = "/users/me/items";

/// The `ITEMS_PATH` body for `owner`.
pub(crate) fn items_body(owner: &str) -> String {
    serde_json::json!([{"item_id": "Foo", "owner": owner}]).to_string()
}

pub(crate) const NOT_ENOUGH_PERMISSIONS: &str = r#"{"detail":"Not enough permissions"}"#;

/// Runs a serving loop of `serve`'s shape on `127.0.0.1:0` as a
/// [`TestServer`]: `run` gets the listener and the shutdown signal (which
/// also fires when the `TestServer` is dropped).
pub(crate) async fn start_loop<F, Fut>(run: F) -> TestServer
where
    F: FnOnce(TcpListener, std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound address");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(run(
        listener,
        Box::pin(async move {
            let _ = rx.await;
        }),
    ));
    TestServer {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// [`start_with`] for any user store.
pub(crate) async fn start_store<S: password_bearer::users::UserStore>(
    config: Config<S>,
) -> TestServer {
    let app = Arc::new(App::new(config));
    start_loop(|listener, shutdown| serve(listener, app, shutdown)).await
}

/// A hyper service of the test's own, on the settings `serve` uses (a
/// timer and a header-read timeout): `handler` answers every request with
/// the client's address.
pub(crate) async fn start_service<H, Fut>(handler: H) -> TestServer
where
    H: Fn(hyper::Request<hyper::body::Incoming>, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = hyper::Response<http_body_util::Full<bytes::Bytes>>>
        + Send
        + 'static,
{
    let handler = Arc::new(handler);
    start_loop(|listener, mut shutdown| async move {
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10));
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => continue,
                },
                () = &mut shutdown => return,
            };
            let handler = handler.clone();
            let service = hyper::service::service_fn(move |request| {
                let answer = handler(request, peer);
                async move { Ok::<_, std::convert::Infallible>(answer.await) }
            });
            let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    })
    .await
}

/// `config`'s app behind an embedder's service: `GET` [`ITEMS_PATH`] is
/// the test's own handler ([`read_own_items`]), everything else goes to
/// [`App::handle`] with the client's address.
pub(crate) async fn start_with_items<S: password_bearer::users::UserStore>(
    config: Config<S>,
) -> TestServer {
    let app = Arc::new(App::new(config));
    start_service(move |request, peer| {
        let app = app.clone();
        async move {
            if request.method() == hyper::Method::GET && request.uri().path() == ITEMS_PATH {
                return read_own_items(&app, request.headers()).await;
            }
            app.handle(request, Some(peer)).await
        }
    })
    .await
}

/// An embedder's handler: the chain (`bearer_token`, `current_user`,
/// `current_active_user`, `require_scopes(["items"])`), each error answered
/// with its own `into_response`.
pub(crate) async fn read_own_items<S: password_bearer::users::UserStore>(
    app: &App<S>,
    headers: &hyper::HeaderMap,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    use password_bearer::auth::{current_active_user, current_user, require_scopes};
    use password_bearer::error::ApiError;
    let chain = async {
        let header = headers.get(hyper::header::AUTHORIZATION);
        let token = password_bearer::bearer::bearer_token(header.map(|v| v.as_bytes()))?;
        let current = current_active_user(current_user(app, token).await?)?;
        require_scopes(&current, &["items"])?;
        Ok::<_, ApiError>(password_bearer::error::json_response(
            hyper::StatusCode::OK,
            items_body(current.user.username()).into(),
        ))
    };
    chain.await.unwrap_or_else(ApiError::into_response)
}

/// The form body for `username`, `password` and `scope`, properly encoded.
pub(crate) fn credentials_with_scope(username: &str, password: &str, scope: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("username", username)
        .append_pair("password", password)
        .append_pair("scope", scope)
        .finish()
}

/// Logs in asking for `scope`; the 200 response.
pub(crate) async fn login_with_scope(
    addr: SocketAddr,
    username: &str,
    password: &str,
    scope: &str,
) -> Response {
    let resp = post_token(addr, &credentials_with_scope(username, password, scope)).await;
    assert_eq!(
        resp.status,
        200,
        "login of {username} with scope {scope:?}: {}",
        resp.text()
    );
    assert_token_endpoint_headers(&resp);
    resp
}

/// The `access_token` of a token response.
#[track_caller]
pub(crate) fn access_token(resp: &Response) -> String {
    resp.json()["access_token"]
        .as_str()
        .expect("access_token is a string")
        .to_owned()
}

/// The claims of a token the test key signed (signature checked).
#[track_caller]
pub(crate) fn token_claims(token: &str) -> Value {
    decode_verified(token, TEST_KEY).1
}

/// `GET` [`ITEMS_PATH`] with `Authorization: Bearer token`.
pub(crate) async fn get_items(addr: SocketAddr, token: &str) -> Response {
    get(
        addr,
        ITEMS_PATH,
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .await
}

/// Processes stopped with SIGSTOP until dropped (SIGCONT): frozen, an
/// engine accepts connections and answers nothing, as one behind a network
/// partition, or stuck on its disk, looks to its clients.
#[cfg(any(feature = "postgres", feature = "redis"))]
pub(crate) struct Frozen(Vec<String>);

#[cfg(any(feature = "postgres", feature = "redis"))]
impl Frozen {
    pub(crate) fn new(pids: Vec<String>) -> Frozen {
        signal("-STOP", &pids);
        Frozen(pids)
    }
}

#[cfg(any(feature = "postgres", feature = "redis"))]
impl Drop for Frozen {
    fn drop(&mut self) {
        signal("-CONT", &self.0);
    }
}

#[cfg(any(feature = "postgres", feature = "redis"))]
fn signal(signal: &str, pids: &[String]) {
    let status = std::process::Command::new("kill")
        .arg(signal)
        .args(pids)
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pids:?}");
}
