//! The threads scrape loops run on: a few single-threaded tokio runtimes, each on a thread of its
//! own, with loops handed out in turn.
//!
//! A scrape is a short burst of work between two waits (the timer, the response). On the
//! server's work-stealing runtime each burst woke a parked worker thread and often a second one
//! to steal from it: about a tenth of the CPU a scrape took went to those cross-thread wake-ups.
//! A loop on a single-threaded runtime sleeps and wakes on one thread only.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// How long a stopping thread waits for its blocking tasks (appends of large scrapes).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// Runtimes on threads of their own; stopped (tasks cancelled) when dropped.
#[derive(Debug)]
pub(crate) struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// Dropping a sender lets its thread shut its runtime down and end.
    _stops: Vec<oneshot::Sender<()>>,
}

/// Scrape threads for this machine: one per four cores, at least one, at most eight. One thread
/// appends over a million scraped samples a second, so this is room, not a bottleneck.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get() / 4)
        .clamp(1, 8)
}

impl Workers {
    /// Starts `n` threads (at least one). Fails if the OS refuses a thread or the runtime.
    pub fn start(n: usize) -> std::io::Result<Self> {
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name("pharos-scrape")
                .build()?;
            let (tx, rx) = oneshot::channel::<()>();
            handles.push(rt.handle().clone());
            std::thread::Builder::new()
                .name(format!("pharos-scrape-{i}"))
                .spawn(move || {
                    // Ends when the sender is dropped (or sends).
                    let _ = rt.block_on(rx);
                    rt.shutdown_timeout(SHUTDOWN_WAIT);
                })?;
            stops.push(tx);
        }
        Ok(Self {
            handles,
            next: AtomicUsize::new(0),
            _stops: stops,
        })
    }

    /// The runtime the next loop goes to (in turn).
    pub fn next(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        // `start` made at least one.
        &self.handles[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_run_on_the_workers_in_turn_and_stop_with_them() {
        let w = Workers::start(2).unwrap();
        let names: Vec<String> = (0..4)
            .map(|_| {
                let (tx, rx) = std::sync::mpsc::channel();
                w.next().spawn(async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let name = std::thread::current().name().unwrap_or("").to_string();
                    tx.send(name).unwrap();
                });
                rx.recv_timeout(Duration::from_secs(10)).unwrap()
            })
            .collect();
        assert_eq!(
            names,
            [
                "pharos-scrape-0",
                "pharos-scrape-1",
                "pharos-scrape-0",
                "pharos-scrape-1"
            ]
        );
        // A task still running when the workers go is cancelled: its channel closes.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        w.next().spawn(async move {
            std::future::pending::<()>().await;
            drop(tx);
        });
        drop(w);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
