//! Server streaming across the cdylib boundary: one item per pull, errors and panics
//! end the stream, dropping it cancels and frees the producer exactly once.

use fidius::host::{PluginHandle, PluginHost};
use fidius::CallError;
use stream_interface::{Streams, StreamsClient};

/// A client on a private copy of the library, so the plugin's counters are this
/// test's own.
fn client() -> (tempfile::TempDir, StreamsClient<PluginHandle>) {
    let (dir, path) = fidius_tests::private_copy("stream-plugin");
    let handle = PluginHost::builder()
        .expect_interface::<dyn Streams>()
        .build()
        .load_from(path, "StreamSource")
        .unwrap();
    (dir, StreamsClient::new(handle).unwrap())
}

#[test]
fn every_item_arrives_in_order() {
    let (_d, c) = client();
    let items: Vec<u64> = c.numbers(1000).unwrap().map(Result::unwrap).collect();
    assert_eq!(items, (0..1000).collect::<Vec<_>>());
    assert_eq!(c.live().unwrap(), 0, "the producer was freed at the end");
}

#[test]
fn an_empty_stream() {
    let (_d, c) = client();
    let mut s = c.nothing().unwrap();
    assert!(s.next().is_none());
    assert!(s.next().is_none());
    assert_eq!(c.live().unwrap(), 0);
}

#[test]
fn dropping_a_ten_million_item_stream_after_three_cancels_it() {
    let (_d, c) = client();
    let mut s = c.numbers(10_000_000).unwrap();
    let first: Vec<u64> = s.by_ref().take(3).map(Result::unwrap).collect();
    assert_eq!(first, [0, 1, 2]);
    assert_eq!(c.live().unwrap(), 1);
    drop(s);
    assert_eq!(
        c.live().unwrap(),
        0,
        "dropping the stream freed the producer once"
    );
    assert_eq!(
        c.produced().unwrap(),
        3,
        "nothing was produced ahead of the pulls"
    );
}

#[test]
fn an_error_mid_stream_ends_it_with_that_error() {
    let (_d, c) = client();
    let items: Vec<Result<u64, CallError>> = c.fail_after(3).unwrap().collect();
    assert_eq!(items.len(), 4);
    assert_eq!(items[2], Ok(2));
    assert!(
        matches!(&items[3], Err(CallError::Plugin(e)) if e.code == "MID_STREAM"),
        "{items:?}"
    );
    assert_eq!(c.live().unwrap(), 0);
}

#[test]
fn a_panic_mid_stream_ends_it_with_the_panic() {
    let (_d, c) = client();
    let mut s = c.panic_after(2).unwrap();
    assert_eq!(s.next(), Some(Ok(0)));
    assert_eq!(s.next(), Some(Ok(1)));
    assert_eq!(
        s.next(),
        Some(Err(CallError::Panic("panicked after 2 items".into())))
    );
    assert_eq!(s.next(), None, "a failed stream is over");
    assert_eq!(c.live().unwrap(), 0);
    // The plugin still works.
    assert_eq!(c.numbers(2).unwrap().count(), 2);
}

#[test]
fn large_items_arrive_whole() {
    let (_d, c) = client();
    for (i, item) in c.blobs(5, 3 << 20).unwrap().enumerate() {
        let item = item.unwrap();
        assert_eq!(item.len(), 3 << 20);
        assert!(item.iter().all(|&b| b == i as u8));
    }
}

#[test]
fn items_arrive_whole_whether_they_fit_the_buffer_lent_or_not() {
    // The host lends a buffer for each item: 100 bytes fit it; the first item of 5000
    // does not (the producer hands over its own, and the loan grows), the next ones
    // fit the grown loan.
    let (_d, c) = client();
    for size in [100u64, 5000, 1 << 20, 0] {
        let items: Vec<Vec<u8>> = c.blobs(4, size).unwrap().map(Result::unwrap).collect();
        assert_eq!(items.len(), 4);
        for (i, item) in items.iter().enumerate() {
            assert_eq!(item.len() as u64, size);
            assert!(item.iter().all(|&b| b == i as u8), "size {size}, item {i}");
        }
    }
}

#[test]
fn many_concurrent_streams_from_several_threads() {
    let (_d, c) = client();
    let c = std::sync::Arc::new(c);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                let mut streams: Vec<_> = (0..8)
                    .map(|k| c.numbers(100 + t * 10 + k).unwrap())
                    .collect();
                let mut totals = vec![0u64; streams.len()];
                // Interleave pulls across the open streams.
                loop {
                    let mut any = false;
                    for (k, s) in streams.iter_mut().enumerate() {
                        if let Some(item) = s.next() {
                            assert_eq!(item.unwrap(), totals[k]);
                            totals[k] += 1;
                            any = true;
                        }
                    }
                    if !any {
                        break;
                    }
                }
                for (k, total) in totals.iter().enumerate() {
                    assert_eq!(*total, 100 + t * 10 + k as u64);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(c.live().unwrap(), 0);
}

#[test]
fn untyped_streams_through_the_handle_and_metadata() {
    let (_d, c) = client();
    let handle = c.caller();
    let info = handle.info().method("numbers").unwrap().clone();
    assert!(info.streaming);
    assert_eq!(info.signature, "numbers(u64)->Stream<u64>");
    let raw = handle.call_stream_raw(info.index, &(3u64,)).unwrap();
    let items: Vec<u64> = raw
        .map(|b| fidius::wire::decode::<u64>(&b.unwrap()).unwrap())
        .collect();
    assert_eq!(items, [0, 1, 2]);
    // A streaming method called as a plain method is refused cleanly... by the typed
    // decode, since its result is a producer, not an item.
    let err = handle
        .call_stream_raw(info.index, &("not a number",))
        .unwrap_err();
    assert!(matches!(err, CallError::PluginSerialization(_)), "{err:?}");
}

#[test]
fn a_stream_keeps_its_library_loaded() {
    let (dir, c) = client();
    let path = dir.path().join(fidius_tests::lib_file("stream_plugin"));
    let mut s = c.numbers(5).unwrap();
    assert_eq!(s.next(), Some(Ok(0)));
    drop(c);
    // Only the stream holds the library now.
    #[cfg(target_os = "linux")]
    assert!(std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .contains(&path.display().to_string()));
    let rest: Vec<u64> = s.map(Result::unwrap).collect();
    assert_eq!(rest, [1, 2, 3, 4]);
}

#[test]
fn a_streaming_method_called_as_an_ordinary_one_and_the_reverse_are_errors() {
    let (_d, c) = client();
    let h = c.caller();
    let numbers = h.method_index("numbers").unwrap();
    let produced = h.method_index("produced").unwrap();
    // Its slot would hand over a producer, not a result: refused before it runs.
    let err = h.call_method::<_, u64>(numbers, &(3u64,)).unwrap_err();
    assert!(
        matches!(&err, CallError::StreamingMismatch { method, streaming: true } if method == "numbers"),
        "{err:?}"
    );
    // An ordinary method's result would be taken for a producer: refused too.
    let err = fidius::PluginCaller::call_stream(h, produced, &[0x90]).unwrap_err();
    assert!(
        matches!(&err, CallError::StreamingMismatch { method, streaming: false } if method == "produced"),
        "{err:?}"
    );
    // Nothing was started, and the handle still works.
    assert_eq!(
        c.numbers(3)
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
}
