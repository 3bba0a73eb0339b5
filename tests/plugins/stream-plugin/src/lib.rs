use std::sync::atomic::{AtomicU64, Ordering};
use stream_interface::{plugin_impl, PluginError, Stream, Streams};

static PRODUCED: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicU64 = AtomicU64::new(0);

/// Counts a producer alive from creation until it is dropped.
struct Alive;

impl Alive {
    fn new() -> Self {
        LIVE.fetch_add(1, Ordering::SeqCst);
        Alive
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

fn counted(n: u64) -> impl Iterator<Item = u64> + Send + 'static {
    let alive = Alive::new();
    (0..n).inspect(move |_| {
        let _ = &alive;
        PRODUCED.fetch_add(1, Ordering::SeqCst);
    })
}

pub struct StreamSource;

#[plugin_impl(Streams)]
impl Streams for StreamSource {
    fn numbers(&self, n: u64) -> Stream<u64> {
        Stream::from_iter(counted(n))
    }
    fn nothing(&self) -> Stream<String> {
        Stream::empty()
    }
    fn fail_after(&self, n: u64) -> Stream<u64> {
        Stream::from_results(
            counted(n)
                .map(Ok)
                .chain(std::iter::once(Err(PluginError::new(
                    "MID_STREAM",
                    format!("failed after {n} items"),
                )))),
        )
    }
    fn panic_after(&self, n: u64) -> Stream<u64> {
        Stream::from_iter(counted(n + 1).inspect(move |&i| {
            if i == n {
                panic!("panicked after {n} items");
            }
        }))
    }
    fn blobs(&self, count: u64, size: u64) -> Stream<Vec<u8>> {
        Stream::from_iter(counted(count).map(move |i| vec![i as u8; size as usize]))
    }
    fn produced(&self) -> u64 {
        PRODUCED.load(Ordering::SeqCst)
    }
    fn live(&self) -> u64 {
        LIVE.load(Ordering::SeqCst)
    }
}

fidius::fidius_plugin_registry!();
