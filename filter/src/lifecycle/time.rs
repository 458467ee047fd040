//! Durations (`30d`, `12h`) and RFC 3339 timestamps in the policy, as Unix seconds. Written out
//! by hand: the only calendar arithmetic needed is days-from-civil.

/// Parses `<n>s|m|h|d|w`, e.g. `90d`. Zero and more than ten years are refused.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit; use s, m, h, d or w (e.g. 30d)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}`; use s, m, h, d or w"
            ))
        }
    };
    let secs = n
        .checked_mul(unit_secs)
        .ok_or_else(|| format!("`{text}` is too long"))?;
    if secs == 0 {
        return Err("must be longer than zero".to_owned());
    }
    if secs > 10 * 366 * 86_400 {
        return Err(format!("`{text}` is longer than ten years"));
    }
    Ok(secs)
}

/// Parses an RFC 3339 timestamp (`2026-12-01T00:00:00Z`, fractions and offsets allowed) into
/// Unix seconds.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not an RFC 3339 timestamp such as 2026-12-01T00:00:00Z");
    let b = text.trim().as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let s = std::str::from_utf8(&b[range]).map_err(|_| bad())?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<i64>().map_err(|_| bad())
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad());
        }
        rest = &rest[1 + digits..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            let d = |c: u8| i64::from(c - b'0');
            let (hours, minutes) = (d(*h1) * 10 + d(*h2), d(*m1) * 10 + d(*m2));
            if hours > 23 || minutes > 59 {
                return Err(bad());
            }
            let secs = hours * 3600 + minutes * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400));
        assert!(parse_duration("0s")
            .unwrap_err()
            .contains("longer than zero"));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("3 days")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("-1d").is_err());
        assert!(parse_duration("99999y").is_err());
        assert!(parse_duration("4000d").unwrap_err().contains("ten years"));
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_timestamp("2026-12-01T00:00:00Z"), Ok(1_796_083_200));
        assert_eq!(
            parse_timestamp("2026-12-01T01:00:00+01:00"),
            Ok(1_796_083_200)
        );
        assert_eq!(
            parse_timestamp("2026-12-01T00:00:00.250Z"),
            Ok(1_796_083_200)
        );
        assert_eq!(parse_timestamp("2024-02-29T12:00:00Z"), Ok(1_709_208_000));
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-12-01",
            "2026-12-01T00:00:00",
            "2026-12-01T00:00:00+0100",
            "2026-12-01T00:00:00+99:99",
            "yesterday",
            "2026-12-01T00:00:00.Z",
            "२०२६-12-01T00:00:00Z",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }
}
