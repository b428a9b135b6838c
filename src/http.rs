//! The gateway contract: what every surface answers, in HTTP terms, written
//! once here. nginx, OpenResty, both Envoy filters, the Worker and
//! `keygate serve` only *apply* it:
//!
//! 1. The key is found by [`presented_key`]: the token of `Authorization:
//!    Bearer` (scheme in any case, then spaces or tabs) or the value of
//!    `X-API-Key`, trimmed. Two different keys are a malformed request. A key
//!    anywhere else (a query string, a cookie) is not a key.
//! 2. It is verified as bytes: bytes that are not UTF-8 are `malformed`.
//! 3. The [`Answer`] follows from the outcome alone:
//!
//!    | outcome | status | response headers |
//!    |---|---|---|
//!    | no key | 401 | `WWW-Authenticate: Bearer realm="R"` |
//!    | two different keys | 400 | `…, error="invalid_request"` |
//!    | `valid` | forwarded | — |
//!    | `valid_deprecated` | forwarded | `Deprecation: @T` (RFC 9745), `Sunset: <date>` (RFC 8594) |
//!    | `insufficient_scope` | 403 | `…, error="insufficient_scope"` |
//!    | `stale`, or nothing loaded | 503 | `Retry-After: N` |
//!    | any other outcome | 401 | `…, error="invalid_token", error_description="<outcome>"` |
//!
//!    The response headers go on the local reply, or, for a forwarded
//!    request, on the upstream's response.
//! 4. Before a request goes upstream, every header [`Policy::strips`] names
//!    is removed — each header a key can travel in (`X-API-Key`, a Bearer
//!    `Authorization`) and every client copy of the principal header, with
//!    `_` and `-` alike, because CGI, WSGI and PHP map both to one variable —
//!    and then the principal header is set to [`principal_value`]: the
//!    principal as is when it is visible ASCII, otherwise percent-encoded
//!    (RFC 3986), so a non-ASCII name arrives whole and can be decoded with
//!    any URL decoder.
//!
//! Everything here works without an allocator.

use core::fmt::{self, Write};

use crate::outcome::Outcome;
use crate::snapshot::MAX_PRINCIPAL_LEN;

/// The API key a request presents, found by [`presented_key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    /// No `Authorization: Bearer` and no `X-API-Key` header (or empty ones).
    None,
    /// One key (the same bytes wherever it was sent).
    Key(&'a [u8]),
    /// Two different keys: the request is refused as malformed, so a
    /// gateway never has to guess which one a client meant.
    Conflict,
}

/// Optional white space (RFC 9110 OWS): space and horizontal tab.
fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// The key in one element of a key-bearing field, if any.
fn key_in<'a>(name: &[u8], element: &'a [u8]) -> Option<Option<&'a [u8]>> {
    let key = if name.eq_ignore_ascii_case(b"authorization") {
        let v = trim_ows(element);
        match v.get(..6) {
            // The scheme must be followed by white space, not glued to
            // the token ("Bearerxyz" is another scheme).
            Some(scheme)
                if scheme.eq_ignore_ascii_case(b"bearer")
                    && matches!(v.get(6), Some(b' ' | b'\t')) =>
            {
                trim_ows(&v[6..])
            }
            _ => return Some(None),
        }
    } else if name.eq_ignore_ascii_case(b"x-api-key") {
        trim_ows(element)
    } else {
        return None;
    };
    Some((!key.is_empty()).then_some(key))
}

/// The key from request headers given as raw `(name, value)` bytes: the token
/// of `Authorization: Bearer <token>` (scheme case-insensitive, separated by
/// spaces or tabs) and the value of `X-API-Key`, each trimmed of white space.
/// Header names match case-insensitively; values are bytes, never assumed
/// UTF-8. An `Authorization` header with another scheme presents nothing.
///
/// A value with commas is read as the list HTTP makes when it combines
/// repeated fields (RFC 9110 section 5.3; fetch's `Headers` and Node do), so
/// `X-API-Key: a, b` is two keys wherever the host joined them. Keys of the
/// keygate format never hold a comma; an imported key that does cannot be
/// presented.
pub fn presented_key<'a>(headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Presented<'a> {
    let mut found: Option<&'a [u8]> = None;
    for (name, value) in headers {
        for element in value.split(|b| *b == b',') {
            let key = match key_in(name, element) {
                None => break,
                Some(None) => continue,
                Some(Some(k)) => k,
            };
            match found {
                Some(k) if k != key => return Presented::Conflict,
                _ => found = Some(key),
            }
        }
    }
    found.map_or(Presented::None, Presented::Key)
}

