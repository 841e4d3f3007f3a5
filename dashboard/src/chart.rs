//! Time-series line charts drawn as SVG by plotters.
//!
//! [`render_chart`] is a pure function from series to an SVG string: time on the x axis with
//! `HH:MM` labels (UTC), values on the y axis in human units ([`Unit`]), one coloured line per
//! series, a legend with the series' labels below the plot, and gaps where data is missing: a line
//! is split where two consecutive points are more than two steps apart or where a value is NaN or
//! infinite, so nothing is ever drawn across missing data.
//!
//! ```
//! use pharos_dashboard::chart::{render_chart, ChartOptions, Unit};
//! use pharos_model::api::{MatrixSeries, Point};
//! use pharos_model::Labels;
//!
//! let series = vec![MatrixSeries {
//!     metric: Labels::from_pairs(&[("mode", "user")]),
//!     values: (0..10).map(|i| Point { t: i * 15_000, v: i as f64 }).collect(),
//! }];
//! let opts = ChartOptions { start_ms: 0, end_ms: 150_000, step_ms: 15_000, ..ChartOptions::default() };
//! let svg = render_chart(&series, &opts);
//! assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
//! ```

use std::ops::Range;

use pharos_model::api::{MatrixSeries, Point};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// How the values of a chart are shown on its y axis and in tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unit {
    /// Plain numbers with SI suffixes (`1.5k`, `2M`, `3G`, `20m`).
    #[default]
    Plain,
    /// Bytes with binary prefixes (`512 B`, `1.5 KiB`, `2 GiB`).
    Bytes,
    /// Values already in percent (0–100), shown as `42%`.
    Percent,
    /// Ratios (0.0–1.0), shown as percent: `0.42` is `42%`.
    Ratio,
    /// Durations in seconds (`250ms`, `1.5s`, `2m`, `3h`).
    Seconds,
    /// A rate of bytes per second (`1.5 KiB/s`).
    BytesPerSecond,
    /// A rate of operations per second (`1.5k ops/s`).
    OpsPerSecond,
}

/// Every unit, in the order the Explore page offers them.
pub const UNITS: [Unit; 7] = [
    Unit::Plain,
    Unit::Bytes,
    Unit::BytesPerSecond,
    Unit::Percent,
    Unit::Ratio,
    Unit::Seconds,
    Unit::OpsPerSecond,
];

impl Unit {
    /// Formats `v` in this unit, e.g. `Unit::Bytes.format(1536.0) == "1.5 KiB"`.
    pub fn format(self, v: f64) -> String {
        if !v.is_finite() {
            return pharos_model::api::format_value(v);
        }
        match self {
            Unit::Plain => format_si(v),
            Unit::Bytes => format_bytes(v),
            Unit::Percent => format!("{}%", trim_number(v, 2)),
            Unit::Ratio => format!("{}%", trim_number(v * 100.0, 2)),
            Unit::Seconds => format_seconds(v),
            Unit::BytesPerSecond => format!("{}/s", format_bytes(v)),
            Unit::OpsPerSecond => format!("{} ops/s", format_si(v)),
        }
    }

    /// The name used in URLs and dashboard files (`plain`, `bytes`, `percent`, `ratio`,
    /// `seconds`).
    pub fn name(self) -> &'static str {
        match self {
            Unit::Plain => "plain",
            Unit::Bytes => "bytes",
            Unit::Percent => "percent",
            Unit::Ratio => "ratio",
            Unit::Seconds => "seconds",
            Unit::BytesPerSecond => "bytes/s",
            Unit::OpsPerSecond => "ops/s",
        }
    }

    /// Parses a name returned by [`Unit::name`].
    pub fn parse(s: &str) -> Option<Unit> {
        UNITS.into_iter().find(|u| u.name() == s)
    }
}

/// Formats with at most `decimals` decimals and no trailing zeros (`1.50` → `1.5`, `2.00` → `2`).
fn trim_number(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

fn format_si(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    const BIG: [(f64, &str); 5] = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    for (scale, suffix) in BIG {
        if a >= scale {
            return format!("{}{suffix}", trim_number(v / scale, 2));
        }
    }
    if a >= 1.0 {
        return trim_number(v, 2);
    }
    if a >= 1e-3 {
        // Three significant digits: 0.25, 0.0125.
        let decimals = (2.0 - a.log10().floor()) as usize;
        return trim_number(v, decimals);
    }
    format!("{v:.2e}")
}

fn format_bytes(v: f64) -> String {
    let a = v.abs();
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut scale = 1.0;
    let mut i = 0;
    while i + 1 < UNITS.len() && a >= scale * 1024.0 {
        scale *= 1024.0;
        i += 1;
    }
    format!("{} {}", trim_number(v / scale, 2), UNITS[i])
}

fn format_seconds(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0s".into()
    } else if a < 1e-3 {
        format!("{}µs", trim_number(v * 1e6, 2))
    } else if a < 1.0 {
        format!("{}ms", trim_number(v * 1e3, 2))
    } else if a < 60.0 {
        format!("{}s", trim_number(v, 2))
    } else if a < 3600.0 {
        format!("{}m", trim_number(v / 60.0, 2))
    } else if a < 86_400.0 {
        format!("{}h", trim_number(v / 3600.0, 2))
    } else {
        format!("{}d", trim_number(v / 86_400.0, 2))
    }
}

