//! `pharos tsdb inspect|import|export`: look into, backfill and dump a data directory.
//!
//! - `inspect DIR` reads a stopped (or running) server's data directory without writing to it:
//!   every block (time range, series, samples, bytes per sample), the head as the WAL holds it,
//!   and the metric names with the most series.
//! - `import FILE` backfills samples with timestamps from a Prometheus text or OpenMetrics file:
//!   samples are grouped and sorted per series (out-of-order input is fine), appended one
//!   block-range window at a time and persisted with `Db::flush` after each window.
//! - `export` writes the stored samples in the text format with timestamps, filtered by
//!   `--match` selectors and a time range.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use pharos_model::expfmt::{Entry, Format, Parser, format_float};
use pharos_model::storage::{Appendable, Queryable, SelectHints};
use pharos_model::{Labels, MatchOp, Matcher, STALE_NAN_BITS, Sample, SeriesRef};
use pharos_tsdb::block::Block;
use pharos_tsdb::{Db, Options, files, wal};

/// `pharos tsdb ...`.
#[derive(Debug, Subcommand)]
pub enum TsdbCommand {
    /// Show the blocks and head of a data directory (read-only): time ranges, series,
    /// samples, bytes per sample and the metric names with the most series.
    Inspect(InspectArgs),
    /// Backfill samples with timestamps from a Prometheus text or OpenMetrics file into a data
    /// directory (the server must not be running on it).
    Import(ImportArgs),
    /// Write stored samples in the Prometheus text format with timestamps to stdout.
    Export(ExportArgs),
}

/// Flags of `pharos tsdb inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The data directory (as --storage.tsdb.path of the server).
    #[arg(value_name = "DIR", default_value = "data")]
    pub dir: PathBuf,
    /// How many metric names to list, by series count.
    #[arg(long = "top", value_name = "N", default_value_t = 10)]
    pub top: usize,
}

/// Flags of `pharos tsdb import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to read: Prometheus text format or OpenMetrics (recognised by its `# EOF`),
    /// every sample with a timestamp.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The data directory to write into (created if missing).
    #[arg(long = "storage.tsdb.path", value_name = "DIR", default_value = "data")]
    pub dir: PathBuf,
}

/// Flags of `pharos tsdb export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The data directory (the server must not be running on it).
    #[arg(long = "storage.tsdb.path", value_name = "DIR", default_value = "data")]
    pub dir: PathBuf,
    /// Series selector (repeatable), e.g. `up{job="node"}`; default: every series.
    #[arg(long = "match", value_name = "SELECTOR")]
    pub matchers: Vec<String>,
    /// Start of the range (RFC 3339, Unix seconds, now or now-<duration>); default: the oldest
    /// sample.
    #[arg(long = "start", value_name = "TIME")]
    pub start: Option<String>,
    /// End of the range, inclusive; default: the newest sample.
    #[arg(long = "end", value_name = "TIME")]
    pub end: Option<String>,
}

