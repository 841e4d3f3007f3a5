//! Time ranges, query steps and human-readable times for the pages.

use pharos_model::api::days_from_civil;

/// The time ranges offered by the range selector, with their length in ms.
pub const RANGES: [(&str, i64); 7] = [
    ("5m", 300_000),
    ("15m", 900_000),
    ("1h", 3_600_000),
    ("6h", 21_600_000),
    ("24h", 86_400_000),
    ("2d", 172_800_000),
    ("7d", 604_800_000),
];

/// The range shown when the page does not ask for one.
pub const DEFAULT_RANGE: &str = "1h";

/// The length in ms of a range name from [`RANGES`] (`"1h"` → 3 600 000).
pub fn parse_range(name: &str) -> Option<i64> {
    RANGES.iter().find(|(n, _)| *n == name).map(|(_, ms)| *ms)
}

/// Round query steps, in ms.
const STEPS: [i64; 18] = [
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
    1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
];

/// Pixels per point of a chart: a chart `width_px` wide gets one point every 3 px.
const PX_PER_POINT: i64 = 3;

/// The query step for a chart of `range_ms` drawn `width_px` wide: the range divided by the
/// number of points the chart can show (one per 3 px, so 250 for a 750 px chart), rounded up to
/// a round step of at least 1 s.
pub fn step_for(range_ms: i64, width_px: u32) -> i64 {
    let points = (i64::from(width_px) / PX_PER_POINT).max(1);
    let raw = range_ms.max(0) / points;
    STEPS
        .iter()
        .copied()
        .find(|s| *s >= raw)
        .unwrap_or(STEPS[STEPS.len() - 1])
}

fn digits(s: &str, from: usize, len: usize) -> Option<i64> {
    let part = s.get(from..from + len)?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Parses an RFC 3339 time (`2024-01-02T03:04:05.678Z`, `...+02:00`) to ms since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(s, 0, 4)?, digits(s, 5, 2)?, digits(s, 8, 2)?);
    let (h, mi, sec) = (digits(s, 11, 2)?, digits(s, 14, 2)?, digits(s, 17, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i)?;
        if frac.is_empty() {
            return None;
        }
        let ms3: String = frac.chars().chain("000".chars()).take(3).collect();
        frac_ms = ms3.parse::<i64>().ok()?;
    }
    let offset_s = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            if tz.as_bytes()[3] != b':' {
                return None;
            }
            let secs = digits(tz, 1, 2)? * 3600 + digits(tz, 4, 2)? * 60;
            if tz.starts_with('-') { -secs } else { secs }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    Some(secs * 1000 + frac_ms)
}

/// How long ago `t_ms` was, as of `now_ms`: `3.2s ago`, `42s ago`, `5m 3s ago`, `2h 5m ago`,
/// `3d 4h ago`. Times in the future (clock skew) read `just now`.
pub fn format_ago(now_ms: i64, t_ms: i64) -> String {
    let d = now_ms.saturating_sub(t_ms);
    if d < 0 {
        return "just now".into();
    }
    let s = d / 1000;
    if d < 10_000 {
        format!("{:.1}s ago", d as f64 / 1000.0)
    } else if s < 60 {
        format!("{s}s ago")
    } else if s < 3600 {
        format!("{}m {}s ago", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h {}m ago", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d {}h ago", s / 86_400, (s % 86_400) / 3600)
    }
}

/// The last scrape of a target as shown in the targets table: `never` before the first scrape
/// (Prometheus reports `0001-01-01T00:00:00Z`), otherwise [`format_ago`].
pub fn last_scrape_ago(now_ms: i64, last_scrape: &str) -> String {
    match parse_rfc3339(last_scrape) {
        Some(t) if t > 0 => format_ago(now_ms, t),
        Some(_) => "never".into(),
        None if last_scrape.is_empty() => "never".into(),
        None => last_scrape.to_string(),
    }
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_steps() {
        assert_eq!(parse_range("1h"), Some(3_600_000));
        assert_eq!(parse_range("7d"), Some(604_800_000));
        assert_eq!(parse_range("1y"), None);
        assert_eq!(parse_range(DEFAULT_RANGE), Some(3_600_000));

        #[track_caller]
        fn check(range: &str, width: u32, want_ms: i64) {
            let r = parse_range(range).unwrap_or(0);
            assert_eq!(step_for(r, width), want_ms, "{range} at {width}px");
        }
        check("5m", 750, 2_000);
        check("15m", 750, 5_000);
        check("1h", 750, 15_000);
        check("6h", 750, 120_000);
        check("24h", 750, 600_000);
        check("7d", 750, 3_600_000);
        check("1h", 1500, 10_000);
        check("5m", 3000, 1_000);
        check("5m", 0, 300_000);
    }

    #[test]
    fn rfc3339() {
        #[track_caller]
        fn check(s: &str, want: Option<i64>) {
            assert_eq!(parse_rfc3339(s), want, "{s}");
        }
        check("1970-01-01T00:00:00Z", Some(0));
        check("2000-02-29T00:00:00.123Z", Some(951_782_400_123));
        check("2000-02-29T00:00:00.1234567Z", Some(951_782_400_123));
        check("2000-02-29T02:00:00.5+02:00", Some(951_782_400_500));
        check("2000-02-28T23:00:00-01:00", Some(951_782_400_000));
        check("0001-01-01T00:00:00Z", Some(-62_135_596_800_000));
        check("2000-13-01T00:00:00Z", None);
        check("2000-01-01T00:00:00", None);
        check("2000-01-01T00:00:00.Z", None);
        check("garbage", None);
        check("2000-01-01T00:00:00Zjunk", None);
        check("２000-01-01T00:00:00Z", None);
    }

    #[test]
    fn ago() {
        #[track_caller]
        fn check(delta_ms: i64, want: &str) {
            assert_eq!(format_ago(1_000_000_000, 1_000_000_000 - delta_ms), want);
        }
        check(3_200, "3.2s ago");
        check(42_000, "42s ago");
        check(303_000, "5m 3s ago");
        check(7_500_000, "2h 5m ago");
        check(3 * 86_400_000 + 4 * 3_600_000, "3d 4h ago");
        check(-5_000, "just now");
        assert_eq!(last_scrape_ago(5_000, "0001-01-01T00:00:00Z"), "never");
        assert_eq!(last_scrape_ago(5_000, ""), "never");
        assert_eq!(last_scrape_ago(5_000, "1970-01-01T00:00:01Z"), "4.0s ago");
    }
}
