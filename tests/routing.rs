//! Routing as FastAPI/Starlette answers it: 404 for unknown paths, 405 with
//! `Allow` for a known path and another method, 307 to drop a trailing
//! slash, `/healthz`, and the OpenAPI document (its paths, scopes and
//! models, with sessions on or off) with its Swagger UI page.

use crate::support::*;
use serde_json::json;

const NOT_FOUND: &str = r#"{"detail":"Not Found"}"#;
const METHOD_NOT_ALLOWED: &str = r#"{"detail":"Method Not Allowed"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_404() {
    let server = start().await;
    for (method, path) in [
        ("GET", "/nope"),
        ("GET", "/"),
        ("POST", "/nope"),
        ("DELETE", "/users"),
        ("GET", "/users/me/more"),
        ("GET", "/tokens"),
        ("GET", "/Users/Me"),
    ] {
        let resp = request(server.addr, method, path, &[], b"").await;
        assert_json_exact(&resp, 404, NOT_FOUND);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_on_known_paths_are_405_with_allow() {
    let server = start().await;
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let resp = request(server.addr, method, "/users/me", &[], b"").await;
        assert_json_exact(&resp, 405, METHOD_NOT_ALLOWED);
        assert_eq!(resp.header_all("allow"), ["GET"], "{method} /users/me");
        assert!(resp.header("www-authenticate").is_none());
    }
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let resp = request(server.addr, method, "/token", &[], b"").await;
        assert_json_exact(&resp, 405, METHOD_NOT_ALLOWED);
        assert_eq!(resp.header_all("allow"), ["POST"], "{method} /token");
    }
    for method in ["POST", "PUT", "DELETE"] {
        let resp = request(server.addr, method, "/healthz", &[], b"").await;
        assert_json_exact(&resp, 405, METHOD_NOT_ALLOWED);
        assert_eq!(resp.header_all("allow"), ["GET"], "{method} /healthz");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_says_ok_while_the_store_answers() {
    // The file store always answers; a failing store is in `attacks`.
    let server = start().await;
    assert_json_exact(
        &get(server.addr, "/healthz", &[]).await,
        200,
        r#"{"status":"ok"}"#,
    );
    let resp = get(server.addr, "/healthz/", &[]).await;
    assert_eq!(
        (resp.status, resp.header("location")),
        (307, Some("/healthz"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailing_slash_redirects_with_307() {
    let server = start().await;
    for (method, path, location) in [
        ("GET", "/users/me/", "/users/me"),
        // Every trailing slash goes, as Starlette's `rstrip("/")`.
        ("GET", "/users/me///", "/users/me"),
        ("GET", "/healthz//", "/healthz"),
        // 307, not 301/302: a client repeats the POST with its body.
        ("POST", "/token/", "/token"),
    ] {
        let resp = request(server.addr, method, path, &[], b"").await;
        assert_eq!(resp.status, 307, "{method} {path}: {}", resp.text());
        assert_eq!(resp.header_all("location"), [location], "{method} {path}");
        assert!(resp.body.is_empty(), "{method} {path}: empty body");
        assert_eq!(resp.header("content-length"), Some("0"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_string_does_not_change_the_route() {
    let server = start().await;
    let resp = get(server.addr, "/users/me?x=1", &[]).await;
    assert_401(&resp, NOT_AUTHENTICATED);
    let resp = request(
        server.addr,
        "POST",
        "/token?grant_type=foo",
        &[("Content-Type", FORM)],
        b"username=johndoe&password=bad",
    )
    .await;
    // The form is the body; the query string is not read as fields.
    assert_invalid_grant(&resp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_json_describes_the_two_routes() {
    // With sessions off: the tutorial's own document.
    let mut config =
        password_bearer::Config::new(password_bearer::users::Users::demo(), test_key());
    config.refresh_token_ttl = std::time::Duration::ZERO;
    let server = start_with(config).await;
    let resp = get(server.addr, "/openapi.json", &[]).await;
    assert_eq!(resp.status, 200);
    assert_json_headers(&resp);
    let doc = resp.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let mut names: Vec<_> = paths.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["/token", "/users/me"]);
    let token_ops: Vec<_> = paths["/token"].as_object().unwrap().keys().collect();
    assert_eq!(token_ops, ["post"]);
    let me_ops: Vec<_> = paths["/users/me"].as_object().unwrap().keys().collect();
    assert_eq!(me_ops, ["get"]);
    assert_eq!(
        doc["components"]["securitySchemes"]["OAuth2PasswordBearer"],
        json!({"type": "oauth2", "flows": {"password": {"scopes": {"items": "", "me": ""}, "tokenUrl": "token"}}})
    );
    assert_eq!(
        paths["/users/me"]["get"]["security"],
        json!([{"OAuth2PasswordBearer": []}])
    );
    // The form, as FastAPI describes OAuth2PasswordRequestForm.
    let form = &paths["/token"]["post"]["requestBody"]["content"]
        ["application/x-www-form-urlencoded"]["schema"];
    let form = match form["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .expect("a local schema reference");
            &doc["components"]["schemas"][name]
        }
        None => form,
    };
    assert_eq!(form["required"], json!(["username", "password"]));
    for field in [
        "grant_type",
        "username",
        "password",
        "scope",
        "client_id",
        "client_secret",
    ] {
        assert!(form["properties"][field].is_object(), "form field {field}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_is_swagger_ui_for_openapi_json() {
    let server = start().await;
    let resp = get(server.addr, "/docs", &[]).await;
    assert_eq!(resp.status, 200);
    let content_type = resp.header("content-type").expect("a content type");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert_eq!(
        resp.header("content-length"),
        Some(resp.body.len().to_string().as_str())
    );
    let html = resp.text();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(html.contains("/openapi.json"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sessions_openapi_json_adds_the_refresh_grant_and_revoke() {
    let server = start().await;
    let doc = get(server.addr, "/openapi.json", &[]).await.json();
    let mut names: Vec<_> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    names.sort_unstable();
    assert_eq!(names, ["/revoke", "/token", "/users/me"]);
    assert_eq!(
        doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]
            ["refreshUrl"],
        "token"
    );
    // The form is one of two grants: a generated client must still know
    // that the password grant needs username and password.
    let schemas = &doc["components"]["schemas"];
    let form = &doc["paths"]["/token"]["post"]["requestBody"]["content"]
        ["application/x-www-form-urlencoded"]["schema"];
    let name = form["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .expect("a local schema reference");
    let grants: Vec<&serde_json::Value> = schemas[name]["oneOf"]
        .as_array()
        .expect("oneOf the grants")
        .iter()
        .map(|grant| {
            let name = grant["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .expect("a local schema reference");
            &schemas[name]
        })
        .collect();
    assert_eq!(grants.len(), 2);
    let grant_types: Vec<&serde_json::Value> = grants
        .iter()
        .map(|g| &g["properties"]["grant_type"])
        .collect();
    let (password, refresh) = match grant_types[0].to_string().contains("refresh_token") {
        false => (grants[0], grants[1]),
        true => (grants[1], grants[0]),
    };
    assert_eq!(
        password["required"],
        json!(["username", "password"]),
        "{password}"
    );
    assert_eq!(
        password["properties"]["grant_type"]["anyOf"][0]["enum"],
        json!(["password"])
    );
    assert_eq!(
        refresh["required"],
        json!(["grant_type", "refresh_token"]),
        "{refresh}"
    );
    assert_eq!(
        refresh["properties"]["grant_type"]["enum"],
        json!(["refresh_token"])
    );
    let revoke = &doc["components"]["schemas"]["Body_revoke_revoke_post"];
    assert_eq!(revoke["required"], json!(["token"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_the_scopes_and_describes_the_models() {
    let server = start().await;
    let resp = get(server.addr, "/openapi.json", &[]).await;
    assert_eq!(resp.status, 200);
    let doc = resp.json();
    let flow = &doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"];
    assert_eq!(flow["tokenUrl"], "token");
    let scopes = flow["scopes"].as_object().expect("scopes is an object");
    let mut names: Vec<&str> = scopes.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["items", "me"], "{flow}");

    let schemas = &doc["components"]["schemas"];
    let token = &schemas["Token"];
    for field in ["access_token", "token_type", "expires_in", "scope"] {
        assert!(
            token["properties"][field].is_object(),
            "Token.{field}: {token}"
        );
    }
    assert_eq!(
        token["required"],
        json!(["access_token", "token_type", "expires_in"]),
        "scope is optional"
    );
    let user = &schemas["User"];
    for field in ["username", "email", "full_name", "disabled"] {
        assert!(
            user["properties"][field].is_object(),
            "User.{field}: {user}"
        );
    }
    assert!(
        user["properties"].get("hashed_password").is_none(),
        "no hash in the model: {user}"
    );
    // The responses point at them.
    let paths = &doc["paths"];
    assert_eq!(
        paths["/token"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/Token"
    );
    assert_eq!(
        paths["/users/me"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/User"
    );
}
