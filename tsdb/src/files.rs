//! File and directory names of the data directory, in one place.
//!
//! ```text
//! <dir>/lock                     held (flock) while a Db is open
//! <dir>/wal/00000000             WAL segments, numbered without gaps in normal operation
//! <dir>/wal/checkpoint.00000041  series of all segments up to and including 41 (deleted segments)
//! <dir>/wal/*.tmp                a checkpoint being written; deleted on open
//! <dir>/b-<min>-<max>/meta.json  a persisted block: its time range, statistics and sources
//! <dir>/b-<min>-<max>/index      its label index (symbols, series, postings)
//! <dir>/b-<min>-<max>/chunks     its compressed chunks
//! <dir>/b-*.tmp/                 a block being written; deleted on open
//! <dir>/quarantine/b-*/          blocks found damaged at open, moved aside, never read again
//! <dir>/quarantine/tombstones-*.json  a tombstones file that did not decode at open
//! ```
//! The byte layouts are documented in `tsdb/docs/format.md`.

/// The lock file in the data directory.
pub const LOCK_FILE: &str = "lock";
/// The WAL directory in the data directory.
pub const WAL_DIR: &str = "wal";
/// Prefix of WAL checkpoint files, followed by the 8-digit number of the last segment they cover.
pub const CHECKPOINT_PREFIX: &str = "checkpoint.";
/// Suffix of files being written (renamed into place once complete and fsynced).
pub const TMP_SUFFIX: &str = ".tmp";
/// Suffix a block directory is renamed to before it is deleted, so that a crash midway leaves
/// an unfinished directory (deleted at the next open), never a block with files missing.
pub const DELETING_SUFFIX: &str = ".deleting.tmp";
/// Suffix a block directory is renamed to while a rewrite of the same name takes its place: put
/// back at open if the rewrite never arrived, else deleted.
pub const REPLACED_SUFFIX: &str = ".replaced.tmp";
/// Prefix of block directory names.
pub const BLOCK_PREFIX: &str = "b-";
/// A block's metadata file (JSON).
pub const BLOCK_META: &str = "meta.json";
/// A block's index file.
pub const BLOCK_INDEX: &str = "index";
/// A block's chunk file.
pub const BLOCK_CHUNKS: &str = "chunks";
/// Where damaged blocks are moved.
pub const QUARANTINE_DIR: &str = "quarantine";
/// Magic number at the start of a block's index file ("PHXI").
pub const INDEX_MAGIC: u32 = 0x5048_5849;
/// Magic number at the start of a block's chunk file ("PHCK").
pub const CHUNKS_MAGIC: u32 = 0x5048_434B;
/// Version byte of the index file format (after the magic number).
pub const BLOCK_FORMAT_VERSION: u8 = 1;
/// Version byte of the chunk file format written now (after the magic number): 2 since Packed
/// chunks may use the frame-of-reference value modes; readers accept 1 and 2.
pub const CHUNKS_FORMAT_VERSION: u8 = 2;

/// The directory name of a block covering `[min_t, max_t)`: both bounds as 16 hex digits with the
/// sign bit flipped, so names sort by time.
pub fn block_name(min_t: i64, max_t: i64) -> String {
    let key = |t: i64| (t as u64) ^ (1 << 63);
    format!("{BLOCK_PREFIX}{:016x}-{:016x}", key(min_t), key(max_t))
}

/// True if `name` is a block directory's name (not a temporary one).
pub fn is_block_name(name: &str) -> bool {
    name.len() == BLOCK_PREFIX.len() + 33
        && name.starts_with(BLOCK_PREFIX)
        && name[BLOCK_PREFIX.len()..]
            .bytes()
            .enumerate()
            .all(|(i, b)| {
                if i == 16 {
                    b == b'-'
                } else {
                    b.is_ascii_hexdigit()
                }
            })
}

/// Digits of a segment number in file names (more are allowed once numbers outgrow them).
const SEGMENT_DIGITS: usize = 8;

/// The file name of WAL segment `n`.
pub fn segment_name(n: u64) -> String {
    format!("{n:0SEGMENT_DIGITS$}")
}

/// The file name of a checkpoint covering segments up to `n`.
pub fn checkpoint_name(n: u64) -> String {
    format!("{CHECKPOINT_PREFIX}{n:0SEGMENT_DIGITS$}")
}

/// The segment number of a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    parse_number(name)
}

/// The last covered segment of a checkpoint file name, if it is one.
pub fn parse_checkpoint_name(name: &str) -> Option<u64> {
    parse_number(name.strip_prefix(CHECKPOINT_PREFIX)?)
}

fn parse_number(s: &str) -> Option<u64> {
    if s.len() < SEGMENT_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_name(3), "00000003");
        assert_eq!(parse_segment_name("00000003"), Some(3));
        assert_eq!(parse_segment_name("123456789"), Some(123_456_789));
        assert_eq!(parse_segment_name("0003"), None);
        assert_eq!(parse_segment_name("0000000x"), None);
        assert_eq!(parse_segment_name("checkpoint.00000001"), None);
        assert_eq!(checkpoint_name(41), "checkpoint.00000041");
        assert_eq!(parse_checkpoint_name("checkpoint.00000041"), Some(41));
        assert_eq!(parse_checkpoint_name("checkpoint.00000041.tmp"), None);
        assert_eq!(
            block_name(0, 7_200_000),
            "b-8000000000000000-80000000006ddd00"
        );
        assert_eq!(block_name(-1, 0), "b-7fffffffffffffff-8000000000000000");
        assert!(is_block_name(&block_name(-5, 9)));
        assert!(!is_block_name("b-8000000000000000-80000000006ddd00.tmp"));
        assert!(!is_block_name("wal"));
    }
}
