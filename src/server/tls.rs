//! TLS for the serving loop (the `tls` feature): the certificate and key,
//! loaded from PEM files and reloadable, and the connection future that
//! runs the handshake and then hyper over it.
//!
//! RFC 6749 §3.2 requires TLS on the token endpoint, and the appliances
//! this runs on often have no proxy in front to provide it. rustls serves
//! TLS 1.3 and 1.2 with ALPN `http/1.1`, on the ring provider.
//!
//! The certificate is chosen per handshake by a resolver holding the
//! current [`CertifiedKey`], so [`Tls::reload`] swaps what *new*
//! handshakes present in one pointer store; connections already open keep
//! the session they negotiated.
//!
//! The handshake runs in the connection's own task (never in the accept
//! loop, where one slow client would stall every other), holding the
//! connection's place under the caps, and is bounded by the header-read
//! timeout: a client that stalls mid-handshake is dropped as one that
//! stalls mid-head is.
//! (The first request's head then has the header-read timeout of its own,
//! as on a plain connection: hyper starts that timer itself.)

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use pin_project_lite::pin_project;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Timeout;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{Accept, TlsAcceptor};

/// A server's TLS: the certificate chain and private key read from two PEM
/// files, and the rustls configuration serving them. Load it once, hand it
/// to [`serve_tls`](crate::server::serve_tls) in an [`Arc`], and call
/// [`Tls::reload`] when the files are renewed (the binary does on SIGHUP).
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<Current>,
    provider: Arc<CryptoProvider>,
    acceptor: TlsAcceptor,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The certified key new handshakes present. A std `RwLock`: one read per
/// handshake, one write per reload, never held across an await.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // Nothing panics under the lock; a poisoned one still holds a key.
        Some(
            self.0
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

impl Tls {
    /// Reads the certificate chain (PEM, leaf first; every certificate in
    /// the file is sent) from `cert` and the private key (PEM: PKCS#8,
    /// PKCS#1 or SEC1) from `key`, and checks that the key is the
    /// certificate's.
    pub fn load(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Tls, TlsError> {
        let (cert, key) = (cert.into(), key.into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = Arc::new(Current(RwLock::new(Arc::new(certified_key(
            &cert, &key, &provider,
        )?))));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("ring serves both TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            cert,
            key,
            current,
            provider,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads the same two files again and, if they are good, has every
    /// handshake from now on present the new certificate; connections
    /// already open are untouched. On an error nothing changes: the old
    /// certificate is still served. [`Tls::read`] then [`Tls::renew`], for
    /// a caller that reloads other files with it, all or nothing.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.renew(self.read()?);
        Ok(())
    }

    /// Reads the two files again and checks them, serving nothing yet.
    pub fn read(&self) -> Result<Renewal, TlsError> {
        certified_key(&self.cert, &self.key, &self.provider).map(|key| Renewal(Arc::new(key)))
    }

    /// Has every handshake from now on present `renewal`, in one pointer
    /// store; connections already open keep the session they negotiated.
    pub fn renew(&self, renewal: Renewal) {
        *self
            .current
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner) = renewal.0;
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// The private key file.
    pub fn key_path(&self) -> &Path {
        &self.key
    }

    /// The rustls configuration: TLS 1.3 and 1.2, ALPN `http/1.1`, the
    /// ring provider, and the current certificate (reloads included), for
    /// an embedder running its own accept loop.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.acceptor.config().clone()
    }

    /// The handshake on `io`.
    pub(crate) fn accept<IO: AsyncRead + AsyncWrite + Unpin>(&self, io: IO) -> Accept<IO> {
        self.acceptor.accept(io)
    }
}

/// A certificate chain and its key, read by [`Tls::read`] and checked
/// against each other, for [`Tls::renew`] to serve.
pub struct Renewal(Arc<CertifiedKey>);

impl fmt::Debug for Renewal {
    // Never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renewal").finish_non_exhaustive()
    }
}

/// The chain and key in the two files, checked against each other.
fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let cert_error = |problem| TlsError {
        file: TlsFile::Cert,
        path: cert.to_owned(),
        problem,
    };
    let key_error = |problem| TlsError {
        file: TlsFile::Key,
        path: key.to_owned(),
        problem,
    };
    let pem = std::fs::read(cert).map_err(|e| cert_error(TlsProblem::Read(e)))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(TlsProblem::Pem(PemError::from(e))))?;
    if chain.is_empty() {
        return Err(cert_error(TlsProblem::NoCertificate));
    }
    let pem = std::fs::read(key).map_err(|e| key_error(TlsProblem::Read(e)))?;
    let private = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        pem::Error::NoItemsFound => key_error(TlsProblem::NoKey),
        e => key_error(TlsProblem::Pem(PemError::from(e))),
    })?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => key_error(TlsProblem::Mismatch {
            cert: cert.to_owned(),
        }),
        // The leaf could not be parsed to compare its key with ours.
        e @ rustls::Error::InvalidCertificate(_) => cert_error(TlsProblem::Unusable(e)),
        e => key_error(TlsProblem::Unusable(e)),
    })
}

/// Which of the two files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    /// The certificate chain (`--tls-cert`).
    Cert,
    /// The private key (`--tls-key`).
    Key,
}

/// A certificate or key file that cannot be served: which file, its path,
/// and what is wrong. Its `Display` is one line, `PATH: problem`, and
/// never quotes the key file's content.
#[derive(Debug)]
pub struct TlsError {
    /// The file at fault.
    pub file: TlsFile,
    /// Its path, as given.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: TlsProblem,
}

