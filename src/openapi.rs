//! `GET /openapi.json` and `GET /docs`: the FastAPI app's OpenAPI document
//! (the same paths, form schema and password-flow security scheme, plus the
//! scopes and the response models FastAPI leaves empty) and the Swagger UI
//! page FastAPI serves for it.

use crate::error::json_response;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{Map, Value};

/// Both pages, rendered once when the app starts.
#[derive(Debug, Clone)]
pub struct Docs {
    openapi: Bytes,
    swagger_ui: Bytes,
}

impl Docs {
    /// Renders the document listing `scopes`, and a Swagger UI page that
    /// loads its assets from `assets_url` (no trailing slash).
    pub fn new(scopes: &[String], assets_url: &str) -> Docs {
        let openapi = document(scopes).into_bytes();
        Docs {
            openapi: openapi.into(),
            swagger_ui: swagger_ui(assets_url.trim_end_matches('/')).into(),
        }
    }

    /// The `/openapi.json` response.
    pub fn openapi_response(&self) -> Response<Full<Bytes>> {
        json_response(StatusCode::OK, self.openapi.clone())
    }

    /// The `/docs` response.
    pub fn swagger_ui_response(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.swagger_ui.clone()));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
    }
}

/// The OpenAPI 3.1 document: FastAPI's for the seed, with the response
/// bodies described. Text rather than code: a `json!` tree this size costs
/// more binary than the JSON itself.
const DOCUMENT: &str = include_str!("openapi.json");

/// Where the password flow's scopes go in [`DOCUMENT`].
const NO_SCOPES: &str = "\"scopes\": {}";

/// The document, listing `scopes` in the password flow.
fn document(scopes: &[String]) -> String {
    let scopes: Map<String, Value> = scopes
        .iter()
        .map(|s| (s.clone(), Value::String(String::new())))
        .collect();
    let scopes = serde_json::to_string(&scopes).expect("a map of strings serializes");
    DOCUMENT.replacen(NO_SCOPES, &format!("\"scopes\": {scopes}"), 1)
}

/// FastAPI's `get_swagger_ui_html`, pointed at our document. The password
/// flow needs no OAuth2 redirect page, so none is configured.
fn swagger_ui(assets_url: &str) -> String {
    // The URL comes from our own configuration; quotes would still break
    // out of the attribute, so they are escaped.
    let assets = assets_url.replace('&', "&amp;").replace('"', "&quot;");
    format!(
        r##"<!DOCTYPE html>
<html>
<head>
<link type="text/css" rel="stylesheet" href="{assets}/swagger-ui.css">
<title>password-bearer - Swagger UI</title>
</head>
<body>
<div id="swagger-ui">
</div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
const ui = SwaggerUIBundle({{
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
}})
</script>
</body>
</html>
"##
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn parsed(scopes: &[String]) -> Value {
        serde_json::from_str(&document(scopes)).expect("the document is JSON")
    }

    #[test]
    fn document_is_openapi_3_1_with_the_password_flow_and_its_scopes() {
        assert_eq!(DOCUMENT.matches(NO_SCOPES).count(), 1);
        let doc = parsed(&["items".into(), "me".into()]);
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(doc["openapi"], "3.1.0");
        let flow =
            &doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"];
        assert_eq!(flow["tokenUrl"], "token");
        assert_eq!(flow["scopes"], json!({"items": "", "me": ""}));
        assert!(doc["paths"]["/token"]["post"].is_object());
        assert!(doc["paths"]["/users/me"]["get"].is_object());
    }

    #[test]
    fn every_reference_resolves() {
        let doc = parsed(&[]);
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(doc["components"]["schemas"][name].is_object(), "{name}");
        }
    }

    #[test]
    fn swagger_ui_loads_from_the_configured_assets() {
        let page = swagger_ui("/static/swagger");
        assert!(page.contains(r#"href="/static/swagger/swagger-ui.css""#));
        assert!(page.contains(r#"src="/static/swagger/swagger-ui-bundle.js""#));
        assert!(page.contains("url: '/openapi.json'"));
    }
}
