//! The controls of a hot plugin: a hold keeps every reload off for a moment; pause
//! stops only the watcher's; status tells where things stand.
//!
//! ```sh
//! cargo build -p uppercase
//! cargo run -p fidius-hotreload --example controls -- target/debug/libuppercase.so
//! ```

use fidius_hotreload::HotPlugin;
use std::time::Duration;
use text_interface::{TextTransform, TextTransformClient};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        format!(
            "target/debug/{}",
            fidius::host::platform::library_file_name("uppercase")
        )
    });
    let hot = HotPlugin::builder::<dyn TextTransform>(&path, "Uppercase").build()?;
    let client = TextTransformClient::new(hot.handle())?;
    println!("{}", hot.status());

    // Work that must not see a swap: every reload waits until the hold is dropped.
    {
        let _hold = hot.hold();
        let first = client.transform("one".into())?;
        let second = client.transform("two".into())?;
        println!("both from the same version: {first}, {second}");
        // A reload asked for now gives up after its bound instead of waiting.
        match hot.reload_within(Duration::from_millis(100)) {
            Ok(outcome) => println!("reloaded: {outcome}"),
            Err(rejection) => println!("{rejection}"),
        }
    }

    // Pause: file changes wait for `resume`; a reload asked for still happens.
    hot.pause();
    println!("{}", hot.status());
    println!("{}", hot.reload_now()?);
    hot.resume();
    println!("{}", hot.status());
    Ok(())
}
