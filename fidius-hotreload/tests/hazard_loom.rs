//! A loom model of the hazard-slot protocol of `src/hazard.rs`.
//!
//! Run it with:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" cargo test -p fidius-hotreload --test hazard_loom --release \
//!     --target-dir target/loom
//! ```
//!
//! loom explores every interleaving (and every reordering the memory model allows) of
//! a few small threads. The model mirrors the real protocol step by step, with its
//! own atomics (loom cannot run the real code: thread-locals, `membarrier` and the
//! parking_lot locks are outside what it models):
//!
//! * a reader announces the value in a slot (release store), fences, re-reads the
//!   current value (acquire) and retries until it is unchanged; it then uses the
//!   value and clears the slot (release store);
//! * a swap exchanges the current value (acq-rel) and puts the old one on a retiring
//!   list;
//! * a reclaim fences, scans every slot (acquire loads) and "frees" each retiring
//!   value no slot holds. A value is a `loom::cell::UnsafeCell`: a call reads it, a
//!   free writes it (marks it dead). loom fails the model if a free is not ordered
//!   after every read of the calls that used the value (a causality violation), and
//!   the call fails it if it reads a dead value. So the orderings that publish and
//!   retire (the slot cleared with release, scanned with acquire) are checked too,
//!   not only the fences.
//!
//! The asymmetric pair (nothing or a compiler fence on the reader, `membarrier` on
//! the reclaimer) is modelled as a sequentially consistent fence on each side, which
//! is what `membarrier` guarantees relative to every running thread. Built with
//! `--cfg fidius_mutant="no_barriers"` the fences are left out, as in the mutant of
//! the real code, and the model must fail.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{fence, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// Values are numbered 1.. (0 is an empty slot); none is ever freed for real.
const VALUES: usize = 4;
/// Records of slots: two records of two slots each.
const RECORDS: usize = 2;
const SLOTS: usize = 2;

struct Model {
    current: AtomicUsize,
    /// Each value's content: its own number while alive, 0 once freed.
    values: [UnsafeCell<usize>; VALUES + 1],
    slots: [[AtomicUsize; SLOTS]; RECORDS],
    retiring: Mutex<Vec<usize>>,
    /// Records whose thread exited, ready for another thread.
    free_records: Mutex<Vec<usize>>,
}

impl Model {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            current: AtomicUsize::new(1),
            values: std::array::from_fn(UnsafeCell::new),
            slots: std::array::from_fn(|_| std::array::from_fn(|_| AtomicUsize::new(0))),
            retiring: Mutex::new(Vec::new()),
            free_records: Mutex::new(Vec::new()),
        })
    }
}

fn barrier() {
    if !cfg!(fidius_mutant = "no_barriers") {
        fence(Ordering::SeqCst);
    }
}

/// `Protection::acquire`: announce in slot `slot` of record `record`, re-read until
/// stable. Returns the value now protected.
fn acquire(m: &Model, record: usize, slot: usize) -> usize {
    let mut value = m.current.load(Ordering::Relaxed);
    loop {
        m.slots[record][slot].store(value, Ordering::Release);
        barrier();
        let now = m.current.load(Ordering::Acquire);
        let validated = now == value;
        value = now;
        if validated {
            return value;
        }
    }
}

/// The call itself: the value must be alive for as long as it is protected.
fn use_value(m: &Model, value: usize) {
    // SAFETY (of the model): a read of the value; loom checks it is ordered against
    // every write (free) of it.
    let content = m.values[value].with(|p| unsafe { *p });
    assert_eq!(
        content, value,
        "value {value} was reclaimed while a call used it"
    );
}

/// `Protection::drop`.
fn release(m: &Model, record: usize, slot: usize) {
    m.slots[record][slot].store(0, Ordering::Release);
}

/// `HazardCell::swap`.
fn swap(m: &Model, new: usize) {
    let old = m.current.swap(new, Ordering::AcqRel);
    m.retiring.lock().unwrap().push(old);
}

