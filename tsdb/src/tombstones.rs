//! Tombstones: the time intervals of series deleted through the admin API
//! (`delete_series`), kept in `<data>/tombstones.json` (written to a temporary file, fsynced and
//! renamed into place, so a deletion survives a crash once it is acknowledged).
//!
//! Queries over blocks and head skip the deleted samples; persisting the head into a block drops
//! them; [`Db::clean_tombstones`] rewrites the blocks holding deleted samples without them and
//! then forgets the intervals that no longer cover anything in the head.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use pharos_model::storage::{self, Admin, SampleIterator, Series, VecSampleIterator};
use pharos_model::{Labels, Matcher, Sample};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use super::{Db, Inner, lock};
use crate::block::{self, Block};
use crate::iter::ChunksIterator;
use crate::{Error, Result, files};

/// The file holding the tombstones, in the data directory.
pub const TOMBSTONES_FILE: &str = "tombstones.json";
/// Where [`Db::clean_tombstones`] writes the rewritten blocks before swapping them in.
const CLEAN_DIR: &str = "clean.tmp";

/// Closed time intervals `[min, max]` (ms), sorted and not overlapping.
pub type Intervals = Vec<(i64, i64)>;

/// The deleted intervals per series.
#[derive(Debug)]
pub struct Tombstones {
    path: PathBuf,
    map: RwLock<BTreeMap<Labels, Intervals>>,
    /// Serializes changes and their writes to the file.
    writing: Mutex<()>,
}

#[derive(Serialize, Deserialize)]
struct FileEntry {
    labels: Vec<(String, String)>,
    intervals: Intervals,
}

#[derive(Serialize, Deserialize)]
struct FileData {
    version: u32,
    series: Vec<FileEntry>,
}

/// Moves an undecodable tombstones file to `quarantine/tombstones-<unix ms>.json` so the database
/// still opens: the deleted samples become visible again (logged as an error naming the file), and
/// the damaged file is kept for inspection.
fn quarantine(dir: &Path, path: &Path, problem: &str) -> Result<()> {
    let qdir = dir.join(files::QUARANTINE_DIR);
    fs::create_dir_all(&qdir).map_err(|e| Error::io(format!("creating {}", qdir.display()), e))?;
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let dest = qdir.join(format!("tombstones-{ms}.json"));
    fs::rename(path, &dest).map_err(|e| {
        Error::io(
            format!("moving damaged {} to {}", path.display(), dest.display()),
            e,
        )
    })?;
    error!(file = %path.display(), error = problem, quarantine = %dest.display(),
        "damaged tombstones file moved to quarantine; series deleted through the admin API are visible again");
    Ok(())
}

/// Adds `[a, b]` to sorted disjoint `iv`, merging what it touches.
fn add_interval(iv: &mut Intervals, a: i64, b: i64) {
    iv.push((a, b));
    iv.sort_unstable();
    let mut out: Intervals = Vec::with_capacity(iv.len());
    for &(x, y) in iv.iter() {
        match out.last_mut() {
            Some(last) if x <= last.1.saturating_add(1) => last.1 = last.1.max(y),
            _ => out.push((x, y)),
        }
    }
    *iv = out;
}

fn deleted(iv: &[(i64, i64)], t: i64) -> bool {
    iv.iter().any(|&(a, b)| a <= t && t <= b)
}