/// Formats milliseconds since the epoch as `HH:MM` in UTC.
pub fn format_hhmm(ms: i64) -> String {
    let sod = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}", sod / 3600, (sod % 3600) / 60)
}

/// How a chart is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartOptions {
    /// Width of the SVG in pixels (it scales with CSS; this sets the proportions and text size).
    pub width: u32,
    /// Height of the plot in pixels; the legend adds to it.
    pub height: u32,
    /// Start of the x axis, ms since the epoch.
    pub start_ms: i64,
    /// End of the x axis, ms since the epoch.
    pub end_ms: i64,
    /// The query step in ms: points further apart than two steps are not joined. 0 means "infer
    /// from the data" (twice the smallest spacing between points).
    pub step_ms: i64,
    /// Unit of the y axis.
    pub unit: Unit,
    /// Draw the legend inside the SVG (stand-alone images); pages show an HTML legend instead.
    pub legend: bool,
    /// Leave the background transparent so the page's theme shows through.
    pub transparent: bool,
    /// Stack the series: each line is drawn at the sum of itself and the series before it.
    pub stacked: bool,
    /// Legend text of each series (e.g. from a `{{label}}` template); when empty or of another
    /// length than the series, the series' labels are shown.
    pub names: Vec<String>,
}

impl Default for ChartOptions {
    fn default() -> Self {
        Self {
            width: 800,
            height: 260,
            start_ms: 0,
            end_ms: 0,
            step_ms: 0,
            unit: Unit::Plain,
            legend: true,
            transparent: false,
            stacked: false,
            names: Vec::new(),
        }
    }
}

/// Where the plot of a rendered chart lies, for the page script's hover read-out and
/// drag-to-zoom: the pixel columns of the plot inside the SVG and the time they map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlotArea {
    /// Width of the whole SVG in pixels.
    pub width: u32,
    /// Left edge of the plot, pixels from the left of the SVG.
    pub x0: i32,
    /// Right edge of the plot.
    pub x1: i32,
    /// Top edge of the plot, pixels from the top of the SVG.
    pub y0: i32,
    /// Bottom edge of the plot.
    pub y1: i32,
    /// Time at `x0`, ms since the epoch.
    pub start_ms: i64,
    /// Time at `x1`.
    pub end_ms: i64,
}

/// Summary of a series' finite values over the chart's range, as shown in legends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean of the values.
    pub avg: f64,
    /// The last value.
    pub last: f64,
}

/// [`Stats`] of the finite values of `points`, or `None` when there is none.
pub fn stats(points: &[Point]) -> Option<Stats> {
    let mut it = points.iter().filter(|p| p.v.is_finite());
    let first = it.next()?;
    let mut st = Stats {
        min: first.v,
        max: first.v,
        avg: 0.0,
        last: first.v,
    };
    let (mut sum, mut n) = (first.v, 1.0);
    for p in it {
        st.min = st.min.min(p.v);
        st.max = st.max.max(p.v);
        st.last = p.v;
        sum += p.v;
        n += 1.0;
    }
    st.avg = sum / n;
    Some(st)
}

/// Stacks series: each output point is the input value plus the running total of the series
/// before it at the same timestamp. Missing and non-finite values add nothing and stay gaps.
pub fn stack(series: &[MatrixSeries]) -> Vec<MatrixSeries> {
    let mut totals: std::collections::HashMap<i64, f64> = std::collections::HashMap::new();
    series
        .iter()
        .map(|s| MatrixSeries {
            metric: s.metric.clone(),
            values: s
                .values
                .iter()
                .map(|p| {
                    if !p.v.is_finite() {
                        return *p;
                    }
                    let acc = totals.entry(p.t).or_insert(0.0);
                    *acc += p.v;
                    Point { t: p.t, v: *acc }
                })
                .collect(),
        })
        .collect()
}

