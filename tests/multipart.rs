//! `POST /token` with `multipart/form-data`, as `curl -F`, requests, httpx
//! and browsers send it: the urlencoded rules in every case (same fields,
//! same 422 bodies, repeats refused, the body limit, throttling), FastAPI's
//! `string_type` entry for a file part, Starlette's three 400s, and the
//! requests real clients sent, replayed byte for byte.

use crate::attacks::{assert_429, throttled};
use crate::support::*;
use password_bearer::Config;
use std::net::SocketAddr;

/// A boundary of curl's shape.
const BOUNDARY: &str = "------------------------d74496d66958873e";

fn content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// One part of [`BOUNDARY`] with `disposition` (the value of its
/// `Content-Disposition`), then `value`.
fn part(disposition: &str, value: &str) -> String {
    format!("--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n")
}

/// The body `curl -F name=value ...` sends for `fields`.
fn form_data(fields: &[(&str, &str)]) -> String {
    let mut body: String = fields
        .iter()
        .map(|(name, value)| part(&format!("form-data; name=\"{name}\""), value))
        .collect();
    body.push_str(&format!("--{BOUNDARY}--\r\n"));
    body
}

async fn post_multipart(addr: SocketAddr, content_type: &str, body: &str) -> Response {
    request(
        addr,
        "POST",
        "/token",
        &[("Content-Type", content_type)],
        body.as_bytes(),
    )
    .await
}

/// `POST /token` with `fields` as `curl -F` sends them.
async fn post_form_data(addr: SocketAddr, fields: &[(&str, &str)]) -> Response {
    post_multipart(addr, &content_type(), &form_data(fields)).await
}

