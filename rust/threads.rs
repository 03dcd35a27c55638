//! The thread pool every parallel op runs in. Its size can be set from Python
//! (`neuroflow.set_num_threads`) or by NEUROFLOW_NUM_THREADS; default: all cores.

use rayon::{ThreadPool, ThreadPoolBuilder};
use std::sync::{Arc, RwLock};

static POOL: RwLock<Option<Arc<ThreadPool>>> = RwLock::new(None);

fn default_threads() -> usize {
    std::env::var("NEUROFLOW_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

fn build(n: usize) -> Arc<ThreadPool> {
    Arc::new(
        ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("neuroflow-{i}"))
            .build()
            .expect("cannot start the thread pool"),
    )
}

/// The pool, started on first use.
pub fn pool() -> Arc<ThreadPool> {
    if let Some(p) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return p.clone();
    }
    let mut slot = POOL.write().unwrap_or_else(|e| e.into_inner());
    slot.get_or_insert_with(|| build(default_threads())).clone()
}

/// Replace the pool with one of `n` threads (work already running keeps the old one).
pub fn set_num_threads(n: usize) {
    *POOL.write().unwrap_or_else(|e| e.into_inner()) = Some(build(n.max(1)));
}

pub fn num_threads() -> usize {
    pool().current_num_threads()
}
