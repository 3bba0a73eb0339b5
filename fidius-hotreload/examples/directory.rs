//! A directory of plugins: every library in it is loaded, replaced ones reloaded,
//! removed ones reported; each plugin is served by name.
//!
//! ```sh
//! mkdir -p /tmp/plugins
//! cargo build -p uppercase -p redact
//! cp target/debug/libuppercase.so target/debug/libredact.so /tmp/plugins/
//! cargo run -p fidius-hotreload --example directory -- /tmp/plugins
//! ```

use fidius_hotreload::{DirectoryEvent, HotDirectory};
use std::time::Duration;
use text_interface::{TextTransform, TextTransformClient};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "plugins".into());
    let seconds: u64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let plugins = HotDirectory::builder::<dyn TextTransform>(&dir)
        .on_event(|event| match event {
            // A plugin's own events say which plugin.
            DirectoryEvent::Plugin { .. } => eprintln!("[plugin] {event}"),
            _ => eprintln!("[directory] {event}"),
        })
        .build()?;
    for _ in 0..seconds {
        for (name, _library) in plugins.plugins() {
            let Some(handle) = plugins.get(&name) else {
                continue;
            };
            match TextTransformClient::new(handle).and_then(|c| c.transform("a line".into())) {
                Ok(line) => println!("{name}: {line}"),
                Err(e) => println!("{name}: failed: {e}"),
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    println!("{:?}", plugins.metrics().snapshot());
    Ok(())
}
