//! [`App::metrics`]: the Prometheus text of an app's counters, gauges and
//! histograms, in the text exposition format 0.0.4 (see the public
//! [`metrics`](crate::metrics) module for what is counted, and how).

use super::{App, SessionState};
use crate::counters::{family, sample, Counters, Endpoint, CODES, LOGINS, REFRESHES};
use crate::password::Verifier;
use crate::server::caps::ConnectionCaps;
use crate::users::{Change, UserStore};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE as CONTENT_TYPE_HEADER};
use hyper::Response;
use std::sync::atomic::Ordering::Relaxed;

/// The media type of the text exposition format, as `GET /metrics`
/// answers with it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A gauge family of one sample.
fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, "gauge", help);
    sample(out, name, "", value);
}

/// An app's metrics, read when rendered: get it with [`App::metrics`] and
/// answer your own `/metrics` with [`Metrics::response`] (or
/// [`Metrics::render`] into a buffer of yours).
///
/// An embedder with a router of its own mounts them there, behind whatever
/// keeps them from the public:
///
/// ```
/// use password_bearer::{metrics::CONTENT_TYPE, token::SecretKey, users::Users, App, Config};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let app = App::new(Config::new(Users::demo(), SecretKey::random()?));
/// // In your handler of GET /metrics:
/// let response = app.metrics().response();
/// assert_eq!(response.headers()["content-type"], CONTENT_TYPE);
/// // Or the text alone, into a buffer of yours:
/// let mut text = String::new();
/// app.metrics().render(&mut text);
/// assert!(text.contains("password_bearer_logins_total{outcome=\"ok\"} 0\n"));
/// # Ok(())
/// # }
/// ```
///
/// Or it serves them on a listener of their own, as the binary does, with
/// [`serve_metrics`](crate::serve_metrics).
#[derive(Debug)]
pub struct Metrics<'a> {
    counters: &'a Counters,
    verifier: &'a Verifier,
    connections: &'a ConnectionCaps,
    sessions: Option<&'a SessionState>,
    /// The app serves clients (`Config::clients`): their series are shown.
    #[cfg(feature = "clients")]
    clients: bool,
}

impl<S: UserStore> App<S> {
    /// This app's metrics, for a `/metrics` route of your own (the binary
    /// serves them with [`serve_metrics`](crate::serve_metrics)).
    pub fn metrics(&self) -> Metrics<'_> {
        Metrics {
            counters: &self.counters,
            verifier: &self.verifier,
            connections: &self.connections,
            sessions: self.sessions.as_ref(),
            #[cfg(feature = "clients")]
            clients: self.clients.is_some(),
        }
    }
}

