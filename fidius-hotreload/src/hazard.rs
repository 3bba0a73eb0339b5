//! [`HazardCell`]: the current version, readable by a call for the price of two plain
//! stores, swappable at any time, and never freed under a call still using it.
//!
//! # Why not a reference count or an arc-swap guard per call
//!
//! A call must keep the version it started on alive until it returns. Counting calls
//! in a shared counter makes every call bounce one cache line between all calling
//! threads. An arc-swap guard avoids that by writing to a per-thread slot instead, but
//! it has to use locked read-modify-write instructions to do so (two per call), and
//! those would be nearly all of the hot client's overhead over a plain handle
//! (BENCHMARKS.md measures both).
//!
//! # Hazard slots with asymmetric fences
//!
//! Every thread owns a [`Record`] of a few *hazard slots*. A call announces the version
//! it is about to use by storing its address in a free slot, re-reads the current
//! pointer, and proceeds only if it is unchanged; when the call returns it clears the
//! slot. A swap moves the old version to a *retiring* list. [`HazardCell::reclaim`]
//! gives a retiring version up only when no slot holds its address.
//!
//! Announcing and re-reading is a store followed by a load, which the processor may
//! reorder unless a full fence separates them, and that fence is what costs. Instead
//! the fence is made *asymmetric*: on Linux, the reader only prevents the compiler from
//! reordering (no instruction at all), and the writer, before it scans the slots, calls
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which makes every running thread of
//! the process execute a full fence. The writer pays about a microsecond per reclaim;
//! the reader pays nothing. Where membarrier is unavailable (other systems, old kernels,
//! sandboxes that filter it) both sides use an ordinary sequentially consistent fence:
//! slower for readers, equally correct.
//!
//! Why a reader never uses a freed version: take the reader's announcement `A`, its
//! re-read `R`, the writer's swap `S`, its barrier `B` and scan `C`. The barrier splits
//! the reader's execution in two. If `A` came before the reader's barrier point, `A` is
//! visible to `C`, so the scan sees the slot and keeps the version. If `A` came after
//! it, so did `R`, and `R` sees `S` (or later), so the re-read fails and the reader
//! retries with the new version. The old address cannot come back as "current" in
//! between, because it is not freed while it is retiring. The slot is cleared with a
//! release store and scanned with acquire loads, so everything the call did with the
//! version happens before the version is freed.
//!
//! # When membarrier stops working
//!
//! A seccomp filter applied after start-up can make `membarrier` fail from then on.
//! Calls that announced a value with only a compiler fence can then no longer be
//! ordered against a scan, so the values they may have announced can never be freed
//! safely. The first reclaim that finds the barrier failing switches the process to
//! symmetric fences for good (readers fence from their next call on), and from then
//! on each value carries whether it was made current before or after the switch:
//!
//! * a value made current *after* the switch is announced only by calls that fenced.
//!   The swap read the switch before it published the value, and a call reads the
//!   current pointer with acquire before it reads the fence mode, so a call that
//!   found the value also finds the switch (read-read coherence). Such values are
//!   reclaimed as usual, with an ordinary fence on the writer's side;
//! * a value made current *before* the switch is *stranded*: kept (loaded) until the
//!   cell is dropped. Only the values current or retiring at the moment of the
//!   switch are, so the leak is bounded and happens once.
//!
//! The loom model `a_lost_membarrier_frees_only_values_calls_fenced_for` checks this
//! step, and fails with either half broken (`fidius_mutant="free_stranded"`,
//! `"no_switch"`); the unit test `a_membarrier_lost_midway_strands_a_few_and_frees_the_rest`
//! makes membarrier fail for real with a seccomp filter, in a child process.
//!
//! Calls nest (a plugin may call back into the host, which calls another hot plugin);
//! each nesting level takes the next slot. Past [`SLOTS`] levels, or on a thread whose
//! thread-locals are already destroyed, a call takes an owned `Arc` under a read lock
//! that a swap holds only while it exchanges the pointer.

use parking_lot::{Mutex, RwLock};
use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::{
    compiler_fence, fence, AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering,
};
use std::sync::{Arc, Once};

/// Hazard slots per thread: how deeply calls may nest on one thread before a call
/// takes the locked path.
pub(crate) const SLOTS: usize = 4;

/// One thread's hazard slots. Records are never freed: a thread that exits hands its
/// record to the next thread that needs one, so there are at most as many records as
/// threads that ever made calls at the same time. Each record has its own cache
/// lines (128 bytes covers adjacent-line prefetching), so calls on different threads
/// never write to a shared line.
#[repr(align(128))]
struct Record {
    slots: [AtomicPtr<()>; SLOTS],
    /// Slots in use. Only the owning thread reads or writes it.
    depth: AtomicUsize,
}

/// Every record, and those whose thread has exited.
struct Registry {
    all: Vec<&'static Record>,
    free: Vec<&'static Record>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    all: Vec::new(),
    free: Vec::new(),
});

