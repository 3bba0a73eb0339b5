//! [`HazardCell`]: the current version, readable by a call for the price of two plain
//! stores, swappable at any time, and never freed under a call still using it.
//!
//! # Why not a reference count or an arc-swap guard per call
//!
//! A call must keep the version it started on alive until it returns. Counting calls
//! in a shared counter makes every call bounce one cache line between all calling
//! threads. An arc-swap guard avoids that by writing to a per-thread slot instead, but
//! it has to use locked read-modify-write instructions to do so (two per call), and
//! those were the whole overhead of the hot client over a plain handle (12 ns of 14 ns
//! measured; see BENCHMARKS.md).
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
//! Calls nest (a plugin may call back into the host, which calls another hot plugin);
//! each nesting level takes the next slot. Past [`SLOTS`] levels, or on a thread whose
//! thread-locals are already destroyed, a call takes an owned `Arc` under a read lock
//! that a swap holds only while it exchanges the pointer.

use parking_lot::{Mutex, RwLock};
use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::{compiler_fence, fence, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
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
    if FENCES.load(Ordering::Relaxed) == ASYMMETRIC {
        // The writer's membarrier supplies the hardware fence; only the compiler must
        // keep the announcement before the re-read.
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The writer's half, between swapping and scanning. `false` if it could not be
/// issued, in which case nothing may be freed.
fn heavy_barrier() -> bool {
    init_fences();
    if cfg!(fidius_mutant = "no_barriers") {
        return true;
    }
    if FENCES.load(Ordering::Acquire) == ASYMMETRIC {
        #[cfg(all(target_os = "linux", not(miri)))]
        {
            use rustix::thread::{membarrier, MembarrierCommand};
            let barrier = || membarrier(MembarrierCommand::PrivateExpedited);
            // If it fails (a registration somehow lost), registering again is
            // harmless; if that fails too (a filter applied after start-up), nothing
            // can be freed safely: old versions stay loaded, and say so.
            let result = barrier().or_else(|_| {
                membarrier(MembarrierCommand::RegisterPrivateExpedited).and_then(|()| barrier())
            });
            if let Err(e) = result {
                // At most once a minute: a reclaim is tried up to ten times a second.
                static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                if now >= LAST.load(Ordering::Relaxed) + 60 {
                    LAST.store(now, Ordering::Relaxed);
                    tracing::error!(error = %e, "membarrier failed; old versions stay loaded");
                }
                return false;
            }
        }
    } else {
        fence(Ordering::SeqCst);
    }
    true
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
        let mut value = cell.current.load(Ordering::Relaxed);
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

/// An `Arc<T>` that can be swapped while calls use it without touching any shared
/// counter; see the module docs.
pub(crate) struct HazardCell<T> {
    /// The current value: one strong reference, from `Arc::into_raw`.
    current: AtomicPtr<T>,
    /// Values swapped out that a call may still be using.
    retiring: Mutex<Vec<Arc<T>>>,
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
            retiring: Mutex::new(Vec::new()),
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
        let old = {
            let _exclusive = self.swap_lock.write();
            self.current.swap(new, Ordering::AcqRel)
        };
        // SAFETY: `old` came from `Arc::into_raw` (in `new` or an earlier `swap`), and
        // the cell's reference to it moves to the retiring list here, exactly once.
        let old = unsafe { Arc::from_raw(old) };
        self.retiring.lock().push(old);
    }

    /// Takes out of the retiring list every value no call is using, for the caller
    /// to drop (outside any lock). Others stay for a later reclaim.
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
        if retiring.is_empty() || !heavy_barrier() {
            return Vec::new();
        }
        let mut announced = announced();
        // A deliberately broken build that frees values still announced:
        // `RUSTFLAGS='--cfg fidius_mutant="ignore_slots"'`.
        if cfg!(fidius_mutant = "ignore_slots") {
            announced.clear();
        }
        let (free, busy) = retiring
            .drain(..)
            .partition(|v| !announced.contains(&Arc::as_ptr(v).cast_mut().cast()));
        *retiring = busy;
        free
    }

    /// Whether some swapped-out value is still waiting for its calls.
    pub fn has_retiring(&self) -> bool {
        !self.retiring.lock().is_empty()
    }

    /// What holds `value` right now besides the caller's own reference: calls
    /// announced in a slot (if it is retiring) plus other owned references (streams,
    /// clients' kept versions). Read under the retiring list's lock, so a reclaim
    /// on another thread cannot make one holder count twice. Exact when the barrier
    /// can be issued; if it cannot (membarrier failing), a call that is just starting
    /// may be missed.
    pub fn holders(&self, value: &Arc<T>) -> usize {
        let retiring = self.retiring.lock();
        // The caller's reference, and the list's if it is there, are not holders.
        let listed = retiring.iter().any(|v| Arc::ptr_eq(v, value));
        let others = Arc::strong_count(value) - 1 - usize::from(listed);
        if !listed {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// A value that knows whether it has been dropped (its id leaves `LIVE`).
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
        let old = cell.retiring.lock()[0].clone();
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

    /// A value the stress test below never frees: where the cell would free it,
    /// the test marks it dead instead (and keeps it), so a use after reclaim is
    /// observed as a load of `alive`, not undefined behaviour.
    struct Canary {
        alive: AtomicBool,
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

    /// The check that can fail: readers take no lock of any kind (a lock is a fence,
    /// and would hide a missing barrier); inside each call they check, again and
    /// again, that their value is alive, while a writer swaps, reclaims and marks
    /// dead as fast as it can. A broken protocol shows up as a dead value seen inside
    /// a call: `RUSTFLAGS='--cfg fidius_mutant="ignore_slots"'` fails it at once,
    /// `--cfg fidius_mutant="no_barriers"` on a machine with several CPUs (see the
    /// crate docs for the commands and figures). `.ci/run` runs it in both fence
    /// modes, on all CPUs and pinned to one.
    #[test]
    fn lock_free_readers_never_see_a_value_reclaimed_under_them() {
        // Every canary ever made stays allocated until the end; this bounds them.
        const MAX_SWAPS: usize = 1_000_000;
        let canary = || {
            Arc::new(Canary {
                alive: AtomicBool::new(true),
            })
        };
        let first = canary();
        let mut graveyard = vec![first.clone()];
        let cell = Arc::new(HazardCell::new(first));
        let stop = Arc::new(AtomicBool::new(false));
        let dead_seen = Arc::new(AtomicUsize::new(0));
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2);
        // Calls that were still in their value after it stopped being current: the
        // overlap the test is about. Without any, it would prove nothing.
        let overlapped = Arc::new(AtomicUsize::new(0));
        let readers: Vec<_> = (0..threads)
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
        let start = Instant::now();
        let mut swaps = 0;
        while start.elapsed() < stress_time() && swaps < MAX_SWAPS {
            let next = canary();
            graveyard.push(next.clone());
            cell.swap(next);
            swaps += 1;
            for old in cell.reclaim() {
                // Here the cell would free it: no call may be in it any more.
                old.alive.store(false, Ordering::Release);
            }
        }
        stop.store(true, Ordering::Relaxed);
        let calls: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        for old in cell.reclaim() {
            old.alive.store(false, Ordering::Release);
        }
        let dead = dead_seen.load(Ordering::Relaxed);
        let overlapped = overlapped.load(Ordering::Relaxed);
        eprintln!(
            "hazard stress: {swaps} swaps, {calls} calls on {threads} threads ({overlapped} outlived their value's swap), asymmetric fences: {}",
            asymmetric()
        );
        if !cfg!(miri) {
            assert!(
                overlapped > 0,
                "no call overlapped a swap: the test proved nothing"
            );
        }
        let least = if cfg!(miri) { 1 } else { 1000 };
        assert!(
            calls >= least && swaps as u64 >= least,
            "{calls} calls, {swaps} swaps"
        );
        assert_eq!(dead, 0, "{dead} checks saw a value reclaimed under a call");
        assert!(!cell.has_retiring(), "everything swapped out was reclaimed");
        drop(graveyard);
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