/// `HazardCell::reclaim`: barrier, scan, "free" what no slot holds.
fn reclaim(m: &Model) {
    let mut retiring = m.retiring.lock().unwrap();
    if retiring.is_empty() {
        return;
    }
    barrier();
    let announced: Vec<usize> = m
        .slots
        .iter()
        .flatten()
        .map(|s| s.load(Ordering::Acquire))
        .filter(|&v| v != 0)
        .collect();
    retiring.retain(|&v| {
        if announced.contains(&v) {
            true
        } else {
            // SAFETY (of the model): the free; loom checks no call's read of the value
            // can race it.
            m.values[v].with_mut(|p| unsafe { *p = 0 });
            false
        }
    });
}

/// One call by a reader on record `record`.
fn call(m: &Model, record: usize) {
    let value = acquire(m, record, 0);
    use_value(m, value);
    release(m, record, 0);
}

#[test]
fn a_call_never_uses_a_reclaimed_value() {
    loom::model(|| {
        let m = Model::new();
        let reader = {
            let m = m.clone();
            thread::spawn(move || call(&m, 0))
        };
        swap(&m, 2);
        reclaim(&m);
        reader.join().unwrap();
    });
}

#[test]
fn swap_and_reclaim_on_different_threads() {
    loom::model(|| {
        let m = Model::new();
        let reader = {
            let m = m.clone();
            thread::spawn(move || call(&m, 0))
        };
        let swapper = {
            let m = m.clone();
            thread::spawn(move || swap(&m, 2))
        };
        reclaim(&m);
        swapper.join().unwrap();
        reclaim(&m);
        reader.join().unwrap();
    });
}

#[test]
fn a_nested_call_is_protected_at_each_level() {
    loom::model(|| {
        let m = Model::new();
        let reader = {
            let m = m.clone();
            thread::spawn(move || {
                let outer = acquire(&m, 0, 0);
                // A plugin calls back into the host, which calls the plugin again:
                // the next slot of the same record.
                let inner = acquire(&m, 0, 1);
                use_value(&m, inner);
                release(&m, 0, 1);
                use_value(&m, outer);
                release(&m, 0, 0);
            })
        };
        swap(&m, 2);
        reclaim(&m);
        reader.join().unwrap();
    });
}

#[test]
fn a_record_handed_on_by_an_exiting_thread_serves_the_next() {
    loom::model(|| {
        let m = Model::new();
        let first = {
            let m = m.clone();
            thread::spawn(move || {
                call(&m, 0);
                // The thread exits: its record goes back, every slot clear.
                assert!(m.slots[0].iter().all(|s| s.load(Ordering::Relaxed) == 0));
                m.free_records.lock().unwrap().push(0);
            })
        };
        let second = {
            let m = m.clone();
            thread::spawn(move || {
                // Takes the handed-on record if it is there yet, else a new one.
                let record = m.free_records.lock().unwrap().pop().unwrap_or(1);
                call(&m, record);
            })
        };
        swap(&m, 2);
        reclaim(&m);
        first.join().unwrap();
        second.join().unwrap();
        reclaim(&m);
    });
}

/// The preemption bound of the membarrier-lost model.
const PREEMPTIONS: usize = 3;

/// The fence mode of `src/hazard.rs`: calls rely on `membarrier` until it is lost.
const ASYMMETRIC: usize = 1;
const SYMMETRIC: usize = 2;

/// The protocol once `membarrier` can fail (module docs of `src/hazard.rs`, *When
/// membarrier stops working*). Calls read the mode; under the asymmetric one their
/// half of the fence is only a compiler fence, which is no fence at all once the
/// writer's `membarrier` fails, so it is modelled as nothing. The writer, finding
/// membarrier failing, switches the mode, fences, and frees only values made current
/// after the switch ("fenced"); the others are stranded for good.
struct Lost {
    m: Arc<Model>,
    mode: AtomicUsize,
    /// Whether the current value was made current after the switch.
    current_fenced: Mutex<bool>,
    retiring: Mutex<Vec<(usize, bool)>>,
}

