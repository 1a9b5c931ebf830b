//! [`App::handle`]: one request answered by the handlers, without a
//! serving loop (the serving loop calls the same dispatcher itself).

use super::App;
use crate::handlers::route;
use crate::server::panic_guard::catch_panic;
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::{Request, Response};
use std::future::Future;
use std::net::SocketAddr;

impl<S: UserStore> App<S> {
    /// Answers one request from `client`, the peer's address: failed logins
    /// are throttled per address with it, and log lines name it. Pass `None`
    /// only where there is no client address (a call without sockets);
    /// behind a proxy, the client's address as your proxy reports it.
    ///
    /// Mount it inside your own hyper service, or call it without sockets.
    /// Never fails: every error is already the contract's response, so hyper
    /// never has to abort a connection. The request timeout and the
    /// connection caps are the serving loop's ([`crate::serve`],
    /// [`crate::server::serve_with`]); a loop of your own sets its own.
    pub fn handle<B>(
        &self,
        request: Request<B>,
        client: Option<SocketAddr>,
    ) -> impl Future<Output = Response<Full<Bytes>>> + '_
    where
        B: Body + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        catch_panic(move || route(self, request, client))
    }
}
