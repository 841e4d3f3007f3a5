//! An in-memory `Appendable` for the collector's tests: committed samples by label set.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pharos_model::storage::{self, Appendable, Appender};
use pharos_model::{Labels, SeriesRef};

/// Committed samples by series.
pub type Data = BTreeMap<Labels, Vec<(i64, f64)>>;

/// Stores what its appenders commit (rolled-back appends leave nothing).
#[derive(Default, Clone)]
pub struct Mem(pub Arc<Mutex<Data>>);

struct MemAppender(Arc<Mutex<Data>>, Vec<(Labels, i64, f64)>);

impl Appendable for Mem {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(MemAppender(self.0.clone(), Vec::new()))
    }
}

impl Appender for MemAppender {
    fn append(
        &mut self,
        _: Option<SeriesRef>,
        l: &Labels,
        t: i64,
        v: f64,
    ) -> storage::Result<SeriesRef> {
        self.1.push((l.clone(), t, v));
        Ok(SeriesRef(0))
    }
    fn commit(self: Box<Self>) -> storage::Result<()> {
        let mut d = self.0.lock().unwrap();
        for (l, t, v) in self.1 {
            d.entry(l).or_default().push((t, v));
        }
        Ok(())
    }
    fn rollback(self: Box<Self>) -> storage::Result<()> {
        Ok(())
    }
}
