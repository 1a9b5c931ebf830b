//! A form's body, read bounded (`Config::body_limit`), and the answer to
//! one that could not be read or failed validation.

use crate::app::App;
use crate::error::ApiError;
use crate::form::{parse_token_request, BodyError, TokenForm};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Request;

/// Reads the body (bounded) and validates the `/token` form; with it, the
/// request's `Authorization` (client authentication by HTTP Basic).
pub(super) async fn read_form<S, B>(
    app: &App<S>,
    request: Request<B>,
) -> Result<(TokenForm, Option<HeaderValue>), ApiError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Read {
        content_type,
        authorization,
        body,
    } = read_body(app, request).await?;
    let content_type = content_type.as_ref().map(HeaderValue::as_bytes);
    parse_token_request(
        content_type,
        &body,
        app.sessions.is_some(),
        app.clients.is_some(),
    )
    .map(|form| (form, authorization))
    .map_err(body_error)
}

/// A form's body, and the headers its handlers read.
pub(super) struct Read {
    pub(super) content_type: Option<HeaderValue>,
    /// For client authentication by HTTP Basic.
    pub(super) authorization: Option<HeaderValue>,
    pub(super) body: Bytes,
}

/// Reads a form's body, bounded, its `Content-Type` and `Authorization`.
pub(super) async fn read_body<S, B>(app: &App<S>, request: Request<B>) -> Result<Read, ApiError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, body) = request.into_parts();
    // A declared length over the limit is refused before reading a byte;
    // `Limited` catches bodies that lie or are chunked.
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.body_limit as u64) {
        return Err(ApiError::BodyTooLarge);
    }
    let body = Limited::new(body, app.body_limit)
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
    Ok(Read {
        content_type: parts.headers.remove(CONTENT_TYPE),
        authorization: parts.headers.remove(AUTHORIZATION),
        body,
    })
}

/// A form that could not be read or failed validation, as its answer.
pub(super) fn body_error(error: BodyError) -> ApiError {
    match error {
        BodyError::Invalid(form) => ApiError::Validation(form),
        BodyError::Multipart(e) => ApiError::Multipart(e),
    }
}
