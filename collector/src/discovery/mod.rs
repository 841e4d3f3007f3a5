//! Service discovery: where a scrape pool's targets come from.
//!
//! Every mechanism produces [`TargetGroup`]s: label sets with an `__address__` each, plus labels
//! shared by the group. `static_configs` are groups known at load; `file_sd_configs` ([`file`](mod@file))
//! re-read their files when they change and every `refresh_interval`; `kubernetes_sd_configs`
//! ([`kubernetes`]) list and watch the API server. A provider hands a full replacement of its
//! groups to the scrape manager on every change.

pub mod file;
pub mod kubernetes;

use std::collections::BTreeMap;

use crate::config::StaticConfig;

/// A group of discovered targets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TargetGroup {
    /// Identifies the group within its provider (a file path and index, a Kubernetes object).
    pub source: String,
    /// One label set per target; each has `__address__` and may carry `__meta_*` labels.
    pub targets: Vec<BTreeMap<String, String>>,
    /// Labels of every target of the group (a target's own labels win).
    pub labels: BTreeMap<String, String>,
}

impl TargetGroup {
    /// The group of one `static_configs` entry.
    pub fn from_static(source: String, sc: &StaticConfig) -> Self {
        Self {
            source,
            targets: sc
                .targets
                .iter()
                .map(|t| BTreeMap::from([("__address__".to_string(), t.clone())]))
                .collect(),
            labels: sc.labels.clone(),
        }
    }
}