/// Formats unix seconds as an RFC 9110 IMF-fixdate (`Sun, 06 Nov 1994
/// 08:49:37 GMT`), the form of the `Sunset` header (RFC 8594). No allocation.
pub fn http_date(unix: u64) -> [u8; 29] {
    let (days, rem) = (unix / 86_400, unix % 86_400);
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + i64::from(month <= 2)).clamp(0, 9999) as u64;
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(WEEKDAYS[(days % 7) as usize]);
    let two = |o: &mut [u8], v: u64| {
        o[0] = b'0' + (v / 10 % 10) as u8;
        o[1] = b'0' + (v % 10) as u8;
    };
    two(&mut out[5..7], day as u64);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two(&mut out[12..14], year / 100);
    two(&mut out[14..16], year % 100);
    two(&mut out[17..19], rem / 3600);
    two(&mut out[20..22], rem % 3600 / 60);
    two(&mut out[23..25], rem % 60);
    out
}

/// The longest realm a [`Policy`] takes.
pub const MAX_REALM_LEN: usize = 128;
/// The longest principal header name a [`Policy`] takes.
pub const MAX_HEADER_NAME_LEN: usize = 64;
/// Room for the longest header value the contract writes: a percent-encoded
/// 128-byte principal (384 bytes) or a challenge with the longest realm.
const HEADER_TEXT_CAP: usize = 3 * MAX_PRINCIPAL_LEN;

/// A header value the contract wrote, inline (no allocation). Always
/// visible ASCII and spaces.
#[derive(Clone, Copy)]
pub struct HeaderText {
    len: u16,
    buf: [u8; HEADER_TEXT_CAP],
}

impl HeaderText {
    const EMPTY: Self = Self {
        len: 0,
        buf: [0; HEADER_TEXT_CAP],
    };

    /// The value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written.
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl Write for HeaderText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let at = usize::from(self.len);
        let dst = self.buf.get_mut(at..at + s.len()).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len += s.len() as u16;
        Ok(())
    }
}

impl fmt::Debug for HeaderText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for HeaderText {
    fn eq(&self, o: &Self) -> bool {
        self.as_bytes() == o.as_bytes()
    }
}
impl Eq for HeaderText {}

/// Whether the principal header carries `principal` as is (every byte
/// visible ASCII other than `%`), so [`principal_value`] would copy it
/// unchanged: a surface can skip building the value.
pub fn principal_is_header_safe(principal: &str) -> bool {
    principal.bytes().all(header_safe)
}

fn header_safe(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b'%'
}

/// The principal as the principal header carries it: as is when every byte
/// is visible ASCII other than `%`, otherwise with each other byte (and
/// `%`) percent-encoded as `%XX` (RFC 3986 section 2.1) — e.g. `zürich`
/// becomes `z%C3%BCrich`. Never truncated: a principal is at most 128 bytes.
pub fn principal_value(principal: &str) -> HeaderText {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = HeaderText::EMPTY;
    let mut n = 0;
    for &b in principal.as_bytes().iter().take(MAX_PRINCIPAL_LEN) {
        if header_safe(b) {
            out.buf[n] = b;
            n += 1;
        } else {
            out.buf[n..n + 3].copy_from_slice(&[
                b'%',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
            n += 3;
        }
    }
    out.len = n as u16;
    out
}

/// Why a [`Policy`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// The realm is empty, longer than [`MAX_REALM_LEN`], or holds a byte
    /// that is not visible ASCII or a space, or a `"` or `\`.
    Realm,
    /// The principal header is not an HTTP field name of 1 to
    /// [`MAX_HEADER_NAME_LEN`] token characters, or names a header a key
    /// travels in.
    PrincipalHeader,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Realm => "realm must be 1-128 bytes of visible ASCII or spaces, without '\"' or '\\'",
            Self::PrincipalHeader => {
                "principal header must be a field name of 1-64 token characters, not Authorization or X-API-Key"
            }
        })
    }
}

impl core::error::Error for PolicyError {}

