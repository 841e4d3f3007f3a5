//! Recording and alerting rules in Prometheus' rule-file format.
//!
//! - [`file`]: the YAML format and promtool's checks ([`file::parse_rule_file`]);
//! - [`rule`]: [`rule::RecordingRule`] (writes a series) and [`rule::AlertingRule`] (keeps
//!   inactive/pending/firing state per label set, writes `ALERTS` and `ALERTS_FOR_STATE`);
//! - [`group`]: a [`group::Group`] evaluates its rules in order at one timestamp, appends the
//!   results through [`Appendable`](pharos_model::storage::Appendable) with staleness markers for
//!   vanished series, and restores alerts' `for` state after a restart;
//! - [`manager`]: [`manager::Manager`] loads `rule_files` globs, runs one task per group on its
//!   interval, keeps state across reloads and hands alerts to the notifier;
//! - [`template`]: the Go-template subset of labels and annotations;
//! - [`json`]: `/api/v1/rules` and `/api/v1/alerts` JSON and the [`json::RulesProvider`] trait;
//! - [`memstore`]: an in-memory storage for rule unit tests;
//! - [`unittest`]: promtool's rule unit-test files (`pharos test rules`).
//!
//! ```
//! use pharos_query::rules::{file::parse_rule_file, group::Group};
//! let text = "groups:\n- name: g\n  rules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n";
//! let rf = parse_rule_file(text, std::path::Path::new("r.yml")).unwrap();
//! let g = Group::from_desc(&rf.groups[0], "r.yml", 60_000).unwrap();
//! assert_eq!(g.rules.len(), 1);
//! ```

pub mod file;
pub(crate) mod gofmt;
pub mod group;
pub mod json;
pub mod manager;
pub mod memstore;
pub mod rule;
pub mod template;
pub mod unittest;

/// Errors of loading and running rules.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum Error {
    /// A rule file could not be read or is invalid; `msg` holds the line and column if known.
    #[error("{file}: {msg}")]
    Load {
        /// The file's path.
        file: String,
        /// What is wrong.
        msg: String,
    },
    /// A rule's evaluation failed.
    #[error("{0}")]
    Eval(String),
}

/// Result alias of rule loading.
pub type Result<T> = std::result::Result<T, Error>;
