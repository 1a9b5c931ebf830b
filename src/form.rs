//! The `/token` request form: FastAPI's `OAuth2PasswordRequestForm`, and
//! with sessions on RFC 6749's refresh grant too, parsed from
//! `application/x-www-form-urlencoded` or (by `multipart`)
//! `multipart/form-data`, and validated in one place for both, with
//! FastAPI's validation errors (and RFC 6749's rule that no field may be
//! repeated); and the `POST /revoke` form (RFC 7009), read the same way.

pub use crate::multipart::MultipartError;
use crate::multipart::{Field, Value};
use std::borrow::Cow;
use std::fmt;

/// The fields of the form, in the order FastAPI validates (and reports) them;
/// `refresh_token` last, as the refresh grant's.
const FIELDS: [&str; 7] = [
    "grant_type",
    "username",
    "password",
    "scope",
    "client_id",
    "client_secret",
    "refresh_token",
];

/// A valid `/token` request: the password grant (`username` and `password`
/// set), or, when the refresh grant is allowed and asked for, the refresh
/// grant (`refresh_token` set, `username` and `password` empty).
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
    /// Unused by the password grant, as in the seed; the client
    /// credentials grant's client, when it authenticates in the form
    /// (`client_secret_post`).
    pub client_id: Option<String>,
    /// As `client_id`: the client's secret in the form.
    pub client_secret: Option<String>,
    /// The refresh grant's token (RFC 6749 §6).
    pub refresh_token: Option<String>,
}

impl TokenForm {
    /// Whether this is the refresh grant.
    pub fn is_refresh(&self) -> bool {
        self.refresh_token.is_some()
    }

    /// Whether this is the client credentials grant (only ever parsed so
    /// where clients are served).
    pub fn is_client_credentials(&self) -> bool {
        self.grant_type.as_deref() == Some(CLIENT_CREDENTIALS)
    }
}

/// The client credentials grant's `grant_type` (RFC 6749 §4.4.2).
const CLIENT_CREDENTIALS: &str = "client_credentials";

/// A valid `POST /revoke` request (RFC 7009 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevokeForm {
    /// The token to revoke: a refresh token or an access token.
    pub token: String,
    /// `refresh_token` or `access_token`, a hint the server may ignore.
    pub token_type_hint: Option<String>,
    /// The client, when it authenticates in the form (`client_secret_post`).
    pub client_id: Option<String>,
    /// The client's secret in the form.
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
    /// The field came as a multipart file part, one with a filename, where
    /// FastAPI wants a `str` (`"type": "string_type"`). FastAPI echoes its
    /// `UploadFile` as `input`; we echo the filename and the size, never
    /// the content.
    File {
        /// The field.
        field: &'static str,
        /// The part's `filename` (possibly empty).
        filename: String,
        /// The part's content length in bytes.
        size: usize,
    },
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

