//! `multipart/form-data` bodies of `/token` (what `curl -F` and browsers'
//! `FormData` send), read by a small bounded parser of our own into the same
//! field list as the urlencoded reader, so that `form` validates both
//! encodings in one place.
//!
//! It answers as FastAPI does (Starlette on python-multipart, measured
//! against the tutorial app) except where RFC 2046 is more lenient: a
//! preamble before the first delimiter, an epilogue after the last, and
//! transport padding after any delimiter are accepted.
//!
//! One pass over the body, which `read_form` has already bounded: the
//! delimiter search compares only at a CR, and there reads at most the
//! delimiter's 74 bytes, so the work is linear in the body whatever it
//! holds. Memory is the field list (slices of the body) and a copy of what
//! must be rewritten (invalid UTF-8, a quoted name with escapes): never
//! more than the body. No input makes it panic (a property test and a fuzz
//! target try).

use std::borrow::Cow;
use std::fmt;

/// One field of a body, whichever its encoding: its name and its value.
pub(crate) type Field<'a> = (Cow<'a, str>, Value<'a>);

/// A field's value as the body carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// Text: decoded from urlencoding, or a multipart part's bytes.
    Text(Cow<'a, str>),
    /// A multipart part with a filename: FastAPI's `UploadFile`, never a
    /// `str`, however short.
    File {
        /// The part's `filename`.
        filename: Cow<'a, str>,
        /// The part's content length in bytes.
        size: usize,
    },
}

/// RFC 2046 §5.1.1: a boundary is 1 to 70 characters.
const MAX_BOUNDARY_LEN: usize = 70;

/// Why a multipart body could not be read: Starlette's three messages,
/// answered 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MultipartError {
    /// The `Content-Type` has no `boundary` parameter.
    MissingBoundary,
    /// The boundary or the body does not follow the multipart syntax: a
    /// boundary empty or over 70 characters, or given twice; a body with no
    /// delimiter line at all (LF-only line endings, say); a delimiter line
    /// whose padding runs into something other than CRLF; a part header
    /// line that is not `name: value` ended by CRLF.
    Invalid,
    /// A part without a `Content-Disposition` header, or one without `name`.
    MissingName,
}

impl MultipartError {
    /// Starlette's `detail` for this error, word for word.
    pub fn message(&self) -> &'static str {
        match self {
            MultipartError::MissingBoundary => "Missing boundary in multipart.",
            MultipartError::Invalid => "Invalid multipart data.",
            MultipartError::MissingName => {
                "The Content-Disposition header field \"name\" must be provided."
            }
        }
    }
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for MultipartError {}

/// The fields of a `multipart/form-data` body, in body order: each part's
/// `name` and either its content (text, decoded as UTF-8 lossily, never
/// `+`- or percent-decoded) or, when the part has a `filename`, a file.
/// `content_type` is the request's header value, whose media type the
/// caller has matched; only its `boundary` parameter is read (a `charset`
/// is not: values are UTF-8).
///
/// A last part the body cuts off before its closing delimiter is dropped,
/// as FastAPI drops it; a malformed body is an error even after good parts.
pub(crate) fn fields<'a>(
    content_type: &[u8],
    body: &'a [u8],
) -> Result<Vec<Field<'a>>, MultipartError> {
    let boundary = boundary(content_type)?;
    // `CRLF--boundary`: RFC 2046's delimiter. Its CRLF belongs to the
    // delimiter, not to the content of the part before it.
    let mut delimiter = Vec::with_capacity(4 + boundary.len());
    delimiter.extend_from_slice(b"\r\n--");
    delimiter.extend_from_slice(&boundary);

    // The first delimiter opens the body or follows a CRLF: what comes
    // before it is RFC 2046's preamble, ignored (python-multipart refuses
    // anything but blank lines there; the RFC allows it).
    let first = match delimiter_end(body, 0, &delimiter[2..])? {
        Some(next) => Some(next),
        None => find_delimiter(body, 0, &delimiter)?.map(|(_, next)| next),
    };
    let Some(mut next) = first else {
        // No delimiter line at all: not multipart, unless there is nothing
        // to read (python-multipart skips blank lines, then finds the end).
        return match body.iter().all(|&b| b == b'\r' || b == b'\n') {
            true => Ok(Vec::new()),
            false => Err(MultipartError::Invalid),
        };
    };
    let mut fields = Vec::new();
    // What follows the close delimiter is RFC 2046's epilogue, ignored.
    while let Next::Part(start) = next {
        let Some(head) = headers(body, start)? else {
            return Ok(fields); // cut off in its headers: dropped
        };
        let disposition = Disposition::parse(head.disposition);
        let name = disposition.name.ok_or(MultipartError::MissingName)?;
        let Some((end, after)) = find_delimiter(body, head.content, &delimiter)? else {
            return Ok(fields); // not closed by a delimiter: dropped
        };
        let content = &body[head.content..end];
        let value = match disposition.filename {
            Some(filename) => Value::File {
                filename: lossy(filename),
                size: content.len(),
            },
            None => Value::Text(String::from_utf8_lossy(content)),
        };
        fields.push((lossy(name), value));
        next = after;
    }
    Ok(fields)
}

