//! The Arena buffer strategy: results written into a buffer the host lends, results too
//! large for it handed over without running the method twice.

use bytes_interface::{Blobs, BlobsClient};
use fidius::host::{PluginHandle, PluginHost};
use fidius::CallError;

/// A client on a private copy of the library, so the call counter is this test's own.
fn private_client() -> (tempfile::TempDir, BlobsClient<PluginHandle>) {
    let (dir, path) = fidius_tests::private_copy("bytes-plugin");
    let handle = PluginHost::builder()
        .expect_interface::<dyn Blobs>()
        .build()
        .load_from(path, "BlobStore")
        .unwrap();
    assert_eq!(
        handle.info().buffer_strategy,
        fidius::BufferStrategyKind::Arena
    );
    (dir, BlobsClient::new(handle).unwrap())
}

#[test]
fn method_bodies_run_exactly_once_even_when_the_arena_is_too_small() {
    let (_dir, c) = private_client();
    // Growing sizes force "too small" on fresh arenas; repeating them hits the grown
    // arena. Every call must run the body once.
    let sizes = [10u64, 5_000, 5_000, 70_000, 1 << 20, 100, 1 << 20, 3 << 20];
    for (i, &n) in sizes.iter().enumerate() {
        let before = c.calls().unwrap();
        let out = c.make(n, i as u8).unwrap();
        assert_eq!(out.len() as u64, n);
        assert!(out.iter().all(|&b| b == i as u8));
        assert_eq!(
            c.calls().unwrap(),
            before + 1,
            "make({n}) ran more than once"
        );
    }
}

#[test]
fn echo_round_trips_every_size() {
    let (_dir, c) = private_client();
    for n in [
        0usize, 1, 255, 256, 4095, 4096, 4097, 65_536, 262_144, 2_000_000,
    ] {
        let data: Vec<u8> = (0..n).map(|i| (i * 7 % 256) as u8).collect();
        assert_eq!(c.echo(data.clone()).unwrap(), data, "size {n}");
    }
}

#[test]
fn non_byte_results_and_raw_methods_use_the_arena_too() {
    let (_dir, c) = private_client();
    for n in [0u64, 10, 10_000, 500_000] {
        assert_eq!(c.text(n).unwrap().len() as u64, n);
        let raw = c.raw_make(n.to_le_bytes()).unwrap();
        assert_eq!(raw.len() as u64, n);
        assert!(raw.iter().all(|&b| b == 0xab));
    }
}

#[test]
fn plugin_errors_cross_an_arena_interface() {
    let (_dir, c) = private_client();
    let err = c.fail(0).unwrap_err();
    assert!(matches!(err, CallError::Plugin(e) if e.code == "ZERO"));
    assert_eq!(c.fail(100_000).unwrap(), vec![1u8; 100_000]);
}

#[test]
fn arenas_are_per_thread() {
    let (_dir, c) = private_client();
    let c = std::sync::Arc::new(c);
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..200u64 {
                    let n = (i * 997 + t as u64 * 31) % 20_000;
                    let out = c.make(n, t).unwrap();
                    assert_eq!(out.len() as u64, n);
                    assert!(out.iter().all(|&b| b == t));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(c.calls().unwrap(), 800);
}

#[test]
fn scalar_methods_take_the_direct_path_and_report_panics() {
    let (_dir, c) = private_client();
    let info = c.caller().info();
    assert_eq!(
        info.method("div").unwrap().fast_path,
        fidius::FastPath::Scalar
    );
    assert_eq!(
        info.method("echo").unwrap().fast_path,
        fidius::FastPath::Bytes
    );
    assert_eq!(
        info.method("text").unwrap().fast_path,
        fidius::FastPath::None
    );
    assert_eq!(c.div(84, 2).unwrap(), 42);
    assert_eq!(c.div(0, 7).unwrap(), 0);
    assert_eq!(
        c.div(1, 0).unwrap_err(),
        CallError::Panic("div: 1 / 0".into())
    );
    // The wire slot of the same method agrees, and the body ran once per call.
    let index = c.caller().method_index("div").unwrap();
    let q: u32 = c.caller().call_method(index, &(9u32, 3u32)).unwrap();
    assert_eq!(q, 3);
    assert_eq!(c.calls().unwrap(), 4);
}

#[test]
fn byte_results_larger_than_the_lent_buffer_run_once() {
    // The host lends a result buffer sized from the input; `triple` overflows it, so
    // the plugin hands its own buffer over instead of running again.
    let (_dir, c) = private_client();
    for n in [10usize, 1000, 30_000, 50_000, 200_000, 10, 30_000] {
        let data: Vec<u8> = (0..n).map(|i| (i % 7) as u8).collect();
        let before = c.calls().unwrap();
        let out = c.triple(&data).unwrap();
        assert_eq!(out, data.repeat(3), "size {n}");
        assert_eq!(
            c.calls().unwrap(),
            before + 1,
            "triple({n}) ran more than once"
        );
    }
}
