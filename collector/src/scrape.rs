//! One target's scrape loop: fetch, parse, label, append, commit, staleness.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pharos_model::expfmt::{Entry, Format, Parser};
use pharos_model::storage::{Appendable, Appender, CommitReport, Error as StorageError};
use pharos_model::{Label, Labels, METRIC_NAME, STALE_NAN, SeriesRef};
use tokio::sync::watch;

use crate::auth::HttpClientConfig;
use crate::config::ScrapeConfig;
use crate::http1;
use crate::relabel::{self, RelabelConfig};
use crate::target::Target;

/// The `Accept` header Prometheus 2.42 sends: OpenMetrics first, then the text format.
pub(crate) const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Counters shared by all loops.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub scrapes: AtomicU64,
    pub failures: AtomicU64,
    pub samples_appended: AtomicU64,
    pub out_of_order: AtomicU64,
    pub duplicate: AtomicU64,
    pub out_of_bounds: AtomicU64,
    pub sample_limit_exceeded: AtomicU64,
}

/// Per-pool options that affect how samples are stored.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub sample_limit: u64,
    pub body_size_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub metric_relabel: Vec<RelabelConfig>,
    pub http: HttpClientConfig,
}

impl Options {
    pub fn from_config(c: &ScrapeConfig) -> Self {
        Self {
            honor_labels: c.honor_labels,
            honor_timestamps: c.honor_timestamps,
            sample_limit: c.sample_limit,
            body_size_limit: c.body_size_limit.0,
            label_limit: c.label_limit,
            label_name_length_limit: c.label_name_length_limit,
            label_value_length_limit: c.label_value_length_limit,
            metric_relabel: c.metric_relabel_configs.clone(),
            http: c.http(),
        }
    }

    /// Prometheus' label limit checks of a stored series, with its error messages.
    fn check_label_limits(&self, l: &Labels) -> Result<(), String> {
        let metric: String = l.metric_name().unwrap_or("").chars().take(50).collect();
        if self.label_limit > 0 && l.len() as u64 > self.label_limit {
            return Err(format!(
                "label_limit exceeded (metric: {metric}, number of labels: {}, limit: {})",
                l.len(),
                self.label_limit
            ));
        }
        for lbl in l.iter() {
            let name: String = lbl.name.chars().take(50).collect();
            if self.label_name_length_limit > 0
                && lbl.name.len() as u64 > self.label_name_length_limit
            {
                return Err(format!(
                    "label_name_length_limit exceeded (metric: {metric}, label name: {name}, length: {}, limit: {})",
                    lbl.name.len(),
                    self.label_name_length_limit
                ));
            }
            if self.label_value_length_limit > 0
                && lbl.value.len() as u64 > self.label_value_length_limit
            {
                let value: String = lbl.value.chars().take(50).collect();
                return Err(format!(
                    "label_value_length_limit exceeded (metric: {metric}, label name: {name}, value: {value:?}, length: {}, limit: {})",
                    lbl.value.len(),
                    self.label_value_length_limit
                ));
            }
        }
        Ok(())
    }
}

/// What the cache knows about one series line of the exposition.
#[derive(Debug)]
struct CacheEntry {
    /// Labels to store under, or `None` if metric relabeling dropped the series.
    labels: Option<Labels>,
    sref: Option<SeriesRef>,
    /// Attempt number that last saw this series.
    last: u64,
    /// The value of `last` before the current attempt changed it.
    prev: u64,
    /// Whether the series gets staleness markers (not if it carries its own timestamps).
    track_staleness: bool,
}

/// The series cache: entries in slots and an index by key, plus what the last text body looked
/// like line by line, so that a line that repeats its line of the last body finds its entry with
/// one comparison against that body (read in order, so from warm memory), without hashing.
#[derive(Debug, Default)]
struct Entries {
    index: HashMap<Vec<u8>, u32, FxBuild>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The last text body appended in full, and its lines ([`Line`]); empty after anything
    /// else (a failure, OpenMetrics). Valid because an entry seen by the last body is not
    /// evicted before the end of the next one, and a failure clears both.
    prev_body: String,
    lines: Vec<Line>,
}

/// One line of the last text body.
#[derive(Debug, Clone, Copy)]
struct Line {
    /// Byte offset of the line in the body.
    start: usize,
    /// Length of the part a new line must repeat: the series text of a sample line (then a
    /// blank must follow), the whole line without its `\n` otherwise (then `\n` or the end).
    len: usize,
    /// The series' slot for a sample line, [`Line::OTHER`] for a line that yields no sample
    /// (comment, blank), [`Line::NONE`] for no hint.
    slot: u32,
}

impl Line {
    const OTHER: u32 = u32::MAX;
    const NONE: u32 = u32::MAX - 1;
}

#[derive(Debug)]
struct Slot {
    key: Vec<u8>,
    /// `None` while the slot is free.
    entry: Option<CacheEntry>,
}

impl Entries {
    #[inline]
    fn get_mut(&mut self, i: u32) -> Option<&mut CacheEntry> {
        self.slots.get_mut(i as usize)?.entry.as_mut()
    }