/// What a delimiter line leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// A part, whose headers start at this offset.
    Part(usize),
    /// The end: this was the close delimiter.
    End,
}

/// The boundary of a `multipart/form-data` `Content-Type` value, unquoted.
fn boundary(content_type: &[u8]) -> Result<Cow<'_, [u8]>, MultipartError> {
    let mut found = None;
    for (name, value) in params(content_type) {
        if name.eq_ignore_ascii_case(b"boundary") {
            // Two boundaries: which one the sender meant is anyone's guess.
            if found.replace(value).is_some() {
                return Err(MultipartError::Invalid);
            }
        }
    }
    let boundary = found.ok_or(MultipartError::MissingBoundary)?;
    // The delimiter search relies on a boundary without CR (a header
    // value never has one anyway).
    if boundary.is_empty()
        || boundary.len() > MAX_BOUNDARY_LEN
        || boundary.iter().any(|&b| b == b'\r' || b == b'\n')
    {
        return Err(MultipartError::Invalid);
    }
    Ok(boundary)
}

/// Whether `body[at..]` starts with `delimiter` (`--boundary`, or
/// `CRLF--boundary`) ending a delimiter line: followed by `--` (the close
/// delimiter; whatever comes next is epilogue), or by spaces and tabs
/// (RFC 2046's transport padding) and CRLF. Padding followed by anything
/// else is a malformed delimiter, as python-multipart says; any other
/// character after the boundary, or the body's end, makes the line
/// content.
fn delimiter_end(body: &[u8], at: usize, delimiter: &[u8]) -> Result<Option<Next>, MultipartError> {
    let Some(rest) = body.get(at..).and_then(|rest| rest.strip_prefix(delimiter)) else {
        return Ok(None);
    };
    if rest.starts_with(b"--") {
        return Ok(Some(Next::End));
    }
    let padding = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    match &rest[padding..] {
        [b'\r', b'\n', ..] => Ok(Some(Next::Part(body.len() - rest.len() + padding + 2))),
        [] | [b'\r'] => Ok(None),
        _ if padding > 0 => Err(MultipartError::Invalid),
        _ => Ok(None),
    }
}

/// The first delimiter line at or after `from`: where its CRLF starts, and
/// what it leads to. A comparison starts only at a CR and reads at most the
/// delimiter (74 bytes), and the padding after a match holds no CR, so the
/// search stays linear in the body whatever it holds.
fn find_delimiter(
    body: &[u8],
    mut from: usize,
    delimiter: &[u8],
) -> Result<Option<(usize, Next)>, MultipartError> {
    while let Some(offset) = body[from..].iter().position(|&b| b == b'\r') {
        let at = from + offset;
        if let Some(next) = delimiter_end(body, at, delimiter)? {
            return Ok(Some((at, next)));
        }
        from = at + 1;
    }
    Ok(None)
}

/// A part's header block, read.
struct Head<'a> {
    /// Its `Content-Disposition` value, the last one (as Starlette keeps
    /// it); empty when there is none.
    disposition: &'a [u8],
    /// Where its content starts.
    content: usize,
}