/// A gateway's settings that shape its answers: the realm of its
/// challenges, the header the principal goes upstream in, and the
/// `Retry-After` seconds of a 503.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy<'a> {
    realm: &'a str,
    principal_header: &'a str,
    retry_after: u32,
}

/// Compares header names as CGI does: ASCII case-insensitively, with `_`
/// and `-` the same.
fn same_field(a: &[u8], b: &[u8]) -> bool {
    let norm = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| norm(*x) == norm(*y))
}

/// Some element of the value is `Bearer` followed by white space or
/// nothing, after optional white space.
fn is_bearer(value: &[u8]) -> bool {
    value.split(|b| *b == b',').any(|e| {
        let v = trim_ows(e);
        v.get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"bearer"))
            && matches!(v.get(6), None | Some(b' ' | b'\t'))
    })
}

impl<'a> Policy<'a> {
    /// Realm `keygate`, principal header `x-keygate-principal`, `Retry-After: 5`.
    pub const DEFAULT: Policy<'static> = Policy {
        realm: "keygate",
        principal_header: "x-keygate-principal",
        retry_after: 5,
    };

    /// A policy, or why it cannot be one (see [`PolicyError`]).
    pub fn new(
        realm: &'a str,
        principal_header: &'a str,
        retry_after: u32,
    ) -> Result<Self, PolicyError> {
        let realm_ok = !realm.is_empty()
            && realm.len() <= MAX_REALM_LEN
            && realm
                .bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\');
        if !realm_ok {
            return Err(PolicyError::Realm);
        }
        // RFC 9110 tchar, as one match (surfaces that make a Policy per
        // request pay for this check each time).
        let tchar = |b: u8| {
            matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'!' | b'#' | b'$' | b'%' | b'&'
                | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
        };
        let h = principal_header.as_bytes();
        if h.is_empty()
            || h.len() > MAX_HEADER_NAME_LEN
            || !h.iter().all(|b| tchar(*b))
            || same_field(h, b"authorization")
            || same_field(h, b"x-api-key")
        {
            return Err(PolicyError::PrincipalHeader);
        }
        Ok(Self {
            realm,
            principal_header,
            retry_after,
        })
    }

    /// The realm of the `WWW-Authenticate` challenges.
    pub fn realm(&self) -> &'a str {
        self.realm
    }

    /// The header the principal goes upstream in.
    pub fn principal_header(&self) -> &'a str {
        self.principal_header
    }

    /// Seconds in `Retry-After` on a 503.
    pub fn retry_after(&self) -> u32 {
        self.retry_after
    }

    /// Whether a request header must be removed before the request goes
    /// upstream: `X-API-Key`, an `Authorization` with the Bearer scheme, and
    /// any client copy of the principal header — with `_` and `-` alike, so
    /// `X_API_Key` and `X_Keygate_Principal` go too.
    pub fn strips(&self, name: &[u8], value: &[u8]) -> bool {
        same_field(name, b"x-api-key")
            || same_field(name, self.principal_header.as_bytes())
            || (same_field(name, b"authorization") && is_bearer(value))
    }
}

impl Default for Policy<'static> {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a gateway answers a request — the gateway contract every surface
/// applies (docs/integrations/contract.md has the full table):
///
/// | outcome | status | response headers |
/// |---|---|---|
/// | no key | 401 | `WWW-Authenticate: Bearer realm="R"` |
/// | two different keys | 400 | `…, error="invalid_request"` |
/// | `valid` | forwarded | — |
/// | `valid_deprecated` | forwarded | `Deprecation: @T`, `Sunset: <date>` |
/// | `insufficient_scope` | 403 | `…, error="insufficient_scope"` |
/// | `stale`, or nothing loaded | 503 | `Retry-After: N` |
/// | any other outcome | 401 | `…, error="invalid_token", error_description="<outcome>"` |
///
/// Built from an outcome by [`Answer::for_outcome`], or by
/// [`Answer::no_key`], [`Answer::conflict`] and [`Answer::not_loaded`];
/// before forwarding, remove what [`Policy::strips`] names and set the
/// principal header to [`principal_value`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// 200 (forward the request), 400, 401, 403 or 503.
    pub status: u16,
    /// The verify outcome (`None`: no key, two keys, or nothing loaded).
    pub outcome: Option<Outcome>,
    /// The RFC 6750 error code of the challenge, if any.
    pub error: Option<&'static str>,
    /// For a forwarded deprecated key: `Deprecation` (unix seconds; 0 when
    /// the snapshot has no date) and `Sunset` (when known).
    pub deprecation: Option<(u64, Option<u64>)>,
}