/// Line colours; a series keeps its colour across page loads (chosen from a hash of its labels).
pub const PALETTE: [RGBColor; 16] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x39, 0x3b, 0x79),
    RGBColor(0x63, 0x79, 0x39),
    RGBColor(0x8c, 0x6d, 0x31),
    RGBColor(0x84, 0x3c, 0x39),
    RGBColor(0x7b, 0x41, 0x73),
    RGBColor(0x31, 0x82, 0xbd),
];

/// At most this many series are drawn; the legend says how many were left out.
pub const MAX_SERIES: usize = 500;
/// At most this many legend entries are listed.
pub const MAX_LEGEND: usize = 24;
/// Legend labels longer than this many characters are cut with `…`.
const MAX_LABEL_CHARS: usize = 110;

const FONT: &str = "sans-serif";
/// plotters scales font sizes by 1/1.24; this gives 12px text in the SVG.
const FONT_SIZE: f64 = 14.9;
/// Estimated width of one character of the 12px legend font (plotters cannot measure text
/// without a font engine; SVG text is laid out by the browser).
const CHAR_W: i32 = 7;
const LEGEND_ROW: i32 = 18;
const MARGIN: i32 = 10;
const TEXT_GREY: RGBColor = RGBColor(0x55, 0x5b, 0x66);
const GRID_GREY: RGBColor = RGBColor(0xe4, 0xe7, 0xeb);

/// FNV-1a, so colours do not depend on the standard library's hasher seeds.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Colour index for each label string: the hash of the labels picks a preferred slot; a slot
/// already used in this chart moves to the next free one (until all slots are used).
pub fn assign_colors(labels: &[String]) -> Vec<usize> {
    let n = PALETTE.len();
    let mut used = [false; PALETTE.len()];
    let mut free = n;
    labels
        .iter()
        .map(|l| {
            let mut i = (fnv1a(l) % n as u64) as usize;
            if free > 0 {
                while used[i] {
                    i = (i + 1) % n;
                }
                used[i] = true;
                free -= 1;
            }
            i
        })
        .collect()
}

/// Splits points into runs to be drawn as separate lines: a run ends at a NaN or infinite value,
/// and where the next point is more than `max_gap_ms` after the previous one. Non-finite points
/// are dropped.
pub fn split_segments(points: &[Point], max_gap_ms: i64) -> Vec<Vec<(i64, f64)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(i64, f64)> = Vec::new();
    for p in points {
        if !p.v.is_finite() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if let Some(&(last_t, _)) = cur.last()
            && p.t - last_t > max_gap_ms
        {
            out.push(std::mem::take(&mut cur));
        }
        cur.push((p.t, p.v));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The largest spacing at which points are still joined: two steps, or twice the smallest
/// spacing seen when the step is not known.
fn max_gap(series: &[&MatrixSeries], step_ms: i64) -> i64 {
    if step_ms > 0 {
        return step_ms.saturating_mul(2);
    }
    let min_delta = series
        .iter()
        .flat_map(|s| s.values.windows(2).map(|w| w[1].t - w[0].t))
        .filter(|d| *d > 0)
        .min();
    min_delta.map_or(i64::MAX, |d| d.saturating_mul(2))
}

/// Nice tick spacings for a time axis, in ms.
const TIME_STEPS: [i64; 21] = [
    1_000,
    2_000,
    5_000,
    10_000,
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    172_800_000,
    604_800_000,
    2_592_000_000,
];

/// The x axis: ms since the epoch, ticks at round UTC times.
#[derive(Debug, Clone)]
struct TimeAxis {
    start: i64,
    end: i64,
}

impl TimeAxis {
    fn tick_step(&self, max_points: usize) -> i64 {
        let span = (self.end - self.start).max(1);
        let max_points = max_points.max(1) as i64;
        TIME_STEPS
            .iter()
            .copied()
            .find(|s| span / s < max_points)
            .unwrap_or(TIME_STEPS[TIME_STEPS.len() - 1])
    }
}

impl Ranged for TimeAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = i64;

    fn map(&self, v: &i64, limit: (i32, i32)) -> i32 {
        let span = (self.end - self.start) as f64;
        if span <= 0.0 {
            return (limit.0 + limit.1) / 2;
        }
        let frac = (*v - self.start) as f64 / span;
        limit.0 + (frac * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<i64> {
        let step = self.tick_step(hint.max_num_points());
        let first = self.start.div_euclid(step) * step;
        let first = if first < self.start {
            first + step
        } else {
            first
        };
        (0..)
            .map(|i| first + i * step)
            .take_while(|t| *t <= self.end)
            .collect()
    }

    fn range(&self) -> Range<i64> {
        self.start..self.end
    }
}

/// The y axis: a linear range with ticks at multiples of a step that is round in the unit.
#[derive(Debug, Clone)]
struct ValueAxis {
    lo: f64,
    hi: f64,
    step: f64,
}

/// A round step near `raw`: 1, 2 or 5 times a power of ten. For bytes the step is round in the
/// binary unit that labels show for values of size `magnitude` (0.05 GiB, 200 MiB), so that tick
/// labels read `2.95 GiB`, `3 GiB`, `3.05 GiB`.
fn nice_step(raw: f64, magnitude: f64, unit: Unit) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    if matches!(unit, Unit::Bytes | Unit::BytesPerSecond) {
        let mut scale = 1.0;
        while magnitude >= scale * 1024.0 && scale < 1e18 {
            scale *= 1024.0;
        }
        return (nice_decimal(raw / scale) * scale).max(1.0);
    }
    nice_decimal(raw)
}

fn nice_decimal(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0] {
        if m * mag >= raw {
            return m * mag;
        }
    }
    10.0 * mag
}

