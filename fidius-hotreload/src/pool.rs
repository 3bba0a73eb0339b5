//! The threads that do hot reloading's work, shared by every hot plugin and hot
//! directory in the process: one timer thread and a small pool of workers.
//!
//! Nothing here knows about plugins. A *job* is a closure; [`spawn`] runs one on a
//! worker as soon as one is free, [`after`] hands one to a worker once a delay has
//! passed. Workers are started on demand, up to [`MAX_WORKERS`], and leave after
//! [`IDLE_EXIT`] without work, so the number of threads never depends on the number
//! of plugins. Jobs never sleep: a debounce, a settle, a retry or a drain poll is a
//! timer, not a blocked thread, so one waiting plugin holds no worker.

use parking_lot::{Condvar, Mutex};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A piece of work for a worker.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// The most worker threads at once. Reloads of different plugins run in parallel up
/// to this many; more wait their turn.
pub(crate) const MAX_WORKERS: usize = 8;

/// How long a worker waits for work before it leaves.
pub(crate) const IDLE_EXIT: Duration = Duration::from_secs(10);

struct Pool {
    work: Mutex<Work>,
    work_ready: Condvar,
    timers: Mutex<Timers>,
    timer_ready: Condvar,
}

#[derive(Default)]
struct Work {
    queue: VecDeque<Job>,
    /// Workers waiting for a job.
    idle: usize,
    /// Workers alive.
    threads: usize,
}

#[derive(Default)]
struct Timers {
    /// Earliest first; the sequence number keeps equal times in order.
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    jobs: std::collections::HashMap<u64, Job>,
    next: u64,
    started: bool,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        work: Mutex::new(Work::default()),
        work_ready: Condvar::new(),
        timers: Mutex::new(Timers::default()),
        timer_ready: Condvar::new(),
    })
}

/// Runs `job` on a worker thread as soon as one is free.
pub(crate) fn spawn(job: impl FnOnce() + Send + 'static) {
    let pool = pool();
    let mut work = pool.work.lock();
    work.queue.push_back(Box::new(job));
    if work.queue.len() > work.idle && work.threads < MAX_WORKERS {
        let started = std::thread::Builder::new()
            .name("fidius-hotreload".into())
            .spawn(|| run_worker(pool));
        match started {
            Ok(_) => work.threads += 1,
            Err(e) if work.threads == 0 => {
                tracing::error!(error = %e, "no thread for hot reloading; reloads wait until one can be started")
            }
            Err(_) => {}
        }
    }
    pool.work_ready.notify_one();
}

/// Runs `job` on a worker thread once `delay` has passed.
pub(crate) fn after(delay: Duration, job: impl FnOnce() + Send + 'static) {
    let pool = pool();
    let mut timers = pool.timers.lock();
    if !timers.started {
        let started = std::thread::Builder::new()
            .name("fidius-hotreload-timer".into())
            .spawn(|| run_timer(pool));
        match started {
            Ok(_) => timers.started = true,
            Err(e) => {
                // Never run it early (a debounce would spin): a worker waits it out.
                tracing::error!(error = %e, "no timer thread for hot reloading; a worker waits instead");
                drop(timers);
                return spawn(move || {
                    std::thread::sleep(delay);
                    job()
                });
            }
        }
    }
    let id = timers.next;
    timers.next += 1;
    timers.heap.push(Reverse((Instant::now() + delay, id)));
    timers.jobs.insert(id, Box::new(job));
    pool.timer_ready.notify_one();
}

fn run_worker(pool: &'static Pool) {
    let mut work = pool.work.lock();
    loop {
        let Some(job) = work.queue.pop_front() else {
            work.idle += 1;
            let idle = pool.work_ready.wait_for(&mut work, IDLE_EXIT).timed_out();
            work.idle -= 1;
            if idle && work.queue.is_empty() {
                work.threads -= 1;
                return;
            }
            continue;
        };
        drop(work);
        // A job that panics must not take the worker (and the jobs behind it) along.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!("a hot-reload job panicked; the worker carries on");
        }
        work = pool.work.lock();
    }
}

fn run_timer(pool: &'static Pool) {
    let mut timers = pool.timers.lock();
    loop {
        let Some(&Reverse((at, id))) = timers.heap.peek() else {
            pool.timer_ready.wait(&mut timers);
            continue;
        };
        if Instant::now() < at {
            pool.timer_ready.wait_until(&mut timers, at);
            continue;
        }
        timers.heap.pop();
        if let Some(job) = timers.jobs.remove(&id) {
            drop(timers);
            spawn(job);
            timers = pool.timers.lock();
        }
    }
}

/// Threads this module has running now (workers and the timer), for tests and
/// benchmarks.
#[cfg(test)]
pub(crate) fn threads() -> usize {
    pool().work.lock().threads + usize::from(pool().timers.lock().started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};

    #[test]
    fn jobs_run_and_timers_fire_in_order_without_a_thread_per_job() {
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..1000 {
            let done = done.clone();
            spawn(move || {
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        let (tx, rx) = mpsc::channel();
        for (i, ms) in [30u64, 10, 20].into_iter().enumerate() {
            let tx = tx.clone();
            after(Duration::from_millis(ms), move || tx.send(i).unwrap());
        }
        let order: Vec<usize> = (0..3).map(|_| rx.recv().unwrap()).collect();
        assert_eq!(order, [1, 2, 0]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while done.load(Ordering::SeqCst) < 1000 {
            assert!(Instant::now() < deadline, "jobs did not all run");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(threads() <= MAX_WORKERS + 1, "{}", threads());
    }

    #[test]
    fn a_panicking_job_does_not_stop_the_pool() {
        spawn(|| panic!("a job panics"));
        let (tx, rx) = mpsc::channel();
        for _ in 0..(MAX_WORKERS * 2) {
            spawn(|| panic!("a job panics"));
        }
        spawn(move || tx.send(()).unwrap());
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
}
