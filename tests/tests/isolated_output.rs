//! What an isolated plugin writes to its standard output and error reaches the
//! host's `tracing`, line by line, tagged with the plugin and its process. A test
//! binary of its own: it installs the process-wide subscriber that records it.
#![cfg(target_os = "linux")]

use fidius_isolated::IsolatedPlugin;
use misbehave_interface::{Misbehave, MisbehaveClient};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Every event, as `field=value` pairs joined by spaces.
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Recorder;

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push_str(&format!("{}={} ", field.name(), value));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        EVENTS.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn a_plugin_process_output_goes_to_tracing_tagged_with_the_plugin() {
    tracing::subscriber::set_global_default(Recorder).unwrap();
    let plugin = IsolatedPlugin::builder::<dyn Misbehave>(
        fidius_tests::fixture("misbehave-plugin"),
        "Misbehaving",
    )
    .build()
    .unwrap();
    let client = MisbehaveClient::new(plugin.handle()).unwrap();
    let pid = plugin.status().pid.unwrap();
    assert_eq!(client.crash("print".into()).unwrap(), "print");
    let tagged = |text: &str, stream: &str| {
        let fields = [
            format!("message={text} "),
            "plugin=Misbehaving ".to_string(),
            format!("pid={pid} "),
            format!("stream={stream} "),
        ];
        move |event: &String| fields.iter().all(|f| event.contains(f.as_str()))
    };
    let stdout = tagged("misbehave: to standard output", "stdout");
    let stderr = tagged("misbehave: to standard error", "stderr");
    // A panic in the process: the caller gets it, and the process's standard error
    // has it as one line (what a crash report of a plugin that aborts would show).
    assert!(matches!(
        client.crash("panic".into()),
        Err(fidius::CallError::Panic(m)) if m == "misbehave: panicking on request"
    ));
    let panicked = |event: &String| {
        event.contains("plugin panicked at ")
            && event.contains(": misbehave: panicking on request")
            && event.contains("stream=stderr ")
    };
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let events = EVENTS.lock().unwrap().clone();
        if events.iter().any(&stdout) && events.iter().any(&stderr) && events.iter().any(panicked) {
            break;
        }
        assert!(Instant::now() < until, "not found in {events:#?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
