//! The right plugin, built in debug and in release, loads and behaves the same.

use fidius::host::PluginHost;
use fidius_tests::fixture;
use my_interface::{MyPlugin, MyPluginClient};

#[test]
fn debug_and_release_builds_both_load() {
    let debug = fixture("my-plugin");
    let release = debug
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("release")
        .join(debug.file_name().unwrap());
    assert!(release.exists(), "{}", release.display());
    assert_ne!(
        std::fs::read(&debug).unwrap(),
        std::fs::read(&release).unwrap(),
        "two different builds"
    );
    let host = PluginHost::builder()
        .expect_interface::<dyn MyPlugin>()
        .build();
    let mut infos = Vec::new();
    for path in [&debug, &release] {
        let handle = host.load_from(path, "MyImpl").unwrap();
        infos.push(handle.info().clone());
        let client = MyPluginClient::new(handle).unwrap();
        assert_eq!(client.process("x".into()).unwrap(), "processed: x");
    }
    assert_eq!(infos[0], infos[1], "same descriptor contents");
}
