//! Scrape append path: parse + label + append + commit per sample, first scrape (series cache
//! misses) and steady state (cache hits), into a storage that accepts everything for free.
//!
//! `cargo bench -p pharos-collector --bench append`
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pharos_collector::BenchTarget;
use pharos_model::storage::{self, Appendable, Appender};
use pharos_model::{Labels, SeriesRef};

struct Null;
struct NullApp;

impl Appendable for Null {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(NullApp)
    }
}

impl Appender for NullApp {
    fn append(
        &mut self,
        r: Option<SeriesRef>,
        _: &Labels,
        _: i64,
        _: f64,
    ) -> storage::Result<SeriesRef> {
        Ok(r.unwrap_or(SeriesRef(1)))
    }
    fn commit(self: Box<Self>) -> storage::Result<()> {
        Ok(())
    }
    fn rollback(self: Box<Self>) -> storage::Result<()> {
        Ok(())
    }
}

const SAMPLES: u64 = 100_000;

fn body() -> String {
    let mut body = String::new();
    for i in 0..SAMPLES {
        body.push_str(&format!(
            "http_requests_total{{method=\"post\",code=\"{}\",handler=\"/h{}\"}} {}\n",
            200 + i % 300,
            i / 300,
            i
        ));
    }
    body
}

/// The shape of bench/bench.py's synthetic targets: families of 10 counters, each family with
/// its `# HELP` and `# TYPE` lines; `variant` moves the values.
fn families_body(variant: u64) -> String {
    let mut body = String::new();
    for f in 0..SAMPLES / 10 {
        let name = format!("app_requests_{f}_total");
        body.push_str(&format!(
            "# HELP {name} Requests handled by component {f}.\n# TYPE {name} counter\n"
        ));
        for k in 0..10 {
            let v = 1000 + 37 * f + k + variant * (k + 1);
            body.push_str(&format!(
                "{name}{{handler=\"/api/v{k}\",method=\"GET\",code=\"200\"}} {v}\n"
            ));
        }
    }
    body
}

fn append(c: &mut Criterion) {
    let body = body();
    let labels = [("job", "j"), ("instance", "i:1")];
    let mut g = c.benchmark_group("scrape_append");
    g.throughput(Throughput::Elements(SAMPLES));
    g.sample_size(20);
    g.bench_function("first_scrape", |b| {
        b.iter_batched(
            || (BenchTarget::new(&labels), body.clone()),
            |(mut t, body)| {
                assert_eq!(t.scrape(&Null, body, 1000), None);
                // Returned so that dropping the series cache is not timed.
                t
            },
            BatchSize::LargeInput,
        )
    });
    let mut target = BenchTarget::new(&labels);
    assert_eq!(target.scrape(&Null, body.clone(), 0), None);
    let mut ts = 0;
    g.bench_function("steady_state", |b| {
        b.iter_batched(
            || body.clone(),
            |body| {
                ts += 1000;
                assert_eq!(target.scrape(&Null, body, ts), None)
            },
            BatchSize::LargeInput,
        )
    });
    // Alternating bodies (values move, series and comments stay), as bench/bench.py serves.
    let bodies = [families_body(0), families_body(1)];
    let mut target = BenchTarget::new(&labels);
    assert_eq!(target.scrape(&Null, bodies[0].clone(), 0), None);
    let mut ts = 0;
    let mut n = 0usize;
    g.bench_function("steady_state_families", |b| {
        b.iter_batched(
            || {
                n += 1;
                bodies[n % 2].clone()
            },
            |body| {
                ts += 1000;
                assert_eq!(target.scrape(&Null, body, ts), None)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
