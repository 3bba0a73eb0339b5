//! The service: every plugin in the plugin directory, hot-reloading; worker threads
//! calling them; counters; one printed line per reload event.

use fidius::CallError;
use fidius_hotreload::{DirectoryEvent, HotDirectory, HotHandle, Probation, ReloadEvent};
use std::collections::BTreeMap;
use std::path::Path;
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

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    /// Calls that panicked (a broken build, until it is rolled back).
    pub panics: AtomicU64,
    pub streamed: AtomicU64,
}

pub struct Service {
    pub dir: Arc<HotDirectory>,
    pub counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One line per event.
pub fn event_line(e: &DirectoryEvent) -> String {
    match e {
        DirectoryEvent::Added { path, plugins } => {
            format!(
                "[plugins] loaded {} from {}",
                plugins.join(", "),
                file_name(path)
            )
        }
        DirectoryEvent::Removed {
            path,
            plugins,
            unloaded,
        } => format!(
            "[plugins] {} removed ({}); {}",
            file_name(path),
            plugins.join(", "),
            if *unloaded {
                "unloaded"
            } else {
                "the last version keeps serving"
            }
        ),
        DirectoryEvent::Rejected(r)
            if r.stage == fidius_hotreload::Stage::Validate
                && file_name(&r.path) == file_name(&crate::plugins::isolated_library_name()) =>
        {
            format!(
                "[plugins] {} is not loaded here: it is served isolated, in a process of its own",
                file_name(&r.path)
            )
        }
        DirectoryEvent::Rejected(r) if r.stage == fidius_hotreload::Stage::Validate => {
            format!(
                "[plugins] ignoring {}: no TextTransform plugin in it",
                file_name(&r.path)
            )
        }
        DirectoryEvent::Rejected(r) => {
            format!("[plugins] ignoring {}: {}", file_name(&r.path), r.reason)
        }
        DirectoryEvent::Duplicate {
            plugin,
            serving,
            shadowed,
        } => {
            let shadowed: Vec<_> = shadowed.iter().map(|p| file_name(p)).collect();
            format!(
                "[plugins] {plugin} is in several libraries: serving {}, not {}",
                file_name(serving),
                shadowed.join(", ")
            )
        }
        DirectoryEvent::Retrying {
            attempt,
            left,
            failure,
        } => format!(
            "[plugins] {} not loadable yet (attempt {attempt}, {left} left): {}",
            file_name(&failure.path),
            failure.reason
        ),
        DirectoryEvent::WatcherFallback { reason, .. } => {
            format!("[plugins] polling the directory: {reason}")
        }
        DirectoryEvent::Plugin { plugin, event } => {
            let what = match event {
                ReloadEvent::Detected { .. } => "change detected".to_string(),
                ReloadEvent::Unchanged { generation, .. } => {
                    format!("same content; generation {generation} keeps serving")
                }
                ReloadEvent::Loaded(v) => {
                    format!("generation {} loaded and validated", v.generation)
                }
                ReloadEvent::Rejected(r) => {
                    format!("REJECTED at the {} stage: {}", r.stage, r.reason)
                }
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
                ReloadEvent::Removed { .. } => "file removed; still serving".to_string(),
                ReloadEvent::StateHandedOver {
                    from,
                    to,
                    bytes,
                    paused,
                    ..
                } => format!(
                    "state handed over from generation {from} to {to} ({bytes} bytes; calls held off {paused:?})"
                ),
                ReloadEvent::ProbationPassed { generation } => {
                    format!("generation {generation} passed its probation")
                }
                ReloadEvent::RolledBack {
                    from,
                    to,
                    reason,
                    after,
                    ..
                } => format!(
                    "ROLLED BACK generation {from} -> {to} after {after:?}: {reason}; its build is quarantined"
                ),
                ReloadEvent::Retrying {
                    attempt,
                    left,
                    failure,
                } => format!(
                    "not loadable yet (attempt {attempt}, {left} left): {}",
                    failure.reason
                ),
                other => format!("{other:?}"),
            };
            format!("[reload] {plugin}: {what}")
        }
        other => format!("{other:?}"),
    }
}

impl Service {
    /// Loads every `TextTransform` plugin in `dir` (hot-reloading) and starts
    /// `workers` calling threads.
    pub fn start(dir: &Path, shadow: &Path, workers: usize) -> Result<Self, String> {
        let hot = HotDirectory::builder::<dyn TextTransform>(dir)
            .shadow_dir(shadow)
            // A new build proves itself for a second; three panics in that time
            // swap the previous version back.
            .probation(
                Probation::default()
                    .window(std::time::Duration::from_secs(1))
                    .max_failures(3),
            )
            .on_event(|e| println!("{}", event_line(e)))
            .build()
            .map_err(|e| format!("watching {}: {e}", dir.display()))?;
        let hot = Arc::new(hot);
        if hot.plugins().is_empty() {
            return Err(format!("no TextTransform plugin in {}", dir.display()));
        }
        for (name, _) in hot.plugins() {
            let client =
                TextTransformClient::new(hot.get(&name).unwrap()).map_err(|e| e.to_string())?;
            println!(
                "[plugins] {name}: {} (word count: {})",
                client.describe().map_err(|e| e.to_string())?,
                if client.has_word_count() { "yes" } else { "no" }
            );
        }
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers)
            .map(|w| {
                let (hot, counters, stop) = (hot.clone(), counters.clone(), stop.clone());
                std::thread::Builder::new()
                    .name(format!("demo-worker-{w}"))
                    .spawn(move || work(&hot, &counters, &stop))
                    .expect("spawning a worker")
            })
            .collect();
        Ok(Self {
            dir: hot,
            counters,
            stop,
            workers,
        })
    }