    fn insert(&mut self, key: &[u8], e: CacheEntry) -> u32 {
        let i = match self.free.pop() {
            Some(i) => {
                if let Some(s) = self.slots.get_mut(i as usize) {
                    s.key.clear();
                    s.key.extend_from_slice(key);
                    s.entry = Some(e);
                }
                i
            }
            None => {
                self.slots.push(Slot {
                    key: key.to_vec(),
                    entry: Some(e),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key.to_vec(), i);
        i
    }

    /// Keeps the entries for which `keep` is true.
    fn retain(&mut self, mut keep: impl FnMut(&mut CacheEntry) -> bool) {
        for (i, s) in self.slots.iter_mut().enumerate() {
            if let Some(e) = &mut s.entry
                && !keep(e)
            {
                s.entry = None;
                self.index.remove(s.key.as_slice());
                self.free.push(i as u32);
            }
        }
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut CacheEntry> {
        self.slots.iter_mut().filter_map(|s| s.entry.as_mut())
    }

    fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.free.clear();
        self.prev_body.clear();
        self.lines.clear();
    }
}

/// Names of the synthetic series, in the order of [`Report`]'s values.
const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// The values of the synthetic series of one scrape.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Report {
    pub up: bool,
    pub duration: f64,
    pub scraped: u64,
    pub post_relabel: u64,
    pub added: u64,
}

/// State kept from one scrape to the next; moved into a blocking task to append a large body.
pub(crate) struct Cache {
    /// Keyed by the series part of a text-format line as written (name and label set), else by
    /// name and label pairs joined by 0xFF/0xFE bytes (see [`structured_key`]). As in Prometheus,
    /// one series written two ways gets two entries with the same labels.
    entries: Entries,
    /// Number of the current attempt.
    iter: u64,
    /// Attempt whose series are live (the last successful scrape), if any.
    live: Option<u64>,
    report_labels: [Labels; 5],
    report_refs: [Option<SeriesRef>; 5],
    /// True once report series were written (so they need end-of-run staleness markers).
    reported: bool,
    key: Vec<u8>,
    /// Buffers for the next body and its line hints (the previous ones' allocations).
    spare_body: Vec<u8>,
    spare_lines: Vec<Line>,
}

impl Cache {
    /// The entry in slot `i`, which `Sink::lookup` has just returned.
    fn entry(&mut self, i: u32) -> Result<&mut CacheEntry, String> {
        self.entries
            .get_mut(i)
            .ok_or_else(|| "internal error: series cache entry vanished".to_string())
    }

    pub fn new(target_labels: &Labels) -> Self {
        let report_labels = REPORT_NAMES.map(|n| {
            let mut b = target_labels.builder();
            b.set(METRIC_NAME, n);
            b.build()
        });
        Self {
            entries: Entries::default(),
            iter: 0,
            live: None,
            report_labels,
            report_refs: [None; 5],
            reported: false,
            key: Vec::new(),
            spare_body: Vec::new(),
            spare_lines: Vec::new(),
        }
    }

    /// An empty buffer for the next body, with the capacity of an earlier one.
    pub fn take_buffer(&mut self) -> Vec<u8> {
        let mut b = std::mem::take(&mut self.spare_body);
        b.clear();
        b
    }

    /// Keeps `body` (whose lines are in `entries.lines`) for the next scrape's comparisons,
    /// recycling the one it replaces as the next buffer if that is small (a large one is freed
    /// rather than held between scrapes).
    fn keep_body(&mut self, body: String) {
        const MAX_SPARE: usize = 1 << 20;
        let old = std::mem::replace(&mut self.entries.prev_body, body);
        if old.capacity() > self.spare_body.capacity() && old.capacity() <= MAX_SPARE {
            self.spare_body = old.into_bytes();
        }
    }
}

/// Outcome of appending one body.
struct BodyStats {
    /// Samples accepted by the appender (counted in [`Counters`] once committed).
    appended: u64,
    scraped: u64,
    post_relabel: u64,
    added: u64,
}

/// Everything a scrape needs to append, besides the cache.
pub(crate) struct Sink<'a> {
    pub app: &'a dyn Appendable,
    pub target: &'a Labels,
    pub opts: &'a Options,
    pub counters: &'a Counters,
}

impl Sink<'_> {
    /// Appends one scrape: the body (or the fetch error), staleness markers and the synthetic
    /// series, then commits. Returns the error that marks the target down, if any.
    pub fn scrape(
        &self,
        cache: &mut Cache,
        body: Result<(String, Format), String>,
        t: i64,
        duration: f64,
    ) -> Option<String> {
        cache.iter += 1;
        self.counters.scrapes.fetch_add(1, Ordering::Relaxed);
        let err = match body {
            Err(e) => e,
            Ok((body, format)) => {
                let mut app = self.app.appender();
                let appended = self.append_body(cache, app.as_mut(), &body, format, t);
                if appended.is_ok() && format == Format::Text {
                    cache.keep_body(body);
                }
                match appended {
                    Ok(stats) => {
                        self.stale_vanished(cache, app.as_mut(), t);
                        let report = Report {
                            up: true,
                            duration,
                            scraped: stats.scraped,
                            post_relabel: stats.post_relabel,
                            added: stats.added,
                        };
                        let deferred = self.append_report(cache, app.as_mut(), t, report, true);
                        match app.commit_report() {
                            Ok(report) => {
                                self.count_report(&report);
                                self.counters.samples_appended.fetch_add(
                                    (stats.appended + deferred).saturating_sub(report.refused()),
                                    Ordering::Relaxed,
                                );
                                if !report.unknown.is_empty() {
                                    self.reappend(cache, &report.unknown);
                                }
                                cache.live = Some(cache.iter);
                                return None;
                            }
                            Err(e) => {
                                // Nothing of this scrape is stored; refs may be unknown.
                                cache.entries.clear();
                                cache.live = None;
                                cache.report_refs = [None; 5];
                                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                                return Some(format!("commit: {e}"));
                            }
                        }
                    }
                    Err(e) => {
                        if let Err(re) = app.rollback() {
                            tracing::warn!("rollback of a failed scrape: {re}");
                        }
                        e
                    }
                }
            }
        };
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        // A failed scrape: every series of the last good scrape goes stale, `up` is 0.
        let mut app = self.app.appender();
        self.stale_live(cache, app.as_mut(), t);
        let report = Report {
            up: false,
            duration,
            ..Report::default()
        };
        self.append_report(cache, app.as_mut(), t, report, false);
        if let Err(e) = app.commit() {
            tracing::warn!("commit of a failed scrape's report: {e}");
            cache.report_refs = [None; 5];
        }
        cache.entries.clear();
        cache.live = None;
        Some(err)
    }

    /// End of the loop (target removed, shutdown): staleness markers for every live series and
    /// the synthetic ones.
    pub fn end_of_run(&self, cache: &mut Cache, t: i64) {
        let mut app = self.app.appender();
        self.stale_live(cache, app.as_mut(), t);
        if cache.reported {
            for i in 0..REPORT_NAMES.len() {
                self.add(
                    app.as_mut(),
                    &mut cache.report_refs[i],
                    &cache.report_labels[i],
                    t,
                    STALE_NAN,
                );
            }
        }
        if let Err(e) = app.commit() {
            tracing::warn!("commit of end-of-run staleness markers: {e}");
        }
        cache.entries.clear();
        cache.live = None;
    }

    fn append_body(
        &self,
        cache: &mut Cache,
        app: &mut dyn Appender,
        body: &str,
        format: Format,
        t: i64,
    ) -> Result<BodyStats, String> {
        let mut stats = BodyStats {
            appended: 0,
            scraped: 0,
            post_relabel: 0,
            added: 0,
        };
        let mut key = std::mem::take(&mut cache.key);
        let r = match format {
            Format::Text => self.append_text(cache, app, body, t, &mut key, &mut stats),
            Format::OpenMetrics => {
                self.append_parsed(cache, app, body, format, t, &mut key, &mut stats)
            }
        };
        cache.key = key;
        r.map(|()| stats)
    }

    #[allow(clippy::too_many_arguments)]
    /// Any format, through the full parser: every line is parsed into name and label pairs.
    fn append_parsed(
        &self,
        cache: &mut Cache,
        app: &mut dyn Appender,
        body: &str,
        format: Format,
        t: i64,
        key: &mut Vec<u8>,
        stats: &mut BodyStats,
    ) -> Result<(), String> {
        let iter = cache.iter;
        // No line hints for this body (the next text body starts without them).
        cache.entries.lines.clear();
        cache.entries.prev_body.clear();
        for entry in Parser::new(body, format) {
            let Entry::Sample {
                name,
                labels,
                value,
                timestamp,
            } = entry.map_err(|e| e.to_string())?
            else {
                continue;
            };
            structured_key(key, name, &labels);
            let i = self.lookup(cache, key, name, &labels, stats)?;
            self.put(cache.entry(i)?, iter, app, value, timestamp, t, stats)?;
        }
        Ok(())
    }

