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

/// Parses a duration such as `15s`, `5m`, `1h30m`, `2d`, `1w` or `500ms` to ms. Returns `None`
/// for an empty, negative or malformed string.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let n_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if n_len == 0 {
            return None;
        }
        let n: i64 = rest.get(..n_len)?.parse().ok()?;
        rest = rest.get(n_len..)?;
        let u_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = rest.get(..u_len)?;
        rest = rest.get(u_len..)?;
        let size = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(size)?)?;
    }
    Some(total)
}

/// Parses a time as the time picker accepts it: `now`, `now-6h` (any [`parse_duration`]),
/// an RFC 3339 time, or a number of seconds (up to 10 digits) or milliseconds since the epoch.
pub fn parse_time(s: &str, now_ms: i64) -> Option<i64> {
    let s = s.trim();
    if s == "now" {
        return Some(now_ms);
    }
    if let Some(d) = s.strip_prefix("now-") {
        return Some(now_ms - parse_duration(d)?);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s.parse().ok()?;
        return Some(if s.len() <= 10 {
            n.checked_mul(1000)?
        } else {
            n
        });
    }
    parse_rfc3339(s)
}

/// The time range a page shows: from `start_ms` to `end_ms`, and how it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeRange {
    /// Start, ms since the epoch.
    pub start_ms: i64,
    /// End, ms since the epoch.
    pub end_ms: i64,
    /// The relative range name from [`RANGES`] when one was chosen (`1h`), otherwise `None`.
    pub relative: Option<&'static str>,
    /// The `from` and `to` parameters as given (for the picker's inputs).
    pub from: String,
    /// See `from`.
    pub to: String,
    /// Why the request was not understood, when it was not (a default is shown instead).
    pub notice: Option<String>,
}

impl TimeRange {
    /// Length in ms.
    pub fn len_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }

    /// Resolves the page parameters: `from`/`to` (see [`parse_time`]) win over `range` (a name
    /// from [`RANGES`]); `default` is a range name used when neither is given.
    pub fn resolve(
        range: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        default: &str,
        now_ms: i64,
    ) -> TimeRange {
        let relative = |name: &str, notice: Option<String>| {
            let (n, ms) = RANGES
                .iter()
                .find(|(n, _)| *n == name)
                .or_else(|| RANGES.iter().find(|(n, _)| *n == DEFAULT_RANGE))
                .copied()
                .unwrap_or(("1h", 3_600_000));
            TimeRange {
                start_ms: now_ms - ms,
                end_ms: now_ms,
                relative: Some(n),
                from: format!("now-{n}"),
                to: "now".into(),
                notice,
            }
        };
        let from = from.map(str::trim).filter(|s| !s.is_empty());
        if let Some(f) = from {
            let t = to.map(str::trim).filter(|s| !s.is_empty()).unwrap_or("now");
            return match (parse_time(f, now_ms), parse_time(t, now_ms)) {
                (Some(a), Some(b)) if a < b => {
                    // `now-1h` .. `now` is the same as the relative range `1h`.
                    let rel = (t == "now")
                        .then(|| f.strip_prefix("now-"))
                        .flatten()
                        .and_then(|d| RANGES.iter().find(|(n, _)| *n == d).map(|(n, _)| *n));
                    TimeRange {
                        start_ms: a,
                        end_ms: b,
                        relative: rel,
                        from: f.to_string(),
                        to: t.to_string(),
                        notice: None,
                    }
                }
                (Some(_), Some(_)) => relative(
                    default,
                    Some(format!(
                        "The range {f:?} to {t:?} is empty; showing {default}."
                    )),
                ),
                _ => relative(
                    default,
                    Some(format!(
                        "Cannot read the time {f:?} to {t:?} (use now, now-6h, an RFC 3339 \
                         time or epoch seconds); showing {default}."
                    )),
                ),
            };
        }
        match range.map(str::trim).filter(|s| !s.is_empty()) {
            None => relative(default, None),
            Some(r) if parse_range(r).is_some() => relative(r, None),
            Some(r) => relative(
                default,
                Some(format!(
                    "Unknown range {r:?}; showing {default}. Choose one of: {}.",
                    RANGES.map(|(n, _)| n).join(", ")
                )),
            ),
        }
    }
}