/// Records retired because their thread exited with a slot still announced (their
/// values stay announced, and so alive, for good).
pub(crate) static RETIRED_RECORDS: AtomicUsize = AtomicUsize::new(0);

/// Marks a thread whose record was already handed back (it is exiting): its calls
/// take the locked path.
const GONE: *const Record = ptr::dangling();

thread_local! {
    /// This thread's record: null until its first call, [`GONE`] once handed back.
    /// Deliberately without a destructor, so reading it is a single load; the
    /// destructor lives in [`RECORD_OWNER`], registered on the first call only.
    static RECORD: Cell<*const Record> = const { Cell::new(ptr::null()) };
    static RECORD_OWNER: RecordOwner = const { RecordOwner };
}

/// Hands this thread's record on when the thread exits.
struct RecordOwner;

impl Drop for RecordOwner {
    fn drop(&mut self) {
        let _ = RECORD.try_with(|cell| {
            let record = cell.replace(GONE);
            if !record.is_null() && record != GONE {
                // SAFETY: records are leaked, so the pointer is valid for 'static.
                let record: &'static Record = unsafe { &*record };
                // Normally every protection taken on this thread ended before its
                // thread-locals are destroyed (a protection never outlives
                // `HazardCell::with`), so all slots are clear and the record can
                // serve another thread. A thread that left without unwinding its
                // calls (`pthread_exit`, a forced unwind in a plugin) still has
                // slots announced: its record stays out of service for good (its
                // announcements keep those values alive, which is safe), rather
                // than be handed to a thread that would write over them.
                let clear = record.depth.load(Ordering::Relaxed) == 0
                    && record
                        .slots
                        .iter()
                        .all(|s| s.load(Ordering::Relaxed).is_null());
                if clear {
                    REGISTRY.lock().free.push(record);
                } else {
                    // Nothing that could touch another thread-local (logging would):
                    // this runs while they are being destroyed.
                    RETIRED_RECORDS.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// This thread's record; `None` once the thread is exiting.
#[inline]
fn local_record() -> Option<&'static Record> {
    let record = RECORD.with(Cell::get);
    if record.is_null() {
        return take_record();
    }
    if record == GONE {
        return None;
    }
    // SAFETY: records are leaked (never freed), so the pointer stays valid.
    Some(unsafe { &*record })
}

#[cold]
fn take_record() -> Option<&'static Record> {
    // Register the destructor that hands the record back; if the thread is already
    // destroying its thread-locals, take no record (the call takes the locked path).
    RECORD_OWNER.try_with(|_| ()).ok()?;
    let mut registry = REGISTRY.lock();
    let record = registry.free.pop().unwrap_or_else(|| {
        let record: &'static Record = Box::leak(Box::new(Record {
            slots: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            depth: AtomicUsize::new(0),
        }));
        registry.all.push(record);
        record
    });
    RECORD.with(|cell| cell.set(record));
    Some(record)
}

/// Which fences readers and writers use; decided once per process.
static FENCES: AtomicU8 = AtomicU8::new(SYMMETRIC);
static FENCES_INIT: Once = Once::new();
/// Readers: compiler fence only. Writers: membarrier.
const ASYMMETRIC: u8 = 1;
/// Both sides: a sequentially consistent fence.
const SYMMETRIC: u8 = 2;

/// What the writer's half of the fence achieved.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Barrier {
    /// `membarrier` ran: every thread is ordered, whatever fence its calls used.
    Membarrier,
    /// An ordinary fence: it orders only against calls that fenced too, which is
    /// every call that announced a value made current under symmetric fences.
    Fence,
}

/// Decides the fences, registering for expedited membarrier where the kernel offers
/// it. Runs before any cell exists, so before any reader or writer needs the answer.
fn init_fences() {
    FENCES_INIT.call_once(|| {
        let mode = if std::env::var_os(NO_MEMBARRIER_ENV).is_none() && register_membarrier() {
            ASYMMETRIC
        } else {
            SYMMETRIC
        };
        FENCES.store(mode, Ordering::Release);
        tracing::debug!(
            asymmetric = mode == ASYMMETRIC,
            "fidius-hotreload reader fences decided"
        );
    });
}

/// Setting this environment variable (to anything) makes the process use the
/// portable fences even where membarrier works: for testing that path, or for ruling
/// membarrier out when investigating a problem.
pub(crate) const NO_MEMBARRIER_ENV: &str = "FIDIUS_HOTRELOAD_NO_MEMBARRIER";

// Miri cannot run the `membarrier` system call: under Miri the fence fallback is
// checked instead.
#[cfg(all(target_os = "linux", not(miri)))]
fn register_membarrier() -> bool {
    use rustix::thread::{membarrier, membarrier_query, MembarrierCommand};
    membarrier_query().contains_command(MembarrierCommand::PrivateExpedited)
        && membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok()
}

#[cfg(any(not(target_os = "linux"), miri))]
fn register_membarrier() -> bool {
    false
}

