//! `GET /openapi.json` and `GET /docs`: the FastAPI app's OpenAPI document
//! (the same paths, form schema and password-flow security scheme, plus the
//! scopes and the response models FastAPI leaves empty) and the Swagger UI
//! page FastAPI serves for it, with Swagger UI's two files from a CDN or,
//! for a machine without internet, from a local copy the app serves itself.

use crate::error::json_response;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

/// Where the page finds Swagger UI's files when the app serves them.
pub const LOCAL_ASSETS_PATH: &str = "/docs";

/// Both pages, rendered once when the app starts, and Swagger UI's files
/// when they are served locally. The document lists the users' scopes, so a
/// reload of the users renders it again ([`Docs::list_scopes`]).
#[derive(Debug, Clone)]
pub struct Docs {
    /// Shared by the clones: a reload's new document is everyone's.
    openapi: Arc<RwLock<Bytes>>,
    sessions: bool,
    swagger_ui: Bytes,
    assets: Option<SwaggerAssets>,
}

/// Swagger UI's two files, read once from a copy of the `swagger-ui-dist`
/// npm package: served at `/docs/swagger-ui-bundle.js` and
/// `/docs/swagger-ui.css`, so that `/docs` works with no network.
#[derive(Clone)]
pub struct SwaggerAssets {
    bundle_js: Bytes,
    css: Bytes,
}

impl fmt::Debug for SwaggerAssets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwaggerAssets")
            .field("bundle_js_bytes", &self.bundle_js.len())
            .field("css_bytes", &self.css.len())
            .finish()
    }
}

/// A Swagger UI file that could not be read.
#[derive(Debug)]
pub struct AssetsError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub error: std::io::Error,
}

impl fmt::Display for AssetsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot read {}: {} (a directory of the swagger-ui-dist npm package is expected)",
            self.path.display(),
            self.error
        )
    }
}

impl std::error::Error for AssetsError {}

impl SwaggerAssets {
    /// Reads `swagger-ui-bundle.js` and `swagger-ui.css` from `dir` (the
    /// unpacked `swagger-ui-dist` package); nothing else is read or served.
    pub fn load(dir: &Path) -> Result<SwaggerAssets, AssetsError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path)
                .map(Bytes::from)
                .map_err(|error| AssetsError { path, error })
        };
        Ok(SwaggerAssets {
            bundle_js: read("swagger-ui-bundle.js")?,
            css: read("swagger-ui.css")?,
        })
    }

    /// The two files from memory (for a build that embeds them).
    pub fn from_bytes(bundle_js: impl Into<Bytes>, css: impl Into<Bytes>) -> SwaggerAssets {
        SwaggerAssets {
            bundle_js: bundle_js.into(),
            css: css.into(),
        }
    }
}

impl Docs {
    /// Renders the document listing `scopes` (and, with `sessions`, the
    /// refresh grant and `POST /revoke`), and a Swagger UI page that loads
    /// its assets from `assets`, or from `assets_url` (no trailing slash)
    /// when there are none.
    pub fn new(
        scopes: &[String],
        sessions: bool,
        assets_url: &str,
        assets: Option<SwaggerAssets>,
    ) -> Docs {
        let openapi = document(scopes, sessions).into_bytes();
        let base = match assets {
            Some(_) => LOCAL_ASSETS_PATH,
            None => assets_url.trim_end_matches('/'),
        };
        Docs {
            openapi: Arc::new(RwLock::new(openapi.into())),
            sessions,
            swagger_ui: swagger_ui(base).into(),
            assets,
        }
    }

    /// Whether the app serves Swagger UI's files itself.
    pub fn serves_assets(&self) -> bool {
        self.assets.is_some()
    }

    /// The response for a path under `/docs/`, when it names one of the
    /// local Swagger UI files.
    pub fn asset_response(&self, path: &str) -> Option<Response<Full<Bytes>>> {
        let assets = self.assets.as_ref()?;
        let (body, content_type) = match path.strip_prefix(LOCAL_ASSETS_PATH)? {
            "/swagger-ui-bundle.js" => (&assets.bundle_js, "text/javascript; charset=utf-8"),
            "/swagger-ui.css" => (&assets.css, "text/css; charset=utf-8"),
            _ => return None,
        };
        let mut response = Response::new(Full::new(body.clone()));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        // The same bytes until the server restarts.
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        Some(response)
    }

    /// The `/openapi.json` response.
    pub fn openapi_response(&self) -> Response<Full<Bytes>> {
        let document = self
            .openapi
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        json_response(StatusCode::OK, document)
    }

