//! What every gateway surface needs to answer in HTTP terms.

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

/// The key from request headers given as raw `(name, value)` bytes: the token
/// of `Authorization: Bearer <token>` (scheme case-insensitive, separated by
/// spaces or tabs) and the value of `X-API-Key`, each trimmed of white space.
/// Header names match case-insensitively; values are bytes, never assumed
/// UTF-8. An `Authorization` header with another scheme presents nothing.
pub fn presented_key<'a>(headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Presented<'a> {
    let mut found: Option<&'a [u8]> = None;
    for (name, value) in headers {
        let key = if name.eq_ignore_ascii_case(b"authorization") {
            let v = trim_ows(value);
            match v.get(..6) {
                Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer") => {
                    let rest = &v[6..];
                    // The scheme must be followed by white space, not glued
                    // to the token ("Bearerxyz" is another scheme).
                    if !matches!(rest.first(), Some(b' ' | b'\t')) {
                        continue;
                    }
                    trim_ows(rest)
                }
                _ => continue,
            }
        } else if name.eq_ignore_ascii_case(b"x-api-key") {
            trim_ows(value)
        } else {
            continue;
        };
        if key.is_empty() {
            continue;
        }
        match found {
            Some(k) if k != key => return Presented::Conflict,
            _ => found = Some(key),
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

#[cfg(test)]
mod tests {
    use super::{presented_key, Presented};

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
