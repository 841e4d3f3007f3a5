//! Integration tests of the `pharos` binary: one test binary, topic modules.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod harness;
mod promql;
mod server;