    /// Renders the document again, listing `scopes` (the users changed).
    pub fn list_scopes(&self, scopes: &[String]) {
        let document = Bytes::from(document(scopes, self.sessions));
        *self.openapi.write().unwrap_or_else(PoisonError::into_inner) = document;
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

/// What sessions add to [`DOCUMENT`], merged into it: the refresh grant's
/// field, its `refresh_token` in the answer, `POST /revoke`, and the
/// password flow's `refreshUrl`. The source of [`WITH_SESSIONS`]; only the
/// tests read it.
#[cfg(test)]
const SESSIONS: &str = include_str!("openapi_sessions.json");

/// [`DOCUMENT`] with [`SESSIONS`] merged in, as serde_json pretty-prints
/// it (keys sorted). Committed rather than merged at start: parsing,
/// merging and printing a JSON tree took 11 KB of the binary for one
/// document. A unit test keeps it equal to the merge, and rewrites it
/// when run with `PASSWORD_BEARER_REGENERATE=1`.
const WITH_SESSIONS: &str = include_str!("openapi_with_sessions.json");

/// The document, listing `scopes` in the password flow, with the sessions'
/// parts when they are on.
fn document(scopes: &[String], sessions: bool) -> String {
    let text = if sessions { WITH_SESSIONS } else { DOCUMENT };
    let Some((before, after)) = text.split_once(NO_SCOPES) else {
        // A unit test checks that both hold the placeholder.
        return text.to_owned();
    };
    // A JSON object's keys are unique and, as serde_json's map prints
    // them, sorted.
    let scopes: std::collections::BTreeSet<&str> = scopes.iter().map(String::as_str).collect();
    let mut out = Vec::with_capacity(text.len() + scopes.len() * 32);
    out.extend_from_slice(before.as_bytes());
    out.extend_from_slice(br#""scopes": {"#);
    // The sessions' document is pretty-printed, two spaces a level: each
    // scope on a line of its own, one level in from the `"scopes"` line.
    let indent = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    for (i, scope) in scopes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if sessions {
            out.push(b'\n');
            out.extend_from_slice(indent.as_bytes());
            out.extend_from_slice(b"  ");
        }
        // Scopes are checked scope tokens (no quote, no backslash);
        // escaped all the same.
        let _ = serde_json::to_writer(&mut out, scope);
        out.extend_from_slice(if sessions { b": \"\"" } else { b":\"\"" });
    }
    if sessions && !scopes.is_empty() {
        out.push(b'\n');
        out.extend_from_slice(indent.as_bytes());
    }
    out.push(b'}');
    out.extend_from_slice(after.as_bytes());
    // Valid UTF-8: pieces of a str, and serde_json's strings.
    String::from_utf8(out).unwrap_or_default()
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

    use serde_json::{json, Map, Value};

    /// The document as it was made before [`WITH_SESSIONS`] was committed:
    /// the scopes put in as JSON, then, with sessions, [`SESSIONS`]
    /// merged into the parsed tree and the whole pretty-printed.
    fn merged(scopes: &[String], sessions: bool) -> String {
        let scopes: Map<String, Value> = scopes
            .iter()
            .map(|s| (s.clone(), Value::String(String::new())))
            .collect();
        let scopes = serde_json::to_string(&scopes).unwrap();
        let document = DOCUMENT.replacen(NO_SCOPES, &format!("\"scopes\": {scopes}"), 1);
        if !sessions {
            return document;
        }
        let mut document: Value = serde_json::from_str(&document).unwrap();
        merge(&mut document, serde_json::from_str(SESSIONS).unwrap());
        serde_json::to_string_pretty(&document).unwrap()
    }

    /// Merges `patch` into `into`: objects key by key, anything else
    /// replaced.
    fn merge(into: &mut Value, patch: Value) {
        match (into, patch) {
            (Value::Object(into), Value::Object(patch)) => {
                for (key, value) in patch {
                    merge(into.entry(key).or_insert(Value::Null), value);
                }
            }
            (into, patch) => *into = patch,
        }
    }

    #[test]
    fn the_committed_document_with_sessions_is_the_merge() {
        let fresh = merged(&[], true);
        if std::env::var_os("PASSWORD_BEARER_REGENERATE").is_some() {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/src/openapi_with_sessions.json"
            );
            std::fs::write(path, &fresh).unwrap();
        }
        assert!(
            WITH_SESSIONS == fresh,
            "src/openapi_with_sessions.json is not openapi.json with openapi_sessions.json \
             merged in: run `PASSWORD_BEARER_REGENERATE=1 cargo test --lib openapi`"
        );
        assert_eq!(WITH_SESSIONS.matches(NO_SCOPES).count(), 1);
    }

    #[test]
    fn the_scopes_go_in_as_the_merge_put_them() {
        let scopes = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for names in [
            &[][..],
            &["me"][..],
            &["me", "items", "me"][..],
            &["users:read", "items", "a-b"][..],
        ] {
            for sessions in [false, true] {
                assert_eq!(
                    document(&scopes(names), sessions),
                    merged(&scopes(names), sessions),
                    "{names:?}, sessions {sessions}"
                );
            }
        }
    }

    fn parsed(scopes: &[String]) -> Value {
        serde_json::from_str(&document(scopes, false)).expect("the document is JSON")
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
    fn with_sessions_the_document_has_the_refresh_grant_and_revoke() {
        let doc: Value = serde_json::from_str(&document(&["me".into()], true)).unwrap();
        let flow =
            &doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"];
        assert_eq!(flow["refreshUrl"], "token");
        assert_eq!(flow["tokenUrl"], "token");
        assert_eq!(flow["scopes"], json!({"me": ""}));
        // The form is one of two grants, each with its own required fields.
        let schemas = &doc["components"]["schemas"];
        let body = &doc["paths"]["/token"]["post"]["requestBody"]["content"]
            ["application/x-www-form-urlencoded"]["schema"];
        assert_eq!(body["$ref"], "#/components/schemas/TokenRequest");
        assert_eq!(
            schemas["TokenRequest"]["oneOf"],
            json!([
                {"$ref": "#/components/schemas/Body_login_token_post"},
                {"$ref": "#/components/schemas/Body_refresh_token_post"},
            ])
        );
        let password = &schemas["Body_login_token_post"];
        assert_eq!(password["required"], json!(["username", "password"]));
        assert!(
            password["properties"]["client_secret"].is_object(),
            "merged, not replaced"
        );
        assert_eq!(
            password["properties"]["grant_type"]["anyOf"],
            json!([{"enum": ["password"], "type": "string"}, {"type": "null"}])
        );
        assert!(password["properties"]["refresh_token"].is_null());
        let refresh = &schemas["Body_refresh_token_post"];
        assert_eq!(refresh["required"], json!(["grant_type", "refresh_token"]));
        assert_eq!(
            refresh["properties"]["grant_type"]["enum"],
            json!(["refresh_token"])
        );
        let token = &doc["components"]["schemas"]["Token"]["properties"];
        assert!(token["refresh_token"].is_object() && token["access_token"].is_object());
        assert!(doc["paths"]["/revoke"]["post"]["requestBody"].is_object());
        assert!(doc["paths"]["/users/me"]["get"].is_object());
        // Off, the tutorial's document.
        let off = parsed(&[]);
        assert!(off["paths"]["/revoke"].is_null());
        assert!(
            off["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]
                ["refreshUrl"]
                .is_null()
        );
    }

    #[test]
    fn every_reference_resolves() {
        for sessions in [false, true] {
            let doc: Value = serde_json::from_str(&document(&[], sessions)).unwrap();
            let text = doc.to_string();
            for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
                let name = &piece[..piece.find('"').unwrap()];
                assert!(doc["components"]["schemas"][name].is_object(), "{name}");
            }
        }
        let doc = parsed(&[]);
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(doc["components"]["schemas"][name].is_object(), "{name}");
        }
    }

    #[test]
    fn local_assets_are_served_with_their_types_and_the_page_points_at_them() {
        let docs = Docs::new(
            &[],
            false,
            "https://cdn.example.com/x",
            Some(SwaggerAssets::from_bytes("js();", "body{}")),
        );
        let page = String::from_utf8(docs.swagger_ui.to_vec()).unwrap();
        assert!(
            page.contains(r#"src="/docs/swagger-ui-bundle.js""#),
            "{page}"
        );
        assert!(!page.contains("cdn.example.com"), "{page}");
        let js = docs.asset_response("/docs/swagger-ui-bundle.js").unwrap();
        assert_eq!(js.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
        let css = docs.asset_response("/docs/swagger-ui.css").unwrap();
        assert_eq!(css.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
        for other in [
            "/docs/index.html",
            "/docs/../Cargo.toml",
            "/docs",
            "/other/swagger-ui.css",
        ] {
            assert!(docs.asset_response(other).is_none(), "{other}");
        }
        let remote = Docs::new(&[], false, "https://cdn.example.com/x", None);
        assert!(remote.asset_response("/docs/swagger-ui.css").is_none());
    }

    #[test]
    fn a_missing_asset_names_the_file() {
        let dir = std::env::temp_dir().join(format!("pb-assets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("swagger-ui-bundle.js"), "js").unwrap();
        let err = SwaggerAssets::load(&dir).unwrap_err().to_string();
        assert!(err.contains("swagger-ui.css"), "{err}");
        std::fs::write(dir.join("swagger-ui.css"), "css").unwrap();
        assert!(SwaggerAssets::load(&dir).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn swagger_ui_loads_from_the_configured_assets() {
        let page = swagger_ui("/static/swagger");
        assert!(page.contains(r#"href="/static/swagger/swagger-ui.css""#));
        assert!(page.contains(r#"src="/static/swagger/swagger-ui-bundle.js""#));
        assert!(page.contains("url: '/openapi.json'"));
    }
}