/// Reads the header lines of a part starting at `start`, up to the empty
/// line. `None` when the body ends first.
fn headers(body: &[u8], start: usize) -> Result<Option<Head<'_>>, MultipartError> {
    let mut disposition = &b""[..];
    let mut line_start = start;
    loop {
        let rest = &body[line_start..];
        let Some(end) = rest.iter().position(|&b| b == b'\r' || b == b'\n') else {
            return Ok(None);
        };
        // Lines end with CRLF; a bare LF or CR is not a line ending, and
        // not something a header value may hold either.
        match rest.get(end..end + 2) {
            Some(b"\r\n") => {}
            None => return Ok(None), // a CR that may be half of the last CRLF
            Some(_) => return Err(MultipartError::Invalid),
        }
        let line = &rest[..end];
        line_start += end + 2;
        if line.is_empty() {
            return Ok(Some(Head {
                disposition,
                content: line_start,
            }));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(MultipartError::Invalid)?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        // RFC 9110 field names are tokens; python-multipart refuses the
        // rest (a folded line, starting with white space, included).
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(MultipartError::Invalid);
        }
        if name.eq_ignore_ascii_case(b"content-disposition") {
            disposition = trim(value);
        }
    }
}

/// What a `Content-Disposition` value says of its part. The disposition
/// type itself is not checked (Starlette does not).
#[derive(Default)]
struct Disposition<'a> {
    /// `name`: the field.
    name: Option<Cow<'a, [u8]>>,
    /// `filename`: present, even empty, it makes the part a file.
    filename: Option<Cow<'a, [u8]>>,
}

impl<'a> Disposition<'a> {
    /// A parameter given twice counts by its last value, as in Starlette.
    /// RFC 2231's `name*` and `filename*` are other parameters: FastAPI
    /// reads neither, and RFC 7578 §4.2 forbids `filename*`.
    fn parse(value: &'a [u8]) -> Disposition<'a> {
        let mut disposition = Disposition::default();
        for (param, value) in params(value) {
            if param.eq_ignore_ascii_case(b"name") {
                disposition.name = Some(value);
            } else if param.eq_ignore_ascii_case(b"filename") {
                disposition.filename = Some(without_windows_path(value));
            }
        }
        disposition
    }
}

/// The parameters after the first `;` of a header value (`type; a=1;
/// b="x;y"`), as Python's `email` package reads them for python-multipart:
/// split at semicolons outside quotes, names and values trimmed, a value
/// that is one quoted string unquoted, a name without `=` given an empty
/// value. Names are compared case-insensitively by the callers.
fn params(value: &[u8]) -> impl Iterator<Item = (&[u8], Cow<'_, [u8]>)> {
    let mut segments = split_outside_quotes(value);
    segments.next(); // the type itself (`form-data`)
    segments.filter_map(|segment| {
        let (name, value) = match segment.iter().position(|&b| b == b'=') {
            Some(eq) => (&segment[..eq], &segment[eq + 1..]),
            None => (segment, &b""[..]),
        };
        let name = trim(name);
        (!name.is_empty()).then(|| (name, unquote(trim(value))))
    })
}

/// Splits at each `;` outside a quoted string (where `\` escapes the next
/// byte). An unclosed quote runs to the end.
fn split_outside_quotes(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let text = rest?;
        let (mut quoted, mut escaped) = (false, false);
        let end = text.iter().position(|&b| {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b';' if !quoted => return true,
                _ => {}
            }
            false
        });
        match end {
            Some(end) => {
                rest = Some(&text[end + 1..]);
                Some(&text[..end])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

/// A value that is one quoted string, without its quotes, `\\` and `\"`
/// unescaped; any other value as it is (an unclosed quote included, as
/// `email.utils.unquote` leaves it). Other backslashes stay: old browsers
/// sent Windows paths unescaped.
fn unquote(value: &[u8]) -> Cow<'_, [u8]> {
    let inner = match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => return Cow::Borrowed(value),
    };
    if !inner.contains(&b'\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match (b, bytes.peek()) {
            (b'\\', Some(&next @ (b'\\' | b'"'))) => {
                out.push(next);
                bytes.next();
            }
            _ => out.push(b),
        }
    }
    Cow::Owned(out)
}

/// python-multipart's fix for old Internet Explorer, which sent the whole
/// path (`C:\dir\a.txt`, `\\host\share\a.txt`): the name after the last
/// backslash.
fn without_windows_path(filename: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    let is_path = filename.get(1..3) == Some(&b":\\"[..]) || filename.starts_with(b"\\\\");
    match filename.iter().rposition(|&b| b == b'\\') {
        Some(last) if is_path => match filename {
            Cow::Borrowed(f) => Cow::Borrowed(&f[last + 1..]),
            Cow::Owned(f) => Cow::Owned(f[last + 1..].to_vec()),
        },
        _ => filename,
    }
}

