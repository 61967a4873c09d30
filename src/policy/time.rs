//! Durations (`"5m"`) and RFC 3339 dates / timestamps, parsed without a clock.

use std::time::Duration;

/// Parses a humantime duration such as `"30s"`, `"5m"` or `"1h 30m"`.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like \"30s\", \"5m\" or \"1h\": {e}"))
}

/// Parses a duration and checks `min <= d <= max`.
pub(super) fn parse_bounded(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < min || d > max {
        return Err(format!(
            "`{text}` is out of bounds: must be between {} and {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// Parses an RFC 3339 `full-date` (meaning 00:00:00Z that day) or `date-time` into unix
/// seconds (fractions of a second are dropped). Times before 1970 are refused.
pub(super) fn parse_rfc3339(text: &str) -> Result<u64, String> {
    let fail = || {
        format!(
            "`{text}` is not an RFC 3339 date (\"2027-01-31\") or timestamp \
             (\"2027-01-31T12:00:00Z\", \"2027-01-31T12:00:00+02:00\")"
        )
    };
    let b = text.as_bytes();
    let (year, month, day) = parse_date(b).ok_or_else(fail)?;
    let days = days_from_civil(year, month, day);
    let mut secs = days * 86_400;
    if b.len() > 10 {
        let rest = b.get(10..).ok_or_else(fail)?;
        secs += parse_time(rest).ok_or_else(fail)?;
    }
    u64::try_from(secs).map_err(|_| format!("`{text}` is before 1970-01-01T00:00:00Z"))
}

/// `YYYY-MM-DD` at the start of `b`, with the day checked against the month.
fn parse_date(b: &[u8]) -> Option<(i64, u32, u32)> {
    if b.len() < 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let year = digits(b.get(0..4)?)?;
    let month = digits(b.get(5..7)?)?;
    let day = digits(b.get(8..10)?)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some((i64::from(year), month, day))
}

/// `THH:MM:SS[.frac](Z|±HH:MM)` → seconds since midnight UTC of the date (may be negative
/// or exceed a day once the offset is applied).
fn parse_time(b: &[u8]) -> Option<i64> {
    if !matches!(b.first(), Some(b'T' | b't' | b' ')) || b.len() < 10 {
        return None;
    }
    if b.get(3) != Some(&b':') || b.get(6) != Some(&b':') {
        return None;
    }
    let hour = digits(b.get(1..3)?)?;
    let minute = digits(b.get(4..6)?)?;
    let second = digits(b.get(7..9)?)?;
    // RFC 3339 allows second 60 (a leap second).
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = b.get(9..)?;
    if rest.first() == Some(&b'.') {
        let frac = rest.get(1..)?;
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = frac.get(n..)?;
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(&[*h1, *h2])?;
            let om = digits(&[*m1, *m2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 3600 + om * 60);
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    Some(i64::from(hour * 3600 + minute * 60 + second) - offset)
}

/// A run of ASCII digits as a number (no sign, no empty input).
fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |acc, c| {
        acc.checked_mul(10)?.checked_add(u32::from(c - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates_and_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01"), Ok(0));
        assert_eq!(parse_rfc3339("2027-01-31"), Ok(1_801_353_600));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:01Z"), Ok(1_709_164_801));
        assert_eq!(
            parse_rfc3339("2027-01-31T02:00:00+02:00"),
            Ok(1_801_353_600)
        );
        assert_eq!(
            parse_rfc3339("2027-01-30t23:30:00.999-00:30"),
            Ok(1_801_353_600)
        );
        for bad in [
            "2027-1-31",
            "2027-02-29",
            "2027-13-01",
            "2027-01-31T24:00:00Z",
            "2027-01-31T12:00:00",
            "2027-01-31T12:00Z",
            "2027-01-31T12:00:00.Z",
            "1969-12-31",
            "+027-01-31",
            "tomorrow",
            "",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn durations_are_bounded() {
        let min = Duration::from_secs(30);
        let max = Duration::from_secs(3600);
        assert_eq!(parse_bounded("5m", min, max), Ok(Duration::from_secs(300)));
        assert_eq!(parse_bounded("30s", min, max), Ok(min));
        assert_eq!(parse_bounded("1h", min, max), Ok(max));
        assert!(parse_bounded("29s", min, max).is_err());
        assert!(parse_bounded("61m", min, max).is_err());
        assert!(parse_bounded("five minutes", min, max).is_err());
    }
}
