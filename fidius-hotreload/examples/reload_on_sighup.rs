//! A server that reloads its plugin on command, not on every file change: no watcher,
//! and a reload on `SIGHUP`. Deploy a new build by renaming it into place, then signal:
//!
//! ```sh
//! cargo build -p uppercase
//! cargo run -p fidius-hotreload --example reload_on_sighup -- target/debug/libuppercase.so &
//! cp target/debug/libuppercase.so /tmp/next.so && mv /tmp/next.so target/debug/libuppercase.so
//! kill -HUP %1      # reload; kill -INT %1 to stop
//! ```

#[cfg(unix)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use fidius_hotreload::HotPlugin;
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use std::time::Duration;
    use text_interface::{TextTransform, TextTransformClient};

    let path = std::env::args().nth(1).unwrap_or_else(|| {
        format!(
            "target/debug/{}",
            fidius::host::platform::library_file_name("uppercase")
        )
    });
    let hot = HotPlugin::builder::<dyn TextTransform>(&path, "Uppercase")
        .watch(false)
        .on_event(|event| eprintln!("[reload] {event}"))
        .build()?;
    let client = TextTransformClient::new(hot.handle())?;
    // Serve meanwhile: a call a second, on another thread.
    std::thread::spawn(move || loop {
        match client.transform("hello from the server".into()) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("call failed: {e}"),
        }
        std::thread::sleep(Duration::from_secs(1));
    });
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM])?;
    eprintln!("serving {path}; SIGHUP reloads it, SIGINT stops");
    for signal in signals.forever() {
        if signal != SIGHUP {
            break;
        }
        // Bounded: a hold elsewhere cannot keep the signal handler loop waiting.
        match hot.reload_within(Duration::from_secs(5)) {
            Ok(outcome) => eprintln!("reloaded: {outcome}"),
            Err(rejection) => eprintln!("kept the current version: {rejection}"),
        }
    }
    eprintln!("{}", hot.status());
    Ok(())
}

#[cfg(not(unix))]
fn main() {
    eprintln!("this example uses SIGHUP, which this platform does not have");
}
