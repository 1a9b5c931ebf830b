//! The route an embedder adds next to `App::handle` (FastAPI's
//! `/users/me/items`, behind the `items` scope), the server that serves it,
//! and the logins that ask for scopes.

use super::asserts::assert_token_endpoint_headers;
use super::http::{get, post_token, Response};
use super::server::{start_service, TestServer};
use password_bearer::{App, Config};
use std::net::SocketAddr;
use std::sync::Arc;

/// The route an embedder adds next to [`App::handle`] (FastAPI's
/// `/users/me/items`), protected by the chain and the `items` scope.
pub(crate) const ITEMS_PATH: &str = "/users/me/items";

/// The `ITEMS_PATH` body for `owner`.
pub(crate) fn items_body(owner: &str) -> String {
    serde_json::json!([{"item_id": "Foo", "owner": owner}]).to_string()
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

/// `GET` [`ITEMS_PATH`] with `Authorization: Bearer token`.
pub(crate) async fn get_items(addr: SocketAddr, token: &str) -> Response {
    get(
        addr,
        ITEMS_PATH,
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .await
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
