//! Matching on a hot plugin's events, and reading its metrics: what a service logs
//! and exports. Rebuild the plugin while it runs to see a reload.
//!
//! ```sh
//! cargo build -p uppercase
//! cargo run -p fidius-hotreload --example events -- target/debug/libuppercase.so 30
//! ```

use fidius_hotreload::{HotPlugin, ReloadEvent, UnloadState};
use std::time::Duration;
use text_interface::TextTransform;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        format!(
            "target/debug/{}",
            fidius::host::platform::library_file_name("uppercase")
        )
    });
    let seconds: u64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let hot = HotPlugin::builder::<dyn TextTransform>(&path, "Uppercase")
        .on_event(|event| match event {
            ReloadEvent::Swapped { from, to } => {
                println!("now serving g{} (was g{})", to.generation, from.generation)
            }
            ReloadEvent::Rejected(rejection) => {
                println!("kept the current version: {}", rejection.reason)
            }
            ReloadEvent::Unloaded {
                generation,
                state: UnloadState::Pinned,
            } => println!("g{generation} stays in memory: look for thread-locals in the plugin"),
            // Everything else, as one line for the log.
            other => println!("{other}"),
        })
        .build()?;
    std::thread::sleep(Duration::from_secs(seconds));
    let metrics = hot.metrics().snapshot();
    println!(
        "reloads {}, rejections {}, draining {}, pinned {}",
        metrics.reloads, metrics.rejections, metrics.draining, metrics.pinned
    );
    Ok(())
}
