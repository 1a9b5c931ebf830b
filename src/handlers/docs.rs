//! `GET /openapi.json`, `GET /docs` (Swagger UI's page) and, when the app
//! serves them itself, Swagger UI's two files. The documents and the page
//! are rendered once, at start (`crate::openapi`); these answer with them.

use crate::app::App;
use crate::error::ApiError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

/// `GET /openapi.json`.
pub(super) fn openapi<S>(app: &App<S>) -> Response<Full<Bytes>> {
    match &app.docs {
        Some(docs) => docs.openapi_response(),
        // The route table serves it only with the docs on.
        None => ApiError::NotFound.into_response(),
    }
}

/// `GET /docs`: Swagger UI's page.
pub(super) fn swagger_ui<S>(app: &App<S>) -> Response<Full<Bytes>> {
    match &app.docs {
        Some(docs) => docs.swagger_ui_response(),
        None => ApiError::NotFound.into_response(),
    }
}

/// `GET /docs/swagger-ui-bundle.js` and `GET /docs/swagger-ui.css`, from
/// `Config::docs_assets`.
pub(super) fn asset<S>(app: &App<S>, path: &str) -> Response<Full<Bytes>> {
    let asset = app.docs.as_ref().and_then(|docs| docs.asset_response(path));
    asset.unwrap_or_else(|| ApiError::NotFound.into_response())
}