/// Whether calls use no fence instruction at all (the kernel's membarrier serves
/// the writers); see [`crate::uses_membarrier`].
pub(crate) fn asymmetric() -> bool {
    init_fences();
    FENCES.load(Ordering::Acquire) == ASYMMETRIC
}

/// The reader's half of the fence, between announcing and re-reading.
#[inline]
fn light_barrier() {
    // A deliberately broken build, to show that the checks catch a missing barrier:
    // `RUSTFLAGS='--cfg fidius_mutant="no_barriers"'` (see the crate docs).
    if cfg!(fidius_mutant = "no_barriers") {
        return;
    }
    // Another: calls that keep relying on membarrier after it was lost (the writer
    // believes they switched): `RUSTFLAGS='--cfg fidius_mutant="no_switch"'`.
    if cfg!(fidius_mutant = "no_switch") || FENCES.load(Ordering::Relaxed) == ASYMMETRIC {
        // The writer's membarrier supplies the hardware fence; only the compiler must
        // keep the announcement before the re-read.
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The writer's half, between swapping and scanning.
fn heavy_barrier() -> Barrier {
    init_fences();
    if cfg!(fidius_mutant = "no_barriers") {
        return Barrier::Membarrier;
    }
    if FENCES.load(Ordering::Acquire) == ASYMMETRIC {
        #[cfg(all(target_os = "linux", not(miri)))]
        {
            use rustix::thread::{membarrier, MembarrierCommand};
            let barrier = || membarrier(MembarrierCommand::PrivateExpedited);
            // If it fails (a registration somehow lost), registering again is
            // harmless; if that fails too (a filter applied after start-up), the
            // process switches to symmetric fences for good.
            let result = barrier().or_else(|_| {
                membarrier(MembarrierCommand::RegisterPrivateExpedited).and_then(|()| barrier())
            });
            match result {
                Ok(()) => return Barrier::Membarrier,
                Err(e) => lose_membarrier(&e.to_string()),
            }
        }
    }
    fence(Ordering::SeqCst);
    Barrier::Fence
}

/// `membarrier` failed after calls relied on it: from now on calls fence
/// themselves (see the module docs, *When membarrier stops working*).
#[cfg_attr(any(not(target_os = "linux"), miri), allow(dead_code))]
fn lose_membarrier(error: &str) {
    if FENCES.swap(SYMMETRIC, Ordering::SeqCst) == ASYMMETRIC {
        tracing::error!(
            error,
            "membarrier stopped working: hot-plugin calls now use a full fence each, and \
             the versions current or draining at this moment stay loaded until their \
             plugin is dropped"
        );
    }
}

/// Whether a value made current now will be announced only by calls that fence:
/// the process uses symmetric fences. Read before the exchange publishes the value:
/// a call that finds the value (its acquire load synchronizes with the exchange)
/// reads the mode after this read happened, so by coherence it reads the switch too.
/// (Acquire is more than coherence needs; the loom model passes with relaxed here.)
fn made_current_fenced() -> bool {
    FENCES.load(Ordering::Acquire) == SYMMETRIC
}

/// Whether calls may announce `value` (the current value) without a fence: it was
/// made current while calls relied on membarrier.
fn asymmetric_era<T>(value: &Arc<T>, current: &AtomicPtr<T>, current_fenced: &AtomicBool) -> bool {
    ptr::eq(current.load(Ordering::Acquire), Arc::as_ptr(value))
        && !current_fenced.load(Ordering::Acquire)
}

/// Every address announced in any slot right now. Call after [`heavy_barrier`].
fn announced() -> Vec<*mut ()> {
    let registry = REGISTRY.lock();
    registry
        .all
        .iter()
        .flat_map(|record| record.slots.iter())
        .map(|slot| slot.load(Ordering::Acquire))
        .filter(|p| !p.is_null())
        .collect()
}

/// The announcement of one call: clears its slot when dropped.
struct Protection<'a, T> {
    record: &'static Record,
    index: usize,
    value: *const T,
    _cell: PhantomData<&'a HazardCell<T>>,
}

impl<'a, T> Protection<'a, T> {
    /// Announces the cell's current value in this thread's next free slot; `None`
    /// when there is none (nesting too deep, or thread-locals already destroyed).
    #[inline]
    fn acquire(cell: &'a HazardCell<T>) -> Option<Self> {
        let record = local_record()?;
        let index = record.depth.load(Ordering::Relaxed);
        if index >= SLOTS {
            return None;
        }
        record.depth.store(index + 1, Ordering::Relaxed);
        let slot = &record.slots[index];
        // Acquire: a value made current after a switch to symmetric fences must be
        // seen together with the switch, so `light_barrier` below fences for it.
        let mut value = cell.current.load(Ordering::Acquire);
        loop {
            slot.store(value.cast(), Ordering::Release);
            light_barrier();
            let now = cell.current.load(Ordering::Acquire);
            let validated = now == value;
            // The pointer used from here on is the one just re-read (same address):
            // its provenance is the load that validated the announcement, not an
            // earlier one that may predate a free and reuse of the address.
            value = now;
            if validated {
                break;
            }
        }
        Some(Self {
            record,
            index,
            value,
            _cell: PhantomData,
        })
    }

    #[inline]
    fn get(&self) -> &T {
        // SAFETY: `value` was the cell's current value after it was announced in our
        // slot (the re-read in `acquire` saw it). From then on `reclaim` will not give
        // it up while the slot holds it (see the module docs), and while it is current
        // the cell's own reference keeps it alive. The slot is cleared only when this
        // protection drops, and the returned borrow cannot outlive `self`.
        unsafe { &*self.value }
    }
}

impl<T> Drop for Protection<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.record.slots[self.index].store(ptr::null_mut(), Ordering::Release);
        self.record.depth.store(self.index, Ordering::Relaxed);
    }
}