impl Metrics<'_> {
    /// Appends every series to `out`, in the text exposition format 0.0.4.
    pub fn render(&self, out: &mut String) {
        let c = self.counters;
        let name = "password_bearer_requests_total";
        family(
            out,
            name,
            "counter",
            "Requests answered by the API's routes, by route and status code.",
        );
        for &route in Endpoint::ALL {
            for code in 0..CODES {
                let count = c.requests[route as usize * CODES + code].load(Relaxed);
                if count > 0 {
                    let labels = format!("route=\"{}\",status=\"{}\"", route.label(), code + 100);
                    sample(out, name, &labels, count);
                }
            }
        }
        let name = "password_bearer_request_timeouts_total";
        family(
            out,
            name,
            "counter",
            "Requests answered 408: no answer, or no whole body, within the request timeout.",
        );
        sample(out, name, "", c.request_timeouts());
        let name = "password_bearer_logins_total";
        family(
            out,
            name,
            "counter",
            "Password logins by outcome: ok, failed (wrong password or user), throttled (429), \
             busy (503, no hash slot in time).",
        );
        for (outcome, label) in LOGINS {
            let count = c.logins[outcome as usize].load(Relaxed);
            sample(out, name, &format!("outcome=\"{label}\""), count);
        }
        let name = "password_bearer_admin_changes_total";
        family(
            out,
            name,
            "counter",
            "Users changed by reloads (SIGHUP after `password-bearer users ...`, or an edit), by \
             change: added, removed, password, disabled, enabled.",
        );
        for change in Change::ALL {
            let count = c.admin_changes[change as usize].load(Relaxed);
            sample(out, name, &format!("change=\"{}\"", change.label()), count);
        }
        #[cfg(feature = "clients")]
        if self.clients {
            let name = "password_bearer_client_auth_failures_total";
            family(
                out,
                name,
                "counter",
                "Client authentications that failed (401 invalid_client): unknown client, wrong \
                 secret, malformed or missing credentials.",
            );
            sample(out, name, "", c.client_auth_failures.load(Relaxed));
            let name = "password_bearer_introspection_refused_total";
            family(
                out,
                name,
                "counter",
                "Introspections refused to an authenticated client not allowed to introspect (403).",
            );
            sample(out, name, "", c.introspection_refused.load(Relaxed));
        }
        if self.sessions.is_some() {
            let name = "password_bearer_refreshes_total";
            family(
                out,
                name,
                "counter",
                "Refresh grants by outcome: ok, failed (400), throttled (429), unavailable \
                 (503, session store down).",
            );
            for (i, label) in REFRESHES.iter().enumerate() {
                let count = c.refreshes[i].load(Relaxed);
                sample(out, name, &format!("outcome=\"{label}\""), count);
            }
            let name = "password_bearer_refresh_reuses_total";
            family(
                out,
                name,
                "counter",
                "Used-up refresh tokens presented again (a sign of theft); each revoked its session.",
            );
            sample(out, name, "", c.refresh_reuses.load(Relaxed));
        }
        let verifier = self.verifier;
        gauge(
            out,
            "password_bearer_hash_queue_depth",
            "Logins waiting for a password hash slot.",
            verifier.queue_depth(),
        );
        gauge(
            out,
            "password_bearer_hashes_in_progress",
            "Password hashes running now.",
            verifier.in_progress(),
        );
        let timings = verifier.timings();
        timings.wait.render(
            out,
            "password_bearer_hash_queue_wait_seconds",
            "Time logins waited for a hash slot (those refused busy excluded).",
        );
        timings.hash.render(
            out,
            "password_bearer_hash_duration_seconds",
            "Time one password hash took.",
        );
        gauge(
            out,
            "password_bearer_open_connections",
            "API connections open, over every listener.",
            self.connections.open(),
        );
        let name = "password_bearer_connections_refused_total";
        family(
            out,
            name,
            "counter",
            "API connections refused at once, their address at its cap.",
        );
        sample(out, name, "", self.connections.refused());
        if let Some(sessions) = self.sessions {
            if let Some(held) = sessions.store.session_count() {
                gauge(
                    out,
                    "password_bearer_sessions",
                    "Sessions held by the session store (expired ones until purged).",
                    held,
                );
            }
            gauge(
                out,
                "password_bearer_revocations",
                "Revocations held in the deny-list.",
                sessions.revocations.len(),
            );
            let name = "password_bearer_revocations_collapsed_total";
            family(
                out,
                name,
                "counter",
                "Deny-list entries collapsed into their user's mark (every token issued to \
                 that user until then), or without an owner dropped, to keep within the caps.",
            );
            sample(out, name, "", sessions.revocations.collapsed());
        }
    }

    /// Every series as a string; see [`Metrics::render`].
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.render(&mut out);
        out
    }

    /// The `200` answer to a scrape: the series, as [`CONTENT_TYPE`].
    pub fn response(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.encode())));
        response
            .headers_mut()
            .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::{Histogram, CODES};
    use hyper::StatusCode;
    use std::time::Duration;

    #[test]
    fn every_route_and_code_has_its_own_cell() {
        let counters = Counters::default();
        counters.request(Endpoint::UsersMe, StatusCode::OK);
        counters.request(Endpoint::UsersMe, StatusCode::OK);
        counters.request(Endpoint::Other, StatusCode::NOT_FOUND);
        // Outside 100..=599: not counted, and no other cell touched.
        counters.request(Endpoint::Token, StatusCode::from_u16(999).unwrap());
        let cell = |route: Endpoint, code: usize| {
            counters.requests[route as usize * CODES + code - 100].load(Relaxed)
        };
        assert_eq!(cell(Endpoint::UsersMe, 200), 2);
        assert_eq!(cell(Endpoint::Other, 404), 1);
        let total: u64 = counters.requests.iter().map(|c| c.load(Relaxed)).sum();
        assert_eq!(total, 3);
    }

    #[test]
    fn a_histogram_renders_cumulative_buckets_in_seconds() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_millis(40));
        histogram.observe(Duration::from_secs(11));
        let mut out = String::new();
        histogram.render(&mut out, "x_seconds", "help");
        assert!(out.contains("x_seconds_bucket{le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_seconds_sum 11.043000\n"), "{out}");
        assert!(out.contains("x_seconds_count 3\n"), "{out}");
    }
}