/// Auto-refresh intervals offered by the pages, with their length in seconds.
pub const REFRESHES: [(&str, u32); 4] = [("off", 0), ("5s", 5), ("15s", 15), ("1m", 60)];

/// The refresh interval in seconds for a `refresh` parameter (`None` or `off`: 0).
pub fn parse_refresh(s: Option<&str>) -> u32 {
    s.and_then(|s| REFRESHES.iter().find(|(n, _)| *n == s))
        .map_or(0, |(_, secs)| *secs)
}

/// Formats ms since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn format_datetime(ms: i64) -> String {
    let (y, m, d) = pharos_model::api::civil_from_days(ms.div_euclid(86_400_000));
    let sod = ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
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

    #[test]
    fn durations_and_times() {
        #[track_caller]
        fn check(s: &str, want: Option<i64>) {
            assert_eq!(parse_duration(s), want, "{s}");
        }
        check("15s", Some(15_000));
        check("1h30m", Some(5_400_000));
        check("2d", Some(172_800_000));
        check("500ms", Some(500));
        check("1w", Some(604_800_000));
        check("", None);
        check("5", None);
        check("m", None);
        check("-5m", None);
        check("5x", None);
        check("99999999999999999999d", None);

        let now = 1_700_000_000_000;
        #[track_caller]
        fn at(s: &str, now: i64, want: Option<i64>) {
            assert_eq!(parse_time(s, now), want, "{s}");
        }
        at("now", now, Some(now));
        at("now-1h", now, Some(now - 3_600_000));
        at("now-", now, None);
        at("1700000000", now, Some(now));
        at("1700000000123", now, Some(now + 123));
        at("2023-11-14T22:13:20Z", now, Some(now));
        at("yesterday", now, None);
        assert_eq!(format_datetime(now), "2023-11-14 22:13:20");
    }

    #[test]
    fn time_range_resolution() {
        let now = 1_700_000_000_000;
        #[track_caller]
        fn check(
            q: (Option<&str>, Option<&str>, Option<&str>),
            now: i64,
            want: (i64, i64, Option<&str>, bool),
        ) {
            let r = TimeRange::resolve(q.0, q.1, q.2, "1h", now);
            assert_eq!(
                (r.start_ms, r.end_ms, r.relative, r.notice.is_some()),
                want,
                "{q:?}"
            );
        }
        check(
            (None, None, None),
            now,
            (now - 3_600_000, now, Some("1h"), false),
        );
        check(
            (Some("6h"), None, None),
            now,
            (now - 21_600_000, now, Some("6h"), false),
        );
        check(
            (Some("1y"), None, None),
            now,
            (now - 3_600_000, now, Some("1h"), true),
        );
        check(
            (Some("6h"), Some("now-15m"), Some("now")),
            now,
            (now - 900_000, now, Some("15m"), false),
        );
        check(
            (None, Some("now-20m"), None),
            now,
            (now - 1_200_000, now, None, false),
        );
        check(
            (None, Some("1699990000"), Some("1699995000")),
            now,
            (1_699_990_000_000, 1_699_995_000_000, None, false),
        );
        check(
            (None, Some("now"), Some("now-1h")),
            now,
            (now - 3_600_000, now, Some("1h"), true),
        );
        check(
            (None, Some("<script>"), None),
            now,
            (now - 3_600_000, now, Some("1h"), true),
        );
        assert_eq!(parse_refresh(Some("15s")), 15);
        assert_eq!(parse_refresh(Some("2s")), 0);
        assert_eq!(parse_refresh(None), 0);
    }
}
