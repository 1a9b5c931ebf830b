//! The raw HTTP/1.1 client: requests written byte for byte, responses read
//! as sent (header names, duplicates, framing, when the server closes),
//! from any loopback source address, and the logins built on it.
//!
//! Every response it reads passes [`check_every_response`]: no password
//! hash leaves the server, and a JSON response is JSON with its length.

use super::asserts::assert_json_headers;
use serde_json::Value;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// No single network step of a test may take longer: a server that hangs
/// fails the test instead of hanging the suite.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The `access_token` of a token response.
#[track_caller]
pub(crate) fn access_token(resp: &Response) -> String {
    resp.json()["access_token"]
        .as_str()
        .expect("access_token is a string")
        .to_owned()
}