/// The 400 of a multipart body that cannot be read: Starlette's `detail`,
/// and RFC 6749's `invalid_request` with the same words.
#[track_caller]
fn assert_unreadable(resp: &Response, detail: &str) {
    let detail = serde_json::Value::String(detail.to_owned()).to_string();
    let body =
        format!(r#"{{"detail":{detail},"error":"invalid_request","error_description":{detail}}}"#);
    assert_json_exact(resp, 400, &body);
    assert_token_endpoint_headers(resp);
}

/// FastAPI's entry for a file part sent for `field`.
fn string_type(field: &str, filename: &str, size: usize) -> String {
    format!(
        r#"{{"type":"string_type","loc":["body","{field}"],"msg":"Input should be a valid string","input":{{"filename":{},"size":{size}}}}}"#,
        serde_json::Value::String(filename.to_owned())
    )
}

#[track_caller]
fn assert_token_for(resp: &Response, username: &str) -> serde_json::Value {
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_json_headers(resp);
    assert_token_endpoint_headers(resp);
    let claims = token_claims(&access_token(resp));
    assert_eq!(claims["sub"], username);
    claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_f_logs_in() {
    let server = start().await;
    let multipart = post_form_data(
        server.addr,
        &[("username", "johndoe"), ("password", "secret")],
    )
    .await;
    assert_token_for(&multipart, "johndoe");
    // The same answer as the urlencoded form, but for the token's times.
    let urlencoded = post_token(server.addr, "username=johndoe&password=secret").await;
    let keys = |resp: &Response| {
        let mut keys: Vec<String> = resp.json().as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&multipart), keys(&urlencoded));
    assert_eq!(
        multipart.headers_without_date(),
        urlencoded.headers_without_date()
    );
}

/// The exact requests real clients sent for a login (captured by
/// interop/clients/capture.py).
const CLIENT_LOGINS: [(&str, &[u8]); 5] = [
    (
        "curl -F",
        include_bytes!("fixtures/clients/curl_login.http"),
    ),
    (
        "requests, files=",
        include_bytes!("fixtures/clients/requests_files.http"),
    ),
    (
        "requests, data= and files=",
        include_bytes!("fixtures/clients/requests_data_and_file.http"),
    ),
    (
        "httpx, files=",
        include_bytes!("fixtures/clients/httpx_files.http"),
    ),
    (
        "httpx, data= and files=",
        include_bytes!("fixtures/clients/httpx_data_and_file.http"),
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_curl_requests_and_httpx_send_logs_in() {
    let server = start().await;
    for (client, raw) in CLIENT_LOGINS {
        let resp = send_raw(server.addr, raw).await;
        assert_eq!(resp.status, 200, "{client}: {}", resp.text());
        let claims = assert_token_for(&resp, "johndoe");
        // Those with data= asked for scopes (and sent a file for a field we
        // ignore, whose bytes hold CRLF and dashes).
        let scope = client.contains("data=").then_some("me items");
        assert_eq!(claims["scope"].as_str(), scope, "{client}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_from_curl_is_fastapis_string_type_entry() {
    // `curl -F username=@johndoe.txt -F password=secret`
    let server = start().await;
    let raw = include_bytes!("fixtures/clients/curl_username_file.http");
    let resp = send_raw(server.addr, raw).await;
    assert_json_exact(
        &resp,
        422,
        r#"{"detail":[{"type":"string_type","loc":["body","username"],"msg":"Input should be a valid string","input":{"filename":"johndoe.txt","size":7}}],"error":"invalid_request","error_description":"username must be text, not a file"}"#,
    );
    assert_token_endpoint_headers(&resp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_parts_are_refused_in_field_order_and_ignored_for_unknown_fields() {
    let server = start().await;
    let body =
        format!(
        "{}{}{}{}{}--{BOUNDARY}--\r\n",
        part(
            "form-data; name=\"password\"; filename=\"\"\r\nContent-Type: application/octet-stream",
            ""
        ),
        part("form-data; name=\"avatar\"; filename=\"a.png\"", "PNG"),
        part("form-data; name=username", "johndoe"),
        part("form-data; name=\"scope\"; filename=\"s \\\"1\\\".txt\"", "me"),
        part("form-data; name=grant_type; filename=g", "password"),
    );
    let resp = post_multipart(server.addr, &content_type(), &body).await;
    assert_422(
        &resp,
        &[
            &string_type("grant_type", "g", 8),
            &string_type("password", "", 0),
            &string_type("scope", "s \"1\".txt", 2),
        ],
        "invalid_request",
    );
    // A file for a field we do not read is ignored, as FastAPI ignores it.
    let body = format!(
        "{}{}",
        part("form-data; name=\"avatar\"; filename=\"a.png\"", "PNG"),
        form_data(&[("username", "johndoe"), ("password", "secret")])
    );
    let resp = post_multipart(server.addr, &content_type(), &body).await;
    assert_token_for(&resp, "johndoe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_answer_is_the_urlencoded_one() {
    // Same status, same body byte for byte (a token aside), whichever the
    // encoding: one set of rules.
    let server = start().await;
    let cases: &[&[(&str, &str)]] = &[
        &[],
        &[("password", "x")],
        &[("username", "johndoe")],
        &[("username", ""), ("password", "")],
        &[("grant_type", "foo")],
        &[
            ("grant_type", "Password"),
            ("username", "johndoe"),
            ("password", "secret"),
        ],
        &[
            ("username", "johndoe"),
            ("username", "johndoe"),
            ("password", "secret"),
        ],
        &[
            ("client_secret", "x"),
            ("username", "a"),
            ("client_id", "a"),
            ("password", "b"),
            ("client_secret", "y"),
            ("client_id", "b"),
        ],
        &[("username", "a"), ("username", "b")],
        &[
            ("scope", "a"),
            ("scope", "b"),
            ("grant_type", "x"),
            ("password", "p"),
        ],
        &[("username", "johndoe"), ("password", "nope")],
        &[("username", "nobody"), ("password", "secret")],
        &[
            ("username", "alice"),
            ("password", "secret2"),
            ("scope", "items"),
        ],
        &[
            ("grant_type", ""),
            ("username", "johndoe"),
            ("password", "secret"),
            ("foo", "bar"),
            ("foo", "baz"),
            ("scope", "me admin"),
            ("client_id", "x"),
            ("client_secret", "y"),
        ],
    ];
    for fields in cases {
        let urlencoded = {
            let mut serializer = form_urlencoded::Serializer::new(String::new());
            for (name, value) in *fields {
                serializer.append_pair(name, value);
            }
            post_token(server.addr, &serializer.finish()).await
        };
        let multipart = post_form_data(server.addr, fields).await;
        assert_eq!(multipart.status, urlencoded.status, "{fields:?}");
        assert_token_endpoint_headers(&multipart);
        if multipart.status == 200 {
            let (m, u) = (multipart.json(), urlencoded.json());
            assert_eq!(m["scope"], u["scope"], "{fields:?}");
            let (m, u) = (
                token_claims(&access_token(&multipart)),
                token_claims(&access_token(&urlencoded)),
            );
            assert_eq!(
                (&m["sub"], &m["scope"]),
                (&u["sub"], &u["scope"]),
                "{fields:?}"
            );
        } else {
            assert_eq!(multipart.text(), urlencoded.text(), "{fields:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_wins_over_a_file() {
    let server = start().await;
    let body = format!(
        "{}{}{}--{BOUNDARY}--\r\n",
        part("form-data; name=username", "johndoe"),
        part("form-data; name=username; filename=u.txt", "johndoe"),
        part("form-data; name=password; filename=p.txt", "secret"),
    );
    let resp = post_multipart(server.addr, &content_type(), &body).await;
    assert_422(
        &resp,
        &[&duplicate("username"), &string_type("password", "p.txt", 6)],
        "invalid_request",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_type_without_a_boundary_is_400() {
    let server = start().await;
    let body = form_data(&[("username", "johndoe"), ("password", "secret")]);
    for content_type in ["multipart/form-data", "multipart/form-data; charset=utf-8"] {
        let resp = post_multipart(server.addr, content_type, &body).await;
        assert_unreadable(&resp, "Missing boundary in multipart.");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_multipart_is_400() {
    let server = start().await;
    let login = form_data(&[("username", "johndoe"), ("password", "secret")]);
    let ct = content_type();
    let long = "b".repeat(71);
    let long_body = login.replace(BOUNDARY, &long);
    let cases = [
        (ct.clone(), login.replace("\r\n", "\n")),
        (
            ct.clone(),
            login.replacen("Content-Disposition:", "Content-Disposition", 1),
        ),
        (ct.clone(), "garbage".to_owned()),
        (format!("multipart/form-data; boundary={long}"), long_body),
        (
            "multipart/form-data; boundary=\"\"".to_owned(),
            login.clone(),
        ),
    ];
    for (content_type, body) in &cases {
        let resp = post_multipart(server.addr, content_type, body).await;
        assert_unreadable(&resp, "Invalid multipart data.");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_without_a_name_is_400() {
    let server = start().await;
    let password = part("form-data; name=password", "secret");
    for first in [
        format!("--{BOUNDARY}\r\n\r\njohndoe\r\n"),
        format!("--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\njohndoe\r\n"),
        part("form-data", "johndoe"),
        part("form-data; filename=\"username\"", "johndoe"),
    ] {
        let body = format!("{first}{password}--{BOUNDARY}--\r\n");
        let resp = post_multipart(server.addr, &content_type(), &body).await;
        assert_unreadable(
            &resp,
            "The Content-Disposition header field \"name\" must be provided.",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_body_is_422_for_both_fields() {
    let server = start().await;
    for body in ["", "\r\n", &format!("--{BOUNDARY}--\r\n")] {
        let resp = post_multipart(server.addr, &content_type(), body).await;
        assert_422(
            &resp,
            &[MISSING_USERNAME, MISSING_PASSWORD],
            "invalid_request",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_part_is_a_missing_field() {
    let server = start().await;
    let resp = post_form_data(server.addr, &[("username", ""), ("password", "secret")]).await;
    assert_422(&resp, &[MISSING_USERNAME], "invalid_request");
    let resp = post_form_data(
        server.addr,
        &[
            ("grant_type", ""),
            ("username", "johndoe"),
            ("password", ""),
        ],
    )
    .await;
    assert_422(&resp, &[MISSING_PASSWORD], "invalid_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boundaries_and_names_are_read_as_written() {
    let server = start().await;
    let login = |boundary: &str| {
        form_data(&[("username", "johndoe"), ("password", "secret")]).replace(BOUNDARY, boundary)
    };
    let seventy = "b".repeat(70);
    let cases = [
        (
            "multipart/form-data; boundary=\"quoted boundary\"".to_owned(),
            login("quoted boundary"),
        ),
        ("Multipart/Form-Data; Boundary=XYZ".to_owned(), login("XYZ")),
        (
            format!("multipart/form-data; boundary={seventy}"),
            login(&seventy),
        ),
        // A bare-token name, other part headers (a charset among them).
        (
            content_type(),
            format!(
                "{}{}--{BOUNDARY}--\r\n",
                part(
                    "form-data; name=username\r\nContent-Type: text/plain; charset=latin-1",
                    "johndoe"
                ),
                part("form-data; name=\"password\"", "secret"),
            ),
        ),
    ];
    for (content_type, body) in &cases {
        let resp = post_multipart(server.addr, content_type, body).await;
        assert_token_for(&resp, "johndoe");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_are_the_raw_bytes_of_the_part() {
    // No `+` and no percent decoding: what a part holds is the value.
    let users = users_with(&[("john%64oe", "a+b%20c\r\nd", false)]);
    let mut config = Config::new(users, test_key());
    config.login_log = false;
    let server = start_with(config).await;
    let resp = post_form_data(
        server.addr,
        &[("username", "john%64oe"), ("password", "a+b%20c\r\nd")],
    )
    .await;
    assert_token_for(&resp, "john%64oe");
    let resp = post_form_data(
        server.addr,
        &[("username", "johndoe"), ("password", "a b c\r\nd")],
    )
    .await;
    assert_invalid_grant(&resp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_part_not_closed_by_a_delimiter_is_dropped() {
    let server = start().await;
    let body = format!(
        "{}--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nsecret",
        part("form-data; name=\"username\"", "johndoe")
    );
    let resp = post_multipart(server.addr, &content_type(), &body).await;
    assert_422(&resp, &[MISSING_PASSWORD], "invalid_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preamble_and_an_epilogue_are_ignored() {
    // RFC 2046 allows both; python-multipart refuses a preamble.
    let server = start().await;
    let body = format!(
        "This is a preamble.\r\n{}This is the epilogue.\r\n",
        form_data(&[("username", "johndoe"), ("password", "secret")])
    );
    let resp = post_multipart(server.addr, &content_type(), &body).await;
    assert_token_for(&resp, "johndoe");
}

/// A login whose body is exactly `size` bytes: the credentials, then an
/// ignored field padded to fit.
fn login_of_size(size: usize) -> String {
    let fixed = form_data(&[("username", "johndoe"), ("password", "secret"), ("pad", "")]);
    let pad = "p".repeat(size - fixed.len());
    let body = form_data(&[
        ("username", "johndoe"),
        ("password", "secret"),
        ("pad", &pad),
    ]);
    assert_eq!(body.len(), size);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_body_over_16_kib_is_413() {
    let server = start().await;
    let resp = post_multipart(server.addr, &content_type(), &login_of_size(16 * 1024 + 1)).await;
    assert_json_exact(&resp, 413, r#"{"detail":"Request body too large"}"#);
    assert_token_endpoint_headers(&resp);
    // Chunked, without a Content-Length: the limit holds while reading.
    let body = login_of_size(16 * 1024 + 1);
    let (first, second) = body.split_at(8 * 1024);
    let raw = format!(
        "POST /token HTTP/1.1\r\nHost: t\r\nContent-Type: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
        content_type(),
        first.len(),
        second.len()
    );
    let resp = send_raw(server.addr, raw.as_bytes()).await;
    assert_json_exact(&resp, 413, r#"{"detail":"Request body too large"}"#);
    // Exactly at the limit is read.
    let resp = post_multipart(server.addr, &content_type(), &login_of_size(16 * 1024)).await;
    assert_token_for(&resp, "johndoe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_body_leaves_the_connection_usable() {
    // The body is read whole before it is parsed: after a 400 the next
    // request on the connection is read from its first byte.
    let server = start().await;
    let mut conn = Conn::open(server.addr).await;
    let send = |body: &str| {
        format!(
            "POST /token HTTP/1.1\r\nHost: t\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{body}",
            content_type(),
            body.len()
        )
    };
    conn.send(send("garbage\r\n").as_bytes()).await;
    assert_unreadable(&conn.response().await, "Invalid multipart data.");
    let login = form_data(&[("username", "johndoe"), ("password", "secret")]);
    conn.send(send(&login).as_bytes()).await;
    assert_token_for(&conn.response().await, "johndoe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_multipart_logins_count_as_any_other() {
    let server = start_with(throttled(3, 0)).await;
    let guess = [("username", "johndoe"), ("password", "guess")];
    let right = [("username", "johndoe"), ("password", "secret")];
    // A success resets the count, whichever the encoding.
    for _ in 0..2 {
        assert_invalid_grant(&post_form_data(server.addr, &guess).await);
    }
    assert_token_for(&post_form_data(server.addr, &right).await, "johndoe");
    // Failures in either encoding add up, and lock both.
    for _ in 0..2 {
        assert_invalid_grant(&post_form_data(server.addr, &guess).await);
    }
    assert_invalid_grant(&post_token(server.addr, &credentials("johndoe", "guess")).await);
    assert_429(&post_form_data(server.addr, &right).await);
    assert_429(&post_token(server.addr, &credentials("johndoe", "secret")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_multipart_logins_lock_their_address() {
    let server = start_with(throttled(0, 3)).await;
    let from = |n: u8, username: &'static str, password: &'static str| {
        let body = form_data(&[("username", username), ("password", password)]);
        let raw = format!(
            "POST /token HTTP/1.1\r\nHost: t\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            content_type(),
            body.len()
        );
        let addr = server.addr;
        async move {
            let mut conn = Conn::open_from(addr, loopback(n)).await;
            conn.send(raw.as_bytes()).await;
            conn.response().await
        }
    };
    for username in ["a", "b", "c"] {
        assert_invalid_grant(&from(7, username, "guess").await);
    }
    assert_429(&from(7, "johndoe", "secret").await);
    // Another address is not locked.
    assert_token_for(&from(8, "johndoe", "secret").await, "johndoe");
}