impl Answer {
    /// No key presented: 401 with a bare challenge.
    pub const fn no_key() -> Self {
        Self {
            status: 401,
            outcome: None,
            error: None,
            deprecation: None,
        }
    }

    /// Two different keys presented: 400 `invalid_request` (RFC 6750 3.1).
    pub const fn conflict() -> Self {
        Self {
            status: 400,
            outcome: None,
            error: Some("invalid_request"),
            deprecation: None,
        }
    }

    /// Nothing loaded yet to decide on: 503 with `Retry-After`.
    pub const fn not_loaded() -> Self {
        Self {
            status: 503,
            outcome: None,
            error: None,
            deprecation: None,
        }
    }

    /// The answer to a verified key, from its outcome and, for a deprecated
    /// key, its deprecation and sunset times.
    pub const fn for_outcome(
        outcome: Outcome,
        deprecated_at: Option<u64>,
        sunset_at: Option<u64>,
    ) -> Self {
        let (status, error) = match outcome {
            Outcome::Valid | Outcome::ValidDeprecated => (200, None),
            Outcome::InsufficientScope => (403, Some("insufficient_scope")),
            Outcome::Stale => (503, None),
            _ => (401, Some("invalid_token")),
        };
        let deprecation = match (outcome, deprecated_at) {
            (Outcome::ValidDeprecated, Some(t)) => Some((t, sunset_at)),
            (Outcome::ValidDeprecated, None) => Some((0, sunset_at)),
            _ => None,
        };
        Self {
            status,
            outcome: Some(outcome),
            error,
            deprecation,
        }
    }

    /// True when the request goes upstream (status 200).
    pub const fn forward(&self) -> bool {
        self.status == 200
    }

    /// The `error_description` of the challenge: the outcome's name for
    /// `invalid_token`, a fixed sentence otherwise.
    pub fn description(&self) -> Option<&'static str> {
        match self.error? {
            "invalid_request" => Some("two different API keys presented"),
            "insufficient_scope" => Some("the key lacks the required scope"),
            _ => Some(self.outcome.map_or("invalid_token", Outcome::as_str)),
        }
    }

    /// The body of a local reply (not used when forwarded).
    pub fn body(&self) -> &'static str {
        match (self.status, self.error) {
            (503, _) if self.outcome.is_some() => "keygate: key data stale\n",
            (503, _) => "keygate: no artifacts loaded yet\n",
            (_, Some("invalid_request")) => "invalid_request\n",
            (_, Some("insufficient_scope")) => "insufficient_scope\n",
            (_, Some(_)) => "invalid_token\n",
            _ => "API key required\n",
        }
    }

    /// The response headers of this answer under `policy`: on the local
    /// reply when refused, on the upstream's response when forwarded (only a
    /// deprecated key's `Deprecation` and `Sunset`).
    pub fn response_headers(&self, policy: &Policy<'_>) -> ResponseHeaders {
        let mut out = ResponseHeaders {
            items: [None, None],
            next: 0,
        };
        // The writes below cannot overflow: a realm is at most 128 bytes
        // and every other part is bounded text.
        if let Some((at, sunset)) = self.deprecation {
            let mut d = HeaderText::EMPTY;
            let _ = write!(d, "@{at}");
            out.items[0] = Some(("Deprecation", d));
            if let Some(t) = sunset {
                let mut s = HeaderText::EMPTY;
                let _ = s.write_str(core::str::from_utf8(&http_date(t)).unwrap_or(""));
                out.items[1] = Some(("Sunset", s));
            }
        } else if self.status == 503 {
            let mut r = HeaderText::EMPTY;
            let _ = write!(r, "{}", policy.retry_after);
            out.items[0] = Some(("Retry-After", r));
        } else if self.status != 200 {
            let mut c = HeaderText::EMPTY;
            let _ = write!(c, "Bearer realm=\"{}\"", policy.realm);
            if let (Some(e), Some(d)) = (self.error, self.description()) {
                let _ = write!(c, ", error=\"{e}\", error_description=\"{d}\"");
            }
            out.items[0] = Some(("WWW-Authenticate", c));
        }
        out
    }
}

