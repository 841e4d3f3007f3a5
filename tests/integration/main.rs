//! Integration tests of the `pharos` binary: one test binary, topic modules.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod admin_api;
mod alerting;
mod alerting_tls;
mod api_golden;
mod browser;
mod dashboards;
mod deploy;
mod differential;
mod exporter_cmd;
mod harness;
mod memstore;
mod parse_errors;
mod promql;
mod query_cmd;
mod remote_dashboard;
mod remote_write;
mod server;
mod status_config;
mod tsdb_cmd;
