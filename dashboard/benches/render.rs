//! Server-side render time of the built-in Nodes dashboard for 24 h of 40 nodes (all nodes
//! selected: overview, the node table, aggregate charts and repeated rows per node, capped by
//! default and all 40 with `repeat=all`), with a data
//! source that answers instantly, so the figure is the dashboard's own cost (templating, charts,
//! HTML).

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use pharos_dashboard::DataSource;
use pharos_dashboard::dash::board_page;
use pharos_dashboard::ui::Chrome;
use pharos_model::Labels;
use pharos_model::api::{MatrixSeries, Point, QueryData, Target, VectorSample};

const NODES: usize = 40;
const NOW: i64 = 1_700_000_000_000;

/// Answers like a cluster of 40 nodes: per-node queries get one series per node, aggregations
/// one series, `by (mode)` 8 and `by (device)` 3.
struct Cluster;

impl Cluster {
    fn labels(expr: &str) -> Vec<Labels> {
        let one = |name: &str, values: &[&str]| -> Vec<Labels> {
            values
                .iter()
                .map(|v| Labels::from_pairs(&[(name, *v)]))
                .collect()
        };
        if expr.contains("by (mode)") {
            return one(
                "mode",
                &[
                    "user", "system", "iowait", "irq", "softirq", "steal", "nice", "guest",
                ],
            );
        }
        if expr.contains("by (device)") {
            return one("device", &["sda", "sdb", "eth0"]);
        }
        // A query for one node (a repeated row): its regex-escaped address, `10\\.0\\.…`.
        let single = expr.contains("instance=~\"10\\\\.");
        let agg = ["sum(", "avg(", "max(", "min(", "count("].iter().any(|a| {
            expr.trim_start_matches("100 * (1 - ")
                .trim_start_matches("100 * ")
                .starts_with(a)
        });
        if agg || single {
            return vec![Labels::empty()];
        }
        (0..NODES)
            .map(|i| {
                Labels::from_pairs(&[(
                    "instance",
                    format!("10.0.{}.{}:9100", i / 250, i % 250).as_str(),
                )])
            })
            .collect()
    }
}

impl DataSource for Cluster {
    fn query_range(
        &self,
        expr: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Vec<MatrixSeries>, String> {
        Ok(Self::labels(expr)
            .into_iter()
            .enumerate()
            .map(|(s, metric)| MatrixSeries {
                metric,
                values: (0..=(end - start) / step)
                    .map(|k| Point {
                        t: start + k * step,
                        v: (s as f64 + 1.0) * (1.0 + ((k as f64) / 10.0).sin()),
                    })
                    .collect(),
            })
            .collect())
    }

    fn query(&self, expr: &str, t: i64) -> Result<QueryData, String> {
        Ok(QueryData::Vector(
            Self::labels(expr)
                .into_iter()
                .enumerate()
                .map(|(s, metric)| VectorSample {
                    metric,
                    value: Point {
                        t,
                        v: s as f64 * 1.5,
                    },
                })
                .collect(),
        ))
    }

    fn targets(&self) -> Vec<Target> {
        Vec::new()
    }

    fn label_values(&self, _: &str, _: &str, _: i64, _: i64) -> Result<Vec<String>, String> {
        Ok((0..NODES)
            .map(|i| format!("10.0.{}.{}:9100", i / 250, i % 250))
            .collect())
    }
}

fn nodes(c: &mut Criterion) {
    let loaded = pharos_dashboard::board::load(None);
    let board = loaded.get("nodes").unwrap();
    // The default page (repeated rows capped, "show all" link) and the page with every node's row.
    for (name, extra) in [
        ("nodes_dashboard_24h_40_nodes", None),
        ("nodes_dashboard_24h_40_nodes_repeat_all", Some("all")),
    ] {
        let mut params = vec![("range".to_string(), "24h".to_string())];
        if let Some(v) = extra {
            params.push(("repeat".to_string(), v.to_string()));
        }
        let html = board_page(&Cluster, &board, &params, &Chrome::default(), NOW);
        // PHAROS_RENDER_OUT=<dir> keeps the pages to look at.
        if let Ok(dir) = std::env::var("PHAROS_RENDER_OUT") {
            let _ = std::fs::write(
                std::path::Path::new(&dir).join(format!("{name}.html")),
                &html,
            );
        }
        eprintln!(
            "{name}: {} KiB of HTML, {} charts",
            html.len() / 1024,
            html.matches("<svg").count()
        );
        c.bench_function(name, |b| {
            b.iter(|| board_page(&Cluster, &board, &params, &Chrome::default(), NOW))
        });
    }
}

criterion_group!(benches, nodes);
criterion_main!(benches);
