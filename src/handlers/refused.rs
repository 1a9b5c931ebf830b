//! The answer to a refused login or refresh: 429 and its log tally when
//! throttled, 503 when its wait ran out or the shared counts cannot be
//! reached.

use crate::app::App;
use crate::auth::store_unavailable;
use crate::error::ApiError;
use crate::limiter::Refused;
use crate::logging::{self, Quoted, LOGIN_REFUSED};
use crate::throttle::Throttled;
use std::net::SocketAddr;

/// The answer to an attempt the limiter refused.
pub(super) fn refused<S>(
    app: &App<S>,
    refused: Refused,
    username: &str,
    peer: Option<SocketAddr>,
) -> ApiError {
    match refused {
        Refused::Throttled(throttled) => self::throttled(app, throttled, username, peer),
        Refused::Busy(retry_after) => {
            logging::tally(
                LOGIN_REFUSED,
                format_args!(
                    "login refused: attempts in flight for its username or address did \
                     not settle within the login queue's wait"
                ),
            );
            ApiError::Unavailable(retry_after.as_secs())
        }
        Refused::Unavailable(e) => store_unavailable(&e),
    }
}

/// The 429 of a throttled attempt, tallied in the log: one line per
/// username (or address) a minute, however many attempts.
fn throttled<S>(
    app: &App<S>,
    throttled: Throttled,
    username: &str,
    peer: Option<SocketAddr>,
) -> ApiError {
    if app.login_log {
        match peer.filter(|_| throttled.address && !throttled.username) {
            Some(peer) => logging::tally(
                LOGIN_REFUSED,
                format_args!(
                    "login throttled address={}",
                    crate::addr::address_key(peer.ip())
                ),
            ),
            None => logging::tally(
                LOGIN_REFUSED,
                format_args!("login throttled username={}", Quoted(username)),
            ),
        }
    }
    ApiError::TooManyAttempts(throttled.retry_after.as_secs().max(1))
}