/// `Protection::acquire` with the fence the mode asks for.
fn acquire_lost(l: &Lost, record: usize) -> usize {
    // Acquire, so a value made current after the switch brings the switch with it.
    let mut value = l.m.current.load(Ordering::Acquire);
    loop {
        l.m.slots[record][0].store(value, Ordering::Release);
        let switched = l.mode.load(Ordering::Relaxed) == SYMMETRIC;
        // The mutant `no_switch`: calls keep relying on the lost membarrier.
        if switched && !cfg!(fidius_mutant = "no_switch") {
            fence(Ordering::SeqCst);
        }
        let now = l.m.current.load(Ordering::Acquire);
        let validated = now == value;
        value = now;
        if validated {
            return value;
        }
    }
}

/// `HazardCell::swap`: whether the new value is fenced is read before it is
/// published.
fn swap_lost(l: &Lost, new: usize) {
    let mut current_fenced = l.current_fenced.lock().unwrap();
    let new_fenced = l.mode.load(Ordering::Acquire) == SYMMETRIC;
    let old = l.m.current.swap(new, Ordering::AcqRel);
    let old_fenced = std::mem::replace(&mut *current_fenced, new_fenced);
    l.retiring.lock().unwrap().push((old, old_fenced));
}

/// `HazardCell::reclaim` after `membarrier` failed: switch, fence, scan; free what
/// is fenced and unannounced, strand what is not fenced. As in the real code, a
/// reclaim with nothing retiring issues no barrier, so it does not switch.
fn reclaim_lost(l: &Lost) {
    let mut retiring = l.retiring.lock().unwrap();
    if retiring.is_empty() {
        return;
    }
    l.mode.store(SYMMETRIC, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    let announced: Vec<usize> =
        l.m.slots
            .iter()
            .flatten()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|&v| v != 0)
            .collect();
    retiring.retain(|&(v, fenced)| {
        if !fenced && !cfg!(fidius_mutant = "free_stranded") {
            return false; // stranded: never freed
        }
        if announced.contains(&v) {
            return true;
        }
        // SAFETY (of the model): the free, as in `reclaim`.
        l.m.values[v].with_mut(|p| unsafe { *p = 0 });
        false
    });
}

/// Membarrier is found failing by a reclaim of *another* cell (a thread of its own,
/// so nothing but the mode's own orderings tells this cell's swaps about the switch),
/// while this cell swaps and reclaims and a call runs. Whether value 2 counts as
/// fenced depends on whether its swap saw the switch. Built with
/// `--cfg fidius_mutant="free_stranded"` (values announced before the switch are
/// freed too) or `"no_switch"` (calls never start fencing), the model must fail.
#[test]
fn a_lost_membarrier_frees_only_values_calls_fenced_for() {
    // Three threads explore for hours unbounded; every failure found so far (both
    // mutants, relaxed orderings) shows within two preemptions.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(PREEMPTIONS);
    model.check(|| {
        let l = Arc::new(Lost {
            m: Model::new(),
            mode: AtomicUsize::new(ASYMMETRIC),
            current_fenced: Mutex::new(false),
            retiring: Mutex::new(Vec::new()),
        });
        let reader = {
            let l = l.clone();
            thread::spawn(move || {
                let value = acquire_lost(&l, 0);
                use_value(&l.m, value);
                release(&l.m, 0, 0);
            })
        };
        let other_cell = {
            let l = l.clone();
            thread::spawn(move || l.mode.store(SYMMETRIC, Ordering::SeqCst))
        };
        // Value 1 was current while membarrier worked: stranded. Value 2 is freed
        // once unannounced if its swap saw the switch, stranded otherwise.
        swap_lost(&l, 2);
        swap_lost(&l, 3);
        reclaim_lost(&l);
        other_cell.join().unwrap();
        reader.join().unwrap();
    });
}