/// Runs a `pharos tsdb` command.
pub fn run(cmd: TsdbCommand) -> anyhow::Result<()> {
    match cmd {
        TsdbCommand::Inspect(a) => {
            let report = inspect(&a.dir, a.top)?;
            print!("{report}");
            Ok(())
        }
        TsdbCommand::Import(a) => {
            let summary = import(&a.file, &a.dir, &mut std::io::stderr())?;
            eprintln!("{summary}");
            Ok(())
        }
        TsdbCommand::Export(a) => {
            let now = now_ms();
            let start = a
                .start
                .as_deref()
                .map(|s| crate::cmd_query::parse_time(s, now))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--start: {e}"))?
                .unwrap_or(i64::MIN);
            let end = a
                .end
                .as_deref()
                .map(|s| crate::cmd_query::parse_time(s, now))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--end: {e}"))?
                .unwrap_or(i64::MAX);
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let n = export(&a.dir, &a.matchers, start, end, &mut out)?;
            out.flush().context("writing to stdout")?;
            eprintln!("exported {} series, {} samples", n.0, n.1);
            Ok(())
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Options for opening a data directory from these commands: nothing is deleted by retention.
fn offline_options() -> Options {
    Options {
        retention: Duration::ZERO,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// inspect

/// Series, samples, bytes and time range of one part of the directory.
#[derive(Debug, Default)]
struct Part {
    name: String,
    min_t: i64,
    max_t: i64,
    series: u64,
    samples: u64,
    bytes: u64,
}

/// Reads the blocks and WAL of `dir` without writing anything and formats a report.
pub fn inspect(dir: &Path, top: usize) -> anyhow::Result<String> {
    if !dir.is_dir() {
        bail!("no data directory at {}", dir.display());
    }
    let mut parts = Vec::new();
    let mut damaged = Vec::new();
    let mut names: HashMap<String, u64> = HashMap::new();
    let mut block_dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(files::is_block_name))
        .map(|e| e.path())
        .collect();
    block_dirs.sort();
    for path in &block_dirs {
        let block = match Block::open(path) {
            Ok(b) => b,
            Err(e) => {
                damaged.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let meta = block.meta();
        for (name, n) in block
            .series_per_value("__name__")
            .with_context(|| format!("reading the index of {}", path.display()))?
        {
            let c = names.entry(name).or_default();
            *c = (*c).max(n);
        }
        parts.push(Part {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            min_t: meta.min_time,
            max_t: meta.max_time - 1,
            series: meta.stats.num_series,
            samples: meta.stats.num_samples,
            bytes: block.size(),
        });
    }
    let head = inspect_wal(&dir.join(files::WAL_DIR), &mut names)?;

    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(out, "Data directory: {}", dir.display());
    let _ = writeln!(
        out,
        "{:<36} {:<21} {:<21} {:>10} {:>12} {:>12} {:>8}",
        "BLOCK", "MIN TIME", "MAX TIME", "SERIES", "SAMPLES", "BYTES", "B/SAMPLE"
    );
    let row = |out: &mut String, p: &Part| {
        let (min, max) = if p.samples == 0 {
            ("-".to_string(), "-".to_string())
        } else {
            (format_time(p.min_t), format_time(p.max_t))
        };
        let _ = writeln!(
            out,
            "{:<36} {:<21} {:<21} {:>10} {:>12} {:>12} {:>8}",
            p.name,
            min,
            max,
            p.series,
            p.samples,
            p.bytes,
            bytes_per_sample(p.bytes, p.samples)
        );
    };
    for p in &parts {
        row(&mut out, p);
    }
    row(&mut out, &head);
    let (samples, bytes) = parts
        .iter()
        .fold((0, 0), |(s, b), p| (s + p.samples, b + p.bytes));
    let _ = writeln!(
        out,
        "Blocks: {}, {} samples, {} bytes, {} bytes/sample",
        parts.len(),
        samples,
        bytes,
        bytes_per_sample(bytes, samples)
    );
    for d in &damaged {
        let _ = writeln!(out, "Damaged block (would be quarantined at open): {d}");
    }
    let mut top_names: Vec<(String, u64)> = names.into_iter().collect();
    top_names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let _ = writeln!(
        out,
        "Top metric names by series (most in any one block or the head):"
    );
    for (name, n) in top_names.iter().take(top) {
        let _ = writeln!(out, "{n:>10} {name}");
    }
    Ok(out)
}

fn bytes_per_sample(bytes: u64, samples: u64) -> String {
    if samples == 0 {
        "-".into()
    } else {
        format!("{:.3}", bytes as f64 / samples as f64)
    }
}

/// Reads the WAL (checkpoint and segments) read-only: the head as a replay would rebuild it.
fn inspect_wal(wal_dir: &Path, names: &mut HashMap<String, u64>) -> anyhow::Result<Part> {
    let mut head = Part {
        name: "head (WAL)".into(),
        min_t: i64::MAX,
        max_t: i64::MIN,
        ..Default::default()
    };
    if !wal_dir.is_dir() {
        return Ok(head);
    }
    let listing = wal::list(wal_dir)?;
    // As a replay does: Series records name refs (a ref whose labels are known already is an
    // alias of the first), Truncation records drop older samples.
    let mut refs: HashMap<u64, u64> = HashMap::new();
    let mut by_labels: HashMap<Labels, u64> = HashMap::new();
    let mut labels_of: HashMap<u64, Labels> = HashMap::new();
    let mut samples: Vec<(u64, i64)> = Vec::new();
    let mut floor = i64::MIN;
    let mut read = |path: &Path, head: &mut Part| -> anyhow::Result<()> {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        head.bytes += data.len() as u64;
        let torn = wal::read_records(&data, |rec| match rec {
            wal::Record::Series(list) => {
                for (r, labels) in list {
                    let id = *by_labels.entry(labels.clone()).or_insert(r);
                    labels_of.entry(id).or_insert(labels);
                    refs.insert(r, id);
                }
            }
            wal::Record::Samples(list) => samples.extend(
                list.into_iter()
                    .filter(|x| x.t >= floor)
                    .map(|x| (refs.get(&x.series).copied().unwrap_or(x.series), x.t)),
            ),
            wal::Record::Truncation(t) => {
                floor = floor.max(t);
                samples.retain(|&(_, st)| st >= floor);
            }
        });
        if let Some((offset, reason)) = torn {
            eprintln!(
                "warning: {}: torn or corrupt record at offset {offset} ({reason}); the rest of the segment is ignored",
                path.display()
            );
        }
        Ok(())
    };
    let covered = listing.checkpoint.as_ref().map(|(n, _)| *n);
    if let Some((_, p)) = &listing.checkpoint {
        read(p, &mut head)?;
    }
    for (n, p) in &listing.segments {
        if covered.is_none_or(|c| *n > c) {
            read(p, &mut head)?;
        }
    }
    let mut live: HashSet<u64> = HashSet::new();
    for &(r, t) in &samples {
        head.min_t = head.min_t.min(t);
        head.max_t = head.max_t.max(t);
        live.insert(r);
    }
    head.samples = samples.len() as u64;
    head.series = live.len() as u64;
    let mut per_name: HashMap<&str, u64> = HashMap::new();
    for r in &live {
        if let Some(name) = labels_of.get(r).and_then(|l| l.metric_name()) {
            *per_name.entry(name).or_default() += 1;
        }
    }
    for (name, n) in per_name {
        let c = names.entry(name.to_string()).or_default();
        *c = (*c).max(n);
    }
    Ok(head)
}

/// ms since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = pharos_model::api::civil_from_days(secs.div_euclid(86_400));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

// ---------------------------------------------------------------------------------------------
// import

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Distinct series read.
    pub series: u64,
    /// Samples read from the file.
    pub read: u64,
    /// Samples stored.
    pub appended: u64,
    /// Samples with the same series and timestamp as an earlier line (the last one wins).
    pub duplicates: u64,
    /// Samples the database refused (older than data already in the directory).
    pub rejected: u64,
    /// Blocks in the directory afterwards.
    pub blocks: u64,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported {} samples of {} series ({} read, {} duplicate timestamps replaced, {} refused); {} blocks",
            self.appended, self.series, self.read, self.duplicates, self.rejected, self.blocks
        )
    }
}

/// Samples per commit while importing.
const COMMIT_BATCH: usize = 100_000;

/// Backfills `file` into the data directory `dir`, writing progress lines to `progress`.
pub fn import(file: &Path, dir: &Path, progress: &mut dyn Write) -> anyhow::Result<ImportSummary> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let format = if text.trim_end().ends_with("# EOF") {
        Format::OpenMetrics
    } else {
        Format::Text
    };
    let total_lines = text.lines().count().max(1);
    let mut summary = ImportSummary::default();
    let mut by_series: HashMap<Labels, Vec<Sample>> = HashMap::new();
    let mut parser = Parser::new(&text, format);
    let mut last_report = Instant::now();
    while let Some(entry) = parser.next() {
        let entry = entry.with_context(|| format!("parsing {}", file.display()))?;
        let Entry::Sample {
            name,
            labels,
            value,
            timestamp,
        } = entry
        else {
            continue;
        };
        let Some(t) = timestamp else {
            bail!(
                "{}: line {}: sample of {name} has no timestamp (import needs one on every sample)",
                file.display(),
                parser.line()
            );
        };
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(labels.len() + 1);
        pairs.push(("__name__", name));
        pairs.extend(labels.iter().map(|(k, v)| (*k, v.as_ref())));
        by_series
            .entry(Labels::from_pairs(&pairs))
            .or_default()
            .push(Sample { t, v: value });
        summary.read += 1;
        if last_report.elapsed() >= Duration::from_millis(500) {
            last_report = Instant::now();
            let _ = writeln!(
                progress,
                "parsing: line {}/{} ({}%)",
                parser.line(),
                total_lines,
                parser.line() * 100 / total_lines
            );
        }
    }
    drop(text);
    let mut series: Vec<(Labels, Vec<Sample>)> = by_series.into_iter().collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, samples) in &mut series {
        // Stable: among equal timestamps the later line stays last, and wins.
        samples.sort_by_key(|s| s.t);
        let before = samples.len();
        let mut kept: Vec<Sample> = Vec::with_capacity(before);
        for s in samples.drain(..) {
            match kept.last_mut() {
                Some(last) if last.t == s.t => *last = s,
                _ => kept.push(s),
            }
        }
        summary.duplicates += (before - kept.len()) as u64;
        *samples = kept;
    }
    summary.series = series.len() as u64;
    let _ = writeln!(
        progress,
        "parsed {} samples of {} series from {}",
        summary.read,
        summary.series,
        file.display()
    );

    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let opts = offline_options();
    let range = i64::try_from(opts.block_range.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let db = Db::open(dir, opts).with_context(|| {
        format!(
            "cannot open storage at {} (is a server running on it?)",
            dir.display()
        )
    })?;
    let result = append_windows(&db, &series, range, &mut summary, progress);
    let closed = db.close();
    result?;
    closed.with_context(|| format!("closing storage at {}", dir.display()))?;
    summary.blocks = db.blocks().len() as u64;
    Ok(summary)
}

/// Appends `series` one `range`-aligned window at a time, flushing the head to blocks after each.
fn append_windows(
    db: &Db,
    series: &[(Labels, Vec<Sample>)],
    range: i64,
    summary: &mut ImportSummary,
    progress: &mut dyn Write,
) -> anyhow::Result<()> {
    let to_append: u64 = series.iter().map(|(_, s)| s.len() as u64).sum();
    let mut cursor = vec![0usize; series.len()];
    let mut done = 0u64;
    loop {
        let next_t = series
            .iter()
            .zip(&cursor)
            .filter_map(|((_, s), &i)| s.get(i).map(|x| x.t))
            .min();
        let Some(next_t) = next_t else { break };
        let window_end = next_t
            .div_euclid(range)
            .saturating_add(1)
            .saturating_mul(range);
        let mut app = db.appender();
        let mut in_batch = 0usize;
        for ((labels, samples), i) in series.iter().zip(cursor.iter_mut()) {
            let mut sref: Option<SeriesRef> = None;
            while let Some(s) = samples.get(*i).filter(|s| s.t < window_end) {
                *i += 1;
                done += 1;
                match app.append(sref, labels, s.t, s.v) {
                    Ok(r) => {
                        sref = Some(r);
                        summary.appended += 1;
                        in_batch += 1;
                    }
                    Err(e) if e.is_sample_rejection() => summary.rejected += 1,
                    Err(e) => {
                        let _ = app.rollback();
                        return Err(e).context("appending to storage");
                    }
                }
                if in_batch >= COMMIT_BATCH {
                    app.commit().context("committing to storage")?;
                    app = db.appender();
                    in_batch = 0;
                    sref = None;
                }
            }
        }
        app.commit().context("committing to storage")?;
        db.flush().context("writing blocks")?;
        let _ = writeln!(
            progress,
            "imported {done}/{to_append} samples ({}%), up to {}",
            done * 100 / to_append.max(1),
            format_time(window_end - 1)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// export

/// Writes the samples of the series matching any of `selectors` (all series without selectors)
/// with `start <= t <= end` to `out`, one `name{labels} value timestamp` line per sample, in
/// label order. Staleness markers have no text form and are left out. Returns the numbers of
/// series and samples written.
pub fn export(
    dir: &Path,
    selectors: &[String],
    start: i64,
    end: i64,
    out: &mut dyn Write,
) -> anyhow::Result<(u64, u64)> {
    let mut sets: Vec<Vec<Matcher>> = Vec::new();
    for s in selectors {
        sets.push(
            pharos_query::parser::parse_metric_selector(s)
                .map_err(|e| anyhow::anyhow!("--match {s:?}: {e}"))?,
        );
    }
    if sets.is_empty() {
        sets.push(vec![
            Matcher::new(MatchOp::Re, "__name__", ".+").map_err(|e| anyhow::anyhow!("{e}"))?,
        ]);
    }
    if !dir.is_dir() {
        bail!("no data directory at {}", dir.display());
    }
    let db = Db::open(dir, offline_options()).with_context(|| {
        format!(
            "cannot open storage at {} (is a server running on it?)",
            dir.display()
        )
    })?;
    let result = write_series(&db, &sets, start, end, out);
    let closed = db.close();
    let n = result?;
    closed.with_context(|| format!("closing storage at {}", dir.display()))?;
    Ok(n)
}

fn write_series(
    db: &Db,
    sets: &[Vec<Matcher>],
    start: i64,
    end: i64,
    out: &mut dyn Write,
) -> anyhow::Result<(u64, u64)> {
    let q = db.querier(start, end).context("querying storage")?;
    let hints = SelectHints {
        start,
        end,
        ..Default::default()
    };
    // Union of the selectors, in label order.
    let mut selected: BTreeMap<Labels, ()> = BTreeMap::new();
    if sets.len() > 1 {
        for m in sets {
            for s in q.select(m, &hints).context("selecting series")? {
                selected.insert(s.labels, ());
            }
        }
    }
    let mut n = (0u64, 0u64);
    let mut line = String::new();
    let mut write_one = |labels: &Labels, it: &mut dyn pharos_model::storage::SampleIterator| {
        let prefix = series_text(labels);
        let mut any = false;
        while let Some(s) = it.next() {
            if s.v.to_bits() == STALE_NAN_BITS {
                continue;
            }
            line.clear();
            line.push_str(&prefix);
            line.push(' ');
            line.push_str(&format_float(s.v));
            line.push(' ');
            line.push_str(&s.t.to_string());
            line.push('\n');
            out.write_all(line.as_bytes()).context("writing output")?;
            n.1 += 1;
            any = true;
        }
        n.0 += u64::from(any);
        anyhow::Ok(())
    };
    if sets.len() > 1 {
        for labels in selected.keys() {
            let ms: Vec<Matcher> = labels
                .iter()
                .map(|l| Matcher::eq(&l.name, &l.value))
                .collect();
            for mut s in q.select(&ms, &hints).context("selecting series")? {
                if &s.labels == labels {
                    write_one(&s.labels, s.samples.as_mut())?;
                }
            }
        }
    } else {
        for mut s in q.select(&sets[0], &hints).context("selecting series")? {
            write_one(&s.labels, s.samples.as_mut())?;
        }
    }
    Ok(n)
}

/// `name{a="x",b="y"}` with the text format's escapes.
fn series_text(labels: &Labels) -> String {
    let mut out = String::from(labels.metric_name().unwrap_or(""));
    let mut first = true;
    for l in labels.iter().filter(|l| l.name != "__name__") {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(&l.name);
        out.push_str("=\"");
        for c in l.value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '"' => out.push_str("\\\""),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_lines() {
        #[track_caller]
        fn check(pairs: &[(&str, &str)], want: &str) {
            assert_eq!(series_text(&Labels::from_pairs(pairs)), want);
        }
        check(&[("__name__", "up")], "up");
        check(&[("__name__", "up"), ("job", "a")], "up{job=\"a\"}");
        check(
            &[("__name__", "x"), ("a", "q\"\\\n"), ("b", "")],
            "x{a=\"q\\\"\\\\\\n\"}",
        );
    }

    #[test]
    fn times() {
        #[track_caller]
        fn check(ms: i64, want: &str) {
            assert_eq!(format_time(ms), want);
        }
        check(0, "1970-01-01T00:00:00Z");
        check(1_700_000_000_999, "2023-11-14T22:13:20Z");
        check(-1, "1969-12-31T23:59:59Z");
    }

    fn samples_of(text: &str) -> Vec<(String, i64, u64)> {
        let mut v: Vec<(String, i64, u64)> = Parser::new(text, Format::Text)
            .map(|e| match e.unwrap() {
                Entry::Sample {
                    name,
                    labels,
                    value,
                    timestamp,
                } => {
                    let mut pairs: Vec<(&str, &str)> = vec![("__name__", name)];
                    pairs.extend(labels.iter().map(|(k, v)| (*k, v.as_ref())));
                    (
                        series_text(&Labels::from_pairs(&pairs)),
                        timestamp.unwrap(),
                        value.to_bits(),
                    )
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn import_sorts_dedups_and_spans_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("in.prom");
        // Out of order within the series, a duplicate (the last line wins), 3 block windows.
        let hour = 3_600_000;
        let input = format!(
            "b{{x=\"1\"}} 2 {t2}\nb{{x=\"1\"}} 1 {t1}\na 5 {t0}\nb{{x=\"1\"}} 3 {t2}\na 6 {t5}\n",
            t0 = 1_000,
            t1 = 2 * hour + 7,
            t2 = 3 * hour,
            t5 = 5 * hour
        );
        std::fs::write(&file, &input).unwrap();
        let data = dir.path().join("data");
        let mut progress = Vec::new();
        let s = import(&file, &data, &mut progress).unwrap();
        assert_eq!(
            (s.series, s.read, s.appended, s.duplicates, s.rejected),
            (2, 5, 4, 1, 0)
        );
        assert!(s.blocks >= 1, "{s:?}");
        assert!(
            String::from_utf8(progress)
                .unwrap()
                .contains("imported 4/4")
        );

        let mut out = Vec::new();
        let n = export(&data, &[], i64::MIN, i64::MAX, &mut out).unwrap();
        assert_eq!(n, (2, 4));
        let got = String::from_utf8(out).unwrap();
        let want = format!(
            "a 5 1000\na 6 {}\nb{{x=\"1\"}} 1 {}\nb{{x=\"1\"}} 3 {}\n",
            5 * hour,
            2 * hour + 7,
            3 * hour
        );
        assert_eq!(samples_of(&got), samples_of(&want));

        // Selectors and a time range.
        let mut out = Vec::new();
        let n = export(
            &data,
            &["b".into(), "a".into()],
            2 * hour,
            4 * hour,
            &mut out,
        )
        .unwrap();
        assert_eq!(n, (1, 2));
        let mut out = Vec::new();
        let n = export(&data, &["{x=\"1\"}".into()], 0, 3 * hour - 1, &mut out).unwrap();
        assert_eq!(
            (n, String::from_utf8(out).unwrap()),
            ((1, 1), format!("b{{x=\"1\"}} 1 {}\n", 2 * hour + 7))
        );

        let report = inspect(&data, 5).unwrap();
        assert!(report.contains("Blocks: "), "{report}");
        assert!(report.contains("4 samples"), "{report}");
        assert!(
            report.contains(" a\n") && report.contains(" b\n"),
            "{report}"
        );
    }

    #[test]
    fn import_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("in.prom");
        std::fs::write(&file, "a 1 1000\nb 2\n").unwrap();
        let e = import(&file, &dir.path().join("d"), &mut Vec::new()).unwrap_err();
        assert!(
            format!("{e:#}").contains("line 2: sample of b has no timestamp"),
            "{e:#}"
        );
        std::fs::write(&file, "a{ 1 1000\n").unwrap();
        let e = import(&file, &dir.path().join("d"), &mut Vec::new()).unwrap_err();
        assert!(format!("{e:#}").contains("line 1"), "{e:#}");
        let e = import(
            &dir.path().join("missing"),
            &dir.path().join("d"),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("missing"), "{e:#}");
        let e = inspect(&dir.path().join("nope"), 3).unwrap_err();
        assert!(format!("{e:#}").contains("no data directory"), "{e:#}");
    }
}
