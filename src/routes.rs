//! Routing and handlers: a plain `match` on method and path, and the two
//! endpoints of the seed, `POST /token` and `GET /users/me`.

use crate::app::App;
use crate::auth::{current_active_user, current_user, unix_now};
use crate::bearer::bearer_token;
use crate::error::{json_response, no_store, ApiError};
use crate::form::{is_form_content_type, parse_token_form};
use crate::{openapi, token};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde::Serialize;

/// The paths we serve, for the trailing-slash redirect.
const ROUTES: [&str; 4] = ["/token", "/users/me", "/openapi.json", "/docs"];

/// RFC 6749 §5.1's successful token response.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
}

impl App {
    /// Answers one request. Never fails: every error is already the
    /// contract's response, so hyper never has to abort a connection.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let method = request.method();
        let path = request.uri().path();
        match (method, path) {
            (&Method::POST, "/token") => {
                let mut response = self
                    .login(request)
                    .await
                    .unwrap_or_else(ApiError::into_response);
                no_store(&mut response);
                response
            }
            (_, "/token") => {
                let mut response = ApiError::MethodNotAllowed("POST").into_response();
                no_store(&mut response);
                response
            }
            (&Method::GET, "/users/me") => self
                .read_users_me(request.headers())
                .unwrap_or_else(ApiError::into_response),
            (&Method::GET, "/openapi.json") => openapi::document(),
            (&Method::GET, "/docs") => openapi::swagger_ui(),
            (_, "/users/me" | "/openapi.json" | "/docs") => {
                ApiError::MethodNotAllowed("GET").into_response()
            }
            (_, _) => match path.strip_suffix('/') {
                // FastAPI's redirect_slashes: same path without the slash,
                // query kept; 307 so that a POST stays a POST.
                Some(bare) if ROUTES.contains(&bare) => {
                    let location = match request.uri().query() {
                        Some(query) => format!("{bare}?{query}"),
                        None => bare.to_owned(),
                    };
                    ApiError::TrailingSlash(location).into_response()
                }
                _ => ApiError::NotFound.into_response(),
            },
        }
    }

    /// `GET /users/me`: the bearer token, then the seed's chain.
    fn read_users_me(&self, headers: &HeaderMap) -> Result<Response<Full<Bytes>>, ApiError> {
        let token = bearer_token(headers.get(AUTHORIZATION).map(HeaderValue::as_bytes))?;
        let user = current_user(self, token)?;
        let user = current_active_user(user)?;
        Ok(json_response(StatusCode::OK, user.me_body().clone()))
    }

    /// `POST /token`: the password grant.
    async fn login<B>(&self, request: Request<B>) -> Result<Response<Full<Bytes>>, ApiError>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = request.into_parts();
        // A declared length over the limit is refused before reading a byte;
        // `Limited` catches bodies that lie or are chunked.
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.body_limit as u64) {
            return Err(ApiError::BodyTooLarge);
        }
        let body = Limited::new(body, self.body_limit)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    ApiError::BodyTooLarge
                } else {
                    ApiError::BadBody
                }
            })?
            .to_bytes();
        let content_type = parts.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes);
        // FastAPI reads any other content type as an empty form.
        let form = if is_form_content_type(content_type) {
            parse_token_form(&body)
        } else {
            parse_token_form(b"")
        }
        .map_err(ApiError::Validation)?;

        let user = self.users.get(&form.username);
        let hash = user.map(|u| u.hashed_password().clone());
        if !self.verifier.verify(hash, form.password.as_bytes()).await {
            return Err(ApiError::IncorrectLogin);
        }
        let user = user.ok_or(ApiError::IncorrectLogin)?;
        let access_token = token::issue(&self.key, &user.username, unix_now(), self.token_ttl_secs);
        let body = serde_json::to_vec(&TokenResponse {
            access_token: &access_token,
            token_type: "bearer",
            expires_in: self.token_ttl_secs,
        })
        .expect("strings and integers always serialize");
        Ok(json_response(StatusCode::OK, body.into()))
    }
}
