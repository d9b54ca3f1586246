//! `--at`: the time certificate validity periods are checked at, when not now.

use anyhow::{Context, Result};
use confidant_attestation::time::UnixTime;

/// The current time.
pub fn now() -> Result<UnixTime> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    Ok(UnixTime::from_secs(secs))
}

/// Parses `--at`: Unix seconds (`1767225600`) or a UTC time `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_at(text: &str) -> Result<UnixTime, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(UnixTime::from_secs)
            .map_err(|_| "Unix seconds out of range".to_string());
    }
    parse_utc(text).ok_or_else(|| {
        format!("`{text}` is neither Unix seconds nor a UTC time YYYY-MM-DDTHH:MM:SSZ")
    })
}

fn parse_utc(text: &str) -> Option<UnixTime> {
    let b = text.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
        || !matches!(b[19], b'Z' | b'z')
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if year < 1970
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_since_epoch(year, month, day);
    Some(UnixTime::from_secs(
        days * 86_400 + u64::from(hour) * 3_600 + u64::from(minute) * 60 + u64::from(second),
    ))
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given date (year >= 1970), counting whole years then months.
fn days_since_epoch(year: u32, month: u32, day: u32) -> u64 {
    let years: u64 = (1970..year)
        .map(|y| if is_leap(y) { 366 } else { 365 })
        .sum();
    let months: u64 = (1..month).map(|m| u64::from(days_in_month(year, m))).sum();
    years + months + u64::from(day - 1)
}

#[cfg(test)]
mod tests {
    use super::parse_at;

    #[test]
    fn parses_unix_seconds_and_utc() {
        assert_eq!(parse_at("0").unwrap().as_secs(), 0);
        assert_eq!(parse_at("1767225600").unwrap().as_secs(), 1_767_225_600);
        // Values cross-checked with `date -u -d 2026-01-01T00:00:00Z +%s` and friends.
        assert_eq!(
            parse_at("2026-01-01T00:00:00Z").unwrap().as_secs(),
            1_767_225_600
        );
        assert_eq!(
            parse_at("2024-02-29T12:34:56Z").unwrap().as_secs(),
            1_709_210_096
        );
        assert_eq!(parse_at("1970-01-01T00:00:00Z").unwrap().as_secs(), 0);
        assert_eq!(
            parse_at("2000-03-01T00:00:00Z").unwrap().as_secs(),
            951_868_800
        );
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "-1",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00+01:00",
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-32T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:60:00Z",
            "1969-12-31T23:59:59Z",
            "2026-0a-01T00:00:00Z",
            "yesterday",
        ] {
            assert!(parse_at(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