impl ValueAxis {
    /// An axis covering `min..=max` with about `ticks` round ticks.
    fn new(min: f64, max: f64, unit: Unit, ticks: usize) -> ValueAxis {
        let (mut lo, mut hi) = (min, max);
        if lo == hi {
            if lo > 0.0 {
                lo = 0.0;
            } else if lo < 0.0 {
                hi = 0.0;
            } else {
                hi = 1.0;
            }
        }
        let magnitude = lo.abs().max(hi.abs());
        let step = nice_step((hi - lo) / ticks.max(1) as f64, magnitude, unit);
        let lo = (lo / step).floor() * step;
        let mut hi = (hi / step).ceil() * step;
        if hi <= lo {
            hi = lo + step;
        }
        ValueAxis { lo, hi, step }
    }
}

impl Ranged for ValueAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let frac = (*v - self.lo) / (self.hi - self.lo);
        let px = f64::from(limit.0) + frac * f64::from(limit.1 - limit.0);
        px.clamp(-1e6, 1e6).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        let n = ((self.hi - self.lo) / self.step).round() as usize;
        let stride = n / hint.max_num_points().max(1) + 1;
        (0..=n)
            .step_by(stride)
            .map(|i| self.lo + i as f64 * self.step)
            .collect()
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// One legend entry: label text and colour index.
struct LegendEntry {
    text: String,
    color: usize,
}

/// Positions (x, y) of legend entries, wrapped into rows inside `width`, and the number of rows.
fn legend_layout(entries: &[LegendEntry], width: i32) -> (Vec<(i32, i32)>, i32) {
    let mut pos = Vec::with_capacity(entries.len());
    let (mut x, mut row) = (MARGIN, 0);
    for e in entries {
        let w = 14 + 6 + e.text.chars().count() as i32 * CHAR_W + 16;
        if x > MARGIN && x + w > width - MARGIN {
            x = MARGIN;
            row += 1;
        }
        pos.push((x, row * LEGEND_ROW));
        x += w;
    }
    (pos, if entries.is_empty() { 0 } else { row + 1 })
}

fn truncate_label(s: String) -> String {
    if s.chars().count() <= MAX_LABEL_CHARS {
        return s;
    }
    let mut t: String = s.chars().take(MAX_LABEL_CHARS - 1).collect();
    t.push('…');
    t
}

/// An SVG of the given size with one centred line of text, for "no data" and errors.
pub fn render_message(message: &str, width: u32, height: u32) -> String {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (width, height)).into_drawing_area();
        let style = TextStyle::from((FONT, 16.0).into_font())
            .color(&TEXT_GREY)
            .pos(Pos::new(HPos::Center, VPos::Center));
        let drawn = root
            .fill(&WHITE)
            .and_then(|_| root.draw_text(message, &style, (width as i32 / 2, height as i32 / 2)));
        if let Err(e) = drawn.and_then(|_| root.present()) {
            tracing::warn!(error = %e, "drawing a chart message failed");
        }
    }
    buf
}

/// Renders series as an SVG line chart; see the module documentation. Empty input (or input
/// without one finite point) gives an SVG that says "No data".
pub fn render_chart(series: &[MatrixSeries], opts: &ChartOptions) -> String {
    render_plot(series, opts).0
}

