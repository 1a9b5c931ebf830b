//! The `Authorization` header, read as FastAPI's `OAuth2PasswordBearer` does:
//! `<scheme> <token>`, scheme matched case-insensitively, the token trimmed.

use crate::error::ApiError;

/// The bearer token of an `Authorization` header value.
///
/// No header, an empty one, or a scheme other than `Bearer` is
/// [`ApiError::NotAuthenticated`]: the client did not try. `Bearer` followed
/// by nothing, or by bytes that cannot be a token, is
/// [`ApiError::InvalidCredentials`]: it tried and failed, as FastAPI answers.
pub fn bearer_token(header: Option<&[u8]>) -> Result<&str, ApiError> {
    // Anything that is not base64url and dots (inner spaces, control
    // bytes) fails the token decoder just the same; here it only has to be
    // a `&str`.
    std::str::from_utf8(bearer_bytes(header)?).map_err(|_| ApiError::InvalidCredentials)
}

/// [`bearer_token`] before the UTF-8 check, for the route, whose
/// verified-token cache compares bytes: a token it has seen needs no check.
/// Inlined into `GET /users/me`'s routing, where LLVM otherwise leaves it a
/// call (9 instructions more per request, `benches/instructions.sh`).
#[inline]
pub(crate) fn bearer_bytes(header: Option<&[u8]>) -> Result<&[u8], ApiError> {
    let value = header.unwrap_or_default();
    // FastAPI splits on the first space; the parser already trimmed the value.
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, &b""[..]),
    };
    if value.is_empty() || !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(ApiError::NotAuthenticated);
    }
    let token = rest.trim_ascii();
    if token.is_empty() {
        return Err(ApiError::InvalidCredentials);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(v: &str) -> Result<&str, ApiError> {
        bearer_token(Some(v.as_bytes()))
    }

    #[test]
    fn reads_the_token_of_any_bearer_spelling() {
        assert_eq!(token("Bearer abc.def.ghi"), Ok("abc.def.ghi"));
        assert_eq!(token("bearer abc"), Ok("abc"));
        assert_eq!(token("BEARER   abc  "), Ok("abc"));
    }

    #[test]
    fn no_bearer_scheme_is_not_authenticated() {
        assert_eq!(bearer_token(None), Err(ApiError::NotAuthenticated));
        assert_eq!(token(""), Err(ApiError::NotAuthenticated));
        assert_eq!(token("Basic Zm9vOmJhcg=="), Err(ApiError::NotAuthenticated));
        assert_eq!(token("abc.def.ghi"), Err(ApiError::NotAuthenticated));
        assert_eq!(token("Bearerabc"), Err(ApiError::NotAuthenticated));
    }

    #[test]
    fn bearer_without_a_usable_token_is_invalid() {
        assert_eq!(token("Bearer"), Err(ApiError::InvalidCredentials));
        assert_eq!(token("Bearer    "), Err(ApiError::InvalidCredentials));
        // Not a token, but the decoder's to refuse (see tests/jwt.rs).
        assert_eq!(token("Bearer a b"), Ok("a b"));
        assert_eq!(
            bearer_token(Some(b"Bearer \xff\xfe")),
            Err(ApiError::InvalidCredentials)
        );
    }
}