    /// A client for plugin `name`; it follows every reload.
    pub fn client(&self, name: &str) -> Option<TextTransformClient<HotHandle>> {
        TextTransformClient::new(self.dir.get(name)?).ok()
    }

    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Transforms stdin lines with every plugin, printing the results; each line also
    /// goes to `also`.
    pub fn read_stdin_in_background(&self, also: impl Fn(&str) + Send + 'static) {
        let dir = self.dir.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {
                for (name, _) in dir.plugins() {
                    let Some(c) = dir
                        .get(&name)
                        .and_then(|h| TextTransformClient::new(h).ok())
                    else {
                        continue;
                    };
                    match c.transform(line.trim_end().to_string()) {
                        Ok(out) => println!("  {name}: {out}"),
                        Err(e) => println!("  {name}: error: {e}"),
                    }
                }
                also(line.trim_end());
                line.clear();
            }
        });
    }

    pub fn counters_line(&self) -> String {
        let gens: Vec<String> = self
            .dir
            .plugins()
            .iter()
            .filter_map(|(name, _)| {
                Some(format!("{name} gen {}", self.dir.get(name)?.generation()))
            })
            .collect();
        format!(
            "[stats] requests {} | failures {} | panics {} | streamed words {} | {}",
            self.counters.requests.load(Ordering::Relaxed),
            self.counters.failures.load(Ordering::Relaxed),
            self.counters.panics.load(Ordering::Relaxed),
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
        for (name, _) in self.dir.plugins() {
            if let Some(s) = self.dir.status(&name) {
                lines.push(format!(
                    "  {name}: generation {}, {} reloads, {} rejected, {} draining, pinned {:?}",
                    s.current.generation,
                    s.reloads,
                    s.rejections,
                    s.draining.len(),
                    s.pinned
                ));
            }
        }
        lines.join("\n")
    }
}

fn work(dir: &HotDirectory, counters: &Counters, stop: &AtomicBool) {
    // Clients follow reloads by themselves; the list is refreshed now and then so that
    // plugins that appear in the directory are served too.
    let mut clients: BTreeMap<String, TextTransformClient<HotHandle>> = BTreeMap::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        if i.is_multiple_of(256) {
            for (name, _) in dir.plugins() {
                if let std::collections::btree_map::Entry::Vacant(slot) = clients.entry(name) {
                    if let Some(c) = dir
                        .get(slot.key())
                        .and_then(|h| TextTransformClient::new(h).ok())
                    {
                        slot.insert(c);
                    }
                }
            }
        }
        let line = SAMPLES[i % SAMPLES.len()].to_string();
        for c in clients.values() {
            let ok = match c.transform(line.clone()) {
                Ok(out) => !out.is_empty(),
                Err(CallError::Panic(_)) => {
                    counters.panics.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(_) => false,
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