/// Like [`render_chart`], and also returns where the plot lies in the SVG (`None` for the "No
/// data" image or a drawing error).
pub fn render_plot(series: &[MatrixSeries], opts: &ChartOptions) -> (String, Option<PlotArea>) {
    if opts.stacked {
        let stacked = stack(series);
        let opts = ChartOptions {
            stacked: false,
            ..opts.clone()
        };
        return render_plot(&stacked, &opts);
    }
    let width = opts.width.max(200);
    let height = opts.height.max(120);
    let drawn: Vec<&MatrixSeries> = series.iter().take(MAX_SERIES).collect();

    // Bounds of the data.
    let (mut min_v, mut max_v) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
    for p in drawn.iter().flat_map(|s| s.values.iter()) {
        if p.v.is_finite() {
            min_v = min_v.min(p.v);
            max_v = max_v.max(p.v);
            min_t = min_t.min(p.t);
            max_t = max_t.max(p.t);
        }
    }
    if min_t > max_t {
        return (render_message("No data", width, height), None);
    }
    let (start, end) = if opts.start_ms < opts.end_ms {
        (opts.start_ms, opts.end_ms)
    } else if min_t < max_t {
        (min_t, max_t)
    } else {
        (min_t - 30_000, max_t + 30_000)
    };

    let label_strings: Vec<String> = drawn.iter().map(|s| s.metric.to_string()).collect();
    let colors = assign_colors(&label_strings);
    let legend_max = if opts.legend { MAX_LEGEND } else { 0 };
    let texts = if opts.names.len() == series.len() {
        opts.names.iter().take(MAX_SERIES).cloned().collect()
    } else {
        label_strings
    };
    let legend: Vec<LegendEntry> = texts
        .into_iter()
        .zip(colors.iter().copied())
        .take(legend_max)
        .map(|(text, color)| LegendEntry {
            text: truncate_label(text),
            color,
        })
        .collect();
    let hidden = if opts.legend {
        series.len().saturating_sub(legend.len())
    } else {
        0
    };
    let (positions, rows) = legend_layout(&legend, width as i32);
    let more_row = i32::from(hidden > 0);
    let legend_h = if opts.legend {
        (rows + more_row) * LEGEND_ROW + 8
    } else {
        0
    };

    let mut buf = String::new();
    let result = draw(
        &mut buf,
        (width, height + legend_h as u32),
        legend_h,
        &drawn,
        &colors,
        opts,
        (start, end, min_v, max_v),
        (&legend, &positions, rows, hidden),
    );
    match result {
        Ok((x, y)) => {
            let area = PlotArea {
                width,
                x0: x.start,
                x1: x.end,
                y0: y.start,
                y1: y.end,
                start_ms: start,
                end_ms: end,
            };
            (buf, Some(area))
        }
        Err(e) => {
            tracing::warn!(error = %e, "drawing a chart failed");
            (
                render_message("Chart could not be drawn", width, height),
                None,
            )
        }
    }
}

type DrawResult = Result<(Range<i32>, Range<i32>), DrawingAreaErrorKind<std::io::Error>>;