/// A value swapped out, waiting for the calls that may still use it.
struct Retiring<T> {
    value: Arc<T>,
    /// Made current under symmetric fences: an ordinary fence suffices to free it.
    fenced: bool,
}

struct Stranded<T> {
    values: Vec<Arc<T>>,
    reported: usize,
}

/// An `Arc<T>` that can be swapped while calls use it without touching any shared
/// counter; see the module docs.
pub(crate) struct HazardCell<T> {
    /// The current value: one strong reference, from `Arc::into_raw`.
    current: AtomicPtr<T>,
    /// Whether every call that can announce the current value fences (it was made
    /// current under symmetric fences). Written only under `swap_lock`'s write lock.
    current_fenced: AtomicBool,
    /// Values swapped out that a call may still be using.
    retiring: Mutex<Vec<Retiring<T>>>,
    /// Values that can never be freed safely (see the module docs, *When membarrier
    /// stops working*), kept until the cell drops; those before `reported` have been
    /// handed out by [`take_stranded`](Self::take_stranded).
    stranded: Mutex<Stranded<T>>,
    /// Held for reading by calls that could not take a slot; held for writing only
    /// while a swap exchanges the pointer.
    swap_lock: RwLock<()>,
    /// The cell owns `Arc<T>`s, so it is `Send`/`Sync` exactly when they are.
    _owns: PhantomData<Arc<T>>,
}

impl<T> HazardCell<T> {
    pub fn new(value: Arc<T>) -> Self {
        init_fences();
        Self {
            current: AtomicPtr::new(Arc::into_raw(value).cast_mut()),
            current_fenced: AtomicBool::new(made_current_fenced()),
            retiring: Mutex::new(Vec::new()),
            stranded: Mutex::new(Stranded {
                values: Vec::new(),
                reported: 0,
            }),
            swap_lock: RwLock::new(()),
            _owns: PhantomData,
        }
    }

