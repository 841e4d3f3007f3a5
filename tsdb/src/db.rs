//! The database: options, opening (lock + WAL replay), appenders, queriers, retention.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pharos_model::storage::{
    self, Appendable, Appender, CommitReport, Querier, Queryable, SelectHints, Series, SeriesSet,
};
use pharos_model::{Labels, Matcher, Sample, SeriesRef};
use tracing::{debug, error, info, warn};

use crate::block::{self, Block};
use crate::files;
pub(crate) use crate::head::lock;
use crate::head::{Head, MemSeries, Refused};
use crate::iter::{ChunksIterator, MergeIterator};
use crate::symbols::IntMap;
use crate::wal::{self, Record, RefSample, SegmentInfo, Wal};
use crate::{Error, Result};

#[path = "tombstones.rs"]
pub(crate) mod tombstones;
use tombstones::Tombstones;

/// How often the background thread applies [`Options::retention`].
const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Options of [`Db::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How long samples are kept, measured back from the newest sample (as Prometheus measures
    /// block retention from the newest block, not from the wall clock). Zero keeps everything.
    /// Default: 15 days.
    pub retention: Duration,
    /// A new WAL segment is started when the next commit would make the current one larger than
    /// this (a single larger commit still goes into one segment). Segments are the unit of WAL
    /// truncation: after the head is cut into a block, all but the segments holding the head's
    /// samples are deleted, so the WAL keeps at most one segment beyond the head. Default: 16 MiB
    /// (at 128 MiB a small server's WAL held its whole history: 11.6 bytes/sample on top of the
    /// blocks' 2.9 in a 2,000-series x 24 h backfill).
    pub wal_segment_size: u64,
    /// Longest time a committed sample may sit in the page cache before the WAL is fsynced;
    /// zero fsyncs on every commit. Default: 1 s.
    pub fsync_interval: Duration,
    /// Time range of the blocks cut from the head (aligned to multiples of it). The head is
    /// persisted once it spans 1.5 times this; compaction merges blocks into ranges 3, 9 and 27
    /// times as long. Zero keeps everything in the head. Default: 2 h.
    pub block_range: Duration,
    /// Largest size in bytes of the blocks and the WAL together; the oldest blocks are deleted
    /// to stay below it. Zero: no limit. Default: 0.
    pub retention_size: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(15 * 24 * 3600),
            wal_segment_size: 16 << 20,
            fsync_interval: Duration::from_secs(1),
            block_range: Duration::from_secs(2 * 3600),
            retention_size: 0,
        }
    }
}

/// A snapshot of the database's state and counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Series in the head.
    pub head_series: u64,
    /// Samples in the head.
    pub head_samples: u64,
    /// Oldest sample time in the head (ms), `i64::MAX` when empty.
    pub min_time: i64,
    /// Newest sample time in the head (ms), `i64::MIN` when empty.
    pub max_time: i64,
    /// WAL segment files (including the one being written).
    pub wal_segments: u64,
    /// Bytes in WAL segments.
    pub wal_bytes: u64,
    /// Samples rejected as out of order since open.
    pub out_of_order_total: u64,
    /// Samples rejected as duplicates (same time, other value) since open.
    pub duplicate_total: u64,
    /// Samples rejected as older than the retention boundary since open.
    pub out_of_bounds_total: u64,
    /// WAL records read at open.
    pub replayed_records: u64,
    /// Torn or corrupt WAL records found at open (each cut its segment short).
    pub wal_corruptions_total: u64,
    /// Persisted blocks.
    pub blocks: u64,
    /// Bytes of the persisted blocks (chunks and index files).
    pub block_bytes: u64,
    /// Samples in the persisted blocks.
    pub block_samples: u64,
    /// Oldest sample time in the blocks (ms), `i64::MAX` without blocks.
    pub block_min_time: i64,
    /// Damaged blocks moved to `quarantine/` at open.
    pub quarantined_blocks_total: u64,
    /// Blocks written from the head since open.
    pub head_blocks_written_total: u64,
    /// Compactions (merges of blocks) since open.
    pub compactions_total: u64,
    /// Blocks deleted by retention (time or size) since open.
    pub blocks_deleted_total: u64,
}

#[derive(Debug, Default)]
struct Counters {
    out_of_order: AtomicU64,
    duplicate: AtomicU64,
    out_of_bounds: AtomicU64,
    replayed_records: AtomicU64,
    wal_corruptions: AtomicU64,
    quarantined: AtomicU64,
    head_blocks: AtomicU64,
    compactions: AtomicU64,
    blocks_deleted: AtomicU64,
}

impl Counters {
    fn count(&self, e: &storage::Error) {
        let c = match e {
            storage::Error::OutOfOrder => &self.out_of_order,
            storage::Error::DuplicateTimestamp => &self.duplicate,
            storage::Error::OutOfBounds => &self.out_of_bounds,
            _ => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// State shared by the database handle, appenders, queriers and the background thread.
#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    wal_dir: PathBuf,
    /// Persisted blocks, sorted by time.
    blocks: RwLock<Vec<Arc<Block>>>,
    /// Serializes block writes, compactions and block deletions.
    persisting: Mutex<()>,
    opts: Options,
    head: Head,
    /// Held while writing a commit to the WAL and applying it to the head, so both see commits
    /// in the same order (replay then rebuilds exactly the same head).
    wal: Mutex<Wal>,
    closed: AtomicBool,
    /// Serializes retention runs.
    truncating: Mutex<()>,
    counters: Counters,
    /// Wakes the background thread (`None` before it starts and after it stops).
    wake: Mutex<Option<mpsc::Sender<Wake>>>,
    /// A head cut was requested and the background thread has not started it yet.
    cut_pending: AtomicBool,
    /// Series intervals deleted through the admin API.
    tombstones: Tombstones,
    /// Holds the directory lock for the life of the database.
    _lock: File,
}

/// The storage engine: a WAL and an in-memory head. Cheap to share as `Arc<Db>`; implements
/// [`Appendable`] and [`Queryable`].
#[derive(Debug)]
pub struct Db {
    inner: Arc<Inner>,
    background: Mutex<Option<Background>>,
}

#[derive(Debug)]
struct Background {
    handle: JoinHandle<()>,
}

/// Messages to the background thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// The head spans more than 1.5 block ranges: persist its old part now.
    Cut,
    /// Exit.
    Stop,
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(files::LOCK_FILE);
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening lock file {}", path.display()), e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(format!("locking {}", path.display()), e)),
    }
}

impl Db {
    /// Opens (creating if needed) the database in `dir`: takes `dir/lock`, replays the WAL into
    /// the head and starts a new WAL segment. A torn or corrupt WAL is cut at the damage and
    /// reported in the log and in [`Stats::wal_corruptions_total`], never a reason to fail.
    pub fn open(dir: &Path, opts: Options) -> Result<Db> {
        let wal_dir = dir.join(files::WAL_DIR);
        fs::create_dir_all(&wal_dir)
            .map_err(|e| Error::io(format!("creating {}", wal_dir.display()), e))?;
        let lock_file = lock_dir(dir)?;
        let head = Head::new();
        let counters = Counters::default();
        let tombstones = Tombstones::load(dir)?;
        let blocks = load_blocks(dir, &counters)?;
        let segments = replay(&wal_dir, &head, &counters)?;
        let wal = Wal::open(&wal_dir, opts.wal_segment_size, segments)?;
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            wal_dir,
            blocks: RwLock::new(blocks),
            persisting: Mutex::new(()),
            opts,
            head,
            wal: Mutex::new(wal),
            closed: AtomicBool::new(false),
            truncating: Mutex::new(()),
            counters,
            wake: Mutex::new(None),
            cut_pending: AtomicBool::new(false),
            tombstones,
            _lock: lock_file,
        });
        inner.apply_retention()?;
        inner.maintain()?;
        let background = spawn_background(&inner)?;
        info!(dir = %dir.display(), "opened TSDB");
        Ok(Db {
            inner,
            background: Mutex::new(Some(background)),
        })
    }

    /// Flushes and fsyncs the WAL and stops the background thread; later appends and commits fail
    /// with [`storage::Error::Closed`]. Queries keep working. Closing twice is harmless.
    pub fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.stop_background();
        lock(&self.inner.wal).sync()
    }

    /// [`Db::close`], then rewrites the WAL as one segment holding the head's series and samples
    /// as chunks (about half the bytes; see `wal::Wal::rewrite_compact`). For a clean shutdown
    /// when nothing else reads the WAL: a remote-write sender would see the head's samples as
    /// new. Every acknowledged sample is kept, and a crash at any point loses nothing.
    pub fn close_compacting_wal(&self) -> Result<()> {
        self.close()?;
        let inner = &self.inner;
        let _serial = lock(&inner.truncating);
        let series = inner.head.all_series();
        let started = Instant::now();
        lock(&inner.wal).rewrite_compact(&series, inner.head.min_valid_t(), |r, out| {
            use pharos_model::storage::SampleIterator as _;
            if let Some(mut it) = inner
                .head
                .series(r)
                .and_then(|s| s.iter(i64::MIN, i64::MAX))
            {
                it.collect_into(i64::MIN, i64::MAX, out);
            }
        })?;
        info!(series = series.len(), elapsed = ?started.elapsed(), "rewrote the WAL compactly");
        Ok(())
    }

    fn stop_background(&self) {
        if let Some(bg) = lock(&self.background).take() {
            if let Some(wake) = lock(&self.inner.wake).take() {
                // An error means the thread is already gone.
                let _ = wake.send(Wake::Stop);
            }
            if bg.handle.join().is_err() {
                error!("the TSDB background thread panicked");
            }
        }
    }

    /// The head's heap bytes by part and the counts they are made of (estimated from allocation
    /// sizes), for memory diagnostics such as `examples/head_memory.rs`.
    #[doc(hidden)]
    pub fn head_memory(&self) -> Vec<(&'static str, u64)> {
        self.inner.head.memory()
    }

    /// Current sizes and counters.
    pub fn stats(&self) -> Stats {
        let inner = &self.inner;
        let (wal_segments, wal_bytes) = lock(&inner.wal).size();
        let (min_time, max_time) = inner.head.time_range();
        let c = &inner.counters;
        let blocks = inner.blocks();
        Stats {
            blocks: blocks.len() as u64,
            block_bytes: blocks.iter().map(|b| b.size()).sum(),
            block_samples: blocks.iter().map(|b| b.meta().stats.num_samples).sum(),
            block_min_time: blocks.first().map_or(i64::MAX, |b| b.meta().min_time),
            quarantined_blocks_total: c.quarantined.load(Ordering::Relaxed),
            head_blocks_written_total: c.head_blocks.load(Ordering::Relaxed),
            compactions_total: c.compactions.load(Ordering::Relaxed),
            blocks_deleted_total: c.blocks_deleted.load(Ordering::Relaxed),
            head_series: inner.head.num_series(),
            head_samples: inner.head.num_samples(),
            min_time,
            max_time,
            wal_segments,
            wal_bytes,
            out_of_order_total: c.out_of_order.load(Ordering::Relaxed),
            duplicate_total: c.duplicate.load(Ordering::Relaxed),
            out_of_bounds_total: c.out_of_bounds.load(Ordering::Relaxed),
            replayed_records: c.replayed_records.load(Ordering::Relaxed),
            wal_corruptions_total: c.wal_corruptions.load(Ordering::Relaxed),
        }
    }

    /// Retention: drops head samples older than `min_t` and the series left without samples,
    /// refuses later appends older than `min_t` (`OutOfBounds`), and deletes the WAL segments
    /// whose samples are all older than `min_t` (after writing a checkpoint of the live series).
    pub fn truncate_before(&self, min_t: i64) -> Result<()> {
        self.inner.truncate_before(min_t)
    }

    /// Runs the periodic maintenance now: persists the head's old data into blocks (truncating
    /// the head and the WAL after each), compacts adjacent blocks and applies retention by time
    /// and size. The background thread does this every minute.
    pub fn compact(&self) -> Result<()> {
        self.inner.apply_retention()?;
        self.inner.maintain()
    }

    /// Persists every sample of the head into blocks (aligned to [`Options::block_range`]) and
    /// empties the head; appends older than the newest sample are refused afterwards. For
    /// backfilling (`pharos tsdb import`) and shutdown of short-lived databases.
    pub fn flush(&self) -> Result<()> {
        let inner = &self.inner;
        let range = inner.range_ms().unwrap_or(i64::MAX);
        // The truncations below then leave no segment holding only persisted samples.
        lock(&inner.wal).rotate_on_next_write();
        loop {
            let (min_t, max_t) = inner.head.time_range();
            if min_t > max_t {
                break;
            }
            let start = align(min_t, range);
            let end = start.saturating_add(range).min(max_t.saturating_add(1));
            inner.persist_range(start, end)?;
        }
        inner.maintain()
    }

    /// The persisted blocks, oldest first.
    pub fn blocks(&self) -> Vec<Arc<Block>> {
        self.inner.blocks()
    }
}

/// The start of the `range`-aligned window holding `t`.
fn align(t: i64, range: i64) -> i64 {
    t.div_euclid(range).saturating_mul(range)
}

/// Settles blocks a crash left mid-rewrite (see `block::Writer::finish`): `<name>.replaced.tmp`
/// is the old block, whole; it is put back if `<name>` never arrived, else deleted.
fn restore_replaced(dir: &Path) -> Result<()> {
    let entries =
        fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(base) = name.strip_suffix(files::REPLACED_SUFFIX) else {
            continue;
        };
        if !files::is_block_name(base) {
            continue;
        }
        let (old, new) = (entry.path(), dir.join(base));
        let done = if new.exists() {
            info!(path = %old.display(), "deleting a block replaced by its rewrite");
            fs::remove_dir_all(&old)
        } else {
            warn!(path = %old.display(), "a block rewrite did not finish; keeping the old block");
            fs::rename(&old, &new)
        };
        done.map_err(|e| Error::io(format!("settling {}", old.display()), e))?;
    }
    Ok(())
}

/// Opens the blocks of `dir`: deletes unfinished ones (`*.tmp`) and those already merged into a
/// compacted block, and moves damaged ones to `quarantine/` with a warning naming the file.
fn load_blocks(dir: &Path, counters: &Counters) -> Result<Vec<Arc<Block>>> {
    restore_replaced(dir)?;
    let entries =
        fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut blocks = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(files::BLOCK_PREFIX) && name.ends_with(files::TMP_SUFFIX) {
            info!(path = %path.display(), "deleting an unfinished block");
            if let Err(e) = fs::remove_dir_all(&path) {
                warn!(path = %path.display(), error = %e, "cannot delete an unfinished block");
            }
            continue;
        }
        if !files::is_block_name(&name) {
            continue;
        }
        match Block::open(&path) {
            Ok(b) => blocks.push(Arc::new(b)),
            Err(e) => {
                counters.quarantined.fetch_add(1, Ordering::Relaxed);
                let qdir = dir.join(files::QUARANTINE_DIR);
                let mut dest = qdir.join(&name);
                let mut n = 1;
                while dest.exists() {
                    dest = qdir.join(format!("{name}.{n}"));
                    n += 1;
                }
                let moved = fs::create_dir_all(&qdir).and_then(|()| fs::rename(&path, &dest));
                match moved {
                    Ok(()) => {
                        error!(block = %path.display(), error = %e, quarantine = %dest.display(),
                        "damaged block moved to quarantine; serving the other blocks")
                    }
                    Err(me) => error!(block = %path.display(), error = %e, move_error = %me,
                        "damaged block ignored (cannot move it to quarantine)"),
                }
            }
        }
    }
    // A crash between writing a compacted block and deleting its sources leaves both.
    let merged: Vec<(u32, BTreeSet<String>)> = blocks
        .iter()
        .map(|b| {
            let c = &b.meta().compaction;
            (c.level, c.sources.iter().cloned().collect())
        })
        .collect();
    let mut kept = Vec::new();
    for (i, b) in blocks.into_iter().enumerate() {
        let (level, sources) = &merged[i];
        let superseded = merged
            .iter()
            .enumerate()
            .any(|(j, (l, s))| j != i && l > level && sources.is_subset(s));
        if superseded {
            info!(block = %b.dir().display(), "deleting a block already merged by compaction");
            if let Err(e) = block::delete_dir(b.dir()) {
                warn!(block = %b.dir().display(), error = %e, "cannot delete a merged block");
            }
        } else {
            kept.push(b);
        }
    }
    kept.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
    if !kept.is_empty() {
        info!(blocks = kept.len(), "opened blocks");
    }
    Ok(kept)
}

impl Drop for Db {
    fn drop(&mut self) {
        self.stop_background();
    }
}

fn spawn_background(inner: &Arc<Inner>) -> Result<Background> {
    let (wake, woken) = mpsc::channel::<Wake>();
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let fsync = inner.opts.fsync_interval;
    let tick = if fsync.is_zero() {
        RETENTION_CHECK_INTERVAL
    } else {
        fsync.min(RETENTION_CHECK_INTERVAL)
    };
    let handle = std::thread::Builder::new()
        .name("tsdb-background".into())
        .spawn(move || {
            let mut last_retention = Instant::now();
            loop {
                let cut = match woken.recv_timeout(tick) {
                    Err(RecvTimeoutError::Timeout) => false,
                    Ok(Wake::Cut) => true,
                    Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                };
                let Some(inner) = weak.upgrade() else { return };
                if cut {
                    // Cleared first: a commit after this point may ask again.
                    inner.cut_pending.store(false, Ordering::SeqCst);
                    if let Err(e) = inner.maintain() {
                        error!(error = %e, "persisting the head into blocks failed");
                    }
                    continue;
                }
                inner.sync_if_dirty();
                if last_retention.elapsed() >= RETENTION_CHECK_INTERVAL {
                    last_retention = Instant::now();
                    if let Err(e) = inner.apply_retention() {
                        error!(error = %e, "retention failed");
                    }
                    if let Err(e) = inner.maintain() {
                        error!(error = %e, "persisting or compacting blocks failed");
                    }
                }
            }
        })
        .map_err(|e| Error::io("spawning the TSDB background thread", e))?;
    *lock(&inner.wake) = Some(wake);
    Ok(Background { handle })
}

impl Inner {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// A snapshot of the block list.
    fn blocks(&self) -> Vec<Arc<Block>> {
        self.blocks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The block range in ms, `None` if blocks are disabled.
    fn range_ms(&self) -> Option<i64> {
        let r = i64::try_from(self.opts.block_range.as_millis()).unwrap_or(i64::MAX);
        (r > 0).then_some(r)
    }

    /// True if the head spans 1.5 block ranges or more from the start of its oldest block
    /// window, so [`Inner::maintain`] would persist part of it.
    fn head_needs_cut(&self) -> bool {
        let Some(range) = self.range_ms() else {
            return false;
        };
        let (min_t, max_t) = self.head.time_range();
        min_t <= max_t
            && max_t.saturating_sub(align(min_t, range)) >= range.saturating_add(range / 2)
    }

    /// Asks the background thread to persist the head's old part if it is due, at most once
    /// until the thread starts on it. Cheap: called after every commit.
    fn request_cut_if_due(&self) {
        if !self.head_needs_cut() || self.cut_pending.swap(true, Ordering::SeqCst) {
            return;
        }
        match lock(&self.wake).as_ref() {
            Some(w) if w.send(Wake::Cut).is_ok() => {}
            // No background thread (yet, or any more): the periodic pass or open does it.
            _ => self.cut_pending.store(false, Ordering::SeqCst),
        }
    }

    /// Persists the head's data older than what the head must keep, compacts blocks and applies
    /// retention by size.
    fn maintain(&self) -> Result<()> {
        let Some(range) = self.range_ms() else {
            return Ok(());
        };
        loop {
            let (min_t, max_t) = self.head.time_range();
            if min_t > max_t {
                break;
            }
            let start = align(min_t, range);
            // As Prometheus: keep half a block range of head beyond the block being cut, so
            // late scrapes of the previous window still land in the head.
            if max_t.saturating_sub(start) < range.saturating_add(range / 2) {
                break;
            }
            self.persist_range(start, start.saturating_add(range))?;
        }
        self.compact_blocks(range)?;
        self.apply_size_retention();
        Ok(())
    }

    /// Writes the head's samples in `[min_t, max_t)` to a block, then truncates the head and
    /// the WAL before `max_t`. Appends older than `max_t` are refused from the start, so nothing
    /// appended meanwhile can be lost between the block and the truncation.
    fn persist_range(&self, min_t: i64, max_t: i64) -> Result<()> {
        let _serial = lock(&self.persisting);
        if self.is_closed() {
            return Err(Error::Closed);
        }
        if self.head.min_valid_t() >= max_t {
            // Persisted meanwhile by another caller (the background thread or `compact`).
            return Ok(());
        }
        let started = Instant::now();
        {
            let _wal = lock(&self.wal);
            self.head.raise_min_valid_t(max_t);
        }
        let mut w = block::Writer::new(&self.dir, min_t, max_t)?;
        let mut samples = Vec::new();
        for s in self.head.select(&[]) {
            samples.clear();
            let mut packed_won = false;
            if let Some((mut it, packed)) = s.iter_noting_packed(min_t, max_t - 1) {
                packed_won = packed;
                while let Some(x) = pharos_model::storage::SampleIterator::next(&mut it) {
                    samples.push(x);
                }
            }
            self.tombstones.filter_samples(&s.labels, &mut samples);
            w.add_samples_hinted(&s.labels, &samples, packed_won)?;
        }
        let series = w.num_series();
        if let Some(dir) = w.finish(min_t, max_t, 1, Vec::new())? {
            let b = Arc::new(Block::open(&dir)?);
            info!(block = %dir.display(), series, samples = b.meta().stats.num_samples,
                bytes = b.size(), elapsed = ?started.elapsed(), "persisted head block");
            self.counters.head_blocks.fetch_add(1, Ordering::Relaxed);
            self.add_block(b, &[]);
        }
        // Still serialized: a concurrent caller must see the head truncated, not the same
        // window again.
        let truncated = self.truncate_before(max_t);
        drop(_serial);
        truncated
    }

    /// Adds `b` to the block list, removing `replaced` (and any block in the same directory).
    fn add_block(&self, b: Arc<Block>, replaced: &[Arc<Block>]) {
        let mut blocks = self.blocks.write().unwrap_or_else(PoisonError::into_inner);
        blocks.retain(|x| x.dir() != b.dir() && !replaced.iter().any(|r| Arc::ptr_eq(r, x)));
        blocks.push(b);
        blocks.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
    }

    /// Removes blocks from the list and deletes their directories (queriers still reading them
    /// keep their mappings).
    fn delete_blocks(&self, gone: &[Arc<Block>]) {
        self.blocks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|x| !gone.iter().any(|g| Arc::ptr_eq(g, x)));
        for b in gone {
            match block::delete_dir(b.dir()) {
                Ok(()) => {
                    self.counters.blocks_deleted.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => warn!(block = %b.dir().display(), error = %e, "cannot delete block"),
            }
        }
    }

    /// Deletes the oldest blocks while blocks and WAL together exceed `retention_size`.
    fn apply_size_retention(&self) {
        let limit = self.opts.retention_size;
        if limit == 0 {
            return;
        }
        let (_, wal_bytes) = lock(&self.wal).size();
        let blocks = self.blocks();
        let mut total = wal_bytes + blocks.iter().map(|b| b.size()).sum::<u64>();
        let mut gone = Vec::new();
        for b in blocks {
            if total <= limit {
                break;
            }
            total -= b.size();
            gone.push(b);
        }
        if !gone.is_empty() {
            info!(
                blocks = gone.len(),
                limit, "deleting the oldest blocks past the retention size"
            );
            self.delete_blocks(&gone);
        }
    }

    /// Merges adjacent blocks into windows 3, 9 and 27 block ranges long (capped at a tenth of
    /// the retention time, as Prometheus does), once a window is complete: the newest block
    /// ends at or after it.
    fn compact_blocks(&self, range: i64) -> Result<()> {
        let retention = i64::try_from(self.opts.retention.as_millis()).unwrap_or(i64::MAX);
        let max_window = if retention > 0 {
            retention / 10
        } else {
            i64::MAX
        };
        let mut window = range;
        for _ in 0..3 {
            window = window.saturating_mul(3);
            if window > max_window {
                break;
            }
            loop {
                let _serial = lock(&self.persisting);
                if self.is_closed() {
                    return Err(Error::Closed);
                }
                let blocks = self.blocks();
                let Some(newest_end) = blocks.iter().map(|b| b.meta().max_time).max() else {
                    return Ok(());
                };
                let mut groups: BTreeMap<i64, Vec<Arc<Block>>> = BTreeMap::new();
                for b in &blocks {
                    let start = align(b.meta().min_time, window);
                    if b.meta().max_time <= start.saturating_add(window) {
                        groups.entry(start).or_default().push(b.clone());
                    }
                }
                let Some((start, group)) = groups
                    .into_iter()
                    .find(|(start, g)| g.len() >= 2 && start.saturating_add(window) <= newest_end)
                else {
                    break;
                };
                let started = Instant::now();
                let min_t = group
                    .iter()
                    .map(|b| b.meta().min_time)
                    .min()
                    .unwrap_or(start);
                let max_t = group
                    .iter()
                    .map(|b| b.meta().max_time)
                    .max()
                    .unwrap_or(start);
                self.counters.compactions.fetch_add(1, Ordering::Relaxed);
                let Some(dir) = block::compact(&self.dir, &group, min_t, max_t)? else {
                    self.delete_blocks(&group);
                    continue;
                };
                let b = Arc::new(Block::open(&dir)?);
                info!(block = %dir.display(), sources = group.len(), elapsed = ?started.elapsed(),
                    "compacted blocks");
                self.add_block(b, &group);
                for g in &group {
                    if let Err(e) = block::delete_dir(g.dir()) {
                        warn!(block = %g.dir().display(), error = %e, "cannot delete a compacted block");
                    }
                }
            }
        }
        Ok(())
    }

    /// Fsyncs the WAL if needed, without holding the WAL lock during the fsync.
    fn sync_if_dirty(&self) {
        let file = lock(&self.wal).take_unsynced();
        let result = match file {
            None => return,
            Some(f) => f.and_then(|f| f.sync_data()),
        };
        if let Err(e) = result {
            warn!(error = %e, "fsyncing the WAL failed; will retry");
            lock(&self.wal).mark_dirty();
        }
    }

    fn apply_retention(&self) -> Result<()> {
        self.apply_size_retention();
        let (_, head_max) = self.head.time_range();
        let block_max = self
            .blocks()
            .last()
            .map_or(i64::MIN, |b| b.meta().max_time - 1);
        let max_t = head_max.max(block_max);
        let keep = i64::try_from(self.opts.retention.as_millis()).unwrap_or(i64::MAX);
        if keep == 0 || max_t == i64::MIN {
            return Ok(());
        }
        let min_t = max_t.saturating_sub(keep);
        let expired: Vec<Arc<Block>> = self
            .blocks()
            .into_iter()
            .filter(|b| b.meta().max_time <= min_t)
            .collect();
        if !expired.is_empty() {
            info!(
                blocks = expired.len(),
                min_t, "deleting blocks past the retention time"
            );
            self.delete_blocks(&expired);
        }
        if min_t <= self.head.min_valid_t() {
            return Ok(());
        }
        self.truncate_before(min_t)
    }

    fn truncate_before(&self, min_t: i64) -> Result<()> {
        let _serial = lock(&self.truncating);
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let started = Instant::now();
        let empty = self.head.truncate_samples(min_t);
        let mut wal = lock(&self.wal);
        if self.is_closed() {
            return Err(Error::Closed);
        }
        // Under the WAL lock: no commit is between its WAL write and its head update.
        let removed_series = self.head.remove_empty(&empty);
        let mut buf = Vec::new();
        wal::encode_truncation(&mut buf, min_t);
        wal.log(&buf, i64::MIN)?;
        let cut = wal.truncatable_before(min_t);
        drop(wal);
        let mut deleted = 0;
        if let Some(last) = cut {
            // Series records of the deleted segments live on in the checkpoint; series created
            // from now on are logged in segments after `last`.
            let series = self.head.all_series();
            wal::write_checkpoint(&self.wal_dir, last, &series, self.head.min_valid_t())?;
            let paths = lock(&self.wal).drop_segments(last);
            for p in paths {
                match fs::remove_file(&p) {
                    Ok(()) => deleted += 1,
                    Err(e) => warn!(path = %p.display(), error = %e, "cannot delete WAL segment"),
                }
            }
            for p in wal::list(&self.wal_dir)?.obsolete {
                if let Err(e) = fs::remove_file(&p) {
                    warn!(path = %p.display(), error = %e, "cannot delete old checkpoint");
                }
            }
            wal::sync_dir(&self.wal_dir)?;
        }
        info!(
            min_t,
            removed_series,
            deleted_segments = deleted,
            elapsed = ?started.elapsed(),
            "truncated head and WAL"
        );
        Ok(())
    }
}

/// What replay has learnt beyond the head.
#[derive(Debug, Default)]
struct Replay {
    /// Refs of Series records whose labels already had another ref (a series removed by
    /// retention and created again): their samples go to the existing series.
    aliases: HashMap<u64, u64>,
    records: u64,
    samples: u64,
    skipped: u64,
    /// Decoded samples of one chunk (reused).
    scratch: Vec<pharos_model::Sample>,
}

impl Replay {
    fn apply(&mut self, head: &Head, rec: Record, max_t: &mut i64) {
        self.records += 1;
        match rec {
            Record::Series(list) => {
                for (r, labels) in list {
                    head.reserve_ref(r);
                    if labels.is_empty() {
                        warn!(series = r, "WAL series record without labels; skipped");
                        continue;
                    }
                    if let Some(s) = head.series(r) {
                        let old = head.labels(&s);
                        if old != labels {
                            warn!(series = r, old = %old, new = %labels,
                                "WAL series ref reused with other labels; keeping the first");
                        }
                        continue;
                    }
                    let s = head.get_or_create(r, labels);
                    if s.id != r {
                        self.aliases.insert(r, s.id);
                    }
                }
            }
            Record::Samples(samples) => {
                for s in &samples {
                    *max_t = (*max_t).max(s.t);
                }
                let total = samples.len() as u64;
                let mut skipped = 0;
                let aliases = &self.aliases;
                head.append_batch(
                    samples.iter().map(|s| {
                        let r = aliases.get(&s.series).copied().unwrap_or(s.series);
                        (r, s.t, s.v)
                    }),
                    |_, r| {
                        if !matches!(r, Refused::Duplicate) {
                            skipped += 1
                        }
                    },
                );
                self.samples += total - skipped;
                self.skipped += skipped;
            }
            Record::Truncation(min_t) => {
                // Series left empty are removed at the end of replay: later records (or the
                // rest of a checkpoint) may still add samples to them.
                head.truncate_samples(min_t);
            }
        }
    }

    /// Applies what [`wal::read_records_chunked`] hands over: chunk records go to the head
    /// as encoded chunks.
    fn apply_replayed(&mut self, head: &Head, rec: wal::Replayed<'_>, max_t: &mut i64) {
        let chunks = match rec {
            wal::Replayed::Record(r) => return self.apply(head, r, max_t),
            wal::Replayed::Chunks(chunks) => chunks,
        };
        self.records += 1;
        let aliases = &self.aliases;
        let (added, skipped, newest) = head.append_chunks(
            chunks.iter().map(|c| {
                let r = aliases.get(&c.series).copied().unwrap_or(c.series);
                (r, c.encoding, c.bytes)
            }),
            &mut self.scratch,
        );
        *max_t = (*max_t).max(newest);
        self.samples += added;
        self.skipped += skipped;
    }
}

/// Replays the checkpoint and the segments after it into `head`; returns the segments kept.
fn replay(wal_dir: &Path, head: &Head, counters: &Counters) -> Result<BTreeMap<u64, SegmentInfo>> {
    let started = Instant::now();
    let listing = wal::list(wal_dir)?;
    for p in &listing.obsolete {
        if let Err(e) = fs::remove_file(p) {
            warn!(path = %p.display(), error = %e, "cannot delete obsolete WAL file");
        }
    }
    let mut state = Replay::default();
    let covered = listing.checkpoint.as_ref().map(|(n, _)| *n);
    if let Some((_, path)) = &listing.checkpoint {
        info!(checkpoint = %path.display(), "replaying WAL checkpoint");
        match fs::read(path) {
            Ok(data) => {
                let mut ignored = i64::MIN;
                if let Some((offset, reason)) = wal::read_records_chunked(&data, |r| {
                    state.apply_replayed(head, r, &mut ignored)
                }) {
                    warn!(checkpoint = %path.display(), offset, reason, "corrupt WAL checkpoint record; the rest of the checkpoint is lost");
                    counters.wal_corruptions.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                warn!(checkpoint = %path.display(), error = %e, "cannot read WAL checkpoint");
                counters.wal_corruptions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let mut segments = Vec::new();
    for (n, path) in listing.segments {
        if covered.is_some_and(|c| n <= c) {
            // Left over from an interrupted truncation: the checkpoint supersedes it.
            if let Err(e) = fs::remove_file(&path) {
                warn!(path = %path.display(), error = %e, "cannot delete WAL segment");
            }
        } else {
            segments.push((n, path));
        }
    }
    let mut kept = BTreeMap::new();
    let total = segments.len();
    let mut prev: Option<u64> = covered;
    for (i, (n, path)) in segments.into_iter().enumerate() {
        if let Some(p) = prev
            && n != p + 1
        {
            warn!(after = p, next = n, "gap in WAL segment numbers");
        }
        prev = Some(n);
        info!(segment = %path.display(), "replaying WAL segment {}/{}", i + 1, total);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) => {
                warn!(segment = %path.display(), error = %e, "cannot read WAL segment; skipped");
                counters.wal_corruptions.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let mut max_t = i64::MIN;
        let mut bytes = data.len() as u64;
        if let Some((offset, reason)) =
            wal::read_records_chunked(&data, |r| state.apply_replayed(head, r, &mut max_t))
        {
            warn!(segment = %path.display(), offset, reason,
                "torn or corrupt WAL record: truncating the segment there");
            counters.wal_corruptions.fetch_add(1, Ordering::Relaxed);
            let cut = File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(offset).and_then(|()| f.sync_all()));
            match cut {
                Ok(()) => bytes = offset,
                Err(e) => {
                    warn!(segment = %path.display(), error = %e, "cannot truncate WAL segment")
                }
            }
        }
        if bytes == 0 {
            // Nothing in it: a fresh segment of a previous run. Keep numbering dense.
            if let Err(e) = fs::remove_file(&path) {
                warn!(segment = %path.display(), error = %e, "cannot delete empty WAL segment");
                kept.insert(n, SegmentInfo { bytes, max_t });
            }
            continue;
        }
        kept.insert(n, SegmentInfo { bytes, max_t });
    }
    // Series of the checkpoint whose samples are all gone have nothing to show.
    let empty = head.truncate_samples(head.min_valid_t());
    head.remove_empty(&empty);
    counters
        .replayed_records
        .store(state.records, Ordering::Relaxed);
    if state.skipped > 0 {
        warn!(
            skipped = state.skipped,
            "WAL samples of unknown series or out of order were skipped"
        );
    }
    info!(
        segments = total,
        records = state.records,
        series = head.num_series(),
        samples = state.samples,
        elapsed = ?started.elapsed(),
        "replayed WAL"
    );
    Ok(kept)
}

impl Appendable for Db {
    fn appender(&self) -> Box<dyn Appender> {
        let n = self.inner.head.batch_hint();
        Box::new(DbAppender {
            inner: self.inner.clone(),
            samples: Vec::with_capacity(n),
            new_series: Vec::new(),
            new_by_labels: HashMap::new(),
            // Sized by the first append that checks at once (`reserve_maps`): a scrape's
            // deferred samples never use them.
            existing: IntMap::default(),
            last: IntMap::default(),
            cur: None,
        })
    }
}

/// A batch of samples buffered until commit.
struct DbAppender {
    inner: Arc<Inner>,
    samples: Vec<RefSample>,
    /// Series unknown to the head when appended, with the refs handed out for them.
    new_series: Vec<(u64, Labels)>,
    new_by_labels: HashMap<Labels, u64>,
    /// Series found in the head when appended (retention may remove them before commit).
    existing: IntMap<u64, Arc<MemSeries>>,
    /// Newest sample of each series in this batch.
    last: IntMap<u64, Sample>,
    /// The series of the previous accepted sample and that sample, newer than its `last` entry:
    /// consecutive samples of one series (as remote write sends them) skip the map lookups.
    cur: Option<(u64, Sample)>,
}

impl DbAppender {
    /// Sizes `existing` and `last` for a batch like the previous one, once.
    fn reserve_maps(&mut self) {
        if self.last.capacity() == 0 {
            let n = self.samples.capacity();
            self.last.reserve(n);
            self.existing.reserve(n);
        }
    }

    /// Writes the fast path's newest sample back into `last`.
    fn flush_cur(&mut self) {
        if let Some((r, s)) = self.cur.take() {
            self.last.insert(r, s);
        }
    }

    /// Buffers `(t, v)` for series `r` whose newest sample is `last` if the head accepts it after
    /// that sample (a duplicate is dropped silently), counting a rejection.
    fn push_checked(
        &mut self,
        r: u64,
        last: Option<Sample>,
        t: i64,
        v: f64,
    ) -> storage::Result<SeriesRef> {
        match self.inner.head.check(last, t, v) {
            Ok(true) => {
                self.samples.push(RefSample { series: r, t, v });
                // `flush_cur` records it in `last` when another series comes.
                self.cur = Some((r, Sample { t, v }));
            }
            Ok(false) => {}
            Err(e) => {
                self.inner.counters.count(&e);
                return Err(e);
            }
        }
        Ok(SeriesRef(r))
    }

    /// Commits: new series into the WAL and the head, the samples into the head (which checks
    /// each against its series' newest sample again: another appender may have added newer
    /// ones, and deferred samples are checked only here), then the samples it took into the
    /// WAL. Refusals are counted, and also in `report` if given, which gets the samples of
    /// series gone meanwhile; without it those count as out of bounds.
    ///
    /// The head takes the samples before the WAL does so that the WAL holds only what the head
    /// took (the WAL feeds remote write). The caller learns of neither before this returns: if
    /// the WAL write fails, the samples are in the head, queryable and persisted with it, but a
    /// crash before that loses them, and the commit fails.
    fn finish(mut self, mut report: Option<&mut CommitReport>) -> storage::Result<()> {
        self.flush_cur();
        let inner = self.inner.clone();
        let mut wal = lock(&inner.wal);
        if inner.is_closed() {
            return Err(storage::Error::Closed);
        }
        if self.samples.is_empty() {
            return Ok(());
        }
        // Another appender may have created some of our new series since we looked.
        let mut remap = HashMap::new();
        let mut created = Vec::new();
        let mut candidates = std::mem::take(&mut self.new_series);
        // Series removed by retention since they were appended to are created again (same ref).
        for r in inner.head.missing(self.existing.keys().copied()) {
            if let Some(s) = self.existing.get(&r) {
                candidates.push((r, inner.head.labels(s)));
            }
        }
        // Only series with accepted samples.
        candidates.retain(|(r, _)| self.last.contains_key(r));
        for (r, labels) in candidates {
            match inner.head.series_by_labels(&labels) {
                Some(s) => {
                    remap.insert(r, s.id);
                }
                None => created.push((r, labels)),
            }
        }
        if !remap.is_empty() {
            for s in &mut self.samples {
                if let Some(&n) = remap.get(&s.series) {
                    s.series = n;
                }
            }
        }
        let mut buf = wal.take_buffer();
        buf.reserve(20 * self.samples.len() + 32);
        let logged_series = !created.is_empty();
        if logged_series {
            // In the WAL before any sample of theirs.
            wal::encode_series(&mut buf, created.iter().map(|(r, l)| (*r, l)));
            wal.log(&buf, i64::MIN)?;
            buf.clear();
            for (r, labels) in created {
                inner.head.get_or_create(r, labels);
            }
        }
        let counters = &inner.counters;
        let mut refused = Vec::new();
        let samples = &self.samples;
        inner
            .head
            .append_batch(samples.iter().map(|s| (s.series, s.t, s.v)), |i, why| {
                refused.push(i);
                match why {
                    Refused::Duplicate => {}
                    Refused::Unknown => match report.as_deref_mut() {
                        Some(rep) => {
                            if let Some(s) = samples.get(i) {
                                rep.unknown.push((SeriesRef(s.series), s.t, s.v));
                            }
                        }
                        None => counters.count(&storage::Error::OutOfBounds),
                    },
                    Refused::Rejected(e) => {
                        debug!(error = %e, "sample rejected at commit");
                        counters.count(&e);
                        if let Some(rep) = report.as_deref_mut() {
                            rep.count(&e);
                        }
                    }
                }
            });
        if !refused.is_empty() {
            let mut i = 0;
            let mut next = refused.iter().copied().peekable();
            self.samples.retain(|_| {
                let keep = next.peek() != Some(&i);
                if !keep {
                    next.next();
                }
                i += 1;
                keep
            });
        }
        if !self.samples.is_empty() {
            wal::encode_samples(&mut buf, &self.samples);
            let max_t = self.samples.iter().map(|s| s.t).max().unwrap_or(i64::MIN);
            wal.log(&buf, max_t)?;
        }
        wal.give_back(buf);
        if self.samples.is_empty() && !logged_series {
            return Ok(());
        }
        let synced = if inner.opts.fsync_interval.is_zero() {
            wal.sync()
        } else {
            Ok(())
        };
        drop(wal);
        inner.request_cut_if_due();
        synced.map_err(Into::into)
    }

    /// The series' ref and its newest sample, in this batch or else in the head (`None` if new).
    fn resolve(
        &mut self,
        series_ref: Option<SeriesRef>,
        labels: &Labels,
    ) -> storage::Result<(u64, Option<Sample>)> {
        let head = &self.inner.head;
        if let Some(SeriesRef(r)) = series_ref {
            if let Some(&last) = self.last.get(&r) {
                return Ok((r, Some(last)));
            }
            if let Some(s) = self.existing.get(&r) {
                return Ok((r, s.last()));
            }
            if let Some(s) = head.series(r) {
                let last = s.last();
                self.existing.insert(r, s);
                return Ok((r, last));
            }
        }
        if labels.is_empty() {
            return Err(storage::Error::InvalidLabels("empty label set".into()));
        }
        if let Some(&r) = self.new_by_labels.get(labels) {
            return Ok((r, self.last.get(&r).copied()));
        }
        if let Some(s) = head.series_by_labels(labels) {
            let r = s.id;
            if let Some(&last) = self.last.get(&r) {
                return Ok((r, Some(last)));
            }
            let last = s.last();
            self.existing.insert(r, s);
            return Ok((r, last));
        }
        let r = head.alloc_ref();
        self.new_series.push((r, labels.clone()));
        self.new_by_labels.insert(labels.clone(), r);
        Ok((r, None))
    }
}

impl Appender for DbAppender {
    fn append(
        &mut self,
        series_ref: Option<SeriesRef>,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> storage::Result<SeriesRef> {
        let inner = &self.inner;
        if inner.is_closed() {
            return Err(storage::Error::Closed);
        }
        // Checked first so that no series is created for a rejected sample.
        if t < inner.head.min_valid_t() {
            inner.counters.count(&storage::Error::OutOfBounds);
            return Err(storage::Error::OutOfBounds);
        }
        if let (Some(SeriesRef(r)), Some((cr, last))) = (series_ref, self.cur)
            && r == cr
        {
            return self.push_checked(r, Some(last), t, v);
        }
        self.flush_cur();
        self.reserve_maps();
        let (r, last) = self.resolve(series_ref, labels)?;
        self.push_checked(r, last, t, v)
    }

    fn append_by_ref(
        &mut self,
        series_ref: SeriesRef,
        t: i64,
        v: f64,
    ) -> storage::Result<Option<SeriesRef>> {
        let r = series_ref.0;
        self.reserve_maps();
        let known = self.cur.is_some_and(|(c, _)| c == r)
            || self.last.contains_key(&r)
            || self.existing.contains_key(&r)
            || match self.inner.head.series(r) {
                Some(s) => {
                    // Kept so that `resolve` finds it even if retention removes it meanwhile.
                    self.existing.insert(r, s);
                    true
                }
                None => false,
            };
        if !known {
            return Ok(None);
        }
        self.append(Some(series_ref), &Labels::default(), t, v)
            .map(Some)
    }

    fn append_deferred(
        &mut self,
        series_ref: SeriesRef,
        t: i64,
        v: f64,
    ) -> storage::Result<Option<SeriesRef>> {
        let inner = &self.inner;
        if inner.is_closed() {
            return Err(storage::Error::Closed);
        }
        if t < inner.head.min_valid_t() {
            inner.counters.count(&storage::Error::OutOfBounds);
            return Err(storage::Error::OutOfBounds);
        }
        // Not looked up now: the commit finds the series and checks the sample under the lock
        // it takes to append anyway, and hands the sample back if the series is gone.
        self.samples.push(RefSample {
            series: series_ref.0,
            t,
            v,
        });
        Ok(Some(series_ref))
    }

    fn commit(self: Box<Self>) -> storage::Result<()> {
        (*self).finish(None)
    }

    fn commit_report(self: Box<Self>) -> storage::Result<CommitReport> {
        let mut report = CommitReport::default();
        (*self).finish(Some(&mut report))?;
        Ok(report)
    }

    fn rollback(self: Box<Self>) -> storage::Result<()> {
        Ok(())
    }
}

impl Queryable for Db {
    fn querier(&self, min_t: i64, max_t: i64) -> storage::Result<Box<dyn Querier>> {
        let blocks = self
            .inner
            .blocks()
            .into_iter()
            .filter(|b| b.overlaps(min_t, max_t))
            .collect();
        Ok(Box::new(DbQuerier {
            inner: self.inner.clone(),
            blocks,
            min_t,
            max_t,
        }))
    }
}

/// Reads the blocks and the head within `[min_t, max_t]`.
struct DbQuerier {
    inner: Arc<Inner>,
    /// The blocks overlapping the range, oldest first (a snapshot: blocks deleted meanwhile
    /// stay readable through their mappings).
    blocks: Vec<Arc<Block>>,
    min_t: i64,
    max_t: i64,
}

impl DbQuerier {
    /// True if the head may hold samples in the querier's range.
    fn head_overlaps(&self) -> bool {
        let (min, max) = self.inner.head.time_range();
        min <= max && min <= self.max_t && self.min_t <= max
    }
}

/// Sorted, deduplicated union of sorted string lists.
fn merge_sorted(lists: Vec<Vec<String>>) -> Vec<String> {
    let mut all: Vec<String> = lists.into_iter().flatten().collect();
    all.sort_unstable();
    all.dedup();
    all
}

impl Querier for DbQuerier {
    fn select(&self, matchers: &[Matcher], _hints: &SelectHints) -> storage::Result<SeriesSet> {
        let (min_t, max_t) = (self.min_t, self.max_t);
        // (labels, source order, samples); blocks first, oldest first, then the head.
        let mut found: Vec<(Labels, usize, Box<dyn storage::SampleIterator>)> = Vec::new();
        for (bi, b) in self.blocks.iter().enumerate() {
            for i in b.select(matchers)? {
                let (labels, chunks) = b.series(i, min_t, max_t)?;
                if let Some(it) = ChunksIterator::new(chunks, min_t, max_t) {
                    found.push((labels, bi, Box::new(it)));
                }
            }
        }
        if self.blocks.is_empty() {
            if !self.head_overlaps() {
                return Ok(Box::new(std::iter::empty()));
            }
            // Head only: its series come sorted; chunks are decoded lazily as the caller iterates.
            let series = self.inner.head.select(matchers);
            let inner = self.inner.clone();
            return Ok(Box::new(series.into_iter().filter_map(move |s| {
                let samples = s.iter(min_t, max_t)?;
                inner.tombstones.filter(Series {
                    labels: s.labels.clone(),
                    samples: Box::new(samples),
                })
            })));
        }
        if self.head_overlaps() {
            let head_order = self.blocks.len();
            for s in self.inner.head.select(matchers) {
                if let Some(it) = s.iter(min_t, max_t) {
                    found.push((s.labels.clone(), head_order, Box::new(it)));
                }
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut out: Vec<Series> = Vec::new();
        let mut group: Vec<Box<dyn storage::SampleIterator>> = Vec::new();
        let mut iter = found.into_iter().peekable();
        while let Some((labels, _, it)) = iter.next() {
            group.push(it);
            if iter.peek().is_some_and(|(next, _, _)| *next == labels) {
                continue;
            }
            let samples: Box<dyn storage::SampleIterator> = if group.len() == 1 {
                group
                    .pop()
                    .unwrap_or_else(|| Box::new(storage::VecSampleIterator::new(Vec::new())))
            } else {
                Box::new(MergeIterator::new(std::mem::take(&mut group)))
            };
            out.extend(self.inner.tombstones.filter(Series { labels, samples }));
        }
        Ok(Box::new(out.into_iter()))
    }

    fn label_names(&self, matchers: &[Matcher]) -> storage::Result<Vec<String>> {
        let mut lists = Vec::new();
        for b in &self.blocks {
            lists.push(b.label_names(matchers)?);
        }
        if self.head_overlaps() {
            lists.push(self.inner.head.label_names(matchers));
        }
        Ok(merge_sorted(lists))
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> storage::Result<Vec<String>> {
        let mut lists = Vec::new();
        for b in &self.blocks {
            lists.push(b.label_values(name, matchers)?);
        }
        if self.head_overlaps() {
            lists.push(self.inner.head.label_values(name, matchers));
        }
        Ok(merge_sorted(lists))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharos_model::storage::{SelectHints, collect_samples};

    /// `(labels, (t, v bits))` of every series in the database.
    fn all(db: &Db) -> Vec<(String, Vec<(i64, u64)>)> {
        let q = db.querier(i64::MIN, i64::MAX).unwrap();
        q.select(&[], &SelectHints::default())
            .unwrap()
            .map(|mut s| {
                let samples = collect_samples(s.samples.as_mut());
                let samples = samples.into_iter().map(|s| (s.t, s.v.to_bits())).collect();
                (s.labels.to_string(), samples)
            })
            .collect()
    }

    fn part(db: &Db, name: &str) -> u64 {
        let m = db.head_memory();
        m.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).unwrap()
    }

    /// After a clean stop, replay keeps the stop's chunks in their (denser) encoding: the
    /// same samples in fewer head bytes; appends continue after them; a second stop and
    /// replay round-trips again, and a WAL of sample records still replays.
    #[test]
    fn replay_of_compact_wal_keeps_chunks_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let opts = || Options {
            retention: Duration::ZERO,
            ..Options::default()
        };
        let db = Db::open(dir.path(), opts()).unwrap();
        let series: Vec<Labels> = (0..50)
            .map(|i| Labels::from_pairs(&[("__name__", "m"), ("i", &i.to_string())]))
            .collect();
        let t0 = 1_700_000_000_000i64;
        for k in 0..240i64 {
            let mut app = db.appender();
            for (i, l) in series.iter().enumerate() {
                let v = (k * (i as i64 + 1) * 7 % 1000) as f64 / 100.0 + 1e4;
                app.append(None, l, t0 + k * 15_000, v).unwrap();
            }
            app.commit().unwrap();
        }
        let want = all(&db);
        let before = part(&db, "B closed chunk bytes (+Arc header)");
        db.close().unwrap();
        drop(db);
        // A WAL of sample records (as a crash leaves it) replays as before.
        let db = Db::open(dir.path(), opts()).unwrap();
        assert_eq!(all(&db), want);
        db.close_compacting_wal().unwrap();
        drop(db);
        let db = Db::open(dir.path(), opts()).unwrap();
        assert_eq!(all(&db), want);
        let after = part(&db, "B closed chunk bytes (+Arc header)");
        assert!(
            after < before,
            "head chunk bytes {after} after replay, {before} before"
        );
        assert_eq!(part(&db, "open_chunks"), 0);
        // Appends follow the replayed chunks; older samples are refused.
        let mut app = db.appender();
        assert!(app.append(None, &series[0], t0, 1.0).is_err());
        app.append(None, &series[0], t0 + 240 * 15_000, 1.0)
            .unwrap();
        app.commit().unwrap();
        let mut want = want;
        want[0].1.push((t0 + 240 * 15_000, 1f64.to_bits()));
        assert_eq!(all(&db), want);
        db.close_compacting_wal().unwrap();
        drop(db);
        let db = Db::open(dir.path(), opts()).unwrap();
        assert_eq!(all(&db), want);
        assert_eq!(db.stats().head_samples, 50 * 240 + 1);
    }
}
