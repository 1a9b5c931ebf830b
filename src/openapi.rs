//! `GET /openapi.json` and `GET /docs`: the FastAPI app's OpenAPI document
//! (the same paths, form schema and password-flow security scheme, plus the
//! scopes and the response models FastAPI leaves empty) and the Swagger UI
//! page FastAPI serves for it.

use crate::error::json_response;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

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
        let openapi =
            serde_json::to_vec(&document(scopes)).expect("a JSON value always serializes");
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

fn json_content(schema: &str) -> Value {
    json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}})
}

fn response(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": json_content(schema)})
}

/// The OpenAPI 3.1 document: FastAPI's for the seed, with the response
/// bodies described.
fn document(scopes: &[String]) -> Value {
    let scopes: Map<String, Value> = scopes
        .iter()
        .map(|s| (s.clone(), Value::String(String::new())))
        .collect();
    let string = json!({"type": "string"});
    let nullable_string = json!({"anyOf": [{"type": "string"}, {"type": "null"}]});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "password-bearer", "version": env!("CARGO_PKG_VERSION")},
        "paths": {
            "/token": {"post": {
                "summary": "Login",
                "operationId": "login_token_post",
                "requestBody": {
                    "content": {"application/x-www-form-urlencoded": {
                        "schema": {"$ref": "#/components/schemas/Body_login_token_post"}
                    }},
                    "required": true
                },
                "responses": {
                    "200": response("Successful Response", "Token"),
                    "400": response("Incorrect username or password", "OAuthError"),
                    "413": response("Request body too large", "HTTPError"),
                    "422": response("Validation Error", "HTTPValidationError"),
                }
            }},
            "/users/me": {"get": {
                "summary": "Read Users Me",
                "operationId": "read_users_me_users_me_get",
                "responses": {
                    "200": response("Successful Response", "User"),
                    "400": response("Inactive user", "HTTPError"),
                    "401": response("Not authenticated or invalid credentials", "HTTPError"),
                },
                "security": [{"OAuth2PasswordBearer": []}]
            }}
        },
        "components": {
            "schemas": {
                "Body_login_token_post": {
                    "properties": {
                        "grant_type": {"anyOf": [{"type": "string", "pattern": "^password$"}, {"type": "null"}], "title": "Grant Type"},
                        "username": {"type": "string", "title": "Username"},
                        "password": {"type": "string", "format": "password", "title": "Password"},
                        "scope": {"type": "string", "title": "Scope", "default": ""},
                        "client_id": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Client Id"},
                        "client_secret": {"anyOf": [{"type": "string"}, {"type": "null"}], "format": "password", "title": "Client Secret"}
                    },
                    "type": "object",
                    "required": ["username", "password"],
                    "title": "Body_login_token_post"
                },
                "Token": {
                    "properties": {
                        "access_token": {"type": "string", "title": "Access Token"},
                        "token_type": {"type": "string", "const": "bearer", "title": "Token Type"},
                        "expires_in": {"type": "integer", "title": "Expires In"},
                        "scope": {"type": "string", "title": "Scope", "description": "The granted scopes, present when they differ from the requested ones"}
                    },
                    "type": "object",
                    "required": ["access_token", "token_type", "expires_in"],
                    "title": "Token"
                },
                "User": {
                    "properties": {
                        "username": {"type": "string", "title": "Username"},
                        "email": nullable_string.clone(),
                        "full_name": nullable_string,
                        "disabled": {"anyOf": [{"type": "boolean"}, {"type": "null"}], "title": "Disabled"}
                    },
                    "type": "object",
                    "required": ["username"],
                    "title": "User"
                },
                "HTTPError": {
                    "properties": {"detail": {"type": "string", "title": "Detail"}},
                    "type": "object",
                    "required": ["detail"],
                    "title": "HTTPError"
                },
                "OAuthError": {
                    "properties": {
                        "detail": {"type": "string", "title": "Detail"},
                        "error": {"type": "string", "title": "Error", "description": "RFC 6749 §5.2 error code"},
                        "error_description": string
                    },
                    "type": "object",
                    "required": ["detail", "error"],
                    "title": "OAuthError"
                },
                "HTTPValidationError": {
                    "properties": {
                        "detail": {"items": {"$ref": "#/components/schemas/ValidationError"}, "type": "array", "title": "Detail"},
                        "error": {"type": "string", "enum": ["invalid_request", "unsupported_grant_type"], "title": "Error"},
                        "error_description": {"type": "string", "title": "Error Description"}
                    },
                    "type": "object",
                    "title": "HTTPValidationError"
                },
                "ValidationError": {
                    "properties": {
                        "loc": {"items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}, "type": "array", "title": "Location"},
                        "msg": {"type": "string", "title": "Message"},
                        "type": {"type": "string", "title": "Error Type"},
                        "input": {"title": "Input"},
                        "ctx": {"type": "object", "title": "Context"}
                    },
                    "type": "object",
                    "required": ["loc", "msg", "type"],
                    "title": "ValidationError"
                }
            },
            "securitySchemes": {
                "OAuth2PasswordBearer": {
                    "type": "oauth2",
                    "flows": {"password": {"scopes": scopes, "tokenUrl": "token"}}
                }
            }
        }
    })
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

    #[test]
    fn document_is_openapi_3_1_with_the_password_flow_and_its_scopes() {
        let doc = document(&["items".into(), "me".into()]);
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
        let doc = document(&[]);
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