    /// Runs `f` on the current value, which stays alive until `f` returns even if it
    /// is swapped out meanwhile.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        // One call site for `f`, so it inlines into the caller.
        let owned;
        let protection = Protection::acquire(self);
        let value = match &protection {
            Some(protection) => protection.get(),
            None => {
                owned = self.load_full();
                &*owned
            }
        };
        f(value)
    }

    /// An owned reference to the current value, for what outlives a call.
    pub fn load_full(&self) -> Arc<T> {
        let _no_swap = self.swap_lock.read();
        let current = self.current.load(Ordering::Acquire);
        // SAFETY: `current` came from `Arc::into_raw` and the cell still holds that
        // reference: it gives it up only in `swap`, which needs the write lock we
        // exclude. So the count is at least one while we add ours.
        unsafe {
            Arc::increment_strong_count(current);
            Arc::from_raw(current)
        }
    }

    /// Makes `new` current. The old value moves to the retiring list until
    /// [`reclaim`](Self::reclaim) finds no call using it.
    pub fn swap(&self, new: Arc<T>) {
        let new = Arc::into_raw(new).cast_mut();
        let (old, fenced) = {
            let _exclusive = self.swap_lock.write();
            // Read before the exchange publishes `new` (see `made_current_fenced`).
            let new_fenced = made_current_fenced();
            let old = self.current.swap(new, Ordering::AcqRel);
            (old, self.current_fenced.swap(new_fenced, Ordering::Relaxed))
        };
        // SAFETY: `old` came from `Arc::into_raw` (in `new` or an earlier `swap`), and
        // the cell's reference to it moves to the retiring list here, exactly once.
        let value = unsafe { Arc::from_raw(old) };
        self.retiring.lock().push(Retiring { value, fenced });
    }

    /// Takes out of the retiring list every value no call is using, for the caller
    /// to drop (outside any lock). Others stay for a later reclaim, or become
    /// stranded if they can never be freed (see [`take_stranded`](Self::take_stranded)).
    pub fn reclaim(&self) -> Vec<Arc<T>> {
        // Reported here, not where it happens (a thread-local destructor, where
        // logging could abort).
        let retired = RETIRED_RECORDS.swap(0, Ordering::Relaxed);
        if retired > 0 {
            tracing::error!(
                threads = retired,
                "threads exited inside a hot-plugin call; their hazard records are retired and the versions they announced stay loaded"
            );
        }
        let mut retiring = self.retiring.lock();
        if retiring.is_empty() {
            return Vec::new();
        }
        let barrier = heavy_barrier();
        let mut announced = announced();
        // A deliberately broken build that frees values still announced:
        // `RUSTFLAGS='--cfg fidius_mutant="ignore_slots"'`.
        if cfg!(fidius_mutant = "ignore_slots") {
            announced.clear();
        }
        let mut free = Vec::new();
        let mut stranded = Vec::new();
        retiring.retain_mut(|r| {
            // A value calls may have announced without a fence can be freed only
            // after a membarrier, and once it has failed there will be none (the
            // process uses symmetric fences for good).
            if !r.fenced && barrier != Barrier::Membarrier {
                // A deliberately broken build that frees them anyway:
                // `RUSTFLAGS='--cfg fidius_mutant="free_stranded"'`.
                if !cfg!(fidius_mutant = "free_stranded") {
                    stranded.push(r.value.clone());
                    return false;
                }
            }
            if announced.contains(&Arc::as_ptr(&r.value).cast_mut().cast()) {
                return true;
            }
            free.push(r.value.clone());
            false
        });
        drop(retiring);
        if !stranded.is_empty() {
            self.stranded.lock().values.extend(stranded);
        }
        free
    }

    /// Values that became stranded since the last call: they stay loaded until the
    /// cell drops (the cell keeps its own reference), and the caller may report them.
    pub fn take_stranded(&self) -> Vec<Arc<T>> {
        let mut stranded = self.stranded.lock();
        let new = stranded.values[stranded.reported..].to_vec();
        stranded.reported = stranded.values.len();
        new
    }

    /// Everything in `value`, the current value, right now: calls announced in a
    /// slot, and owned references besides the cell's own and the caller's
    /// `caller_owns` (streams, calls past the slots). Exact for what started before
    /// a change the caller made with a sequentially consistent store: such a call
    /// or reference is counted here, or sees the change. Slot calls by the argument
    /// of the module docs; owned references because taking one holds the swap lock
    /// for reading, which this takes for writing once. `None` when that cannot be
    /// proven: the barrier failed while calls may announce `value` without a fence.
    pub fn busy(&self, value: &Arc<T>, caller_owns: usize) -> Option<usize> {
        drop(self.swap_lock.write());
        let barrier = heavy_barrier();
        if barrier != Barrier::Membarrier
            && asymmetric_era(value, &self.current, &self.current_fenced)
        {
            return None;
        }
        let target: *mut () = Arc::as_ptr(value).cast_mut().cast();
        let calls = announced().into_iter().filter(|&p| p == target).count();
        let listed = self
            .retiring
            .lock()
            .iter()
            .filter(|r| Arc::ptr_eq(&r.value, value))
            .count();
        let stranded = self
            .stranded
            .lock()
            .values
            .iter()
            .filter(|v| Arc::ptr_eq(v, value))
            .count();
        let owned = Arc::strong_count(value).saturating_sub(1 + listed + stranded + caller_owns);
        // Whatever those holders did happens before what the caller does next.
        fence(Ordering::Acquire);
        Some(calls + owned)
    }

    /// Whether the value at `value` is stranded (compared by address only, so that
    /// the caller need not own a reference).
    pub fn is_stranded(&self, value: *const T) -> bool {
        self.stranded
            .lock()
            .values
            .iter()
            .any(|v| ptr::eq(Arc::as_ptr(v), value))
    }

    /// Whether some swapped-out value is still waiting for its calls, or became
    /// stranded and was not taken yet.
    pub fn has_retiring(&self) -> bool {
        if !self.retiring.lock().is_empty() {
            return true;
        }
        let stranded = self.stranded.lock();
        stranded.reported < stranded.values.len()
    }

    /// What holds `value` right now besides the caller's own reference: calls
    /// announced in a slot (if it is retiring) plus other owned references (streams,
    /// clients' kept versions). Read under the retiring list's lock, so a reclaim
    /// on another thread cannot make one holder count twice. Exact except for a
    /// stranded value, where a call that is just starting may be missed.
    pub fn holders(&self, value: &Arc<T>) -> usize {
        let retiring = self.retiring.lock();
        // The caller's reference, and the cell's own if it has one, are not holders.
        let listed = retiring.iter().any(|r| Arc::ptr_eq(&r.value, value));
        let stranded = self
            .stranded
            .lock()
            .values
            .iter()
            .any(|v| Arc::ptr_eq(v, value));
        let others = Arc::strong_count(value) - 1 - usize::from(listed || stranded);
        if !listed && !stranded {
            return others;
        }
        heavy_barrier();
        let target: *mut () = Arc::as_ptr(value).cast_mut().cast();
        others + announced().into_iter().filter(|&p| p == target).count()
    }
}

