//! `pharos-tsdb`: Pharos' storage engine.
//!
//! A [`Db`] keeps recent samples in an in-memory *head* (series, a label index with postings,
//! Gorilla-compressed [`chunk`]s) made durable by a write-ahead log ([`wal`]) that is replayed on
//! open. It implements [`pharos_model::storage::Appendable`] and
//! [`pharos_model::storage::Queryable`], the only way other crates see it. On-disk formats are
//! documented in `tsdb/docs/format.md`; file names live in [`files`].
//!
//! ```
//! use pharos_model::storage::{Appendable, Queryable, SelectHints, collect_samples};
//! use pharos_model::{Labels, Matcher};
//! use pharos_tsdb::{Db, Options};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path(), Options::default()).unwrap();
//! let mut app = db.appender();
//! let up = Labels::from_pairs(&[("__name__", "up"), ("job", "node")]);
//! app.append(None, &up, 1_000, 1.0).unwrap();
//! app.commit().unwrap();
//!
//! let q = db.querier(0, 2_000).unwrap();
//! let mut set = q.select(&[Matcher::eq("job", "node")], &SelectHints::default()).unwrap();
//! let mut series = set.next().unwrap();
//! assert_eq!(series.labels, up);
//! assert_eq!(collect_samples(series.samples.as_mut()).len(), 1);
//! db.close().unwrap();
//! ```
//!
//! Samples older than 1.5 block ranges (default 2 h) are cut from the head into immutable
//! [`block`]s: chunk and index files memory-mapped read-only (`unsafe` lives only in the private
//! `mmap` module and a cache prefetch hint), merged by compaction and deleted by retention (time and size). Queries merge
//! blocks and head. Damaged blocks are moved to `quarantine/` at open, the rest is served.

mod bitpack;
pub mod block;
pub mod chunk;
mod db;
mod error;
pub mod files;
mod head;
mod iter;
mod mmap;
mod prefetch;
mod symbols;
mod varint;
pub mod wal;
pub mod wal_watch;

pub use db::{Db, Options, Stats};
pub use error::{Error, Result};