impl Tombstones {
    /// Loads the tombstones of the data directory `dir` (none if the file is missing), and
    /// finishes a [`Db::clean_tombstones`] interrupted by a crash.
    pub fn load(dir: &Path) -> Result<Tombstones> {
        recover_clean(dir)?;
        let path = dir.join(TOMBSTONES_FILE);
        let map = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<FileData>(&bytes) {
                Ok(data) => data
                    .series
                    .into_iter()
                    .map(|e| (Labels::from_pairs(&e.labels), e.intervals))
                    .collect(),
                Err(e) => {
                    quarantine(dir, &path, &e.to_string())?;
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        Ok(Tombstones {
            path,
            map: RwLock::new(map),
            writing: Mutex::new(()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Labels, Intervals>> {
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The deleted intervals of `labels`, if any.
    pub fn intervals(&self, labels: &Labels) -> Option<Intervals> {
        self.read().get(labels).cloned()
    }

    /// A copy of all tombstones.
    pub fn all(&self) -> BTreeMap<Labels, Intervals> {
        self.read().clone()
    }

    /// Applies `f` to the tombstones and writes the result durably before it takes effect.
    fn update(&self, f: impl FnOnce(&mut BTreeMap<Labels, Intervals>)) -> Result<()> {
        let _w = lock(&self.writing);
        let mut next = self.read().clone();
        f(&mut next);
        next.retain(|_, iv| !iv.is_empty());
        write_file(&self.path, &next)?;
        *self
            .map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next;
        Ok(())
    }

    /// Marks `[min_t, max_t]` of each series in `series` deleted.
    pub fn add(&self, series: &[Labels], min_t: i64, max_t: i64) -> Result<()> {
        if series.is_empty() || min_t > max_t {
            return Ok(());
        }
        self.update(|m| {
            for l in series {
                add_interval(m.entry(l.clone()).or_default(), min_t, max_t);
            }
        })
    }

    /// Keeps only the parts of intervals at or after `t`.
    pub fn forget_before(&self, t: i64) -> Result<()> {
        self.update(|m| {
            for iv in m.values_mut() {
                iv.retain(|&(_, b)| b >= t);
                for x in iv.iter_mut() {
                    x.0 = x.0.max(t);
                }
            }
        })
    }

    /// Removes the deleted samples from `samples` of the series `labels`.
    pub fn filter_samples(&self, labels: &Labels, samples: &mut Vec<Sample>) {
        if let Some(iv) = self.read().get(labels) {
            samples.retain(|s| !deleted(iv, s.t));
        }
    }

    /// The series without its deleted samples; `None` if none are left.
    pub fn filter(&self, s: Series) -> Option<Series> {
        let Some(iv) = self.intervals(&s.labels) else {
            return Some(s);
        };
        let mut it = s.samples;
        let mut kept = Vec::new();
        while let Some(x) = it.next() {
            if !deleted(&iv, x.t) {
                kept.push(x);
            }
        }
        if kept.is_empty() {
            return None;
        }
        Some(Series {
            labels: s.labels,
            samples: Box::new(VecSampleIterator::new(kept)),
        })
    }
}

fn write_file(path: &Path, map: &BTreeMap<Labels, Intervals>) -> Result<()> {
    let data = FileData {
        version: 1,
        series: map
            .iter()
            .map(|(l, iv)| FileEntry {
                labels: l
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
                intervals: iv.clone(),
            })
            .collect(),
    };
    let json = serde_json::to_vec(&data)
        .map_err(|e| Error::Corruption(format!("encoding {}: {e}", path.display())))?;
    let tmp = path.with_extension("json.tmp");
    let mut f =
        fs::File::create(&tmp).map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    f.write_all(&json)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, path).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })?;
    if let Some(dir) = path.parent() {
        crate::wal::sync_dir(dir)?;
    }
    Ok(())
}

/// Finishes or discards an interrupted [`Db::clean_tombstones`]: a rewritten block in
/// `clean.tmp/` whose original is gone (moved aside) is moved into place; the rest is deleted.
fn recover_clean(dir: &Path) -> Result<()> {
    let clean = dir.join(CLEAN_DIR);
    if !clean.exists() {
        return Ok(());
    }
    let entries =
        fs::read_dir(&clean).map_err(|e| Error::io(format!("listing {}", clean.display()), e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let dest = dir.join(&name);
        if files::is_block_name(&name) && !dest.exists() {
            info!(block = %dest.display(), "finishing an interrupted tombstone cleanup");
            fs::rename(entry.path(), &dest)
                .map_err(|e| Error::io(format!("moving {}", dest.display()), e))?;
        }
    }
    fs::remove_dir_all(&clean).map_err(|e| Error::io(format!("removing {}", clean.display()), e))
}

/// Reads every sample of series `i` of `b`.
fn block_samples(b: &Block, i: u64) -> Result<(Labels, Vec<Sample>)> {
    let m = b.meta();
    let (labels, chunks) = b.series(i, m.min_time, m.max_time)?;
    let mut out = Vec::new();
    if let Some(mut it) = ChunksIterator::new(chunks, m.min_time, m.max_time) {
        while let Some(s) = it.next() {
            out.push(s);
        }
    }
    Ok((labels, out))
}

impl Inner {
    /// The time range of all data, `None` if there is none.
    fn data_range(&self) -> Option<(i64, i64)> {
        let (hmin, hmax) = self.head.time_range();
        let mut range = (hmin <= hmax).then_some((hmin, hmax));
        for b in self.blocks() {
            let (bmin, bmax) = (b.meta().min_time, b.meta().max_time - 1);
            range = Some(match range {
                None => (bmin, bmax),
                Some((a, z)) => (a.min(bmin), z.max(bmax)),
            });
        }
        range
    }

    fn delete_series(&self, min_t: i64, max_t: i64, matchers: &[Matcher]) -> Result<()> {
        // As Prometheus: nothing beyond the data there is now is deleted.
        let Some((dmin, dmax)) = self.data_range() else {
            return Ok(());
        };
        let (min_t, max_t) = (min_t.max(dmin), max_t.min(dmax));
        if min_t > max_t {
            return Ok(());
        }
        let mut series: Vec<Labels> = Vec::new();
        for b in self.blocks() {
            if !b.overlaps(min_t, max_t) {
                continue;
            }
            for i in b.select(matchers)? {
                series.push(b.series(i, min_t, max_t)?.0);
            }
        }
        series.extend(self.head.select(matchers).iter().map(|s| s.labels.clone()));
        series.sort_unstable();
        series.dedup();
        info!(series = series.len(), min_t, max_t, "deleting series");
        self.tombstones.add(&series, min_t, max_t)
    }

    fn clean_tombstones(&self) -> Result<()> {
        let _serial = lock(&self.persisting);
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let stones = self.tombstones.all();
        if stones.is_empty() {
            return Ok(());
        }
        let clean = self.dir.join(CLEAN_DIR);
        for b in self.blocks() {
            let (bmin, bmax) = (b.meta().min_time, b.meta().max_time);
            let touched = stones
                .values()
                .any(|iv| iv.iter().any(|&(x, y)| x < bmax && y >= bmin));
            if !touched {
                continue;
            }
            let mut w = block::Writer::new(&clean, bmin, bmax)?;
            let mut changed = false;
            for i in b.select(&[])? {
                let (labels, mut samples) = block_samples(&b, i)?;
                let before = samples.len();
                if let Some(iv) = stones.get(&labels) {
                    samples.retain(|s| !deleted(iv, s.t));
                }
                changed |= samples.len() != before;
                w.add_samples(&labels, &samples)?;
            }
            let c = &b.meta().compaction;
            let new_dir = if changed {
                w.finish(bmin, bmax, c.level, c.sources.clone())?
            } else {
                drop(w);
                continue;
            };
            // Move the old block aside (a `.tmp` name is deleted at open; a crash before the
            // rewritten block is in place is finished by `recover_clean`).
            let old = b.dir().to_path_buf();
            let aside = old.with_file_name(format!(
                "{}.old{}",
                old.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                files::TMP_SUFFIX
            ));
            fs::rename(&old, &aside).map_err(|e| {
                Error::io(
                    format!("renaming {} to {}", old.display(), aside.display()),
                    e,
                )
            })?;
            match new_dir {
                Some(nd) => {
                    fs::rename(&nd, &old).map_err(|e| {
                        Error::io(format!("renaming {} to {}", nd.display(), old.display()), e)
                    })?;
                    crate::wal::sync_dir(&self.dir)?;
                    let nb = Arc::new(Block::open(&old)?);
                    info!(block = %old.display(), samples = nb.meta().stats.num_samples,
                        "rewrote a block without its deleted samples");
                    self.add_block(nb, std::slice::from_ref(&b));
                }
                None => {
                    crate::wal::sync_dir(&self.dir)?;
                    info!(block = %old.display(), "deleted a block whose samples were all deleted");
                    self.blocks
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .retain(|x| !Arc::ptr_eq(x, &b));
                    self.counters.blocks_deleted.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Err(e) = fs::remove_dir_all(&aside) {
                warn!(path = %aside.display(), error = %e, "cannot delete a replaced block");
            }
        }
        if clean.exists()
            && let Err(e) = fs::remove_dir_all(&clean)
        {
            warn!(path = %clean.display(), error = %e, "cannot delete {CLEAN_DIR}");
        }
        // The blocks hold no deleted samples any more; the head may still.
        let (hmin, hmax) = self.head.time_range();
        let keep_from = if hmin <= hmax { hmin } else { i64::MAX };
        self.tombstones.forget_before(keep_from)
    }

    /// Hard-links the blocks into `dir` and, unless `skip_head`, writes the head as a block
    /// there, with the tombstones still applying to the head.
    fn snapshot(&self, dir: &Path, skip_head: bool) -> Result<()> {
        let _serial = lock(&self.persisting);
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        for b in self.blocks() {
            let name = b
                .dir()
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            link_tree(b.dir(), &dir.join(name))?;
        }
        let stones = self.tombstones.all();
        if !stones.is_empty() {
            write_file(&dir.join(TOMBSTONES_FILE), &stones)?;
        }
        if !skip_head {
            let (hmin, hmax) = self.head.time_range();
            if hmin <= hmax {
                let max_t = hmax.saturating_add(1);
                let mut w = block::Writer::new(dir, hmin, max_t)?;
                let mut samples = Vec::new();
                for s in self.head.select(&[]) {
                    samples.clear();
                    if let Some(mut it) = s.iter(hmin, hmax) {
                        while let Some(x) = it.next() {
                            samples.push(x);
                        }
                    }
                    self.tombstones.filter_samples(&s.labels, &mut samples);
                    w.add_samples(&s.labels, &samples)?;
                }
                w.finish(hmin, max_t, 1, Vec::new())?;
            }
        }
        crate::wal::sync_dir(dir)
    }
}

/// Recreates the directory tree `from` at `to` with hard links to its files.
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| Error::io(format!("creating {}", to.display()), e))?;
    let entries =
        fs::read_dir(from).map_err(|e| Error::io(format!("listing {}", from.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", from.display()), e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let is_dir = entry
            .file_type()
            .map_err(|e| Error::io(format!("reading {}", src.display()), e))?
            .is_dir();
        if is_dir {
            link_tree(&src, &dst)?;
        } else {
            fs::hard_link(&src, &dst).map_err(|e| {
                Error::io(format!("linking {} to {}", src.display(), dst.display()), e)
            })?;
        }
    }
    Ok(())
}

impl Db {
    /// Marks the samples in `[min_t, max_t]` of the series matching `matchers` deleted (see
    /// the module documentation of `tombstones`).
    pub fn delete_series(&self, min_t: i64, max_t: i64, matchers: &[Matcher]) -> Result<()> {
        self.inner.delete_series(min_t, max_t, matchers)
    }

    /// Rewrites the blocks holding deleted samples without them and drops the tombstones that
    /// no longer cover head data.
    pub fn clean_tombstones(&self) -> Result<()> {
        self.inner.clean_tombstones()
    }

    /// Writes a snapshot into `dir` (hard links of the blocks, plus the head as a block unless
    /// `skip_head`); `dir` can then be opened as a data directory.
    pub fn snapshot(&self, dir: &Path, skip_head: bool) -> Result<()> {
        self.inner.snapshot(dir, skip_head)
    }
}

impl Admin for Db {
    fn delete_series(&self, min_t: i64, max_t: i64, matchers: &[Matcher]) -> storage::Result<()> {
        Ok(Db::delete_series(self, min_t, max_t, matchers)?)
    }

    fn clean_tombstones(&self) -> storage::Result<()> {
        Ok(Db::clean_tombstones(self)?)
    }

    fn snapshot(&self, dir: &Path, skip_head: bool) -> storage::Result<()> {
        Ok(Db::snapshot(self, dir, skip_head)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(start: &[(i64, i64)], add: (i64, i64), want: &[(i64, i64)]) {
        let mut iv = start.to_vec();
        add_interval(&mut iv, add.0, add.1);
        assert_eq!(iv, want);
    }

    use crate::Options;
    use pharos_model::storage::{Appendable, Queryable, SelectHints, collect_samples};

    fn up(i: usize) -> Labels {
        Labels::from_pairs(&[("__name__", "up"), ("i", &i.to_string())])
    }

    const HOUR: i64 = 3_600_000;

    /// Two series, a sample every minute over 6 hours (so blocks are cut).
    fn fill(db: &Db) {
        let mut app = db.appender();
        for t in (0..6 * HOUR).step_by(60_000) {
            for i in 0..2 {
                app.append(None, &up(i), t, t as f64).unwrap();
            }
        }
        app.commit().unwrap();
        db.compact().unwrap();
    }

    /// The timestamps of each series selected by `m` over everything.
    fn times(db: &Db, m: &[Matcher]) -> Vec<(Labels, Vec<i64>)> {
        let q = db.querier(i64::MIN / 2, i64::MAX / 2).unwrap();
        q.select(m, &SelectHints::default())
            .unwrap()
            .map(|mut s| {
                let t = collect_samples(s.samples.as_mut())
                    .iter()
                    .map(|x| x.t)
                    .collect();
                (s.labels, t)
            })
            .collect()
    }

    #[test]
    fn delete_survives_restart_and_clean_rewrites_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::default()).unwrap();
        fill(&db);
        assert!(!db.blocks().is_empty());
        let samples_before: u64 = db.blocks().iter().map(|b| b.meta().stats.num_samples).sum();
        // One hour in the first block and one in the head, of series 0 only.
        db.delete_series(HOUR, 2 * HOUR - 1, &[Matcher::eq("i", "0")])
            .unwrap();
        db.delete_series(5 * HOUR, 10 * HOUR, &[Matcher::eq("i", "0")])
            .unwrap();
        let expect = |db: &Db| {
            let got = times(db, &[Matcher::eq("__name__", "up")]);
            assert_eq!(got.len(), 2);
            let all: Vec<i64> = (0..6 * HOUR).step_by(60_000).collect();
            assert_eq!(got[1].1, all);
            let kept: Vec<i64> = all
                .iter()
                .copied()
                .filter(|t| !(HOUR..2 * HOUR).contains(t) && *t < 5 * HOUR)
                .collect();
            assert_eq!(got[0].1, kept);
        };
        expect(&db);
        db.close().unwrap();
        drop(db);
        let db = Db::open(dir.path(), Options::default()).unwrap();
        expect(&db);
        db.clean_tombstones().unwrap();
        expect(&db);
        let samples_after: u64 = db.blocks().iter().map(|b| b.meta().stats.num_samples).sum();
        assert_eq!(samples_before - samples_after, 60, "one hour of one series");
        // The block's deletion is forgotten, the head's is kept.
        let left = db.inner.tombstones.all();
        assert_eq!(left.get(&up(0)), Some(&vec![(5 * HOUR, 6 * HOUR - 60_000)]));
        db.close().unwrap();
        drop(db);
        let db = Db::open(dir.path(), Options::default()).unwrap();
        expect(&db);
        // A series deleted whole disappears.
        db.delete_series(i64::MIN / 2, i64::MAX / 2, &[Matcher::eq("i", "1")])
            .unwrap();
        assert_eq!(times(&db, &[Matcher::eq("i", "1")]), vec![]);
        db.clean_tombstones().unwrap();
        assert_eq!(times(&db, &[Matcher::eq("i", "1")]), vec![]);
        assert_eq!(times(&db, &[]).len(), 1);
    }

    #[test]
    fn damaged_tombstones_file_is_quarantined_and_the_rest_served() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::default()).unwrap();
        fill(&db);
        let want = times(&db, &[]);
        db.delete_series(0, HOUR - 1, &[Matcher::eq("i", "1")])
            .unwrap();
        db.close().unwrap();
        drop(db);
        let path = dir.path().join(TOMBSTONES_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes.truncate(bytes.len() / 2);
        fs::write(&path, &bytes).unwrap();
        let db = Db::open(dir.path(), Options::default()).unwrap();
        // The deletion is lost with the file; every stored sample is served.
        assert_eq!(times(&db, &[]), want);
        assert!(!path.exists());
        let moved: Vec<_> = fs::read_dir(dir.path().join(files::QUARANTINE_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(moved.len(), 1);
        assert!(moved[0].starts_with("tombstones-"), "{moved:?}");
        assert_eq!(
            fs::read(dir.path().join(files::QUARANTINE_DIR).join(&moved[0])).unwrap(),
            bytes
        );
        // New deletions work and persist again.
        db.delete_series(0, HOUR - 1, &[Matcher::eq("i", "0")])
            .unwrap();
        db.close().unwrap();
        drop(db);
        let db = Db::open(dir.path(), Options::default()).unwrap();
        assert_eq!(db.inner.tombstones.all().len(), 1);
    }

    #[test]
    fn snapshot_opens_as_a_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::default()).unwrap();
        fill(&db);
        db.delete_series(0, HOUR - 1, &[Matcher::eq("i", "1")])
            .unwrap();
        let want = times(&db, &[]);
        for skip_head in [false, true] {
            let snap = dir.path().join(format!("snapshots/s{skip_head}"));
            db.snapshot(&snap, skip_head).unwrap();
            let copy = Db::open(&snap, Options::default()).unwrap();
            let got = times(&copy, &[]);
            if skip_head {
                let (head_min, _) = db.inner.head.time_range();
                let cut: Vec<_> = want
                    .iter()
                    .map(|(l, t)| {
                        (
                            l.clone(),
                            t.iter().copied().filter(|t| *t < head_min).collect(),
                        )
                    })
                    .collect();
                assert_eq!(got, cut);
            } else {
                assert_eq!(got, want);
            }
            copy.close().unwrap();
        }
    }

    #[test]
    fn intervals_merge() {
        check(&[], (1, 5), &[(1, 5)]);
        check(&[(1, 5)], (6, 9), &[(1, 9)]);
        check(&[(1, 5)], (7, 9), &[(1, 5), (7, 9)]);
        check(&[(1, 5), (7, 9)], (4, 8), &[(1, 9)]);
        check(&[(10, 20)], (1, 2), &[(1, 2), (10, 20)]);
    }
}
