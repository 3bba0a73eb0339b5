//! A library stays loaded while any handle or client from it is alive, and is closed
//! when the last one goes.

use fidius::host::PluginHost;
use my_interface::{MyPlugin, MyPluginClient};
use std::path::Path;

#[cfg(target_os = "linux")]
fn is_mapped(path: &Path) -> bool {
    fidius_hotreload::mapped(path).expect("Linux reports mappings")
}

#[cfg(target_os = "linux")]
#[test]
fn handles_and_clients_keep_the_library_mapped() {
    // A private copy at a unique path, so no other test maps the same file.
    let (_dir, path) = fidius_tests::private_copy("my-plugin");
    assert!(!is_mapped(&path));

    let host = PluginHost::builder()
        .expect_interface::<dyn MyPlugin>()
        .build();
    let handle = host.load_from(&path, "MyImpl").unwrap();
    assert!(is_mapped(&path));

    let client = MyPluginClient::new(handle.clone()).unwrap();
    drop(handle);
    assert!(is_mapped(&path), "the client must keep the library loaded");
    assert_eq!(
        client.process("still here".into()).unwrap(),
        "processed: still here"
    );

    let clone = client.clone();
    drop(client);
    assert!(
        is_mapped(&path),
        "a cloned client must keep the library loaded"
    );
    assert_eq!(clone.process("x".into()).unwrap(), "processed: x");

    drop(clone);
    // This plugin registers no thread-local destructors, so closing really unmaps it.
    assert!(
        !is_mapped(&path),
        "the library should be unmapped after the last handle"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn discover_closes_what_it_opened() {
    let (dir, path) = fidius_tests::private_copy("my-plugin");
    let found = PluginHost::builder()
        .search_path(dir.path())
        .build()
        .discover();
    assert_eq!(found.plugins.len(), 1);
    assert!(!is_mapped(&path));
}
