//! The interface and plugin snippets from the README, built verbatim as two separate
//! crates (`tests/plugins/my-interface`, `tests/plugins/my-plugin`), loaded and called.

use fidius::host::PluginHost;
use fidius_tests::{fixture, fixture_dir, workspace_dir};
use my_interface::{MyPlugin, MyPluginClient};

fn host() -> PluginHost {
    PluginHost::builder()
        .search_path(fixture_dir())
        .expect_interface::<dyn MyPlugin>()
        .build()
}

#[test]
fn typed_client_calls_the_plugin() {
    let handle = host().load("MyImpl").unwrap();
    let client = MyPluginClient::new(handle).unwrap();
    assert_eq!(client.process("hello".into()).unwrap(), "processed: hello");
}

#[test]
fn call_method_and_call_method_raw_by_index() {
    let handle = host().load_from(fixture("my-plugin"), "MyImpl").unwrap();
    let index = handle.method_index("process").unwrap();
    assert_eq!(index, 0);
    let out: String = handle.call_method(index, &("abc",)).unwrap();
    assert_eq!(out, "processed: abc");

    let input = fidius::wire::encode(&("raw",)).unwrap();
    let output = handle.call_method_raw(index, &input).unwrap();
    let decoded: String = fidius::wire::decode(&output).unwrap();
    assert_eq!(decoded, "processed: raw");
}

#[test]
fn plugin_info_describes_the_plugin() {
    let handle = host().load("MyImpl").unwrap();
    let info = handle.info();
    assert_eq!(info.name, "MyImpl");
    assert_eq!(info.interface_name, "MyPlugin");
    assert_eq!(info.interface_version, 1);
    assert_eq!(
        info.interface_hash,
        fidius::interface_hash(&["process(String)->String"])
    );
    assert_eq!(info.methods.len(), 1);
    assert_eq!(info.methods[0].signature, "process(String)->String");
}

/// The fixture sources must stay exactly the snippets the README shows.
#[test]
fn fixture_sources_match_the_readme() {
    let readme = std::fs::read_to_string(workspace_dir().join("README.md")).unwrap();
    for (file, marker) in [
        (
            "tests/plugins/my-interface/src/lib.rs",
            "pub trait MyPlugin",
        ),
        ("tests/plugins/my-plugin/src/lib.rs", "pub struct MyImpl;"),
    ] {
        let source = std::fs::read_to_string(workspace_dir().join(file)).unwrap();
        let block = readme
            .split("```rust\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap())
            .find(|b| b.contains(marker))
            .unwrap_or_else(|| panic!("README has no rust block containing `{marker}`"));
        assert_eq!(block, source, "{file} differs from the README snippet");
    }
}
