//! `GET /healthz`: whether the user store, the session store and the
//! failed-login counts can answer.

use crate::app::App;
use crate::error::json_response;
use crate::logging::{self, STORE_DOWN};
use crate::users::UserStore;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

/// `{"status":"ok"}`, or 503 `{"status":"unavailable"}` and a tallied log
/// line naming what failed.
pub(super) async fn health<S: UserStore>(app: &App<S>) -> Response<Full<Bytes>> {
    let mut health = app.users_and_keys().users().health().await;
    if let (Ok(()), Some(sessions)) = (&health, &app.sessions) {
        health = sessions.store.health().await;
    }
    if health.is_ok() {
        health = app.limiter.health().await;
    }
    match health {
        Ok(()) => json_response(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#)),
        Err(e) => {
            logging::tally(STORE_DOWN, format_args!("health check failed: {e}"));
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                Bytes::from_static(br#"{"status":"unavailable"}"#),
            )
        }
    }
}