impl<T> Drop for HazardCell<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer holds the cell's reference (from `Arc::into_raw`), which
        // is given back exactly once, here. No call can be using any value: calls
        // borrow the cell, and we have it exclusively. The retiring list drops with us.
        drop(unsafe { Arc::from_raw(*self.current.get_mut()) });
    }
}

/// Test support shared with the end-to-end test of a stranded version.
#[cfg(all(test, target_os = "linux", not(miri)))]
#[path = "../tests/support/forbid_membarrier.rs"]
mod forbid_membarrier;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// A value that knows whether it has been dropped (its id leaves the `live` set).
    struct Tracked {
        id: u64,
        live: Arc<Mutex<HashSet<u64>>>,
    }

    impl Tracked {
        fn new(id: u64, live: &Arc<Mutex<HashSet<u64>>>) -> Arc<Self> {
            live.lock().insert(id);
            Arc::new(Self {
                id,
                live: live.clone(),
            })
        }
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            assert!(self.live.lock().remove(&self.id), "dropped twice");
        }
    }

    #[test]
    fn a_value_in_use_is_not_reclaimed_until_the_call_returns() {
        let live = Arc::new(Mutex::new(HashSet::new()));
        let cell = Arc::new(HazardCell::new(Tracked::new(1, &live)));
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let reader = {
            let cell = cell.clone();
            std::thread::spawn(move || {
                cell.with(|v| {
                    entered_tx.send(v.id).unwrap();
                    release_rx.recv().unwrap();
                    v.id
                })
            })
        };
        assert_eq!(entered.recv().unwrap(), 1);
        cell.swap(Tracked::new(2, &live));
        assert!(cell.reclaim().is_empty(), "version 1 is still in a call");
        let old = cell.retiring.lock()[0].value.clone();
        assert_eq!(cell.holders(&old), 1, "the call");
        drop(old);
        assert!(live.lock().contains(&1));
        cell.with(|v| assert_eq!(v.id, 2));
        release.send(()).unwrap();
        assert_eq!(reader.join().unwrap(), 1);
        let freed = cell.reclaim();
        assert_eq!(freed.len(), 1);
        assert_eq!(freed[0].id, 1);
        drop(freed);
        assert!(!live.lock().contains(&1));
        assert!(!cell.has_retiring());
        drop(cell);
        assert!(live.lock().is_empty(), "the cell frees what it holds");
    }

    /// `.ci/run` runs these tests a second time with the switch set, so both fence
    /// modes are exercised on Linux.
    #[test]
    fn the_environment_switch_forces_portable_fences() {
        if std::env::var_os(NO_MEMBARRIER_ENV).is_some() {
            assert!(!asymmetric());
        }
        // Without the switch either mode is right: it depends on the kernel.
        eprintln!("asymmetric fences: {}", asymmetric());
    }

    #[test]
    fn nesting_deeper_than_the_slots_still_protects() {
        let live = Arc::new(Mutex::new(HashSet::new()));
        let cell = HazardCell::new(Tracked::new(1, &live));
        fn nest(cell: &HazardCell<Tracked>, depth: usize, seen: &mut Vec<u64>) {
            cell.with(|v| {
                seen.push(v.id);
                if depth > 0 {
                    nest(cell, depth - 1, seen);
                }
            })
        }
        let mut seen = Vec::new();
        nest(&cell, SLOTS * 3, &mut seen);
        assert_eq!(seen, vec![1; SLOTS * 3 + 1]);
        // All slots were given back: a swap now reclaims at once.
        cell.swap(Tracked::new(2, &live));
        assert_eq!(cell.reclaim().len(), 1);
    }

    #[test]
    fn a_panicking_call_gives_its_slot_back() {
        let live = Arc::new(Mutex::new(HashSet::new()));
        let cell = HazardCell::new(Tracked::new(1, &live));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cell.with(|_| panic!("in the call"))
        }));
        assert!(caught.is_err());
        cell.swap(Tracked::new(2, &live));
        assert_eq!(cell.reclaim().len(), 1, "the panicked call left no hazard");
    }

    #[test]
    fn records_do_not_share_cache_lines() {
        assert_eq!(std::mem::align_of::<Record>(), 128);
        assert!(std::mem::size_of::<Record>() <= 128);
    }

    #[test]
    fn exited_threads_hand_their_records_on() {
        let live = Arc::new(Mutex::new(HashSet::new()));
        let cell = Arc::new(HazardCell::new(Tracked::new(1, &live)));
        for _ in 0..3 {
            let cell = cell.clone();
            std::thread::spawn(move || cell.with(|v| v.id))
                .join()
                .unwrap();
        }
        let before = REGISTRY.lock().all.len();
        for _ in 0..20 {
            let cell = cell.clone();
            std::thread::spawn(move || cell.with(|v| v.id))
                .join()
                .unwrap();
        }
        // Other tests run threads at the same time, so allow for them; 20 sequential
        // threads must not have added 20 records.
        assert!(REGISTRY.lock().all.len() < before + 10);
    }

    /// A value the stress tests below never free: where the cell would free it, the
    /// test marks it dead instead (and keeps it), so a use after reclaim is observed
    /// as a load of `alive`, not undefined behaviour.
    struct Canary {
        alive: AtomicBool,
    }

    fn canary() -> Arc<Canary> {
        Arc::new(Canary {
            alive: AtomicBool::new(true),
        })
    }

    /// How long the lock-free stress test runs: `FIDIUS_HAZARD_STRESS_MS`, default
    /// 1500 ms.
    fn stress_time() -> Duration {
        if cfg!(miri) {
            // Miri runs a thousand times slower; it checks each step instead.
            return Duration::from_millis(300);
        }
        let ms = std::env::var("FIDIUS_HAZARD_STRESS_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1500);
        Duration::from_millis(ms)
    }

    /// Readers that take no lock of any kind (a lock is a fence, and would hide a
    /// missing barrier) and check, again and again inside each call, that their value
    /// is alive.
    struct Readers {
        stop: Arc<AtomicBool>,
        dead_seen: Arc<AtomicUsize>,
        /// Calls that were still in their value after it stopped being current: the
        /// overlap the tests are about. Without any, they would prove nothing.
        overlapped: Arc<AtomicUsize>,
        threads: Vec<std::thread::JoinHandle<u64>>,
    }

    /// What the readers saw.
    struct Seen {
        calls: u64,
        dead: usize,
        overlapped: usize,
    }

    impl Readers {
        fn start(cell: &Arc<HazardCell<Canary>>) -> Self {
            let stop = Arc::new(AtomicBool::new(false));
            let dead_seen = Arc::new(AtomicUsize::new(0));
            let overlapped = Arc::new(AtomicUsize::new(0));
            let count = std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(2);
            let threads = (0..count)
                .map(|_| {
                    let (cell, stop, dead_seen, overlapped) = (
                        cell.clone(),
                        stop.clone(),
                        dead_seen.clone(),
                        overlapped.clone(),
                    );
                    std::thread::spawn(move || {
                        let mut calls = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            cell.with(|v| {
                                for _ in 0..16 {
                                    if !v.alive.load(Ordering::Acquire) {
                                        dead_seen.fetch_add(1, Ordering::Relaxed);
                                    }
                                    std::hint::spin_loop();
                                }
                                let mine: *const Canary = v;
                                if cell.current.load(Ordering::Acquire).cast_const() != mine {
                                    overlapped.fetch_add(1, Ordering::Relaxed);
                                }
                            });
                            calls += 1;
                        }
                        calls
                    })
                })
                .collect();
            Self {
                stop,
                dead_seen,
                overlapped,
                threads,
            }
        }

        fn stop(self) -> Seen {
            self.stop.store(true, Ordering::Relaxed);
            let calls = self.threads.into_iter().map(|r| r.join().unwrap()).sum();
            Seen {
                calls,
                dead: self.dead_seen.load(Ordering::Relaxed),
                overlapped: self.overlapped.load(Ordering::Relaxed),
            }
        }
    }

    /// A writer swapping and reclaiming as fast as it can, marking each value the
    /// cell gives up dead (where the cell would free it: no call may be in it any
    /// more) instead of freeing it.
    struct Writer {
        cell: Arc<HazardCell<Canary>>,
        /// Every canary ever made, kept allocated until the end.
        graveyard: Vec<Arc<Canary>>,
        swaps: usize,
        freed: usize,
    }

    impl Writer {
        /// Every canary ever made stays allocated until the end; this bounds them.
        const MAX_SWAPS: usize = 4_000_000;

        fn new() -> Self {
            let first = canary();
            Self {
                cell: Arc::new(HazardCell::new(first.clone())),
                graveyard: vec![first],
                swaps: 0,
                freed: 0,
            }
        }

        fn churn(&mut self, time: Duration) {
            let start = Instant::now();
            while start.elapsed() < time && self.swaps < Self::MAX_SWAPS {
                let next = canary();
                self.graveyard.push(next.clone());
                self.cell.swap(next);
                self.swaps += 1;
                self.reclaim();
            }
        }

        fn reclaim(&mut self) {
            for old in self.cell.reclaim() {
                old.alive.store(false, Ordering::Release);
                self.freed += 1;
            }
        }
    }

    /// The check that can fail: lock-free readers against a writer that swaps,
    /// reclaims and marks dead as fast as it can. A broken protocol shows up as a
    /// dead value seen inside a call: `RUSTFLAGS='--cfg fidius_mutant="ignore_slots"'`
    /// fails it at once, `--cfg fidius_mutant="no_barriers"` on a machine with several
    /// CPUs (see the crate docs for the commands and figures). `.ci/run` runs it in
    /// both fence modes, on all CPUs and pinned to one.
    #[test]
    fn lock_free_readers_never_see_a_value_reclaimed_under_them() {
        let mut writer = Writer::new();
        let readers = Readers::start(&writer.cell);
        writer.churn(stress_time());
        let seen = readers.stop();
        writer.reclaim();
        let swaps = writer.swaps;
        eprintln!(
            "hazard stress: {swaps} swaps, {} calls on {} threads ({} outlived their value's swap), asymmetric fences: {}",
            seen.calls,
            std::thread::available_parallelism().map_or(2, |n| n.get()).max(2),
            seen.overlapped,
            asymmetric()
        );
        if !cfg!(miri) {
            assert!(
                seen.overlapped > 0,
                "no call overlapped a swap: the test proved nothing"
            );
        }
        let least = if cfg!(miri) { 1 } else { 1000 };
        assert!(
            seen.calls >= least && swaps as u64 >= least,
            "{} calls, {swaps} swaps",
            seen.calls
        );
        assert_eq!(
            seen.dead, 0,
            "{} checks saw a value reclaimed under a call",
            seen.dead
        );
        assert!(
            !writer.cell.has_retiring(),
            "everything swapped out was reclaimed"
        );
    }

    #[cfg(all(target_os = "linux", not(miri)))]
    use super::forbid_membarrier::{forbid_membarrier, in_child_process};

    /// Membarrier fails for real partway through (a seccomp filter, in a child
    /// process), under lock-free readers and a writer churning as fast as it can: no
    /// call sees a dead value, the process switches to symmetric fences, only the few
    /// values current or retiring at that moment are stranded, and everything made
    /// current after it is reclaimed as usual. The mutant `no_switch` (calls keep
    /// relying on the lost membarrier) fails it on several CPUs.
    #[cfg(all(target_os = "linux", not(miri)))]
    #[test]
    fn a_membarrier_lost_midway_strands_a_few_and_frees_the_rest() {
        if !in_child_process(
            "hazard::tests::a_membarrier_lost_midway_strands_a_few_and_frees_the_rest",
        ) {
            return;
        }
        if !asymmetric() {
            eprintln!("SKIPPED: membarrier is not in use here, so it cannot be lost");
            return;
        }
        let mut writer = Writer::new();
        let readers = Readers::start(&writer.cell);
        writer.churn(stress_time() / 4);
        let retiring_before = writer.cell.retiring.lock().len();
        if let Err(e) = forbid_membarrier() {
            readers.stop();
            eprintln!("SKIPPED: no seccomp filter can be installed here ({e})");
            return;
        }
        {
            use rustix::thread::{membarrier, MembarrierCommand};
            assert!(membarrier(MembarrierCommand::PrivateExpedited).is_err());
        }
        let (swaps_before, freed_before) = (writer.swaps, writer.freed);
        writer.churn(stress_time());
        let seen = readers.stop();
        writer.reclaim();
        let stranded = writer.cell.take_stranded().len();
        let freed_after = writer.freed - freed_before;
        eprintln!(
            "membarrier lost after {swaps_before} swaps: {} more, {freed_after} freed, {stranded} stranded ({retiring_before} were retiring); {} calls, {} overlapped a swap",
            writer.swaps - swaps_before,
            seen.calls,
            seen.overlapped
        );
        assert_eq!(
            seen.dead, 0,
            "{} checks saw a value reclaimed under a call",
            seen.dead
        );
        assert!(!asymmetric(), "the process switched to symmetric fences");
        // Those retiring, the one current, and the one the next swap made current
        // before the reclaim that found membarrier failing.
        assert!(
            (1..=retiring_before + 2).contains(&stranded),
            "{stranded} stranded"
        );
        assert!(
            freed_after >= 1000,
            "only {freed_after} freed after the loss"
        );
        assert!(!writer.cell.has_retiring(), "the rest was all reclaimed");
    }

    /// Readers check, inside every call, that the value they were given is still
    /// live, while a writer swaps and reclaims as fast as it can.
    #[test]
    fn readers_never_see_a_reclaimed_value_under_constant_swaps() {
        let live = Arc::new(Mutex::new(HashSet::new()));
        let cell = Arc::new(HazardCell::new(Tracked::new(0, &live)));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (cell, stop, live) = (cell.clone(), stop.clone(), live.clone());
                std::thread::spawn(move || {
                    let mut calls = 0u64;
                    let mut last = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let id = cell.with(|v| {
                            let id = v.id;
                            assert!(live.lock().contains(&id), "value {id} used after reclaim");
                            id
                        });
                        assert!(id >= last, "went back from {last} to {id}");
                        last = id;
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        let start = Instant::now();
        let mut next = 1;
        let mut freed = 0;
        while start.elapsed() < stress_time() {
            cell.swap(Tracked::new(next, &live));
            next += 1;
            freed += cell.reclaim().len();
        }
        stop.store(true, Ordering::Relaxed);
        let calls: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        freed += cell.reclaim().len();
        assert!(
            calls > if cfg!(miri) { 0 } else { 1000 },
            "readers made {calls} calls"
        );
        assert_eq!(
            freed as u64,
            next - 1,
            "every swapped-out value is reclaimed"
        );
        assert_eq!(live.lock().len(), 1, "only the current value is alive");
    }
}
