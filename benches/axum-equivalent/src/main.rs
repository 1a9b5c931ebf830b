//! The axum + jsonwebtoken + argon2 equivalent of password-bearer: FastAPI's
//! "OAuth2 with Password (and hashing), Bearer with JWT tokens" tutorial as a
//! typical axum developer writes it. It is the yardstick of the login-flood
//! comparison in benches/load.sh, so it is deliberately the ordinary version:
//! every login is an argon2 verify handed to `spawn_blocking`, with no bound
//! of its own on how many run at once (tokio's blocking pool grows to 512
//! threads, each with argon2's 19 MiB of working memory).
//!
//!     axum-equivalent PORT KEYFILE
//!
//! PORT may be 0; KEYFILE holds the HS256 key (surrounding ASCII whitespace
//! is trimmed, as password-bearer does). Prints `listening on
//! http://127.0.0.1:PORT` to stderr once listening.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Form, Json, Router};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

const ACCESS_TOKEN_EXPIRE_MINUTES: u64 = 30;

/// The user as returned by `GET /users/me`, fields in the tutorial's order.
#[derive(Clone, Serialize)]
struct User {
    username: String,
    email: String,
    full_name: String,
    disabled: bool,
}

struct UserInDb {
    user: User,
    hashed_password: String,
}

struct AppState {
    users: HashMap<String, UserInDb>,
    encoding_key: EncodingKey,
    decoding_key: DecodingKey,
    validation: Validation,
}

/// OAuth2PasswordRequestForm: grant_type, scope, client_id and
/// client_secret may be sent too and are ignored.
#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

#[derive(Serialize)]
struct Token {
    access_token: String,
    token_type: &'static str,
}

enum AppError {
    BadLogin,
    BadToken,
    Inactive,
    Internal,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, detail) = match self {
            AppError::BadLogin => (StatusCode::UNAUTHORIZED, "Incorrect username or password"),
            AppError::BadToken => (StatusCode::UNAUTHORIZED, "Could not validate credentials"),
            AppError::Inactive => (StatusCode::BAD_REQUEST, "Inactive user"),
            AppError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        };
        let body = Json(serde_json::json!({ "detail": detail }));
        if status == StatusCode::UNAUTHORIZED {
            (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
        } else {
            (status, body).into_response()
        }
    }
}

async fn login(
    State(state): State<Arc<AppState>>,
    Form(form): Form<LoginForm>,
) -> Result<Json<Token>, AppError> {
    let Some(user) = state.users.get(&form.username) else {
        return Err(AppError::BadLogin);
    };
    let hashed = user.hashed_password.clone();
    let password = form.password;
    // argon2 takes tens of milliseconds of CPU: off the async workers.
    let verified = tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hashed).map_err(|_| AppError::Internal)?;
        Ok::<bool, AppError>(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .map_err(|_| AppError::Internal)??;
    if !verified {
        return Err(AppError::BadLogin);
    }
    let claims = Claims {
        sub: user.user.username.clone(),
        exp: jsonwebtoken::get_current_timestamp() + ACCESS_TOKEN_EXPIRE_MINUTES * 60,
    };
    let access_token =
        encode(&Header::default(), &claims, &state.encoding_key).map_err(|_| AppError::Internal)?;
    Ok(Json(Token { access_token, token_type: "bearer" }))
}

async fn read_users_me(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<User>, AppError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or(AppError::BadToken)?;
    let data = decode::<Claims>(token, &state.decoding_key, &state.validation)
        .map_err(|_| AppError::BadToken)?;
    let user = state.users.get(&data.claims.sub).ok_or(AppError::BadToken)?;
    if user.user.disabled {
        return Err(AppError::Inactive);
    }
    Ok(Json(user.user.clone()))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.expect("cannot listen for SIGINT");
    };
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("cannot listen for SIGTERM")
            .recv()
            .await;
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

fn usage() -> ! {
    eprintln!("usage: axum-equivalent PORT KEYFILE");
    std::process::exit(2);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, port, keyfile] = args.as_slice() else { usage() };
    let Ok(port) = port.parse::<u16>() else { usage() };
    let key = std::fs::read(keyfile)?;
    let key = key.trim_ascii();
    if key.is_empty() {
        return Err(format!("{keyfile}: empty key").into());
    }

    // Hashed once at startup with argon2 0.5's defaults: argon2id, m=19456,
    // t=2, p=1, a random salt.
    let salt = SaltString::generate(&mut OsRng);
    let hashed_password = Argon2::default()
        .hash_password(b"secret", &salt)
        .map_err(|e| e.to_string())?
        .to_string();
    let mut users = HashMap::new();
    users.insert(
        "johndoe".to_owned(),
        UserInDb {
            user: User {
                username: "johndoe".to_owned(),
                email: "johndoe@example.com".to_owned(),
                full_name: "John Doe".to_owned(),
                disabled: false,
            },
            hashed_password,
        },
    );
    let state = Arc::new(AppState {
        users,
        encoding_key: EncodingKey::from_secret(key)?,
        decoding_key: DecodingKey::from_secret(key)?,
        validation: Validation::new(Algorithm::HS256),
    });

    let app = Router::new()
        .route("/token", post(login))
        .route("/users/me", get(read_users_me))
        .with_state(state);

    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    let listener = socket.listen(4096)?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}
