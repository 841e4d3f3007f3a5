//! Integration tests of `pharos-tsdb` through its public API, one module per topic.

// Test helpers outside `#[test]` functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod append;
mod blocks;
mod common;
mod fulldisk;
mod kill;
mod matchers;
mod recovery;
mod retention;
