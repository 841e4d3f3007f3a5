//! Feeding remote-write queues from the storage's write-ahead log.
//!
//! The collector does not know the storage engine: the binary hands [`super::RemoteWrite::with_wal`]
//! a [`WalSource`] that opens [`WalReader`]s at a [`WalPosition`]. Each queue's feeder thread
//! reads records in WAL order, maps series refs to outgoing labels (external labels, then
//! `write_relabel_configs`), numbers each record and hands its samples to the shards. Shards
//! report the records whose samples the remote end acknowledged (or refused for good); [`Acks`]
//! keeps the position before the oldest record not yet fully acknowledged and writes it to
//! `<state dir>/<queue>/position` (temporary file, rename) after every acknowledgement. A
//! restarted queue resumes from that file, so nothing is lost across a restart or a crash (`kill
//! -9`), and only what was in flight is sent twice: the samples after the oldest unacknowledged
//! record (one batch with one shard).
//!
//! The file is fsynced only at a clean stop and every [`SYNC_EVERY`]: the page cache survives a
//! killed process, and a position lost to a power failure is an older one, which means samples
//! sent twice, never lost. An unreadable file makes the queue start from the oldest record left
//! in the WAL, for the same reason.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pharos_model::Labels;

use crate::{Error, Result};

/// How often a moved position is also fsynced.
pub const SYNC_EVERY: Duration = Duration::from_secs(10);

/// A place in the WAL: a segment number and a byte offset in it (ordered).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WalPosition {
    /// The segment's number.
    pub segment: u64,
    /// Bytes of the segment before the position.
    pub offset: u64,
}

impl std::fmt::Display for WalPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}

/// One decoded WAL record, as the sender needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum WalEntry {
    /// New series: storage ref and labels.
    Series(Vec<(u64, Labels)>),
    /// Samples: series ref, timestamp (ms), value.
    Samples(Vec<(u64, i64, f64)>),
    /// Any other record (nothing to send, but it moves the position).
    Other,
}

/// Reads a WAL from a position on.
pub trait WalReader: Send {
    /// Calls `f` with every whole record available now (a bounded amount per call) and the
    /// position after it; returns whether anything was read (`false`: at the end, poll later).
    /// Series records before the start position are handed over too, samples before it not.
    fn poll(
        &mut self,
        f: &mut dyn FnMut(WalEntry, WalPosition),
    ) -> std::result::Result<bool, String>;

    /// A checkpoint written since the last call that the reader has read past: the last segment
    /// it covers and the refs of every series it holds. Series learnt from segments up to that one
    /// and missing from the list are gone from the storage, so the reader's user can forget them.
    /// `None` when there is nothing new (the default: such readers never forget series).
    fn checkpoint(&mut self) -> std::result::Result<Option<(u64, Vec<u64>)>, String> {
        Ok(None)
    }
}

/// Where WAL readers come from (implemented by the binary over the storage's WAL watcher).
pub trait WalSource: Send + Sync {
    /// The end of the WAL now: where a queue without a saved position starts.
    fn end(&self) -> std::result::Result<WalPosition, String>;
    /// A reader handing over samples after `from`.
    fn reader(&self, from: WalPosition) -> Box<dyn WalReader>;
}

/// Reads a saved position; `None` if there is no file, an error if it is unreadable.
pub fn load_position(path: &Path) -> Result<Option<WalPosition>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Io {
                context: format!("reading remote write position {}", path.display()),
                source: e,
            });
        }
    };
    let mut it = text.split_ascii_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(segment)), Some(Ok(offset)), None) => Ok(Some(WalPosition { segment, offset })),
        _ => Err(Error::InvalidConfig(format!(
            "remote write position file {} does not hold `<segment> <offset>`: {:?}",
            path.display(),
            text.trim()
        ))),
    }
}

/// Writes a position: temporary file, fsync if `durable`, rename.
pub fn save_position(path: &Path, pos: WalPosition, durable: bool) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{} {}", pos.segment, pos.offset)?;
        if durable {
            f.sync_data()?;
        }
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| Error::Io {
        context: format!("writing remote write position {}", path.display()),
        source: e,
    })
}

#[derive(Debug)]
struct AckState {
    /// Records handed to shards and not fully acknowledged: number, start position, shards left.
    open: VecDeque<(u64, WalPosition, usize)>,
    /// The position after the last record fed.
    fed: WalPosition,
    /// The position last written, and whether it is fsynced.
    saved: WalPosition,
    synced: bool,
    synced_at: Instant,
}

