//! TLS (the `tls` feature: `cargo test --features tls`): a login and
//! `/users/me` over TLS 1.3 and 1.2 with a chain made here by rcgen; plain
//! HTTP to the TLS port closed at once; a stalled handshake dropped at the
//! header-read timeout while holding only its own slot; a renewed
//! certificate seen by the next handshake while an open connection keeps
//! working, by `Tls::reload` and by SIGHUP to the binary
//! (all or nothing with the users and keys); TLS on a socket systemd
//! passed; bad files one line and exit 2 through the binary. Without the
//! feature, the flags are refused.

use crate::cli::*;

#[cfg(feature = "tls")]
mod with_tls {
    use super::*;
    use crate::support::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    use password_bearer::tls::{Tls, TlsFile, TlsProblem};
    use password_bearer::users::Users;
    use password_bearer::{serve_tls, serve_tls_with, App, Config};
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    use tokio_rustls::client::TlsStream;
    use tokio_rustls::TlsConnector;

    /// A certificate authority and a leaf for `localhost` it signed.
    struct Pki {
        ca: CertificateDer<'static>,
        /// The leaf, then the CA: the chain as a cert file holds it.
        chain_pem: String,
        leaf: CertificateDer<'static>,
        key_pem: String,
    }

    fn make_pki() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key"))
            .expect("a CA");
        let key = KeyPair::generate().expect("a leaf key");
        let leaf = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("leaf params")
            .signed_by(&key, &ca)
            .expect("a leaf");
        Pki {
            ca: ca.der().clone(),
            chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
            leaf: leaf.der().clone(),
            key_pem: key.serialize_pem(),
        }
    }

    impl Pki {
        /// Writes the chain and key into `dir`: (cert path, key path).
        fn write(&self, dir: &TempDir) -> (String, String) {
            (
                dir.file("cert.pem", self.chain_pem.as_bytes()),
                dir.file("key.pem", self.key_pem.as_bytes()),
            )
        }
    }

    /// `config`'s app served over `tls` on 127.0.0.1:0.
    async fn start_tls(config: Config, tls: Arc<Tls>) -> TestServer {
        let app = Arc::new(App::new(config));
        start_loop(|listener, shutdown| serve_tls(listener, app, tls, shutdown)).await
    }

    fn config() -> Config {
        Config::new(Users::demo(), test_key())
    }

    /// A handshake trusting `roots`, offering `versions` and ALPN
    /// `http/1.1`.
    async fn connect(
        addr: SocketAddr,
        roots: &[&CertificateDer<'static>],
        versions: &[&'static SupportedProtocolVersion],
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let mut store = RootCertStore::empty();
        for root in roots {
            store.add((*root).clone()).expect("a usable root");
        }
        let mut client =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .expect("the versions")
                .with_root_certificates(store)
                .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").expect("a name");
        tokio::time::timeout(
            IO_TIMEOUT,
            TlsConnector::from(Arc::new(client)).connect(name, tcp),
        )
        .await
        .expect("the handshake in time")
    }

    /// HTTP/1 over one TLS connection, with hyper's client.
    struct Client {
        sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    }

    impl Client {
        async fn over(stream: TlsStream<TcpStream>) -> Client {
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("HTTP/1 over TLS");
            tokio::spawn(connection);
            Client { sender }
        }

        /// `request`'s status and body.
        async fn send(&mut self, request: hyper::Request<Full<Bytes>>) -> (u16, String) {
            // The connection's task must have taken the previous answer
            // before the next request: on a loaded machine it may not
            // have run yet, and hyper then refuses ("connection was not
            // ready").
            let sender = &mut self.sender;
            let response = tokio::time::timeout(IO_TIMEOUT, async {
                sender.ready().await?;
                sender.send_request(request).await
            })
            .await
            .expect("an answer in time")
            .expect("an answer");
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .expect("the body")
                .to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }

        async fn login(&mut self) -> String {
            let request = hyper::Request::post("/token")
                .header("host", "localhost")
                .header("content-type", FORM)
                .body(Full::new(Bytes::from(credentials("johndoe", "secret"))))
                .expect("a request");
            let (status, body) = self.send(request).await;
            assert_eq!(status, 200, "{body}");
            let token: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            token["access_token"]
                .as_str()
                .expect("an access token")
                .to_owned()
        }

        async fn me(&mut self, token: &str) -> (u16, String) {
            let request = hyper::Request::get("/users/me")
                .header("host", "localhost")
                .header("authorization", format!("Bearer {token}"))
                .body(Full::new(Bytes::new()))
                .expect("a request");
            self.send(request).await
        }
    }

    /// The certificate the server presented, leaf first.
    fn presented(stream: &TlsStream<TcpStream>) -> Vec<CertificateDer<'static>> {
        stream
            .get_ref()
            .1
            .peer_certificates()
            .expect("the server's certificates")
            .to_vec()
    }

    #[tokio::test]
    async fn a_login_and_users_me_over_tls_1_3_and_1_2() {
        let pki = make_pki();
        let dir = TempDir::new();
        let (cert, key) = pki.write(&dir);
        let tls = Arc::new(Tls::load(&cert, &key).expect("the files load"));
        let server = start_tls(config(), tls).await;
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let stream = connect(server.addr, &[&pki.ca], &[version])
                .await
                .expect("a handshake trusting the CA");
            let (_, session) = stream.get_ref();
            assert_eq!(session.protocol_version(), Some(version.version));
            assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
            // The whole chain from the file, leaf first.
            assert_eq!(presented(&stream), [pki.leaf.clone(), pki.ca.clone()]);
            let mut client = Client::over(stream).await;
            // The login and the read on one kept-alive connection.
            let token = client.login().await;
            let (status, body) = client.me(&token).await;
            assert_eq!((status, body.as_str()), (200, JOHNDOE_ME));
        }
        // A client that does not trust the CA gets no session.
        let stranger = make_pki();
        assert!(
            connect(server.addr, &[&stranger.ca], &[&rustls::version::TLS13])
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn serve_tls_with_serves_an_embedders_routes_beside_the_apps() {
        let pki = make_pki();
        let dir = TempDir::new();
        let (cert, key) = pki.write(&dir);
        let tls = Arc::new(Tls::load(&cert, &key).expect("the files load"));
        let app = Arc::new(App::new(config()));
        let server = start_loop(|listener, shutdown| {
            serve_tls_with(
                listener,
                app,
                tls,
                |app: Arc<App>,
                 request: hyper::Request<hyper::body::Incoming>,
                 peer: SocketAddr| async move {
                    if request.uri().path() == "/hello" {
                        hyper::Response::new(Full::new(Bytes::from(format!("hello {}", peer.ip()))))
                    } else {
                        app.handle(request, Some(peer)).await
                    }
                },
                shutdown,
            )
        })
        .await;
        let stream = connect(server.addr, &[&pki.ca], &[&rustls::version::TLS13])
            .await
            .expect("a handshake");
        let mut client = Client::over(stream).await;
        let token = client.login().await;
        assert_eq!(client.me(&token).await, (200, JOHNDOE_ME.to_owned()));
        let hello = hyper::Request::get("/hello")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .expect("a request");
        assert_eq!(
            client.send(hello).await,
            (200, "hello 127.0.0.1".to_owned())
        );
    }

    #[tokio::test]
    async fn plain_http_to_the_tls_port_is_closed_at_once() {
        let pki = make_pki();
        let dir = TempDir::new();
        let (cert, key) = pki.write(&dir);
        let tls = Arc::new(Tls::load(&cert, &key).expect("the files load"));
        // The default 10 s header-read timeout: a close within 2 s is
        // the refusal, not the timeout.
        let server = start_tls(config(), tls).await;
        let mut conn = Conn::open(server.addr).await;
        conn.send(&users_me_request()).await;
        let sent = conn
            .closed_within(Duration::from_secs(2))
            .await
            .expect("closed, not left hanging");
        assert!(!sent.starts_with(b"HTTP/"), "{sent:?}");
        // The server goes on serving TLS.
        assert!(connect(server.addr, &[&pki.ca], &[&rustls::version::TLS13])
            .await
            .is_ok());
    }

    fn users_me_request() -> Vec<u8> {
        b"GET /users/me HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec()
    }

    #[tokio::test]
    async fn a_stalled_handshake_is_dropped_at_the_header_read_timeout_holding_only_its_slot() {
        let pki = make_pki();
        let dir = TempDir::new();
        let (cert, key) = pki.write(&dir);
        let tls = Arc::new(Tls::load(&cert, &key).expect("the files load"));
        let mut config = config();
        config.header_read_timeout = Duration::from_secs(2);
        config.max_connections_per_ip = Some(1);
        let server = start_tls(config, tls).await;
        // A ClientHello's record header, and then nothing.
        let mut stalled = Conn::open_from(server.addr, loopback(2)).await;
        stalled.send(&[0x16, 0x03, 0x01, 0x00, 0xc8]).await;
        let start = Instant::now();
        // Meanwhile: the same address is at its cap (the stalled handshake
        // holds a slot like any connection) and is closed at once ...
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut second = Conn::open_from(server.addr, loopback(2)).await;
        assert!(second.closed_within(Duration::from_secs(1)).await.is_some());
        // ... and another client is served at once: the handshake waits in
        // its own task, not in the accept loop.
        let stream = connect(server.addr, &[&pki.ca], &[&rustls::version::TLS13])
            .await
            .expect("a handshake beside the stalled one");
        let mut client = Client::over(stream).await;
        assert_eq!(client.me("x").await.0, 401);
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "served after {:?}",
            start.elapsed()
        );
        stalled
            .closed_within(Duration::from_secs(5))
            .await
            .expect("the stalled handshake is dropped");
        let waited = start.elapsed();
        assert!(
            (Duration::from_millis(1800)..Duration::from_secs(4)).contains(&waited),
            "dropped after {waited:?}"
        );
        // Its slot went back with it.
        let mut again = Conn::open_from(server.addr, loopback(2)).await;
        assert!(again
            .closed_within(Duration::from_millis(500))
            .await
            .is_none());
    }

    #[tokio::test]
    async fn a_client_that_never_reads_its_answers_is_closed_over_tls_too() {
        let pki = make_pki();
        let dir = TempDir::new();
        let (cert, key) = pki.write(&dir);
        let tls = Arc::new(Tls::load(&cert, &key).expect("the files load"));
        let mut config = config();
        // Only the write deadline can close this connection.
        config.header_read_timeout = Duration::from_secs(600);
        config.request_timeout = Duration::from_secs(1);
        let server = start_tls(config, tls).await;
        let mut stream = connect(server.addr, &[&pki.ca], &[&rustls::version::TLS13])
            .await
            .expect("a handshake");
        // Pipelined requests, never an answer read, until our writes block
        // too (the server stopped reading once it could not write).
        let batch = b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n".repeat(1000);
        let start = Instant::now();
        let mut blocked = false;
        for _ in 0..2000 {
            match tokio::time::timeout(Duration::from_secs(3), stream.write_all(&batch)).await {
                Ok(Ok(())) => {}
                // Blocked (the server stopped reading) or failed (the
                // server closed, having stalled already).
                Ok(Err(_)) | Err(_) => {
                    blocked = true;
                    break;
                }
            }
        }
        assert!(blocked, "the server never stopped taking requests");
        // The server closed the socket: the kernel resets or ends what
        // we send now.
        let mut closed = false;
        for _ in 0..50 {
            if tokio::time::timeout(Duration::from_secs(1), stream.write_all(&batch))
                .await
                .is_ok_and(|written| written.is_err())
            {
                closed = true;
                break;
            }
        }
        assert!(closed, "still open {:?} after it", start.elapsed());
    }

    #[tokio::test]
    async fn a_renewed_certificate_is_presented_to_new_handshakes_and_old_connections_go_on() {
        let (old, new) = (make_pki(), make_pki());
        let dir = TempDir::new();
        let (cert, key) = old.write(&dir);
        let tls = Arc::new(Tls::load(&cert, &key).expect("the files load"));
        let server = start_tls(config(), tls.clone()).await;
        let both = [&old.ca, &new.ca];
        let before = connect(server.addr, &both, &[&rustls::version::TLS13])
            .await
            .expect("a handshake");
        assert_eq!(presented(&before)[0], old.leaf);
        let mut open = Client::over(before).await;
        let token = open.login().await;

        // Renewed in place, as certbot or an operator would.
        new.write(&dir);
        tls.reload().expect("the renewed files load");
        let after = connect(server.addr, &both, &[&rustls::version::TLS13])
            .await
            .expect("a handshake");
        assert_eq!(presented(&after)[0], new.leaf);
        let mut client = Client::over(after).await;
        assert_eq!(client.me(&token).await.0, 200);
        // The connection opened before the renewal still works.
        assert_eq!(open.me(&token).await, (200, JOHNDOE_ME.to_owned()));

        // A renewal gone wrong changes nothing: one line naming the file,
        // and the last good certificate is still served.
        dir.file("key.pem", old.key_pem.as_bytes());
        let error = tls.reload().expect_err("a key that is not the cert's");
        assert_eq!(error.file, TlsFile::Key);
        assert!(matches!(error.problem, TlsProblem::Mismatch { .. }));
        let line = error.to_string();
        assert!(
            line.starts_with(&format!("{key}: ")) && !line.contains('\n'),
            "{line}"
        );
        assert!(!line.contains("PRIVATE"), "{line}");
        let still = connect(server.addr, &both, &[&rustls::version::TLS13])
            .await
            .expect("a handshake");
        assert_eq!(presented(&still)[0], new.leaf);
        assert_eq!(open.me(&token).await.0, 200);
    }

    /// `POST /token` for `username` on an open connection: the status.
    async fn login_status(client: &mut Client, username: &str, password: &str) -> u16 {
        let request = hyper::Request::post("/token")
            .header("host", "localhost")
            .header("content-type", FORM)
            .body(Full::new(Bytes::from(credentials(username, password))))
            .expect("a request");
        client.send(request).await.0
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sighup_renews_the_certificate_of_the_binary_and_a_broken_one_changes_nothing() {
        let (old, new) = (make_pki(), make_pki());
        let dir = TempDir::new();
        let (cert, key) = old.write(&dir);
        let users = dir.file(
            "users.json",
            users_json(&[("johndoe", "secret", false)]).as_bytes(),
        );
        let mut proc = Proc::spawn(&[
            "--port",
            "0",
            "--users",
            &users,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ]);
        let addr = proc.wait_listening();
        assert!(
            proc.seen
                .iter()
                .any(|line| line.contains(&format!("listening on https://{addr}"))),
            "{:?}",
            proc.seen
        );
        let both = [&old.ca, &new.ca];
        let version = [&rustls::version::TLS13];
        let before = connect(addr, &both, &version).await.expect("a handshake");
        assert_eq!(presented(&before)[0], old.leaf);
        let mut open = Client::over(before).await;
        let token = open.login().await;

        // Renewed in place, then SIGHUP (`systemctl reload`).
        new.write(&dir);
        proc.signal("HUP");
        let line = proc.wait_line("reloaded:");
        assert!(line.contains("the certificate"), "{line}");
        let after = connect(addr, &both, &version).await.expect("a handshake");
        assert_eq!(presented(&after)[0], new.leaf);
        assert_eq!(Client::over(after).await.me(&token).await.0, 200);
        // The keep-alive connection from before the renewal still answers.
        assert_eq!(open.me(&token).await.0, 200);

        // A broken certificate, with a users file that would lock johndoe
        // out: the reload is all or nothing, so neither changes.
        dir.file(
            "users.json",
            users_json(&[("erin", "erin's", false)]).as_bytes(),
        );
        dir.file("cert.pem", b"-----BEGIN CERTIFICATE-----\nnot base64\n");
        proc.signal("HUP");
        let line = proc.wait_line("reload failed");
        assert!(
            line.contains("still serving the previous users, keys and certificate")
                && line.contains(&format!("--tls-cert {cert}: not valid PEM")),
            "{line}"
        );
        let still = connect(addr, &both, &version).await.expect("a handshake");
        assert_eq!(presented(&still)[0], new.leaf);
        let mut client = Client::over(still).await;
        assert_eq!(login_status(&mut client, "johndoe", "secret").await, 200);
        assert_eq!(login_status(&mut client, "erin", "erin's").await, 400);
        assert_eq!(open.me(&token).await.0, 200);

        // A key that is not the certificate's, named as such.
        new.write(&dir);
        dir.file("key.pem", old.key_pem.as_bytes());
        proc.signal("HUP");
        let line = proc.wait_line("reload failed");
        assert!(
            line.contains(&format!(
                "--tls-key {key}: is not the key of the certificate in {cert}"
            )) && !line.contains("PRIVATE"),
            "{line}"
        );
        let still = connect(addr, &both, &version).await.expect("a handshake");
        assert_eq!(presented(&still)[0], new.leaf);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_socket_activated_start_serves_tls_on_the_inherited_socket() {
        let pki = make_pki();
        let dir = TempDir::new();
        let (cert, key) = pki.write(&dir);
        let (socket, addr) = crate::systemd::socket_unit();
        let mut proc = crate::systemd::spawn_activated(
            "$$",
            "1",
            &["--tls-cert", &cert, "--tls-key", &key],
            socket,
        );
        assert_eq!(proc.wait_listening(), addr);
        let line = format!("listening on https://{addr}");
        assert!(
            proc.seen.iter().any(|l| l.contains(&line)),
            "{:?}",
            proc.seen
        );
        let stream = connect(addr, &[&pki.ca], &[&rustls::version::TLS13])
            .await
            .expect("a handshake on the inherited socket");
        let mut client = Client::over(stream).await;
        let token = client.login().await;
        assert_eq!(client.me(&token).await, (200, JOHNDOE_ME.to_owned()));
    }

    #[test]
    fn bad_files_are_one_line_naming_the_file_and_exit_2() {
        let (pki, other) = (make_pki(), make_pki());
        let dir = TempDir::new();
        let (cert, key) = pki.write(&dir);
        let other_key = dir.file("other-key.pem", other.key_pem.as_bytes());
        let missing = path_str(&dir.0.join("missing.pem"));
        let garbage = dir.file(
            "garbage.pem",
            b"-----BEGIN PRIVATE KEY-----\nnot base64: a secret!\n-----END PRIVATE KEY-----\n",
        );
        let run = |cert: &str, key: &str, culprit: &str| {
            assert_config_error(
                &["--port", "0", "--tls-cert", cert, "--tls-key", key],
                culprit,
            );
        };
        run(
            &missing,
            &key,
            &format!("--tls-cert {missing}: cannot read: "),
        );
        run(
            &cert,
            &missing,
            &format!("--tls-key {missing}: cannot read: "),
        );
        run(
            &key,
            &key,
            &format!("--tls-cert {key}: holds no certificate"),
        );
        run(
            &cert,
            &cert,
            &format!("--tls-key {cert}: holds no private key"),
        );
        run(
            &cert,
            &other_key,
            &format!("--tls-key {other_key}: is not the key of the certificate in {cert}"),
        );
        run(
            &cert,
            &garbage,
            &format!("--tls-key {garbage}: not valid PEM"),
        );
        // Never the key file's bytes.
        let out = crate::cli::run(
            &["--port", "0", "--tls-cert", &cert, "--tls-key", &garbage],
            b"",
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains("secret"));
        // Both or neither.
        assert_config_error(
            &["--port", "0", "--tls-cert", &cert],
            &format!("--tls-cert {cert}: needs --tls-key"),
        );
        assert_config_error(
            &["--port", "0", "--tls-key", &key],
            &format!("--tls-key {key}: needs --tls-cert"),
        );
        // The variables name themselves.
        assert_config_error_with_env(
            &["--port", "0"],
            &[
                ("PASSWORD_BEARER_TLS_CERT", &cert),
                ("PASSWORD_BEARER_TLS_KEY", &other_key),
            ],
            &format!("PASSWORD_BEARER_TLS_KEY {other_key}: is not the key"),
        );
    }
}

#[cfg(not(feature = "tls"))]
#[test]
fn without_the_feature_the_flags_are_refused() {
    let tmp = TempDir::new();
    let cert = tmp.file("cert.pem", b"");
    let key = tmp.file("key.pem", b"");
    assert_config_error(
        &["--port", "0", "--tls-cert", &cert, "--tls-key", &key],
        &format!("--tls-cert {cert}: this binary was built without the `tls` feature"),
    );
}