/// The response headers of an [`Answer`], as `(name, value)`.
#[derive(Clone, Debug)]
pub struct ResponseHeaders {
    items: [Option<(&'static str, HeaderText)>; 2],
    next: usize,
}

impl Iterator for ResponseHeaders {
    type Item = (&'static str, HeaderText);
    fn next(&mut self) -> Option<Self::Item> {
        let item = self.items.get_mut(self.next)?.take();
        self.next += 1;
        item
    }
}

#[cfg(test)]
mod tests {
    use super::{presented_key, Presented};

    use super::{principal_is_header_safe, principal_value, Answer, Policy, PolicyError};
    use crate::outcome::Outcome;

    fn headers(a: &Answer) -> std::vec::Vec<(&'static str, std::string::String)> {
        a.response_headers(&Policy::DEFAULT)
            .map(|(n, v)| (n, std::string::String::from(v.as_str())))
            .collect()
    }

    #[test]
    fn answers_follow_the_table() {
        let h = |a: Answer| headers(&a);
        assert_eq!(Answer::no_key().status, 401);
        assert_eq!(
            h(Answer::no_key()),
            [("WWW-Authenticate", "Bearer realm=\"keygate\"".into())]
        );
        assert_eq!(Answer::conflict().status, 400);
        assert_eq!(
            h(Answer::conflict()),
            [(
                "WWW-Authenticate",
                "Bearer realm=\"keygate\", error=\"invalid_request\", error_description=\"two different API keys presented\"".into()
            )]
        );
        let ok = Answer::for_outcome(Outcome::Valid, None, None);
        assert!(ok.forward());
        assert!(h(ok).is_empty());
        let dep = Answer::for_outcome(
            Outcome::ValidDeprecated,
            Some(1_767_225_600),
            Some(784_111_777),
        );
        assert!(dep.forward());
        assert_eq!(
            h(dep),
            [
                ("Deprecation", "@1767225600".into()),
                ("Sunset", "Sun, 06 Nov 1994 08:49:37 GMT".into())
            ]
        );
        let scope = Answer::for_outcome(Outcome::InsufficientScope, None, None);
        assert_eq!(scope.status, 403);
        assert!(h(scope)[0].1.contains("error=\"insufficient_scope\""));
        for o in [
            Outcome::Revoked,
            Outcome::Expired,
            Outcome::NotYetValid,
            Outcome::Unknown,
            Outcome::Malformed,
        ] {
            let a = Answer::for_outcome(o, Some(1), Some(2));
            assert_eq!((a.status, a.deprecation), (401, None));
            let want = std::format!(
                "Bearer realm=\"keygate\", error=\"invalid_token\", error_description=\"{}\"",
                o.as_str()
            );
            assert_eq!(h(a), [("WWW-Authenticate", want)]);
        }
        for a in [
            Answer::for_outcome(Outcome::Stale, None, None),
            Answer::not_loaded(),
        ] {
            assert_eq!(a.status, 503);
            assert_eq!(h(a), [("Retry-After", "5".into())]);
        }
        assert_ne!(
            Answer::not_loaded().body(),
            Answer::for_outcome(Outcome::Stale, None, None).body()
        );
    }

    #[test]
    fn a_principal_header_name_is_made_of_tchars_exactly() {
        // RFC 9110 5.6.2, written out here apart from the code.
        let rfc = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        for c in (0u8..=127).map(char::from) {
            let mut name = std::string::String::from("x");
            name.push(c);
            assert_eq!(Policy::new("r", &name, 1).is_ok(), rfc(c), "{name:?}");
        }
    }

    #[test]
    fn policy_checks_and_strips() {
        assert_eq!(Policy::new("", "x-p", 1), Err(PolicyError::Realm));
        assert_eq!(Policy::new("a\"b", "x-p", 1), Err(PolicyError::Realm));
        assert_eq!(Policy::new("a\nb", "x-p", 1), Err(PolicyError::Realm));
        assert_eq!(
            Policy::new("r", "x p", 1),
            Err(PolicyError::PrincipalHeader)
        );
        assert_eq!(
            Policy::new("r", "X_Api_Key", 1),
            Err(PolicyError::PrincipalHeader)
        );
        assert_eq!(
            Policy::new("r", "Authorization", 1),
            Err(PolicyError::PrincipalHeader)
        );
        let p = Policy::new("my api", "X-User", 7).unwrap();
        assert_eq!(p.realm(), "my api");
        let s = |n: &str, v: &str| p.strips(n.as_bytes(), v.as_bytes());
        assert!(s("X-API-Key", "k"));
        assert!(s("x_api_key", "k"));
        assert!(s("Authorization", "Bearer k"));
        assert!(s("authorization", " bearer\tk"));
        assert!(s("Authorization", "Bearer"));
        assert!(!s("Authorization", "Basic eDp5"));
        assert!(s("Authorization", "Basic eDp5, Bearer k"));
        assert!(!s("Authorization", "Bearerx"));
        assert!(s("x-user", "admin"));
        assert!(s("X_USER", "admin"));
        assert!(!s("x-users", "admin"));
        assert!(!s("x-keygate-principal", "admin"));
        assert!(Policy::DEFAULT.strips(b"X_Keygate_Principal", b"admin"));
    }

    #[test]
    fn principals_travel_whole() {
        assert_eq!(
            principal_value("billing-service").as_str(),
            "billing-service"
        );
        assert_eq!(
            principal_value("z\u{fc}rich b%").as_str(),
            "z%C3%BCrich%20b%25"
        );
        let long = "\u{e9}".repeat(64);
        assert_eq!(long.len(), 128);
        assert_eq!(principal_value(&long).as_str(), "%C3%A9".repeat(64));
        let ascii = "p".repeat(128);
        assert_eq!(principal_value(&ascii).as_str(), ascii);
        // Header-safe exactly when the value is the name itself.
        for name in [
            "billing-service",
            "a b",
            "50%",
            "z\u{fc}rich",
            "\t",
            "~!",
            &ascii,
            &long,
            "",
        ] {
            assert_eq!(
                principal_is_header_safe(name),
                principal_value(name).as_str() == name,
                "{name:?}"
            );
        }
    }

    fn p<'a>(h: &'a [(&'a str, &'a str)]) -> Presented<'a> {
        presented_key(h.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    #[test]
    fn key_sources() {
        assert_eq!(p(&[("Authorization", "Bearer k1")]), Presented::Key(b"k1"));
        assert_eq!(
            p(&[("authorization", "bEaReR \t k1 ")]),
            Presented::Key(b"k1")
        );
        assert_eq!(p(&[("X-Api-Key", " k1\t")]), Presented::Key(b"k1"));
        assert_eq!(p(&[("Authorization", "Basic eDp5")]), Presented::None);
        assert_eq!(p(&[("Authorization", "Bearerk1")]), Presented::None);
        assert_eq!(p(&[("Authorization", "Bearer ")]), Presented::None);
        assert_eq!(p(&[]), Presented::None);
        assert_eq!(
            p(&[("Authorization", "Bearer k1"), ("X-API-Key", "k1")]),
            Presented::Key(b"k1")
        );
        assert_eq!(
            p(&[("Authorization", "Bearer k1"), ("X-API-Key", "k2")]),
            Presented::Conflict
        );
        assert_eq!(
            p(&[("X-API-Key", "k1"), ("X-API-Key", "k2")]),
            Presented::Conflict
        );
        assert_eq!(p(&[("X-API-Key", "k1, k2")]), Presented::Conflict);
        assert_eq!(p(&[("X-API-Key", "k1,k1 ,")]), Presented::Key(b"k1"));
        assert_eq!(
            p(&[("Authorization", "Bearer k1, Bearer k2")]),
            Presented::Conflict
        );
        assert_eq!(
            p(&[("Authorization", "Basic eDp5, Bearer k1")]),
            Presented::Key(b"k1")
        );
        let raw = [(&b"x-api-key"[..], &b"\xff\xfe"[..])];
        assert_eq!(presented_key(raw), Presented::Key(b"\xff\xfe"));
    }
    #[test]
    fn known_dates() {
        assert_eq!(&super::http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            &super::http_date(784_111_777),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            &super::http_date(1_709_210_096),
            b"Thu, 29 Feb 2024 12:34:56 GMT"
        );
        assert_eq!(
            &super::http_date(1_767_225_600),
            b"Thu, 01 Jan 2026 00:00:00 GMT"
        );
    }
}
