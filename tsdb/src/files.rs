//! File and directory names of the data directory, in one place.
//!
//! ```text
//! <dir>/lock                     held (flock) while a Db is open
//! <dir>/wal/00000000             WAL segments, numbered without gaps in normal operation
//! <dir>/wal/checkpoint.00000041  series of all segments up to and including 41 (deleted segments)
//! <dir>/wal/*.tmp                a checkpoint being written; deleted on open
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
    }
}