#[allow(clippy::too_many_arguments)]
fn draw(
    buf: &mut String,
    size: (u32, u32),
    legend_h: i32,
    drawn: &[&MatrixSeries],
    colors: &[usize],
    opts: &ChartOptions,
    (start, end, min_v, max_v): (i64, i64, f64, f64),
    (legend, positions, rows, hidden): (&[LegendEntry], &[(i32, i32)], i32, usize),
) -> DrawResult {
    let root = SVGBackend::with_string(buf, size).into_drawing_area();
    if !opts.transparent {
        root.fill(&WHITE)?;
    }
    let (plot, legend_area) = root.split_vertically(size.1 as i32 - legend_h);

    let y_axis = ValueAxis::new(min_v, max_v, opts.unit, 5);
    let y_label_w = [y_axis.lo, y_axis.hi, y_axis.lo + y_axis.step]
        .iter()
        .map(|v| opts.unit.format(*v).chars().count() as i32)
        .max()
        .unwrap_or(4)
        * CHAR_W
        + 12;
    let x_axis = TimeAxis { start, end };
    let tick_step = x_axis.tick_step(opts.width as usize / 90);
    let with_date = end - start > 86_400_000;
    let with_seconds = tick_step < 60_000;

    let mut chart = ChartBuilder::on(&plot)
        .margin(MARGIN)
        // Room for half of the last time label, centred on the right edge.
        .margin_right(MARGIN + 20)
        .margin_top(MARGIN + 4)
        .x_label_area_size(24)
        .y_label_area_size(y_label_w)
        .build_cartesian_2d(x_axis, y_axis)?;
    let pixels = chart.plotting_area().get_pixel_range();

    let unit = opts.unit;
    let x_fmt = move |t: &i64| {
        let mut s = format_hhmm(*t);
        if with_seconds {
            s.push_str(&format!(":{:02}", t.div_euclid(1000).rem_euclid(60)));
        }
        if with_date && t.rem_euclid(86_400_000) == 0 {
            let (_, m, d) = pharos_model::api::civil_from_days(t.div_euclid(86_400_000));
            s = format!("{m:02}-{d:02}");
        }
        s
    };
    let y_fmt = move |v: &f64| unit.format(*v);
    let label_style = TextStyle::from((FONT, FONT_SIZE).into_font()).color(&TEXT_GREY);
    chart
        .configure_mesh()
        .x_labels(opts.width as usize / 90)
        .y_labels(6)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .bold_line_style(GRID_GREY)
        .light_line_style(TRANSPARENT)
        .axis_style(TEXT_GREY)
        .label_style(label_style.clone())
        .draw()?;

    let max_gap = max_gap(drawn, opts.step_ms);
    for (s, color) in drawn.iter().zip(colors) {
        let color = PALETTE[*color % PALETTE.len()];
        let in_range: Vec<Point> = s
            .values
            .iter()
            .copied()
            .filter(|p| p.t >= start && p.t <= end)
            .collect();
        for seg in split_segments(&in_range, max_gap) {
            if seg.len() == 1 {
                chart.draw_series(std::iter::once(Circle::new(seg[0], 2, color.filled())))?;
            } else {
                chart.draw_series(std::iter::once(PathElement::new(
                    seg,
                    color.stroke_width(2),
                )))?;
            }
        }
    }

    // Legend: a swatch and the labels of each series, wrapped into rows.
    let text_style = label_style.pos(Pos::new(HPos::Left, VPos::Center));
    for (e, (x, y)) in legend.iter().zip(positions) {
        let cy = y + LEGEND_ROW / 2;
        let color = PALETTE[e.color % PALETTE.len()];
        legend_area.draw(&Rectangle::new(
            [(*x, cy - 2), (x + 14, cy + 2)],
            color.filled(),
        ))?;
        legend_area.draw_text(&e.text, &text_style, (x + 20, cy))?;
    }
    if hidden > 0 {
        let cy = rows * LEGEND_ROW + LEGEND_ROW / 2;
        legend_area.draw_text(
            &format!("… and {hidden} more series"),
            &text_style,
            (MARGIN, cy),
        )?;
    }
    root.present()?;
    Ok(pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharos_model::Labels;

    fn series(labels: &[(&str, &str)], points: &[(i64, f64)]) -> MatrixSeries {
        MatrixSeries {
            metric: Labels::from_pairs(labels),
            values: points.iter().map(|&(t, v)| Point { t, v }).collect(),
        }
    }

    fn opts(start: i64, end: i64, step: i64) -> ChartOptions {
        ChartOptions {
            start_ms: start,
            end_ms: end,
            step_ms: step,
            ..ChartOptions::default()
        }
    }

    fn count(hay: &str, needle: &str) -> usize {
        hay.matches(needle).count()
    }

    /// Series lines: the only polylines 2px wide (axes and ticks are 1px).
    fn lines(svg: &str) -> usize {
        svg.lines()
            .filter(|l| l.starts_with("<polyline") && l.contains("stroke-width=\"2\""))
            .count()
    }

    #[test]
    fn unit_formatting() {
        #[track_caller]
        fn check(unit: Unit, v: f64, want: &str) {
            assert_eq!(unit.format(v), want, "{unit:?} {v}");
        }
        check(Unit::Plain, 0.0, "0");
        check(Unit::Plain, 1.5, "1.5");
        check(Unit::Plain, 1500.0, "1.5k");
        check(Unit::Plain, 2_000_000.0, "2M");
        check(Unit::Plain, 3.25e9, "3.25G");
        check(Unit::Plain, -1500.0, "-1.5k");
        check(Unit::Plain, 0.02, "0.02");
        check(Unit::Plain, 0.1234, "0.123");
        check(Unit::Plain, 0.00125, "0.00125");
        check(Unit::Plain, 0.00001, "1.00e-5");
        check(Unit::Plain, f64::NAN, "NaN");
        check(Unit::Bytes, 512.0, "512 B");
        check(Unit::Bytes, 1536.0, "1.5 KiB");
        check(Unit::Bytes, 2.0 * 1024.0 * 1024.0 * 1024.0, "2 GiB");
        check(Unit::Percent, 42.0, "42%");
        check(Unit::Ratio, 0.425, "42.5%");
        check(Unit::Seconds, 0.25, "250ms");
        check(Unit::Seconds, 1.5, "1.5s");
        check(Unit::Seconds, 120.0, "2m");
        check(Unit::Seconds, 5400.0, "1.5h");
        check(Unit::BytesPerSecond, 1536.0, "1.5 KiB/s");
        check(Unit::OpsPerSecond, 1500.0, "1.5k ops/s");
        for u in UNITS {
            assert_eq!(Unit::parse(u.name()), Some(u));
        }
        assert_eq!(Unit::parse("furlongs"), None);
    }

    #[test]
    fn hhmm() {
        #[track_caller]
        fn check(ms: i64, want: &str) {
            assert_eq!(format_hhmm(ms), want);
        }
        check(0, "00:00");
        check(3_600_000 * 13 + 60_000 * 7 + 59_999, "13:07");
        check(86_400_000 * 3 + 60_000, "00:01");
        check(-60_000, "23:59");
    }

    #[test]
    fn segments() {
        #[track_caller]
        fn check(points: &[(i64, f64)], gap: i64, want: &[usize]) {
            let pts: Vec<Point> = points.iter().map(|&(t, v)| Point { t, v }).collect();
            let segs = split_segments(&pts, gap);
            let lens: Vec<usize> = segs.iter().map(Vec::len).collect();
            assert_eq!(lens, want, "{points:?}");
        }
        check(&[], 30, &[]);
        check(&[(0, 1.0), (15, 1.0), (30, 1.0)], 30, &[3]);
        // 30 apart is exactly two steps: still joined; 45 is not.
        check(&[(0, 1.0), (30, 1.0), (75, 1.0), (90, 1.0)], 30, &[2, 2]);
        check(&[(0, 1.0), (15, f64::NAN), (30, 1.0)], 30, &[1, 1]);
        check(
            &[(0, f64::INFINITY), (15, 2.0), (30, f64::NEG_INFINITY)],
            30,
            &[1],
        );
        check(&[(0, f64::NAN)], 30, &[]);
    }

    #[test]
    fn one_line_per_series_with_legend() {
        let a = series(
            &[("mode", "user")],
            &[(0, 1.0), (15_000, 2.0), (30_000, 3.0)],
        );
        let b = series(
            &[("mode", "system")],
            &[(0, 0.5), (15_000, 0.7), (30_000, 0.2)],
        );
        let svg = render_chart(&[a, b], &opts(0, 30_000, 15_000));
        assert!(svg.starts_with("<svg"), "{svg}");
        assert_eq!(lines(&svg), 2, "{svg}");
        assert!(svg.contains("{mode=&quot;user&quot;}"), "{svg}");
        assert!(svg.contains("{mode=&quot;system&quot;}"), "{svg}");
        assert!(!svg.contains("No data"));
        // Two different colours.
        let stroke = |c: RGBColor| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
        let colors = assign_colors(&[
            "{mode=\"user\"}".to_string(),
            "{mode=\"system\"}".to_string(),
        ]);
        assert_ne!(colors[0], colors[1]);
        for c in colors {
            assert!(svg.contains(&stroke(PALETTE[c])), "{svg}");
        }
    }

    #[test]
    fn gaps_split_lines() {
        // Points at 0..=60s every 15s, then nothing until 300s: two segments.
        let mut pts: Vec<(i64, f64)> = (0..5).map(|i| (i * 15_000, 1.0)).collect();
        pts.extend((20..25).map(|i| (i * 15_000, 2.0)));
        let s = series(&[("job", "x")], &pts);
        let svg = render_chart(&[s], &opts(0, 360_000, 15_000));
        assert_eq!(lines(&svg), 2, "{svg}");
        // Without a step the gap is inferred from the spacing of the points.
        let s = series(&[("job", "x")], &pts);
        let svg = render_chart(&[s], &opts(0, 360_000, 0));
        assert_eq!(lines(&svg), 2, "{svg}");
    }

    #[test]
    fn no_data() {
        #[track_caller]
        fn check(input: &[MatrixSeries]) {
            let svg = render_chart(input, &opts(0, 60_000, 15_000));
            assert!(svg.contains("No data"), "{svg}");
            assert_eq!(lines(&svg), 0);
        }
        check(&[]);
        check(&[series(&[("a", "b")], &[])]);
        check(&[series(
            &[("a", "b")],
            &[(0, f64::NAN), (15_000, f64::INFINITY)],
        )]);
    }

    #[test]
    fn labels_are_escaped_and_points_outside_skipped() {
        let s = series(
            &[("evil", "<script>alert(1)</script>")],
            &[(0, 1.0), (15_000, 1.0), (999_999_999, 5.0)],
        );
        let svg = render_chart(&[s], &opts(0, 30_000, 15_000));
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
    }

    #[test]
    fn single_point_is_a_dot() {
        let s = series(&[("job", "x")], &[(15_000, 1.0)]);
        let svg = render_chart(&[s], &opts(0, 30_000, 15_000));
        assert_eq!(lines(&svg), 0);
        assert_eq!(count(&svg, "<circle"), 1, "{svg}");
    }

    #[test]
    fn axes_are_readable() {
        // One hour starting at 10:00 UTC: ticks at round times, bytes on the y axis.
        let start = 10 * 3_600_000;
        let pts: Vec<(i64, f64)> = (0..=240)
            .map(|i| {
                (
                    start + i * 15_000,
                    3.0 * 1024.0 * 1024.0 * 1024.0 + i as f64 * 1e6,
                )
            })
            .collect();
        let s = series(&[("instance", "a")], &pts);
        let o = ChartOptions {
            unit: Unit::Bytes,
            ..opts(start, start + 3_600_000, 15_000)
        };
        let svg = render_chart(&[s], &o);
        // plotters writes text content on its own line.
        for tick in ["\n10:00\n", "\n10:30\n", "\n11:00\n", "\n3 GiB\n"] {
            assert!(svg.contains(tick), "{tick:?} in {svg}");
        }
    }

    #[test]
    fn colours_are_stable_and_distinct() {
        let labels: Vec<String> = (0..40).map(|i| format!("{{i=\"{i}\"}}")).collect();
        let a = assign_colors(&labels);
        assert_eq!(a, assign_colors(&labels));
        let first: std::collections::HashSet<usize> = a[..PALETTE.len()].iter().copied().collect();
        assert_eq!(first.len(), PALETTE.len());
        // The first series keeps its colour whatever follows it.
        assert_eq!(assign_colors(&labels[..1])[0], a[0]);
    }

    #[test]
    fn many_series_are_capped_in_the_legend() {
        let many: Vec<MatrixSeries> = (0..30)
            .map(|i| series(&[("i", &i.to_string())], &[(0, i as f64), (15_000, 1.0)]))
            .collect();
        let svg = render_chart(&many, &opts(0, 15_000, 15_000));
        assert_eq!(lines(&svg), 30);
        assert!(
            svg.contains(&format!("and {} more series", 30 - MAX_LEGEND)),
            "{svg}"
        );
    }

    #[test]
    fn legend_stats_and_stacking() {
        let pts = |v: &[f64]| -> Vec<Point> {
            v.iter()
                .enumerate()
                .map(|(i, v)| Point {
                    t: i as i64 * 1000,
                    v: *v,
                })
                .collect()
        };
        assert_eq!(
            stats(&pts(&[2.0, f64::NAN, 4.0, 0.0])),
            Some(Stats {
                min: 0.0,
                max: 4.0,
                avg: 2.0,
                last: 0.0
            })
        );
        assert_eq!(stats(&pts(&[f64::NAN])), None);
        let a = series(&[("m", "a")], &[(0, 1.0), (1000, 2.0)]);
        let b = series(&[("m", "b")], &[(0, 10.0), (1000, f64::NAN), (2000, 5.0)]);
        let st = stack(&[a, b]);
        let vals: Vec<Vec<f64>> = st
            .iter()
            .map(|s| s.values.iter().map(|p| p.v).collect())
            .collect();
        assert_eq!(vals[0], vec![1.0, 2.0]);
        assert_eq!((vals[1][0], vals[1][2]), (11.0, 5.0));
        assert!(vals[1][1].is_nan());
    }

    #[test]
    fn plot_area_and_page_mode() {
        let s = series(&[("m", "a")], &[(0, 1.0), (15_000, 2.0), (30_000, 3.0)]);
        let o = ChartOptions {
            legend: false,
            transparent: true,
            ..opts(0, 30_000, 15_000)
        };
        let (svg, area) = render_plot(std::slice::from_ref(&s), &o);
        let area = area.unwrap();
        assert!(
            area.x0 > 0 && area.x1 < 800 && area.x0 < area.x1,
            "{area:?}"
        );
        assert!(area.y0 < area.y1 && area.y1 < 260, "{area:?}");
        assert_eq!((area.start_ms, area.end_ms, area.width), (0, 30_000, 800));
        // No legend text and no white background.
        assert!(!svg.contains("{m=&quot;a&quot;}"), "{svg}");
        assert!(!svg.contains("fill=\"#FFFFFF\""), "{svg}");
        assert_eq!(render_plot(&[], &o).1, None);
    }

    #[test]
    fn value_axis_ticks() {
        #[track_caller]
        fn check(min: f64, max: f64, unit: Unit, want: (f64, f64, f64)) {
            let a = ValueAxis::new(min, max, unit, 5);
            assert_eq!((a.lo, a.hi, a.step), want, "{min}..{max}");
        }
        check(1.0, 1.0, Unit::Plain, (0.0, 1.0, 0.2));
        check(0.0, 0.0, Unit::Plain, (0.0, 1.0, 0.2));
        check(3.0, 97.0, Unit::Percent, (0.0, 100.0, 20.0));
        check(-5.0, -5.0, Unit::Plain, (-5.0, 0.0, 1.0));
        let gib = 1024.0 * 1024.0 * 1024.0;
        check(0.0, 10.0 * gib, Unit::Bytes, (0.0, 10.0 * gib, 2.0 * gib));
    }
}