/// What is wrong with a certificate or key file.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsProblem {
    /// It cannot be read.
    Read(std::io::Error),
    /// It is not well-formed PEM.
    Pem(PemError),
    /// The certificate file holds no `CERTIFICATE` section.
    NoCertificate,
    /// The key file holds no private key section.
    NoKey,
    /// The key is not the certificate's.
    Mismatch {
        /// The certificate file it was checked against.
        cert: PathBuf,
    },
    /// rustls refuses it (an unsupported key type, a malformed
    /// certificate).
    Unusable(rustls::Error),
}

/// How a PEM file is malformed; only the kind, never the bytes, which in
/// a key file are the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PemError {
    /// A section has no `-----END` line.
    MissingEnd,
    /// A `-----BEGIN` line is malformed.
    BadBegin,
    /// A section's base64 does not decode.
    BadBase64,
    /// A section is larger than PEM parsing allows.
    TooLarge,
    /// Anything else the parser reports.
    Other,
}

impl From<pem::Error> for PemError {
    fn from(e: pem::Error) -> PemError {
        match e {
            pem::Error::MissingSectionEnd { .. } => PemError::MissingEnd,
            pem::Error::IllegalSectionStart { .. } => PemError::BadBegin,
            pem::Error::Base64Decode(_) => PemError::BadBase64,
            pem::Error::SectionTooLarge => PemError::TooLarge,
            _ => PemError::Other,
        }
    }
}

impl fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsProblem::Read(e) => write!(f, "cannot read: {e}"),
            TlsProblem::Pem(e) => write!(
                f,
                "not valid PEM: {}",
                match e {
                    PemError::MissingEnd => "a section has no -----END line",
                    PemError::BadBegin => "a malformed -----BEGIN line",
                    PemError::BadBase64 => "a section's base64 does not decode",
                    PemError::TooLarge => "a section is too large",
                    PemError::Other => "unreadable",
                }
            ),
            TlsProblem::NoCertificate => {
                f.write_str("holds no certificate (-----BEGIN CERTIFICATE-----)")
            }
            TlsProblem::NoKey => f.write_str(
                "holds no private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)",
            ),
            TlsProblem::Mismatch { cert } => {
                write!(f, "is not the key of the certificate in {}", cert.display())
            }
            TlsProblem::Unusable(e) => write!(f, "unusable: {e}"),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = format!("{}: {}", self.path.display(), self.problem);
        f.write_str(&line.replace(['\n', '\r'], " "))
    }
}

impl std::error::Error for TlsError {}

pin_project! {
    /// One TLS connection: the handshake within the header-read timeout,
    /// then hyper's HTTP/1 over the encrypted stream.
    #[project = TlsConnectionProj]
    pub(crate) enum TlsConnection<IO, S>
    where
        S: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>,
    {
        Handshake {
            #[pin]
            accept: Timeout<Accept<IO>>,
            http: http1::Builder,
            service: Option<S>,
        },
        Serving {
            #[pin]
            connection: http1::Connection<TokioIo<TlsStream<IO>>, S>,
        },
        Closed,
    }
}

impl<IO, S> TlsConnection<IO, S>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>,
{
    /// The connection on `io`: `timeout` for the handshake, then `http`
    /// serving `service`.
    pub(crate) fn new(
        tls: &Tls,
        io: IO,
        http: http1::Builder,
        service: S,
        timeout: Duration,
    ) -> TlsConnection<IO, S> {
        TlsConnection::Handshake {
            accept: tokio::time::timeout(timeout, tls.accept(io)),
            http,
            service: Some(service),
        }
    }
}

impl<IO, S> TlsConnection<IO, S>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>,
    S::Future: Send + 'static,
{
    /// Shutdown: mid-handshake there is no request to finish, so the
    /// connection ends; serving, hyper finishes the request in flight.
    pub(crate) fn graceful_shutdown(mut self: Pin<&mut Self>) {
        match self.as_mut().project() {
            TlsConnectionProj::Serving { connection } => connection.graceful_shutdown(),
            TlsConnectionProj::Handshake { .. } => self.set(TlsConnection::Closed),
            TlsConnectionProj::Closed => {}
        }
    }
}

impl<IO, S> Future for TlsConnection<IO, S>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>,
    S::Future: Send + 'static,
{
    /// Failures concern that client only (a bad or stalled handshake, a
    /// reset): the connection just ends.
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match self.as_mut().project() {
                TlsConnectionProj::Handshake {
                    accept,
                    http,
                    service,
                } => {
                    // Timed out, or not TLS (plain HTTP gets rustls's
                    // alert, then the close), or reset: dropping the
                    // stream closes it.
                    let Ok(Ok(stream)) = ready!(accept.poll(cx)) else {
                        self.set(TlsConnection::Closed);
                        return Poll::Ready(());
                    };
                    let Some(service) = service.take() else {
                        unreachable!("the service is taken once, as the handshake ends")
                    };
                    let connection = http.serve_connection(TokioIo::new(stream), service);
                    self.set(TlsConnection::Serving { connection });
                }
                TlsConnectionProj::Serving { connection } => {
                    return connection.poll(cx).map(|_| ());
                }
                TlsConnectionProj::Closed => return Poll::Ready(()),
            }
        }
    }
}
