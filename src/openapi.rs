//! `GET /openapi.json` and `GET /docs`: the FastAPI app's OpenAPI document
//! (the same paths, form schema and password-flow security scheme) and the
//! Swagger UI page FastAPI serves for it.

use crate::error::json_response;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// The document, compact, as FastAPI writes it; fixed at build time because
/// the routes are.
const DOCUMENT: &str = include_str!("openapi.json");

/// FastAPI's `get_swagger_ui_html`, pointed at our document. The password
/// flow needs no OAuth2 redirect page, so none is configured.
const SWAGGER_UI: &str = r##"<!DOCTYPE html>
<html>
<head>
<link type="text/css" rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
<title>password-bearer - Swagger UI</title>
</head>
<body>
<div id="swagger-ui">
</div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>
const ui = SwaggerUIBundle({
    url: '/openapi.json',
    "dom_id": "#swagger-ui",
    "layout": "BaseLayout",
    "deepLinking": true,
    "showExtensions": true,
    "showCommonExtensions": true,
    presets: [
        SwaggerUIBundle.presets.apis,
        SwaggerUIBundle.SwaggerUIStandalonePreset
    ],
})
</script>
</body>
</html>
"##;

/// The OpenAPI 3.1 document.
pub fn document() -> Response<Full<Bytes>> {
    json_response(
        StatusCode::OK,
        Bytes::from_static(DOCUMENT.trim_ascii_end().as_bytes()),
    )
}

/// The Swagger UI page.
pub fn swagger_ui() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(SWAGGER_UI.as_bytes())));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_openapi_3_1_with_the_password_flow() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]
                ["tokenUrl"],
            "token"
        );
        assert!(doc["paths"]["/token"]["post"].is_object());
        assert!(doc["paths"]["/users/me"]["get"].is_object());
    }
}