/// Acknowledged WAL positions of one queue; see the [module docs](self).
#[derive(Debug)]
pub struct Acks {
    path: PathBuf,
    state: Mutex<AckState>,
}

impl Acks {
    /// Tracking from `start` (already saved), persisted at `path`.
    pub fn new(path: PathBuf, start: WalPosition) -> Acks {
        Acks {
            path,
            state: Mutex::new(AckState {
                open: VecDeque::new(),
                fed: start,
                saved: start,
                synced: true,
                synced_at: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AckState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record `seq` (numbers increase) spanning `start..end` went to `shards` shards.
    pub fn fed(&self, seq: u64, start: WalPosition, end: WalPosition, shards: usize) {
        let mut s = self.lock();
        s.fed = end;
        if shards > 0 || !s.open.is_empty() {
            s.open.push_back((seq, start, shards));
        }
        Self::pop_done(&mut s);
    }

    /// One shard is done with record `seq`.
    pub fn done(&self, seq: u64) {
        let mut s = self.lock();
        if let Some(e) = s.open.iter_mut().find(|e| e.0 == seq) {
            e.2 = e.2.saturating_sub(1);
        }
        Self::pop_done(&mut s);
        let sync = s.synced_at.elapsed() >= SYNC_EVERY;
        Self::write(&self.path, &mut s, sync);
    }

    /// Writes the acknowledged position if it moved (fsynced every [`SYNC_EVERY`]).
    pub fn update(&self) {
        let mut s = self.lock();
        let sync = s.synced_at.elapsed() >= SYNC_EVERY;
        Self::write(&self.path, &mut s, sync);
    }

    fn pop_done(s: &mut AckState) {
        while s.open.front().is_some_and(|e| e.2 == 0) {
            s.open.pop_front();
        }
    }

    /// The position before the oldest record not fully acknowledged.
    pub fn acknowledged(&self) -> WalPosition {
        let s = self.lock();
        s.open.front().map_or(s.fed, |e| e.1)
    }

    /// Writes the acknowledged position if it moved, fsynced (errors are logged: the queue
    /// keeps sending, and a restart resends from the older position).
    pub fn save(&self) {
        let mut s = self.lock();
        Self::write(&self.path, &mut s, true);
    }

    /// Writes the position if it moved (or fsyncs it if `sync` and it is not yet), under the
    /// lock so two writers never reorder positions.
    fn write(path: &Path, s: &mut AckState, sync: bool) {
        let pos = s.open.front().map_or(s.fed, |e| e.1);
        if pos == s.saved && (s.synced || !sync) {
            return;
        }
        match save_position(path, pos, sync) {
            Ok(()) => {
                s.saved = pos;
                s.synced = sync;
                if sync {
                    s.synced_at = Instant::now();
                }
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(segment: u64, offset: u64) -> WalPosition {
        WalPosition { segment, offset }
    }

    #[test]
    fn acknowledged_position_waits_for_the_oldest_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q").join("position");
        let a = Acks::new(path.clone(), p(0, 0));
        a.fed(1, p(0, 0), p(0, 10), 2);
        a.fed(2, p(0, 10), p(0, 20), 0);
        a.fed(3, p(0, 20), p(1, 5), 1);
        assert_eq!(a.acknowledged(), p(0, 0));
        a.done(3);
        a.done(1);
        assert_eq!(a.acknowledged(), p(0, 0));
        a.done(1);
        assert_eq!(a.acknowledged(), p(1, 5));
        // Written at the acknowledgement.
        assert_eq!(load_position(&path).unwrap(), Some(p(1, 5)));
        // Records without samples move the position when nothing is open.
        a.fed(4, p(1, 5), p(1, 9), 0);
        a.save();
        assert_eq!(load_position(&path).unwrap(), Some(p(1, 9)));
    }

    #[test]
    fn position_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("position");
        assert_eq!(load_position(&path).unwrap(), None);
        save_position(&path, p(7, 123), true).unwrap();
        assert_eq!(load_position(&path).unwrap(), Some(p(7, 123)));
        std::fs::write(&path, "7\n").unwrap();
        let err = load_position(&path).unwrap_err().to_string();
        assert!(err.contains("does not hold"), "{err}");
    }
}
