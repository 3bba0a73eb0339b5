//! `SharedAllocator` on both sides: byte and string results change owner instead of
//! being copied, and only where both sides declared it.
//!
//! This test program declares it as its global allocator; it loads the bench plugin
//! built with it and the plain build without it.

use bench_interface::{BenchAllocClient, BenchArenaClient};
use fidius::host::{PluginHandle, PluginHost};
use fidius::CallError;

#[global_allocator]
static ALLOCATOR: fidius::SharedAllocator = fidius::SharedAllocator;

fn load(path: &std::path::Path, name: &str) -> PluginHandle {
    PluginHost::builder().build().load_from(path, name).unwrap()
}

#[test]
fn results_change_owner_only_when_both_sides_share_the_allocator() {
    assert!(fidius::shared_alloc::global_is_shared());
    let shared = load(&fidius_tests::bench_shared_build(), "ArenaBench");
    let plain = load(&fidius_tests::fixture("bench-plugin"), "ArenaBench");
    assert!(
        shared.shares_allocator(),
        "both sides declared SharedAllocator"
    );
    assert!(
        !plain.shares_allocator(),
        "the plain build keeps the default allocator"
    );

    // What the host returns shows which way the bytes came: taken over, the result is
    // the plugin's own Vec (its copy of the input, exactly as long); copied, it is the
    // buffer the host lent, at least 64 bytes.
    let one_byte = |h: &PluginHandle| {
        BenchArenaClient::new(h.clone())
            .unwrap()
            .echo([7u8])
            .unwrap()
    };
    assert_eq!(one_byte(&shared).capacity(), 1, "taken over");
    assert!(one_byte(&plain).capacity() >= 64, "copied into the loan");

    for handle in [shared, plain] {
        let arena = BenchArenaClient::new(handle.clone()).unwrap();
        for size in [0usize, 1, 100, 5000, 200_000, 3 << 20] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 256) as u8).collect();
            assert_eq!(arena.echo(&data).unwrap(), data, "{size}");
            assert_eq!(arena.echo_raw(&data).unwrap(), data, "{size}");
            let text: String = (0..size)
                .map(|i| if i % 50 == 0 { 'é' } else { 'a' })
                .collect();
            assert_eq!(arena.echo_str(text.clone()).unwrap(), text, "{size}");
            // call_method takes the same entries.
            let index = handle.method_index("echo").unwrap();
            assert_eq!(
                handle.call_method::<_, Vec<u8>>(index, &(&data,)).unwrap(),
                data
            );
        }
        // Errors still arrive as errors: invalid UTF-8 to the text entry.
        let index = handle.method_index("echo_str").unwrap();
        let result = fidius::PluginCaller::call_bytes(&handle, index, b"\xff");
        assert!(
            matches!(result, Some(Err(CallError::PluginSerialization(_)))),
            "{result:?}"
        );
    }

    let alloc =
        BenchAllocClient::new(load(&fidius_tests::bench_shared_build(), "AllocBench")).unwrap();
    assert!(alloc.caller().shares_allocator());
    let data = vec![9u8; 70_000];
    assert_eq!(alloc.echo(&data).unwrap(), data);
}

#[test]
fn adopted_results_outlive_the_library() {
    // A result taken over from the plugin belongs to the C library's allocator, not to
    // the plugin: it stays valid after the library is closed.
    let handle = load(&fidius_tests::bench_shared_build(), "ArenaBench");
    assert!(handle.shares_allocator());
    let arena = BenchArenaClient::new(handle).unwrap();
    let data = vec![3u8; 100_000];
    let result = arena.echo(&data).unwrap();
    drop(arena);
    assert_eq!(result, data);
    drop(result);
}
