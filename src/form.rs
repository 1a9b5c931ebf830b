//! The `/token` request form: FastAPI's `OAuth2PasswordRequestForm`, parsed
//! from `application/x-www-form-urlencoded` by our code, with FastAPI's
//! validation errors (and RFC 6749's rule that no field may be repeated).

use std::borrow::Cow;

/// The fields of the form, in the order FastAPI validates (and reports) them.
const FIELDS: [&str; 6] = [
    "grant_type",
    "username",
    "password",
    "scope",
    "client_id",
    "client_secret",
];

/// A valid password-grant request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenForm {
    /// The login name (non-empty).
    pub username: String,
    /// The clear password (non-empty); dropped as soon as it is checked.
    pub password: String,
    /// `scope` split on spaces, as FastAPI's `form_data.scopes`.
    pub scopes: Vec<String>,
    /// `password`, or `None` when absent or empty (FastAPI allows both).
    pub grant_type: Option<String>,
    /// Accepted and unused, as in the seed.
    pub client_id: Option<String>,
    /// Accepted and unused, as in the seed.
    pub client_secret: Option<String>,
}

/// What is wrong with one field: one entry of FastAPI's `detail` list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldError {
    /// A required field is absent or empty (`"type": "missing"`).
    Missing(&'static str),
    /// `grant_type` is not `password` (`"type": "string_pattern_mismatch"`);
    /// holds the value sent, which FastAPI echoes as `input`.
    GrantType(String),
    /// The field appears more than once (`"type": "duplicate"`).
    Duplicate(&'static str),
}

/// Why a form was refused: FastAPI's list of entries, in its order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FormError {
    /// One entry per bad field, in the order grant_type, username, password, …
    pub errors: Vec<FieldError>,
}

impl FormError {
    /// RFC 6749 §5.2 has its own code for a grant other than `password`.
    pub fn is_unsupported_grant_type(&self) -> bool {
        self.errors
            .iter()
            .any(|e| matches!(e, FieldError::GrantType(_)))
    }
}

/// Whether `content_type` is `application/x-www-form-urlencoded`, with or
/// without parameters such as `; charset=UTF-8`. Anything else (JSON,
/// multipart, none) reads as an empty form, as FastAPI does.
pub fn is_form_content_type(content_type: Option<&[u8]>) -> bool {
    const FORM: &[u8] = b"application/x-www-form-urlencoded";
    let Some(value) = content_type else {
        return false;
    };
    let essence = value.split(|&b| b == b';').next().unwrap_or_default();
    essence.trim_ascii().eq_ignore_ascii_case(FORM)
}

/// Parses and validates a `/token` body by its `Content-Type`: a form is
/// read as its encoding says; anything else (JSON, none) reads as an empty
/// form, as FastAPI does.
pub fn parse_token_body(content_type: Option<&[u8]>, body: &[u8]) -> Result<TokenForm, FormError> {
    if is_form_content_type(content_type) {
        parse_token_form(body)
    } else {
        parse_token_form(b"")
    }
}