/// Bytes as text, invalid UTF-8 replaced (and so never equal to a field
/// name or a password that was sent as valid UTF-8).
fn lossy(bytes: Cow<'_, [u8]>) -> Cow<'_, str> {
    match bytes {
        Cow::Borrowed(b) => String::from_utf8_lossy(b),
        Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
    }
}

/// Without leading and trailing spaces and tabs.
fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &[u8] = b"multipart/form-data; boundary=B";

    /// One part named `name` holding `value`, opened by its delimiter line.
    fn part(name: &str, value: &str) -> String {
        format!("--B\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
    }

    /// The login `curl -F username=johndoe -F password=secret` sends (with
    /// boundary `B`).
    fn login() -> String {
        format!(
            "{}{}--B--\r\n",
            part("username", "johndoe"),
            part("password", "secret")
        )
    }

    fn text<'a>(name: &'a str, value: &'a str) -> Field<'a> {
        (name.into(), Value::Text(value.into()))
    }

    fn file<'a>(name: &'a str, filename: &'a str, size: usize) -> Field<'a> {
        let filename = filename.into();
        (name.into(), Value::File { filename, size })
    }

    fn read(body: &str) -> Result<Vec<Field<'_>>, MultipartError> {
        fields(CT, body.as_bytes())
    }

    #[test]
    fn reads_what_curl_sends() {
        let body = login();
        assert_eq!(
            read(&body),
            Ok(vec![
                text("username", "johndoe"),
                text("password", "secret")
            ])
        );
    }

    #[test]
    fn the_boundary_comes_from_the_content_type() {
        let body = login();
        let body = body.as_bytes();
        let expected = vec![text("username", "johndoe"), text("password", "secret")];
        for ct in [
            &b"multipart/form-data; boundary=\"B\""[..],
            b"Multipart/Form-Data; BOUNDARY=B",
            b"multipart/form-data;boundary = B ; charset=latin-1",
            b"multipart/form-data; charset=\"a;b\"; boundary=B",
        ] {
            let shown = String::from_utf8_lossy(ct);
            assert_eq!(fields(ct, body), Ok(expected.clone()), "{shown}");
        }
        for ct in [
            &b"multipart/form-data"[..],
            b"multipart/form-data; charset=utf-8",
        ] {
            assert_eq!(fields(ct, body), Err(MultipartError::MissingBoundary));
        }
        for ct in [
            &b"multipart/form-data; boundary="[..],
            b"multipart/form-data; boundary=\"\"",
            b"multipart/form-data; boundary=B; boundary=C",
        ] {
            let shown = String::from_utf8_lossy(ct);
            assert_eq!(fields(ct, body), Err(MultipartError::Invalid), "{shown}");
        }
    }

    #[test]
    fn boundaries_are_1_to_70_characters() {
        let with = |boundary: &str| {
            let ct = format!("multipart/form-data; boundary=\"{boundary}\"");
            let body = login().replace("--B", &format!("--{boundary}"));
            fields(ct.as_bytes(), body.as_bytes()).map(|f| f.len())
        };
        assert_eq!(with("x"), Ok(2));
        assert_eq!(with(&"b".repeat(70)), Ok(2));
        assert_eq!(with(&"b".repeat(71)), Err(MultipartError::Invalid));
        // What real clients use: dashes, and RFC 2046's other characters.
        assert_eq!(with("------------------------d74496d66958873e"), Ok(2));
        assert_eq!(with("=_Part_0 (1).x/y:z?'+,"), Ok(2));
    }

    #[test]
    fn a_file_part_is_a_file_whatever_its_filename() {
        let body = "--B\r\nContent-Disposition: form-data; name=\"username\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\njohndoe\r\n\
                    --B\r\nContent-Disposition: form-data; name=password; filename=\"\"\r\n\r\n\r\n\
                    --B\r\nContent-Disposition: form-data; name=scope; filename\r\n\r\nab\r\n\
                    --B--\r\n";
        assert_eq!(
            read(body),
            Ok(vec![
                file("username", "a.txt", 7),
                file("password", "", 0),
                file("scope", "", 2),
            ])
        );
    }

    #[test]
    fn filenames_are_unquoted_and_lose_windows_paths() {
        let named = |filename: &str| {
            let body = format!(
                "--B\r\nContent-Disposition: form-data; name=f; filename={filename}\r\n\r\nx\r\n--B--"
            );
            match fields(CT, body.as_bytes()).unwrap().pop() {
                Some((_, Value::File { filename, .. })) => filename.into_owned(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(named(r#""a \"b\" \\ c.txt""#), r#"a "b" \ c.txt"#);
        assert_eq!(named(r#""C:\dir\a.txt""#), "a.txt");
        assert_eq!(named(r#""\\\\host\share\b.txt""#), "b.txt");
        assert_eq!(named(r#""dir\c.txt""#), r"dir\c.txt");
        assert_eq!(named("\"caf\u{e9}.txt\""), "café.txt");
        assert_eq!(named("\"\u{ff}\"").chars().count(), 1);
        // The last one counts, as in Starlette.
        assert_eq!(named("\"a\"; filename=b"), "b");
    }

    #[test]
    fn names_are_quoted_or_bare_case_insensitive_and_the_last_counts() {
        for header in [
            "Content-Disposition: form-data; name=\"username\"",
            "Content-Disposition: form-data; name=username",
            "content-disposition:form-data;NAME = username ",
            "CONTENT-DISPOSITION: attachment; name=\"x;y\"; name=\"username\"",
            "Content-Disposition: form-data; name=\"password\"\r\nX-Other: 1\r\nContent-Disposition: form-data; name=username",
            "Content-Disposition:\tform-data;\tname=\"username\"\t",
        ] {
            let body = format!("--B\r\n{header}\r\n\r\njohndoe\r\n--B--\r\n");
            assert_eq!(read(&body), Ok(vec![text("username", "johndoe")]), "{header}");
        }
        // A name as Python's email package reads it: escapes undone, an
        // unclosed quote kept, junk after the quote kept.
        for (header, name) in [
            (r#"name="user\"name""#, "user\"name"),
            (r#"name="username"#, "\"username"),
            (r#"name="username"x"#, "\"username\"x"),
            ("name=\"\"", ""),
            ("name", ""),
        ] {
            let body = format!("--B\r\nContent-Disposition: form-data; {header}\r\n\r\nv\r\n--B--");
            assert_eq!(read(&body), Ok(vec![text(name, "v")]), "{header}");
        }
    }

    #[test]
    fn a_part_without_a_name_is_refused() {
        for headers in [
            "",
            "X-Other: 1\r\n",
            "Content-Disposition: form-data\r\n",
            "Content-Disposition: form-data; filename=\"a.txt\"\r\n",
            "Content-Disposition: name=\"username\"\r\n", // that is the type
            "Content-Disposition: form-data; name*=UTF-8''username\r\n",
        ] {
            let body = format!("{}--B\r\n{headers}\r\njohndoe\r\n--B--\r\n", part("a", "1"));
            assert_eq!(read(&body), Err(MultipartError::MissingName), "{headers:?}");
        }
        // Once its headers are read, even if it is never closed.
        let body = format!(
            "{}--B\r\nContent-Disposition: form-data\r\n\r\nx",
            part("a", "1")
        );
        assert_eq!(read(&body), Err(MultipartError::MissingName));
    }

    #[test]
    fn malformed_bodies_are_invalid() {
        let lf_only = login().replace("\r\n", "\n");
        let no_colon = login().replacen("Content-Disposition:", "Content-Disposition", 1);
        let bare_cr = login().replacen("\"username\"\r\n", "\"username\"\rX: y\r\n", 1);
        let bare_lf = login().replacen("\"username\"\r\n", "\"username\"\nX: y\r\n", 1);
        let folded = login().replacen("\r\n\r\njohndoe", "\r\n X: y\r\n\r\njohndoe", 1);
        let empty_name = login().replacen("\r\n\r\njohndoe", "\r\n: y\r\n\r\njohndoe", 1);
        let bad_name = login().replacen("Content-Disposition", "Content Disposition", 1);
        let bad_padding = login().replacen("\r\n--B\r\n", "\r\n--B  x\r\n", 1);
        for body in [
            "garbage",
            "   ",
            "--B",
            "--Bx\r\n",
            &lf_only,
            &no_colon,
            &bare_cr,
            &bare_lf,
            &folded,
            &empty_name,
            &bad_name,
            &bad_padding,
        ] {
            assert_eq!(read(body), Err(MultipartError::Invalid), "{body:?}");
        }
    }

    #[test]
    fn nothing_to_read_is_no_fields() {
        for body in [
            "",
            "\r\n",
            "\r\n\r\n",
            "--B--",
            "--B--\r\n",
            "preamble\r\n--B--\r\nepilogue",
        ] {
            assert_eq!(read(body), Ok(vec![]), "{body:?}");
        }
    }

    #[test]
    fn values_are_the_raw_bytes() {
        let body = format!(
            "{}{}{}--B--\r\n",
            part("username", "john%64oe+x"),
            part(
                "password",
                "line 1\r\nline 2\r\n--Bx\r\n--B-\r\n-- B\r\n\r\n"
            ),
            part("scope", "caf\u{e9} --B")
        );
        assert_eq!(
            read(&body),
            Ok(vec![
                text("username", "john%64oe+x"),
                text(
                    "password",
                    "line 1\r\nline 2\r\n--Bx\r\n--B-\r\n-- B\r\n\r\n"
                ),
                text("scope", "caf\u{e9} --B"),
            ])
        );
        let body = b"--B\r\nContent-Disposition: form-data; name=a\r\n\r\n\xffx\xc3\r\n--B--";
        assert_eq!(fields(CT, body), Ok(vec![text("a", "\u{fffd}x\u{fffd}")]));
        let body = format!("{}--B--", part("a", ""));
        assert_eq!(read(&body), Ok(vec![text("a", "")]));
    }

    #[test]
    fn a_part_the_body_cuts_off_is_dropped() {
        let username = part("username", "johndoe");
        let cut_offs = [
            "--B\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nsecret",
            "--B\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nsecret\r\n",
            "--B\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nsecret\r\n--B",
            "--B\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nsecret\r\n--B-",
            "--B\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nsecret\r\n--B \t",
            "--B\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nsecret\r\n--B\r",
            "--B\r\nContent-Disposition: form-data; name=\"password\"\r\n\r",
            "--B\r\nContent-Disposition: form-data; name=\"password\"\r\n",
            "--B\r\nContent-Disposition: form-data; name=\"password\"",
            "--B\r\nContent-Disposition: form-data\r\n", // its headers never ended
            "--B\r\n",
            // `--B--` only closes after a CRLF.
            "--B\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nsecret--B--\r\n",
        ];
        for cut_off in cut_offs {
            let body = format!("{username}{cut_off}");
            assert_eq!(
                read(&body),
                Ok(vec![text("username", "johndoe")]),
                "{cut_off:?}"
            );
        }
    }

    #[test]
    fn preamble_epilogue_and_transport_padding_are_allowed() {
        // RFC 2046 §5.1.1 allows all three; python-multipart refuses a
        // preamble other than blank lines, and padding on the first line.
        let expected = vec![text("username", "johndoe"), text("password", "secret")];
        for body in [
            format!("\r\n\r\n{}", login()),
            format!(
                "This is a preamble.\r\n--Bx is not a delimiter\r\n{}",
                login()
            ),
            format!("{}This is the epilogue.\r\n--B\r\n", login()),
            login().replace("--B\r\n", "--B \t \r\n"),
            login().replace("--B--\r\n", "--B--"),
            login().replace("--B--\r\n", "--B--x\r\n--B\r\n"),
        ] {
            assert_eq!(read(&body), Ok(expected.clone()), "{body:?}");
        }
    }

    #[test]
    fn a_close_delimiter_ends_the_body() {
        let body = format!("--B--\r\n{}", login());
        assert_eq!(read(&body), Ok(vec![]));
    }

    #[test]
    fn a_megabyte_of_near_delimiters_reads_in_one_pass() {
        // A quadratic search would take hours over this; ours reads each
        // byte a bounded number of times.
        let boundary = "b".repeat(70);
        let ct = format!("multipart/form-data; boundary={boundary}");
        let near = format!("\r\n--{}", &boundary[..69]);
        let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=a\r\n\r\n");
        let content_start = body.len();
        while body.len() < (1 << 20) {
            body.push_str(&near);
        }
        let size = body.len() - content_start;
        body.push_str(&format!("\r\n--{boundary}--"));
        let parsed = fields(ct.as_bytes(), body.as_bytes()).unwrap();
        assert!(matches!(&parsed[..], [(name, Value::Text(v))] if name == "a" && v.len() == size));
    }
}
