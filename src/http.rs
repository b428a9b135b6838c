//! What every gateway surface needs to answer in HTTP terms.

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