/// Parses and validates an `application/x-www-form-urlencoded` `/token`
/// body. `+` decodes to a space and percent
/// escapes as UTF-8 (lossily: an invalid sequence simply never matches).
pub fn parse_token_form(body: &[u8]) -> Result<TokenForm, FormError> {
    // Each field's first value and how often it came; unknown fields are ignored.
    let mut values: [Option<Cow<'_, str>>; 6] = Default::default();
    let mut counts = [0u32; 6];
    for (name, value) in form_urlencoded::parse(body) {
        if let Some(i) = FIELDS.iter().position(|f| *f == name) {
            counts[i] += 1;
            if values[i].is_none() {
                values[i] = Some(value);
            }
        }
    }
    // An empty value counts as missing, as in FastAPI's form handling.
    let mut take = |i: usize| values[i].take().filter(|v| !v.is_empty());
    let [grant_type, username, password, scope, client_id, client_secret] =
        [0, 1, 2, 3, 4, 5].map(&mut take);

    let mut errors = Vec::new();
    for (i, field) in FIELDS.iter().enumerate() {
        if counts[i] > 1 {
            errors.push(FieldError::Duplicate(field));
            continue;
        }
        match i {
            0 => {
                if let Some(g) = grant_type.as_deref().filter(|g| *g != "password") {
                    errors.push(FieldError::GrantType(g.to_owned()));
                }
            }
            1 if username.is_none() => errors.push(FieldError::Missing("username")),
            2 if password.is_none() => errors.push(FieldError::Missing("password")),
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(FormError { errors });
    }
    Ok(TokenForm {
        username: username.map(Cow::into_owned).unwrap_or_default(),
        password: password.map(Cow::into_owned).unwrap_or_default(),
        scopes: scope
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        grant_type: grant_type.map(Cow::into_owned),
        client_id: client_id.map(Cow::into_owned),
        client_secret: client_secret.map(Cow::into_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(body: &str) -> Vec<FieldError> {
        parse_token_form(body.as_bytes()).unwrap_err().errors
    }

    #[test]
    fn parses_the_full_form() {
        let form = parse_token_form(
            b"grant_type=password&username=johndoe&password=secret&scope=users:read%20items&client_id=x&other=1",
        )
        .unwrap();
        assert_eq!(form.username, "johndoe");
        assert_eq!(form.password, "secret");
        assert_eq!(form.scopes, ["users:read", "items"]);
        assert_eq!(form.grant_type.as_deref(), Some("password"));
        assert_eq!(form.client_id.as_deref(), Some("x"));
        assert_eq!(form.client_secret, None);
    }

    #[test]
    fn decodes_plus_and_percent_escapes() {
        let form = parse_token_form(b"username=john%64oe&password=a+b%2Bc%20d").unwrap();
        assert_eq!(form.username, "johndoe");
        assert_eq!(form.password, "a b+c d");
        let lossy = parse_token_form(b"username=%FF&password=x").unwrap();
        assert_eq!(lossy.username, "\u{FFFD}");
    }

    #[test]
    fn missing_and_empty_fields_are_missing() {
        let both = vec![
            FieldError::Missing("username"),
            FieldError::Missing("password"),
        ];
        assert_eq!(errors(""), both);
        assert_eq!(errors("username=&password="), both);
        assert_eq!(errors("password=x"), [FieldError::Missing("username")]);
        // An empty grant_type is absent, not a mismatch.
        assert!(parse_token_form(b"grant_type=&username=a&password=b").is_ok());
    }

    #[test]
    fn grant_type_must_be_password() {
        let e = parse_token_form(b"grant_type=foo").unwrap_err();
        assert!(e.is_unsupported_grant_type());
        assert_eq!(
            e.errors,
            [
                FieldError::GrantType("foo".into()),
                FieldError::Missing("username"),
                FieldError::Missing("password"),
            ]
        );
        assert!(!FormError { errors: errors("") }.is_unsupported_grant_type());
    }

    #[test]
    fn repeated_fields_are_refused_each_once() {
        assert_eq!(
            errors("username=a&password=b&username=c&scope=x&scope=y&scope=z&other=1&other=2"),
            [
                FieldError::Duplicate("username"),
                FieldError::Duplicate("scope")
            ]
        );
    }

    #[test]
    fn content_type_essence_is_matched() {
        assert!(is_form_content_type(Some(
            b"application/x-www-form-urlencoded"
        )));
        assert!(is_form_content_type(Some(
            b"Application/X-WWW-Form-Urlencoded ; charset=UTF-8"
        )));
        assert!(!is_form_content_type(Some(b"application/json")));
        assert!(!is_form_content_type(Some(
            b"application/x-www-form-urlencodedx"
        )));
        assert!(!is_form_content_type(None));
    }
}