/// Why a `/token` body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// Read, but its fields failed validation (FastAPI's 422).
    Invalid(FormError),
    /// A multipart body that could not be read (Starlette's 400).
    Multipart(MultipartError),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Invalid(_) => f.write_str("the form failed validation"),
            BodyError::Multipart(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BodyError {}

const URLENCODED: &[u8] = b"application/x-www-form-urlencoded";
const MULTIPART: &[u8] = b"multipart/form-data";

/// The media type of a `Content-Type` value, without its parameters (such
/// as `; charset=UTF-8`) and surrounding white space.
fn media_type(content_type: &[u8]) -> &[u8] {
    let essence = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default();
    essence.trim_ascii()
}

/// Whether `content_type` is `application/x-www-form-urlencoded`, with or
/// without parameters such as `; charset=UTF-8`.
pub fn is_form_content_type(content_type: Option<&[u8]>) -> bool {
    content_type.is_some_and(|value| media_type(value).eq_ignore_ascii_case(URLENCODED))
}

/// Parses and validates a `/token` body by its `Content-Type`:
/// `application/x-www-form-urlencoded` or `multipart/form-data` (media
/// types matched case-insensitively), each read as its encoding says and
/// validated alike; anything else (JSON, none) reads as an empty form, as
/// FastAPI does. `refresh_grant` allows `grant_type=refresh_token`.
pub fn parse_token_body(
    content_type: Option<&[u8]>,
    body: &[u8],
    refresh_grant: bool,
) -> Result<TokenForm, BodyError> {
    parse_token_request(content_type, body, refresh_grant, false)
}

/// [`parse_token_body`], and when `client_grant`, the client credentials
/// grant (`grant_type=client_credentials`, no username or password) too.
pub(crate) fn parse_token_request(
    content_type: Option<&[u8]>,
    body: &[u8],
    refresh_grant: bool,
    client_grant: bool,
) -> Result<TokenForm, BodyError> {
    read_fields(content_type, body, &mut |fields| {
        validate(fields, refresh_grant, client_grant)
    })
}

/// Parses and validates a `POST /revoke` body, read as a `/token` body is.
pub fn parse_revoke_body(
    content_type: Option<&[u8]>,
    body: &[u8],
) -> Result<RevokeForm, BodyError> {
    read_fields(content_type, body, &mut validate_revoke)
}

/// The fields of a body by its `Content-Type`, handed to `validate`.
fn read_fields<T>(
    content_type: Option<&[u8]>,
    body: &[u8],
    validate: &mut dyn FnMut(&mut dyn Iterator<Item = Field<'_>>) -> Result<T, FormError>,
) -> Result<T, BodyError> {
    match content_type {
        Some(value) if media_type(value).eq_ignore_ascii_case(MULTIPART) => {
            let fields = crate::multipart::fields(value, body).map_err(BodyError::Multipart)?;
            validate(&mut fields.into_iter()).map_err(BodyError::Invalid)
        }
        Some(value) if media_type(value).eq_ignore_ascii_case(URLENCODED) => {
            validate(&mut urlencoded(body)).map_err(BodyError::Invalid)
        }
        _ => validate(&mut urlencoded(b"")).map_err(BodyError::Invalid),
    }
}

fn urlencoded(body: &[u8]) -> impl Iterator<Item = Field<'_>> {
    form_urlencoded::parse(body).map(|(name, value)| (name, Value::Text(value)))
}

/// Parses and validates an `application/x-www-form-urlencoded` `/token`
/// body (the password grant only). `+` decodes to a space and percent
/// escapes as UTF-8 (lossily: an invalid sequence simply never matches).
pub fn parse_token_form(body: &[u8]) -> Result<TokenForm, FormError> {
    validate(&mut urlencoded(body), false, false)
}

/// Validates the fields of a body, whichever its encoding, into the form
/// or FastAPI's list of errors. Unknown fields are ignored. A `dyn`
/// iterator: one copy of this code for both encodings, where a generic one
/// cost 5 KB of binary per encoding.
fn validate<'a>(
    fields: &mut dyn Iterator<Item = Field<'a>>,
    refresh_grant: bool,
    client_grant: bool,
) -> Result<TokenForm, FormError> {
    // Each field's first value and how often it came.
    let mut values: [Option<Value<'a>>; 7] = Default::default();
    let mut counts = [0u32; 7];
    for (name, value) in fields {
        if let Some(i) = FIELDS.iter().position(|f| *f == name) {
            counts[i] += 1;
            if values[i].is_none() {
                values[i] = Some(value);
            }
        }
    }

    // The refresh grant asks for a refresh token instead of credentials.
    let refresh = refresh_grant
        && counts[0] == 1
        && matches!(&values[0], Some(Value::Text(grant)) if grant == "refresh_token");
    // The client credentials grant names its client in the form or in
    // `Authorization`: nothing here is required of it.
    let client = client_grant
        && counts[0] == 1
        && matches!(&values[0], Some(Value::Text(grant)) if grant == CLIENT_CREDENTIALS);
    let required = |i: usize| match (refresh, client) {
        (true, _) => i == 6,
        (_, true) => false,
        _ => i == 1 || i == 2,
    };
    let mut text: [Option<Cow<'a, str>>; 7] = Default::default();
    let mut errors = Vec::new();
    for (i, field) in FIELDS.iter().enumerate() {
        // A repeat is the field's one error, whatever its values.
        if counts[i] > 1 {
            errors.push(FieldError::Duplicate(field));
            continue;
        }
        match values[i].take() {
            Some(Value::File { filename, size }) => errors.push(FieldError::File {
                field,
                filename: filename.into_owned(),
                size,
            }),
            // An empty value counts as missing, as in FastAPI's form handling.
            Some(Value::Text(value)) if !value.is_empty() => {
                if i == 0 && value != "password" && !refresh && !client {
                    errors.push(FieldError::GrantType(value.as_ref().to_owned()));
                }
                text[i] = Some(value);
            }
            _ if required(i) => errors.push(FieldError::Missing(field)),
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(FormError { errors });
    }
    let [grant_type, username, password, scope, client_id, client_secret, refresh_token] = text;
    let refresh_token = refresh_token.filter(|_| refresh);
    let (username, password) = match refresh || client {
        // The refresh grant names its user through the session; the
        // client credentials grant has none.
        true => (None, None),
        false => (username, password),
    };
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
        refresh_token: refresh_token.map(Cow::into_owned),
    })
}

/// Validates a `POST /revoke` (or `POST /introspect`) body: `token`
/// required, `token_type_hint`, `client_id` and `client_secret` optional,
/// none repeated; other fields ignored.
fn validate_revoke(fields: &mut dyn Iterator<Item = Field<'_>>) -> Result<RevokeForm, FormError> {
    const REVOKE_FIELDS: [&str; 4] = ["token", "token_type_hint", "client_id", "client_secret"];
    let mut values: [Option<Value<'_>>; 4] = Default::default();
    let mut counts = [0u32; 4];
    for (name, value) in fields {
        if let Some(i) = REVOKE_FIELDS.iter().position(|f| *f == name) {
            counts[i] += 1;
            values[i].get_or_insert(value);
        }
    }
    let mut text: [Option<String>; 4] = Default::default();
    let mut errors = Vec::new();
    for (i, field) in REVOKE_FIELDS.iter().enumerate() {
        if counts[i] > 1 {
            errors.push(FieldError::Duplicate(field));
            continue;
        }
        match values[i].take() {
            Some(Value::File { filename, size }) => errors.push(FieldError::File {
                field,
                filename: filename.into_owned(),
                size,
            }),
            Some(Value::Text(value)) if !value.is_empty() => text[i] = Some(value.into_owned()),
            _ if i == 0 => errors.push(FieldError::Missing(field)),
            _ => {}
        }
    }
    let [token, token_type_hint, client_id, client_secret] = text;
    match token {
        Some(token) if errors.is_empty() => Ok(RevokeForm {
            token,
            token_type_hint,
            client_id,
            client_secret,
        }),
        _ => Err(FormError { errors }),
    }
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

    const MULTIPART: &[u8] = b"multipart/form-data; boundary=X";

    /// A multipart body of `parts`: (name, extra Content-Disposition
    /// parameters, value).
    fn multipart(parts: &[(&str, &str, &str)]) -> Vec<u8> {
        let mut body = String::new();
        for (name, params, value) in parts {
            body.push_str(&format!(
                "--X\r\nContent-Disposition: form-data; name=\"{name}\"{params}\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str("--X--\r\n");
        body.into_bytes()
    }

    fn multipart_errors(parts: &[(&str, &str, &str)]) -> Vec<FieldError> {
        match parse_token_body(Some(MULTIPART), &multipart(parts), false) {
            Err(BodyError::Invalid(e)) => e.errors,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn both_encodings_give_the_same_form() {
        let urlencoded = parse_token_body(
            Some(b"application/x-www-form-urlencoded"),
            b"grant_type=password&username=johndoe&password=secret&scope=me+items&client_id=c&x=1",
            false,
        );
        let body = multipart(&[
            ("grant_type", "", "password"),
            ("username", "", "johndoe"),
            ("password", "", "secret"),
            ("scope", "", "me items"),
            ("client_id", "", "c"),
            ("x", "; filename=\"x\"", "1"),
        ]);
        let multipart =
            parse_token_body(Some(b"Multipart/Form-Data; boundary=\"X\""), &body, false);
        assert!(urlencoded.is_ok(), "{urlencoded:?}");
        assert_eq!(multipart, urlencoded);
    }

    #[test]
    fn multipart_values_are_not_url_decoded() {
        let body = multipart(&[("username", "", "john%64oe"), ("password", "", "a+b")]);
        let form = parse_token_body(Some(MULTIPART), &body, false).unwrap();
        assert_eq!(
            (form.username.as_str(), form.password.as_str()),
            ("john%64oe", "a+b")
        );
    }

    #[test]
    fn a_file_part_is_a_string_type_error_in_field_order() {
        let file = |field, filename: &str, size| FieldError::File {
            field,
            filename: filename.into(),
            size,
        };
        assert_eq!(
            multipart_errors(&[
                ("client_secret", "; filename=\"s\"", "xy"),
                ("password", "; filename=\"\"", ""),
                ("username", "; filename=\"a.txt\"", "johndoe"),
                ("other", "; filename=\"o\"", "ignored"),
                ("grant_type", "; filename=g", "password"),
            ]),
            [
                file("grant_type", "g", 8),
                file("username", "a.txt", 7),
                file("password", "", 0),
                file("client_secret", "s", 2),
            ]
        );
        // A file in grant_type is no grant type at all.
        let e = FormError {
            errors: multipart_errors(&[("grant_type", "; filename=g", "foo")]),
        };
        assert!(!e.is_unsupported_grant_type());
    }

    #[test]
    fn in_multipart_a_repeat_wins_and_empty_is_missing() {
        assert_eq!(
            multipart_errors(&[
                ("username", "", "a"),
                ("username", "; filename=\"f\"", "b"),
                ("password", "", ""),
                ("grant_type", "", "foo"),
            ]),
            [
                FieldError::GrantType("foo".into()),
                FieldError::Duplicate("username"),
                FieldError::Missing("password"),
            ]
        );
        assert_eq!(
            multipart_errors(&[]),
            [
                FieldError::Missing("username"),
                FieldError::Missing("password")
            ]
        );
    }

    #[test]
    fn the_content_type_picks_the_reader() {
        let login = b"username=johndoe&password=secret";
        let empty = Err(BodyError::Invalid(FormError {
            errors: vec![
                FieldError::Missing("username"),
                FieldError::Missing("password"),
            ],
        }));
        assert_eq!(parse_token_body(None, login, false), empty);
        assert_eq!(parse_token_body(Some(b"text/plain"), login, false), empty);
        assert_eq!(
            parse_token_body(Some(b"multipart/mixed; boundary=X"), login, false),
            empty
        );
        assert_eq!(
            parse_token_body(Some(b"multipart/form-data"), login, false),
            Err(BodyError::Multipart(MultipartError::MissingBoundary))
        );
        assert_eq!(
            parse_token_body(Some(MULTIPART), login, false),
            Err(BodyError::Multipart(MultipartError::Invalid))
        );
    }
}