    /// The text format with two fast paths. A line that repeats the series part (or, for a
    /// comment, the whole text) of the same line of the last body is handled with one
    /// comparison and a parse of its value; a sample line whose series part (name and label
    /// set, as written) is in the cache has only its value and timestamp parsed. Every other
    /// line goes through the full parser, one line at a time (the text format has no state
    /// across lines, so a line identical to one accepted last time is accepted again).
    fn append_text(
        &self,
        cache: &mut Cache,
        app: &mut dyn Appender,
        body: &str,
        t: i64,
        key: &mut Vec<u8>,
        stats: &mut BodyStats,
    ) -> Result<(), String> {
        let iter = cache.iter;
        let prev_lines = std::mem::take(&mut cache.entries.lines);
        let prev_body = std::mem::take(&mut cache.entries.prev_body);
        let mut lines = std::mem::take(&mut cache.spare_lines);
        lines.clear();
        let r = self.append_lines(
            cache,
            app,
            body,
            (&prev_body, &prev_lines),
            &mut lines,
            t,
            iter,
            key,
            stats,
        );
        // The old hints' allocations are reused next time; the new ones hold for `body`
        // (kept by the caller) only if every line was read.
        cache.spare_lines = prev_lines;
        cache.entries.prev_body = prev_body;
        if r.is_ok() {
            cache.entries.lines = lines;
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn append_lines(
        &self,
        cache: &mut Cache,
        app: &mut dyn Appender,
        body: &str,
        (prev_body, prev_lines): (&str, &[Line]),
        lines: &mut Vec<Line>,
        t: i64,
        iter: u64,
        key: &mut Vec<u8>,
        stats: &mut BodyStats,
    ) -> Result<(), String> {
        let bytes = body.as_bytes();
        let prev = prev_body.as_bytes();
        let mut pos = 0usize;
        let mut lineno = 0usize;
        while pos < bytes.len() {
            lineno += 1;
            let rest = &bytes[pos..];
            // The line as in the last body?
            if let Some(h) = prev_lines.get(lineno - 1)
                && h.slot != Line::NONE
                && let Some(p) = prev.get(h.start..h.start + h.len)
                && rest.starts_with(p)
            {
                let after = pos + h.len;
                if h.slot == Line::OTHER {
                    if matches!(bytes.get(after), None | Some(b'\n')) {
                        lines.push(Line { start: pos, ..*h });
                        pos = after + 1;
                        continue;
                    }
                } else if matches!(bytes.get(after), Some(b' ' | b'\t')) {
                    let end = line_end(bytes, after);
                    let tail = &body[after..end];
                    if let Some((value, timestamp)) =
                        fast_value_ts(tail.strip_suffix('\r').unwrap_or(tail))
                        && let Some(e) = cache.entries.get_mut(h.slot)
                    {
                        self.put(e, iter, app, value, timestamp, t, stats)?;
                        lines.push(Line { start: pos, ..*h });
                        pos = end + 1;
                        continue;
                    }
                }
            }
            let end = line_end(bytes, pos);
            let raw = &body[pos..end];
            let start = pos;
            pos = end + 1;
            let other = Line {
                start,
                len: raw.len(),
                slot: Line::OTHER,
            };
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let series = match line.as_bytes().first() {
                None => {
                    lines.push(other);
                    continue;
                }
                Some(b'#' | b' ' | b'\t') => None,
                Some(_) => series_end(line.as_bytes()).map(|n| &line[..n]),
            };
            if let Some(s) = series
                && let Some(&i) = cache.entries.index.get(s.as_bytes())
                && let Some((value, timestamp)) = fast_value_ts(&line[s.len()..])
                && let Some(e) = cache.entries.get_mut(i)
            {
                self.put(e, iter, app, value, timestamp, t, stats)?;
                lines.push(Line {
                    start,
                    len: s.len(),
                    slot: i,
                });
                continue;
            }
            let entry = match Parser::new(line, Format::Text).next() {
                None => {
                    lines.push(other);
                    continue;
                }
                Some(Ok(e)) => e,
                Some(Err(e)) => return Err(format!("line {lineno}: {}", e.message)),
            };
            let Entry::Sample {
                name,
                labels,
                value,
                timestamp,
            } = entry
            else {
                lines.push(other);
                continue;
            };
            let hint = match series {
                Some(s) => {
                    key.clear();
                    key.extend_from_slice(s.as_bytes());
                    Some(s.len())
                }
                None => {
                    structured_key(key, name, &labels);
                    None
                }
            };
            let i = self.lookup(cache, key, name, &labels, stats)?;
            lines.push(match hint {
                Some(len) => Line {
                    start,
                    len,
                    slot: i,
                },
                None => Line {
                    start,
                    len: 0,
                    slot: Line::NONE,
                },
            });
            self.put(cache.entry(i)?, iter, app, value, timestamp, t, stats)?;
        }
        Ok(())
    }

    /// The slot of the cache entry of `key`, created (labels, relabeling, limits) if missing.
    fn lookup(
        &self,
        cache: &mut Cache,
        key: &[u8],
        name: &str,
        labels: &[(&str, std::borrow::Cow<'_, str>)],
        stats: &mut BodyStats,
    ) -> Result<u32, String> {
        if let Some(&i) = cache.entries.index.get(key) {
            return Ok(i);
        }
        let raw = sample_labels(name, labels, self.target, self.opts.honor_labels);
        let lset = if self.opts.metric_relabel.is_empty() {
            Some(raw)
        } else {
            let l = relabel::process(&raw, &self.opts.metric_relabel);
            if l.as_ref().is_some_and(|l| l.metric_name().is_none()) {
                return Err(format!(
                    "missing metric name ({METRIC_NAME} label) after relabeling {raw}"
                ));
            }
            l
        };
        if let Some(l) = &lset {
            self.opts.check_label_limits(l)?;
            stats.added += 1;
        }
        Ok(cache.entries.insert(
            key,
            CacheEntry {
                labels: lset,
                sref: None,
                last: 0,
                prev: 0,
                track_staleness: true,
            },
        ))
    }

    /// Appends one scraped sample of a cached series.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn put(
        &self,
        e: &mut CacheEntry,
        iter: u64,
        app: &mut dyn Appender,
        value: f64,
        timestamp: Option<i64>,
        t: i64,
        stats: &mut BodyStats,
    ) -> Result<(), String> {
        stats.scraped += 1;
        let ts = match timestamp {
            Some(ts) if self.opts.honor_timestamps => ts,
            _ => t,
        };
        if e.last != iter {
            e.prev = e.last;
            e.last = iter;
        }
        e.track_staleness = timestamp.is_none() || !self.opts.honor_timestamps;
        let Some(lset) = &e.labels else {
            return Ok(());
        };
        stats.post_relabel += 1;
        if self.opts.sample_limit > 0 && stats.post_relabel > self.opts.sample_limit {
            self.counters
                .sample_limit_exceeded
                .fetch_add(1, Ordering::Relaxed);
            return Err(format!(
                "sample limit exceeded: more than {} samples",
                self.opts.sample_limit
            ));
        }
        // A known series' sample is checked at the commit (counted from its report).
        let appended = match e.sref {
            Some(r) => match app.append_deferred(r, ts, value) {
                Ok(Some(r)) => Ok(r),
                Ok(None) => app.append(e.sref, lset, ts, value),
                Err(err) => Err(err),
            },
            None => app.append(None, lset, ts, value),
        };
        match appended {
            Ok(r) => {
                e.sref = Some(r);
                stats.appended += 1;
            }
            Err(err) => {
                if !self.count_rejection(&err) {
                    return Err(format!("appending {lset}: {err}"));
                }
            }
        }
        Ok(())
    }

    /// Counts the rejections a commit reports.
    fn count_report(&self, report: &CommitReport) {
        for (c, n) in [
            (&self.counters.out_of_order, report.out_of_order),
            (&self.counters.duplicate, report.duplicate),
            (&self.counters.out_of_bounds, report.out_of_bounds),
        ] {
            if n > 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Appends again, by their labels, the samples a commit handed back because their series
    /// was removed from storage after its ref was cached (the refs are forgotten).
    fn reappend(&self, cache: &mut Cache, unknown: &[(SeriesRef, i64, f64)]) {
        let gone: HashMap<SeriesRef, (i64, f64)> =
            unknown.iter().map(|&(r, t, v)| (r, (t, v))).collect();
        let mut app = self.app.appender();
        let refs = cache.entries.values_mut().filter_map(|e| match &e.labels {
            Some(l) => Some((&mut e.sref, l)),
            None => None,
        });
        let report = cache.report_refs.iter_mut().zip(cache.report_labels.iter());
        for (sref, l) in refs.chain(report) {
            if let Some(&(t, v)) = sref.and_then(|r| gone.get(&r)) {
                *sref = None;
                self.add(app.as_mut(), sref, l, t, v);
            }
        }
        if let Err(e) = app.commit() {
            tracing::warn!(target = %self.target, "commit of samples appended again: {e}");
        }
    }

    /// Counts a per-sample rejection; false if `err` is not one.
    fn count_rejection(&self, err: &StorageError) -> bool {
        let c = match err {
            StorageError::OutOfOrder => &self.counters.out_of_order,
            StorageError::DuplicateTimestamp => &self.counters.duplicate,
            StorageError::OutOfBounds => &self.counters.out_of_bounds,
            _ => return false,
        };
        c.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// After a good scrape: staleness markers for series of the previous scrape missing from this
    /// one, and eviction of everything not seen now.
    fn stale_vanished(&self, cache: &mut Cache, app: &mut dyn Appender, t: i64) {
        let iter = cache.iter;
        let live = cache.live;
        let mut vanished = 0usize;
        cache.entries.retain(|e| {
            if e.last == iter {
                return true;
            }
            if Some(e.last) == live
                && e.track_staleness
                && let Some(l) = &e.labels
            {
                vanished += 1;
                self.add(app, &mut e.sref, l, t, STALE_NAN);
            }
            false
        });
        if vanished > 0 {
            tracing::debug!(target = %self.target, vanished, "staleness markers for vanished series");
        }
    }

    /// Staleness markers for every series of the last good scrape.
    fn stale_live(&self, cache: &mut Cache, app: &mut dyn Appender, t: i64) {
        let Some(live) = cache.live else {
            return;
        };
        // A failed attempt may have moved `last` of a live entry to `iter` (keeping the old value
        // in `prev`); entries first seen in the failed attempt were never stored.
        let iter = cache.iter;
        for e in cache.entries.values_mut() {
            if (e.last == live || (e.last == iter && e.prev == live))
                && e.track_staleness
                && let Some(l) = &e.labels
            {
                self.add(app, &mut e.sref, l, t, STALE_NAN);
            }
        }
    }

    /// Appends the synthetic series. With `defer` (a commit with a report follows), the samples
    /// of series with a ref are checked at the commit, like the body's; returns how many, for
    /// the caller to count once the report is in.
    fn append_report(
        &self,
        cache: &mut Cache,
        app: &mut dyn Appender,
        t: i64,
        r: Report,
        defer: bool,
    ) -> u64 {
        let values = [
            if r.up { 1.0 } else { 0.0 },
            r.duration,
            r.scraped as f64,
            r.post_relabel as f64,
            r.added as f64,
        ];
        let mut deferred = 0;
        for (i, v) in values.into_iter().enumerate() {
            let sref = &mut cache.report_refs[i];
            if let Some(r) = sref.filter(|_| defer) {
                match app.append_deferred(r, t, v) {
                    Ok(Some(_)) => {
                        deferred += 1;
                        continue;
                    }
                    // Unknown to storage now: by labels below.
                    Ok(None) => {}
                    Err(e) => {
                        self.reject(&e, &cache.report_labels[i]);
                        continue;
                    }
                }
            }
            self.add(app, sref, &cache.report_labels[i], t, v);
        }
        cache.reported = true;
        deferred
    }

    /// Appends one sample outside the body (reports, staleness); rejections are counted.
    fn add(
        &self,
        app: &mut dyn Appender,
        sref: &mut Option<SeriesRef>,
        l: &Labels,
        t: i64,
        v: f64,
    ) {
        match app.append(*sref, l, t, v) {
            Ok(r) => {
                *sref = Some(r);
                self.counters
                    .samples_appended
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.reject(&e, l),
        }
    }

    /// Counts a rejected sample of series `l`, or logs an append error that is not one.
    fn reject(&self, e: &StorageError, l: &Labels) {
        if !self.count_rejection(e) {
            tracing::warn!(series = %l, "append: {e}");
        }
    }
}

/// The cache key of a parsed series: name and label pairs joined by 0xFF/0xFE bytes, which never
/// occur in UTF-8 (so it differs from every raw series key that has labels).
fn structured_key(key: &mut Vec<u8>, name: &str, labels: &[(&str, std::borrow::Cow<'_, str>)]) {
    key.clear();
    key.extend_from_slice(name.as_bytes());
    for (k, v) in labels {
        key.push(0xFF);
        key.extend_from_slice(k.as_bytes());
        key.push(0xFE);
        key.extend_from_slice(v.as_bytes());
    }
}

/// The index of the `\n` ending the line that starts at or before `from`, or `b.len()`.
#[inline]
fn line_end(b: &[u8], from: usize) -> usize {
    b.get(from..)
        .and_then(|r| r.iter().position(|&c| c == b'\n'))
        .map_or(b.len(), |n| from + n)
}

/// Whether `c` may occur in a metric name (`[a-zA-Z0-9_:]`).
#[inline]
fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// The length of the series part of a text-format sample line (the name and, if present, the
/// label set up to its closing brace, quotes and escapes respected), or `None` if the line does not
/// have the plain shape `name[{...}]` followed by a blank, for the full parser to judge.
fn series_end(b: &[u8]) -> Option<usize> {
    let mut i = b.iter().position(|&c| !is_name_byte(c))?;
    match b[i] {
        b' ' | b'\t' => {
            // `name {...}` is valid but rare; leave it to the parser.
            let next = b[i..].iter().find(|&&c| c != b' ' && c != b'\t');
            (next != Some(&b'{')).then_some(i)
        }
        b'{' => {
            let mut quoted = false;
            i += 1;
            while let Some(&c) = b.get(i) {
                match (quoted, c) {
                    (true, b'\\') => i += 1,
                    (true, b'"') | (false, b'"') => quoted = !quoted,
                    (false, b'}') => return Some(i + 1),
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => None,
    }
}

/// Value and optional millisecond timestamp after the series part of a text-format line, for the
/// plain shapes only (decimal floats, integer timestamps); `None` sends the line to the parser.
fn fast_value_ts(rest: &str) -> Option<(f64, Option<i64>)> {
    const BLANKS: [char; 2] = [' ', '\t'];
    let rest = rest.trim_start_matches(BLANKS);
    let (v, rest) = rest.split_at(rest.find(BLANKS).unwrap_or(rest.len()));
    if v.is_empty()
        || !v
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let value = match small_integer(v) {
        Some(n) => n,
        None => v.parse::<f64>().ok()?,
    };
    let rest = rest.trim_start_matches(BLANKS);
    if rest.is_empty() {
        return Some((value, None));
    }
    let (ts, tail) = rest.split_at(rest.find(BLANKS).unwrap_or(rest.len()));
    if !tail.trim_start_matches(BLANKS).is_empty()
        || !ts.bytes().all(|c| c.is_ascii_digit() || c == b'-')
    {
        return None;
    }
    Some((value, Some(ts.parse::<i64>().ok()?)))
}

/// `v` if it is an integer of at most 15 digits (exact in an `f64`), the common case of
/// counters, without the general float parser.
#[inline]
fn small_integer(v: &str) -> Option<f64> {
    let (neg, digits) = match v.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        d => (false, d),
    };
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut n = 0u64;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(c - b'0');
    }
    let x = n as f64;
    Some(if neg { -x } else { x })
}

/// An FxHash-style hasher (multiply-rotate over 8-byte words) for the series cache: keys are
/// scraped series text, so a fast non-keyed hash is enough (a target can only slow its own cache).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    #[inline]
    fn mix(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(Self::K);
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rem = chunks.remainder();
        if !rem.is_empty() {
            let mut w = [0u8; 8];
            w[..rem.len()].copy_from_slice(rem);
            self.mix(u64::from_le_bytes(w) ^ ((rem.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    /// With a final avalanche (as in MurmurHash3's `fmix64`): hashbrown takes buckets from the
    /// low bits, which the multiply alone leaves depending on the low input bits only.
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
}

/// Builds [`FxHasher`]s.
pub(crate) type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

/// The labels of a scraped sample combined with the target's: on conflict the target wins and the
/// scraped label is renamed `exported_<name>` (repeatedly, until free), unless `honor_labels`, in
/// which case the scraped label wins.
pub(crate) fn sample_labels(
    name: &str,
    pairs: &[(&str, std::borrow::Cow<'_, str>)],
    target: &Labels,
    honor_labels: bool,
) -> Labels {
    let mut v: Vec<Label> = Vec::with_capacity(pairs.len() + target.len() + 1);
    v.push(Label {
        name: METRIC_NAME.into(),
        value: name.into(),
    });
    for (k, val) in pairs {
        if *k != METRIC_NAME && !val.is_empty() {
            v.push(Label {
                name: (*k).into(),
                value: val.to_string(),
            });
        }
    }
    let scraped = v.len();
    for tl in target.iter() {
        let pos = v[..scraped].iter().position(|l| l.name == tl.name);
        match pos {
            Some(_) if honor_labels => {}
            Some(i) => {
                let mut renamed = format!("exported_{}", tl.name);
                while v.iter().any(|l| l.name == renamed) || target.get(&renamed).is_some() {
                    renamed.insert_str(0, "exported_");
                }
                v[i].name = renamed;
                v.push(tl.clone());
            }
            None => v.push(tl.clone()),
        }
    }
    Labels::new(v)
}

/// The widest start slot of [`first_offset_ms`].
const START_SLOT_MAX_MS: i64 = 50;

/// Milliseconds until the first scrape: spreads targets over the interval by a deterministic hash
/// of their identity, at the same phase every interval. Phases are rounded down to the start of
/// a slot (a twentieth of the interval, at most [`START_SLOT_MAX_MS`]): the targets of one slot
/// are scraped together, so the scrape threads wake once for their timers and often once for
/// several responses. Waking for each target alone cost a quarter of the CPU of scraping 100
/// targets of 500 samples each at 1 s. Each target still sees one scrape per interval at a fixed
/// phase.
pub(crate) fn first_offset_ms(key: &str, interval_ms: i64, now_ms: i64) -> i64 {
    // FNV-1a, 64 bit.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let interval = interval_ms.max(1);
    let slot = (interval / 20).clamp(1, START_SLOT_MAX_MS);
    let phase = (h % interval as u64) as i64 / slot * slot;
    (phase - now_ms.rem_euclid(interval)).rem_euclid(interval)
}

/// Fetches one body into `body` (cleared, its capacity reused): GET with the Accept and
/// timeout headers, status check, size limit.
async fn fetch(
    client: &reqwest::Client,
    endpoint: Option<&crate::tls::Endpoint>,
    target: &Target,
    opts: &Options,
    mut body: Vec<u8>,
) -> Result<(String, Format), String> {
    let body_limit = opts.body_size_limit;
    let timeout = target.timeout.std();
    let get = match endpoint {
        Some(ep) => ep.apply(client.get(ep.url.clone())),
        None => client.get(target.parsed_url.clone()),
    };
    let req = opts.http.apply(get).map_err(|e| e.to_string())?;
    let resp = req
        .header(reqwest::header::ACCEPT, ACCEPT)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", timeout.as_secs_f64()),
        )
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| http_error(&e, target))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("server returned HTTP status {status}"));
    }
    let format = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map_or(Format::Text, Format::from_content_type);
    let mut resp = resp;
    body.clear();
    // Room for the announced length, up to a bound (the header is the target's word only).
    const MAX_RESERVE: u64 = 16 << 20;
    if let Some(n) = resp.content_length()
        && (body_limit == 0 || n <= body_limit)
    {
        body.reserve(usize::try_from(n.min(MAX_RESERVE)).unwrap_or(0));
    }
    while let Some(chunk) = resp.chunk().await.map_err(|e| http_error(&e, target))? {
        body.extend_from_slice(&chunk);
        if body_limit > 0 && body.len() as u64 > body_limit {
            return Err(format!(
                "body size limit exceeded: more than {body_limit} bytes"
            ));
        }
    }
    Ok((into_text(body)?, format))
}

/// The body as text, or the error naming the first byte that is not UTF-8.
fn into_text(body: Vec<u8>) -> Result<String, String> {
    String::from_utf8(body).map_err(|e| {
        format!(
            "body is not valid UTF-8 at byte {}",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Fetches one body as [`fetch`] does, through the loop's own HTTP/1.1 connection
/// ([`http1::Client`]) when the target allows it, else (or for what that client leaves to the
/// general one) through reqwest.
async fn fetch_any(
    fast: &mut Option<http1::Client>,
    client: &reqwest::Client,
    endpoint: Option<&crate::tls::Endpoint>,
    target: &Target,
    opts: &Options,
    mut body: Vec<u8>,
) -> Result<(String, Format), String> {
    if let Some(c) = fast.as_mut() {
        let auth = opts.http.auth_header().map_err(|e| e.to_string())?;
        let timeout = target.timeout.std();
        let secs = format!("{}", timeout.as_secs_f64());
        let mut extra = vec![("X-Prometheus-Scrape-Timeout-Seconds", secs.as_str())];
        if let Some(a) = &auth {
            extra.push(("Authorization", a.as_str()));
        }
        let got = tokio::time::timeout(timeout, c.get(&extra, opts.body_size_limit, &mut body))
            .await
            .map_err(|_| format!("scrape timed out after {}", target.timeout))?;
        match got {
            http1::Fetched::Body { content_type } => {
                let format = content_type
                    .as_deref()
                    .map_or(Format::Text, Format::from_content_type);
                return Ok((into_text(body)?, format));
            }
            http1::Fetched::Failed(e) => return Err(e),
            http1::Fetched::Fallback => {}
        }
    }
    fetch(client, endpoint, target, opts, body).await
}

/// A reqwest error with its causes, and timeouts said plainly.
fn http_error(e: &reqwest::Error, target: &Target) -> String {
    if e.is_timeout() {
        return format!("scrape timed out after {}", target.timeout);
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

/// What the manager tells a loop through its watch channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Keep scraping.
    Run,
    /// Stop and write end-of-run staleness markers (target gone, shutdown).
    Stop,
    /// Stop without staleness markers: a loop for the same series replaces this one (a config
    /// change), and late markers would hide its first samples.
    Replace,
}

/// Bodies up to this size are appended on the scrape loop's task, larger ones on a blocking
/// thread: about 1,000 lines of 64 bytes, at most about a millisecond of work on a loaded
/// machine (0.5 to 1 µs per sample end to end in the side-by-side benchmark).
const INLINE_BODY_MAX: usize = 64 << 10;

/// Everything a loop owns.
pub(crate) struct Loop {
    pub target: Arc<Target>,
    pub opts: Arc<Options>,
    pub app: Arc<dyn Appendable>,
    pub client: reqwest::Client,
    /// Where `client` sends requests when the target's `tls_config.server_name` is sent as SNI
    /// ([`crate::tls::sni_builder`]); `None`: the target's URL.
    pub endpoint: Option<crate::tls::Endpoint>,
    pub counters: Arc<Counters>,
    /// An error every scrape of the pool fails with while set (`target_limit` exceeded).
    pub forced: Arc<std::sync::RwLock<Option<String>>>,
}

impl Loop {
    /// Scrapes every interval until `stop` changes (or its sender is dropped), then writes
    /// end-of-run staleness markers. A stop during a fetch abandons the fetch; a stop during an
    /// append waits for the commit.
    pub async fn run(self, mut stop: watch::Receiver<Signal>) {
        let interval_ms = self.target.interval.as_millis();
        let offset = first_offset_ms(&self.target.key, interval_ms, pharos_model::now_ms());
        let start = tokio::time::Instant::now() + std::time::Duration::from_millis(offset as u64);
        let mut ticker = tokio::time::interval_at(start, self.target.interval.std());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut cache = Some(Cache::new(&self.target.labels));
        let mut fast = http1::Client::new(
            &self.target.parsed_url,
            ACCEPT,
            self.opts.http.follow_redirects,
        );
        tracing::debug!(url = %self.target.url, offset_ms = offset, "scrape loop started");
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => break,
            }
            let t = pharos_model::now_ms();
            let began = std::time::Instant::now();
            let forced = self
                .forced
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let buffer = cache.as_mut().map(Cache::take_buffer).unwrap_or_default();
            let body = match forced {
                Some(e) => Err(e),
                None => tokio::select! {
                    b = fetch_any(&mut fast, &self.client, self.endpoint.as_ref(), &self.target, &self.opts, buffer) => b,
                    _ = stop.changed() => break,
                },
            };
            let duration = began.elapsed().as_secs_f64();
            let Some(mut c) = cache.take() else {
                break;
            };
            // A small body (see `INLINE_BODY_MAX`), or a failure of a target with few series
            // (staleness markers for each), is appended right here: handing it to a blocking
            // thread and back costs two thread wake-ups per scrape.
            let small = match &body {
                Ok((b, _)) => b.len() <= INLINE_BODY_MAX,
                Err(_) => c.entries.slots.len() <= INLINE_BODY_MAX / 64,
            };
            if small {
                let sink = Sink {
                    app: self.app.as_ref(),
                    target: &self.target.labels,
                    opts: &self.opts,
                    counters: &self.counters,
                };
                let err = sink.scrape(&mut c, body, t, duration);
                if let Some(e) = &err {
                    tracing::debug!(url = %self.target.url, "scrape failed: {e}");
                }
                self.target.record(t, duration, err.as_deref());
                cache = Some(c);
                continue;
            }
            let (app, target, opts, counters) = (
                self.app.clone(),
                self.target.clone(),
                self.opts.clone(),
                self.counters.clone(),
            );
            let joined = tokio::task::spawn_blocking(move || {
                let sink = Sink {
                    app: app.as_ref(),
                    target: &target.labels,
                    opts: &opts,
                    counters: &counters,
                };
                let err = sink.scrape(&mut c, body, t, duration);
                (c, err)
            })
            .await;
            match joined {
                Ok((c, err)) => {
                    if let Some(e) = &err {
                        tracing::debug!(url = %self.target.url, "scrape failed: {e}");
                    }
                    self.target.record(t, duration, err.as_deref());
                    cache = Some(c);
                }
                Err(e) => {
                    tracing::error!(url = %self.target.url, "scrape task failed: {e}");
                    self.target
                        .record(t, duration, Some(&format!("internal error: {e}")));
                    cache = Some(Cache::new(&self.target.labels));
                }
            }
        }
        // A dropped sender (manager gone) counts as a plain stop.
        let replaced = *stop.borrow() == Signal::Replace;
        if let Some(mut c) = cache.filter(|_| !replaced) {
            let (app, target, opts, counters) =
                (self.app, self.target.clone(), self.opts, self.counters);
            let done = tokio::task::spawn_blocking(move || {
                let sink = Sink {
                    app: app.as_ref(),
                    target: &target.labels,
                    opts: &opts,
                    counters: &counters,
                };
                sink.end_of_run(&mut c, pharos_model::now_ms());
            })
            .await;
            if let Err(e) = done {
                tracing::error!(url = %self.target.url, "end-of-run staleness failed: {e}");
            }
        }
        tracing::debug!(url = %self.target.url, "scrape loop stopped");
    }
}

/// One target's append path without HTTP, for the `append` criterion bench
/// (`collector/benches/append.rs`): parse, label, relabel, append and commit a body exactly as a
/// scrape loop does, keeping the series cache between calls.
#[doc(hidden)]
pub struct BenchTarget {
    target: Labels,
    opts: Options,
    counters: Counters,
    cache: Cache,
}

impl BenchTarget {
    /// A target with these labels and default scrape options.
    pub fn new(labels: &[(&str, &str)]) -> Self {
        let target = Labels::from_pairs(labels);
        Self {
            opts: Options::from_config(&ScrapeConfig::new("bench")),
            counters: Counters::default(),
            cache: Cache::new(&target),
            target,
        }
    }

    /// Appends one text-format body at `t` through `app`; the error that would mark the
    /// target down, if any.
    pub fn scrape(&mut self, app: &dyn Appendable, body: String, t: i64) -> Option<String> {
        let sink = Sink {
            app,
            target: &self.target,
            opts: &self.opts,
            counters: &self.counters,
        };
        sink.scrape(&mut self.cache, Ok((body, Format::Text)), t, 0.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[track_caller]
    fn check(pairs: &[(&str, &str)], honor: bool, want: &str) {
        let target =
            Labels::from_pairs(&[("job", "j"), ("instance", "i:1"), ("exported_job", "t")]);
        let pairs: Vec<_> = pairs.iter().map(|(k, v)| (*k, Cow::Borrowed(*v))).collect();
        assert_eq!(sample_labels("m", &pairs, &target, honor).to_string(), want);
    }

    #[test]
    fn label_conflicts() {
        check(
            &[("a", "1")],
            false,
            r#"m{a="1", exported_job="t", instance="i:1", job="j"}"#,
        );
        check(
            &[("job", "x")],
            false,
            r#"m{exported_exported_job="x", exported_job="t", instance="i:1", job="j"}"#,
        );
        check(
            &[("job", "x"), ("instance", "y")],
            false,
            r#"m{exported_exported_job="x", exported_instance="y", exported_job="t", instance="i:1", job="j"}"#,
        );
        check(
            &[("job", "x")],
            true,
            r#"m{exported_job="t", instance="i:1", job="x"}"#,
        );
        check(
            &[("job", "")],
            false,
            r#"m{exported_job="t", instance="i:1", job="j"}"#,
        );
    }

    #[track_caller]
    fn check_series_end(line: &str, want: Option<&str>) {
        assert_eq!(
            series_end(line.as_bytes()).map(|n| &line[..n]),
            want,
            "{line}"
        );
    }

    #[test]
    fn series_part_of_a_line() {
        check_series_end("a 1", Some("a"));
        check_series_end("a:b_c9\t1", Some("a:b_c9"));
        check_series_end(r#"a{b="c"} 1"#, Some(r#"a{b="c"}"#));
        check_series_end(r#"a{b="c"}1"#, Some(r#"a{b="c"}"#));
        check_series_end(r#"a{b="}\"{,",c="d"} 1"#, Some(r#"a{b="}\"{,",c="d"}"#));
        check_series_end(r#"a{b="\\"} 1"#, Some(r#"a{b="\\"}"#));
        // Shapes left to the full parser.
        check_series_end(r#"a {b="c"} 1"#, None);
        check_series_end("a-1 2", None);
        check_series_end("a", None);
        check_series_end(r#"a{b="c 1"#, None);
        check_series_end("ä 1", None);
    }

    #[track_caller]
    fn check_value(rest: &str, want: Option<(f64, Option<i64>)>) {
        assert_eq!(fast_value_ts(rest), want, "{rest:?}");
    }

    #[test]
    fn fast_values_and_timestamps() {
        check_value(" 1", Some((1.0, None)));
        check_value("\t-2.5e3  \t", Some((-2500.0, None)));
        check_value(" +.5 -17", Some((0.5, Some(-17))));
        check_value("1 1700000000000 ", Some((1.0, Some(1_700_000_000_000))));
        // Left to the parser (which accepts or rejects them with its message).
        check_value(" NaN", None);
        check_value(" +Inf", None);
        check_value(" ", None);
        check_value(" 1 2 3", None);
        check_value(" 1 2.5", None);
        check_value(" 1-", None);
        check_value(" 1 --2", None);
    }

    #[test]
    fn small_integers_parse_as_the_float_parser_does() {
        for v in [
            "0",
            "-0",
            "7",
            "007",
            "-42",
            "123456789012345",
            "-999999999999999",
            "1234567890123456",
            "",
            "-",
            "+1",
            "1.0",
            "1e3",
            "12a",
        ] {
            let want = v.parse::<f64>().ok().map(f64::to_bits);
            match small_integer(v) {
                Some(x) => assert_eq!(Some(x.to_bits()), want, "{v:?}"),
                // Only the shapes it leaves to the parser.
                None => assert!(
                    v.len() > 15 || !v.bytes().all(|c| c.is_ascii_digit()) || v.is_empty(),
                    "{v:?}"
                ),
            }
        }
        assert_eq!(
            fast_value_ts(" 123456789012345678"),
            Some((123456789012345678.0, None))
        );
    }

    /// Records what is appended, as `labels t v` lines.
    #[derive(Default)]
    struct Rec(Arc<std::sync::Mutex<Vec<String>>>);
    struct RecApp(Arc<std::sync::Mutex<Vec<String>>>, Vec<String>);

    impl Appendable for Rec {
        fn appender(&self) -> Box<dyn Appender> {
            Box::new(RecApp(self.0.clone(), Vec::new()))
        }
    }

    impl Appender for RecApp {
        fn append(
            &mut self,
            r: Option<SeriesRef>,
            l: &Labels,
            t: i64,
            v: f64,
        ) -> pharos_model::storage::Result<SeriesRef> {
            self.1.push(format!("{l} {t} {v}"));
            Ok(r.unwrap_or(SeriesRef(1)))
        }
        fn commit(self: Box<Self>) -> pharos_model::storage::Result<()> {
            let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
            g.clear();
            g.extend(self.1);
            Ok(())
        }
        fn rollback(self: Box<Self>) -> pharos_model::storage::Result<()> {
            Ok(())
        }
    }

    /// A store that defers checks as the tsdb does: series by labels, `(ref, t, v)` samples
    /// kept per ref, out-of-order samples and samples of forgotten refs refused at commit.
    #[derive(Default)]
    struct Deferring(Arc<std::sync::Mutex<DeferringState>>);
    #[derive(Default)]
    struct DeferringState {
        refs: HashMap<Labels, SeriesRef>,
        samples: HashMap<SeriesRef, Vec<(i64, f64)>>,
        forgotten: Vec<SeriesRef>,
    }
    struct DeferringApp(
        Arc<std::sync::Mutex<DeferringState>>,
        Vec<(SeriesRef, i64, f64)>,
    );

    impl Appendable for Deferring {
        fn appender(&self) -> Box<dyn Appender> {
            Box::new(DeferringApp(self.0.clone(), Vec::new()))
        }
    }

    impl Appender for DeferringApp {
        fn append(
            &mut self,
            _: Option<SeriesRef>,
            l: &Labels,
            t: i64,
            v: f64,
        ) -> pharos_model::storage::Result<SeriesRef> {
            let mut g = self.0.lock().unwrap();
            let n = SeriesRef(g.refs.len() as u64 + 100 * g.forgotten.len() as u64 + 1);
            let r = *g.refs.entry(l.clone()).or_insert(n);
            self.1.push((r, t, v));
            Ok(r)
        }
        fn append_deferred(
            &mut self,
            r: SeriesRef,
            t: i64,
            v: f64,
        ) -> pharos_model::storage::Result<Option<SeriesRef>> {
            self.1.push((r, t, v));
            Ok(Some(r))
        }
        fn commit(self: Box<Self>) -> pharos_model::storage::Result<()> {
            self.commit_report().map(|_| ())
        }
        fn commit_report(self: Box<Self>) -> pharos_model::storage::Result<CommitReport> {
            let mut g = self.0.lock().unwrap();
            let mut report = CommitReport::default();
            for (r, t, v) in self.1 {
                if g.forgotten.contains(&r) {
                    report.unknown.push((r, t, v));
                    continue;
                }
                let series = g.samples.entry(r).or_default();
                if series.last().is_some_and(|&(last, _)| t <= last) {
                    report.out_of_order += 1;
                    continue;
                }
                series.push((t, v));
            }
            Ok(report)
        }
        fn rollback(self: Box<Self>) -> pharos_model::storage::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn samples_refused_or_handed_back_at_commit() {
        let store = Deferring::default();
        let mut bt = BenchTarget::new(&[("job", "j")]);
        let body = "a 1\nb 2\n";
        assert_eq!(bt.scrape(&store, body.into(), 10), None);
        let a = Labels::from_pairs(&[("__name__", "a"), ("job", "j")]);
        let b = Labels::from_pairs(&[("__name__", "b"), ("job", "j")]);
        let up = Labels::from_pairs(&[("__name__", "up"), ("job", "j")]);
        let (ra, rup) = {
            let g = store.0.lock().unwrap();
            (g.refs[&a], g.refs[&up])
        };
        // The store drops series `a` and `up` (as head truncation or a deletion would): their
        // next samples come back from the commit and go in again by labels, under new refs.
        {
            let mut g = store.0.lock().unwrap();
            g.forgotten.extend([ra, rup]);
            g.refs.remove(&a);
            g.refs.remove(&up);
        }
        assert_eq!(bt.scrape(&store, body.into(), 20), None);
        // An out-of-order scrape (the store refuses every sample of it) is counted.
        assert_eq!(bt.scrape(&store, body.into(), 15), None);
        let g = store.0.lock().unwrap();
        let (na, nup) = (g.refs[&a], g.refs[&up]);
        assert_ne!(na, ra);
        assert_ne!(nup, rup);
        assert_eq!(g.samples[&na], [(20, 1.0)]);
        assert_eq!(g.samples[&g.refs[&b]], [(10, 2.0), (20, 2.0)]);
        assert_eq!(g.samples[&nup], [(20, 1.0)]);
        // Two body samples and the five synthetic ones.
        assert_eq!(bt.counters.out_of_order.load(Ordering::Relaxed), 7);
    }

    /// What the full parser makes of `body` (no relabeling, timestamps honored).
    fn expected(body: &str, target: &Labels, t: i64) -> Vec<String> {
        pharos_model::expfmt::parse(body, Format::Text)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                Entry::Sample {
                    name,
                    labels,
                    value,
                    timestamp,
                } => Some(format!(
                    "{} {} {value}",
                    sample_labels(name, &labels, target, false),
                    timestamp.unwrap_or(t)
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn fast_path_appends_what_the_parser_reads() {
        let target = Labels::from_pairs(&[("job", "j"), ("instance", "i:1")]);
        let body = "# HELP a Help.\n# TYPE a counter\na 1\n\n  b{x=\"1\"}  2 1000\r\n\
            c{x=\"}\\\"{\",y=\"\\\\\"} 3\nd {x=\"1\"} 4\ne NaN\nf{} +Inf\ng-1 5\nh 6 -7\n# EOF\n";
        let rec = Rec::default();
        let mut bt = BenchTarget::new(&[("job", "j"), ("instance", "i:1")]);
        let changed = body.replace(" 2 1000", " 9");
        // The same lines in another order: position hints miss, the index finds them.
        let mut lines: Vec<&str> = body.lines().collect();
        lines.reverse();
        let reordered = lines.join("\n");
        for (t, body) in [(10, body), (20, body), (30, &changed), (40, &reordered)] {
            assert_eq!(bt.scrape(&rec, body.to_string(), t), None);
            let got = rec.0.lock().unwrap().clone();
            let mut want = expected(body, &target, t);
            let n = want.len() as f64;
            let added = if t == 10 { n } else { 0.0 };
            for (name, v) in REPORT_NAMES.iter().zip([1.0, 0.1, n, n, added]) {
                want.push(format!(r#"{name}{{instance="i:1", job="j"}} {t} {v}"#));
            }
            assert_eq!(got, want, "scrape at {t}");
        }
    }

    #[test]
    fn line_hints_follow_changed_bodies() {
        let target = Labels::from_pairs(&[("job", "j")]);
        let rec = Rec::default();
        let mut bt = BenchTarget::new(&[("job", "j")]);
        let bodies = [
            "# TYPE a counter\na 1\na{x=\"1\"} 2\n\nb 3 1000\n",
            "# TYPE a counter\na 1\na{x=\"1\"} 2\n\nb 3 1000\n",
            // Each line starts with the last body's line but is another one.
            "# TYPE a counter\nab 1\na{x=\"1\"}{ 2\n \nb 3 2000 \n",
            "# TYPE a counter\na{x=\"1\"} 1\na 2\nb 3\n",
            // A line inserted at the top shifts every hint; no final newline.
            "# HELP a Help.\n# TYPE a counter\na{x=\"1\"} 5\na 6\nb\t7",
            "# HELP a Help.\n# TYPE a counter\na{x=\"1\"} 5\na 6\nb\t7\r\n",
            "a{x=\"1\",} 8\n# TYPE a counter\na 9\n",
        ];
        for (n, body) in bodies.iter().enumerate() {
            let t = 10 * (n as i64 + 1);
            let want = pharos_model::expfmt::parse(body, Format::Text);
            let got = bt.scrape(&rec, body.to_string(), t);
            match want {
                Ok(_) => {
                    assert_eq!(got, None, "body {n}");
                    let appended = rec.0.lock().unwrap().clone();
                    let want = expected(body, &target, t);
                    assert_eq!(appended[..want.len()], want[..], "body {n}");
                }
                Err(e) => assert_eq!(got, Some(e.to_string()), "body {n}"),
            }
        }
        // A comment that was accepted, then changed into an invalid one, is rejected.
        let good = "# TYPE a counter\na 1\n";
        assert_eq!(bt.scrape(&rec, good.into(), 100), None);
        assert_eq!(bt.scrape(&rec, good.into(), 110), None);
        let bad = "# TYPE a counterx\na 1\n";
        let want = pharos_model::expfmt::parse(bad, Format::Text).unwrap_err();
        assert_eq!(bt.scrape(&rec, bad.into(), 120), Some(want.to_string()));
        assert_eq!(bt.scrape(&rec, good.into(), 130), None);
    }

    #[test]
    fn fast_path_errors_name_the_line() {
        let mut bt = BenchTarget::new(&[("job", "j")]);
        let rec = Rec::default();
        assert_eq!(bt.scrape(&rec, "a 1\nb{x=\"y\"} 2\n".into(), 1), None);
        for bad in [
            "a 1\nb{x=\"y\"} zz\n",
            "a 1\nb{x=\"y\"} 2 3 4\n",
            "a 1\n\nb{x=\"y\"}\n",
        ] {
            let want = pharos_model::expfmt::parse(bad, Format::Text)
                .unwrap_err()
                .to_string();
            assert_eq!(bt.scrape(&rec, bad.into(), 2), Some(want));
        }
    }

    #[test]
    fn offsets_are_deterministic_and_within_interval() {
        for now in [0, 1, 999, 123_456_789] {
            let o = first_offset_ms("a", 1000, now);
            assert!((0..1000).contains(&o));
            // Same phase: the first scrape lands at the same position within the interval.
            assert_eq!((now + o) % 1000, first_offset_ms("a", 1000, 0));
        }
        assert_ne!(
            first_offset_ms("a", 60_000, 0),
            first_offset_ms("b", 60_000, 0)
        );
    }

    #[test]
    fn offsets_start_on_slots_spread_over_the_interval() {
        // (interval, slot): a twentieth of the interval, at most 50 ms, at least 1 ms.
        for (interval, slot) in [(1000, 50), (15_000, 50), (100, 5), (10, 1), (1, 1)] {
            let phases: std::collections::BTreeSet<i64> = (0..2000)
                .map(|i| first_offset_ms(&format!("127.0.0.1:{i}"), interval, 0))
                .collect();
            assert!(
                phases
                    .iter()
                    .all(|p| p % slot == 0 && (0..interval).contains(p))
            );
            let slots = (interval / slot) as usize;
            // 2000 targets fill (nearly) every slot.
            assert!(
                phases.len() >= slots.min(2000) * 9 / 10,
                "{interval}: {phases:?}"
            );
        }
    }
}
