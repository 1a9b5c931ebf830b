//! The black-box tests of `password-bearer`, over real TCP on 127.0.0.1.
//!
//! One binary (link time stays low as tests grow; `autotests = false` in
//! Cargo.toml), one module per surface of the wire contract.

mod support; // in-process server, raw HTTP/1.1 client, JWT decode/forge helpers

mod admin; // (the admin feature) password-bearer users …: changes to the users file reach the server at SIGHUP (login, refresh refused, inactive, removed), mode 0600, nothing refused written, commands at once, the password asked on a pty without echo
mod architecture; // the library's modules import no cycle and never a layer above their own (read from src/)
mod attacks; // logins under attack: throttling (429), the password cap, concurrent guesses and right logins, the login and hash queues, a failing store
mod cli; // the binary: flags, users and key files, bad configuration, hash-password, signals
mod clients; // clients (the clients feature): the client credentials grant (Basic and form), invalid_client, invalid_scope, introspection, /revoke by a client, --clients and its SIGHUP reload, hash-client-secret, audit lines, unknown-vs-wrong timing
mod connections; // the connection level: header and request timeouts, stalled bodies, unread answers, heads, keep-alive, connection caps, panics, fd exhaustion, graceful shutdown, the memory bound
mod docs; // the sample outputs of README.md and docs/ are what the server answers now
mod embedding; // App::handle without sockets, a store of our own, the chain in our handlers, examples/embed.rs
mod env_config; // PASSWORD_BEARER_* variables: each setting, flags win, bad values exit 2
mod instances; // servers sharing a key accept each other's tokens; another key refuses them
mod jwt; // every way a token is refused (or accepted) over HTTP, and which key verifies it (kid, old keys)
mod library; // the building blocks without an App: keys and key files, tokens, hashes, users files
mod logs; // login and access log lines on stderr, no secret in them, floods in two lines, a stderr nobody reads
mod metrics; // GET /metrics read by a Prometheus parser: counts equal what clients saw, gauges, the listener's bounds, --metrics-addr
mod multipart; // POST /token as multipart/form-data: the urlencoded rules, file parts, 400s, real clients' bytes
#[cfg(feature = "postgres")]
mod postgres; // --users postgres://… against a real, throwaway PostgreSQL: two instances see SQL changes within 1 s, outage 503 and recovery
mod promises; // one suite, a test per store (memory, --state-dir, Redis): revocation floods; with clients, introspection sees every ending and guesses at a client are throttled; a password change, removal or disable ends the session (reload or in place); a lost answer's retry answered once; restarts, two instances
mod properties; // proptest: the form, bearer and JWT parsers never panic, round-trip, refuse tampering
#[cfg(feature = "redis")]
mod redis; // two instances on a real Redis (the redis feature): shared throttling, refresh tokens, revocations within 1 s, Redis stopped and back
mod reload; // SIGHUP: users and keys read again on open connections, a new password ends the sessions, a broken file changes nothing; App::reload swaps one set
#[cfg(feature = "signing")]
mod resource_server; // examples/resource_server.rs: a service verifying our tokens from the JWKS alone, through a key rotation by SIGHUP
mod routing; // 404, 405 + Allow, 307 + Location, /healthz, /openapi.json (paths, scopes, models), /docs
mod scopes; // scopes granted by /token, the scope claim, 401 + Bearer scope=
mod sessions; // the refresh grant and /revoke on one in-memory server: rotation, reuse, scopes, session caps
#[cfg(feature = "signing")]
mod signing; // --signing-key (the signing feature): the JWKS and its Cache-Control, RFC 8414 metadata, --issuer/--audience and RFC 9068 claims, the algorithm attacks each 401, rotations in process and on SIGHUP, refresh and revoke with EdDSA, bad key files exit 2
mod sqlite_store; // examples/sqlite_store.rs, an embedder's users store: users in SQLite, changes at the next request, a broken database is 503 and counts nothing
mod state_dir; // --state-dir (the state-dir feature): sessions and revocations survive kill -9, a lost answer's retry too, one server per directory, bad directories exit 2
mod systemd; // under systemd without systemd: socket activation (LISTEN_FDS at fd 3), READY=1/STOPPING=1 to NOTIFY_SOCKET
mod timing; // failed logins take as long whatever the user's hash parameters: unknown, wrong password, a 64 MiB user, disabled
mod tls; // TLS (the tls feature): login over 1.3 and 1.2, plain HTTP closed, stalled handshakes, certificate reload, bad files exit 2
mod token_endpoint; // POST /token: logins, the form, 400/413/422 bodies and headers
mod users_me; // GET /users/me: the Authorization header, current_user then current_active_user
