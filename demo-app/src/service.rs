//! The service: hot-reloading plugins, worker threads calling them, counters, and one
//! printed line per reload event.

use fidius::CallError;
use fidius_hotreload::{HotHandle, HotPlugin, ReloadEvent};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use text_interface::{TextTransform, TextTransformClient};

/// Lines the workers send, over and over.
const SAMPLES: &[&str] = &[
    "the quick brown fox jumps over the lazy dog",
    "order 66 shipped to 221B Baker Street",
    "fidius swaps plugins while calls keep running",
];

/// One served plugin.
pub struct Served {
    pub name: String,
    pub hot: HotPlugin,
    pub client: TextTransformClient<HotHandle>,
}

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    pub streamed: AtomicU64,
}

pub struct Service {
    pub plugins: Vec<Served>,
    pub counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

/// One line per reload event.
fn event_line(plugin: &str, e: &ReloadEvent) -> String {
    let what = match e {
        ReloadEvent::Detected { path } => format!("change detected in {}", path.display()),
        ReloadEvent::Unchanged { generation, .. } => {
            format!("same content; generation {generation} keeps serving")
        }
        ReloadEvent::Loaded(v) => format!("generation {} loaded and validated", v.generation),
        ReloadEvent::Rejected(r) => format!("REJECTED at the {} stage: {}", r.stage, r.reason),
        ReloadEvent::Swapped { from, to } => {
            format!(
                "swapped generation {} -> {}",
                from.generation, to.generation
            )
        }
        ReloadEvent::Draining {
            generation,
            in_flight,
        } => format!("generation {generation} draining ({in_flight} in flight)"),
        ReloadEvent::Unloaded { generation, state } => {
            format!("generation {generation} unloaded: {state:?}")
        }
        ReloadEvent::Removed { path } => {
            format!(
                "{} removed; the current version keeps serving",
                path.display()
            )
        }
        other => format!("{other:?}"),
    };
    format!("[reload] {plugin}: {what}")
}

impl Service {
    /// Loads every plugin (hot-reloading) and starts `workers` calling threads.
    pub fn start(
        files: &[(String, PathBuf)],
        shadow: &Path,
        workers: usize,
    ) -> Result<Self, String> {
        let mut plugins = Vec::new();
        for (name, file) in files {
            let label = name.clone();
            let hot = HotPlugin::builder::<dyn TextTransform>(file, name)
                .shadow_dir(shadow)
                .on_event(move |e| println!("{}", event_line(&label, e)))
                .build()
                .map_err(|r| format!("loading {name}: {r}"))?;
            let client = TextTransformClient::new(hot.handle()).map_err(|e| e.to_string())?;
            println!(
                "loaded {} from {} (generation {}, word count: {})",
                client.describe().map_err(|e| e.to_string())?,
                file.display(),
                hot.generation(),
                if client.has_word_count() { "yes" } else { "no" }
            );
            plugins.push(Served {
                name: name.clone(),
                hot,
                client,
            });
        }
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<HotHandle> = plugins.iter().map(|p| p.hot.handle()).collect();
        let workers = (0..workers)
            .map(|w| {
                let clients: Vec<_> = handles
                    .iter()
                    .map(|h| TextTransformClient::new(h.clone()).expect("same interface"))
                    .collect();
                let counters = counters.clone();
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name(format!("demo-worker-{w}"))
                    .spawn(move || work(clients, counters, stop))
                    .expect("spawning a worker")
            })
            .collect();
        Ok(Self {
            plugins,
            counters,
            stop,
            workers,
        })
    }

    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Transforms stdin lines with every plugin, printing the results.
    pub fn read_stdin_in_background(&self) {
        let clients: Vec<(String, TextTransformClient<HotHandle>)> = self
            .plugins
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    TextTransformClient::new(p.hot.handle()).unwrap(),
                )
            })
            .collect();
        let stop = self.stop.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {
                for (name, c) in &clients {
                    match c.transform(line.trim_end().to_string()) {
                        Ok(out) => println!("  {name}: {out}"),
                        Err(e) => println!("  {name}: error: {e}"),
                    }
                }
                line.clear();
            }
            // End of input (not a terminal, or Ctrl-D): keep serving until Ctrl-C.
            let _ = stop;
        });
    }

    pub fn counters_line(&self) -> String {
        let gens: Vec<String> = self
            .plugins
            .iter()
            .map(|p| format!("{} gen {}", p.name, p.hot.generation()))
            .collect();
        format!(
            "[stats] requests {} | failures {} | streamed words {} | {}",
            self.counters.requests.load(Ordering::Relaxed),
            self.counters.failures.load(Ordering::Relaxed),
            self.counters.streamed.load(Ordering::Relaxed),
            gens.join(" | ")
        )
    }

    /// Stops the workers.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }

    pub fn summary(&self) -> String {
        let mut lines = vec![
            "summary:".to_string(),
            format!("  {}", self.counters_line()),
        ];
        for p in &self.plugins {
            let s = p.hot.status();
            lines.push(format!(
                "  {}: generation {}, {} reloads, {} rejected, {} draining, pinned {:?}",
                p.name,
                s.current.generation,
                s.reloads,
                s.rejections,
                s.draining.len(),
                s.pinned
            ));
        }
        lines.join("\n")
    }
}

fn work(
    clients: Vec<TextTransformClient<HotHandle>>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let line = SAMPLES[i % SAMPLES.len()].to_string();
        for c in &clients {
            let ok = match c.transform(line.clone()) {
                Ok(out) => !out.is_empty(),
                Err(CallError::Plugin(_)) | Err(_) => false,
            };
            counters.requests.fetch_add(1, Ordering::Relaxed);
            if !ok {
                counters.failures.fetch_add(1, Ordering::Relaxed);
            }
            if i.is_multiple_of(16) {
                match c.words(line.clone()) {
                    Ok(stream) => {
                        for word in stream {
                            match word {
                                Ok(_) => counters.streamed.fetch_add(1, Ordering::Relaxed),
                                Err(_) => counters.failures.fetch_add(1, Ordering::Relaxed),
                            };
                        }
                    }
                    Err(_) => {
                        counters.failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        i += 1;
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
