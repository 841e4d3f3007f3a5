//! Integration tests of the `pharos` binary: one test binary, topic modules.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod alerting;
mod api_golden;
mod browser;
mod differential;
mod harness;
mod memstore;
mod promql;
mod query_cmd;
mod remote_write;
mod server;
