//! The fidius demo: a long-running host serving text transforms from two plugins
//! (`demo-plugins/uppercase`, `demo-plugins/redact`) that it hot-reloads, and from a
//! third that crashes and hangs on request (`demo-plugins/fragile`), which it runs
//! isolated in a process of its own (Linux).
//!
//! ```text
//! cargo run -p demo-app              # serve; edit a plugin and rebuild it to see a reload
//! cargo run -p demo-app -- --tour    # the whole cycle by itself; exits 0 if it all held
//! ```

#[cfg(target_os = "linux")]
mod isolation;
mod plugins;
mod service;
mod tour;

use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: demo-app [--tour] [--workers N]
  (no flags)   serve from worker threads; type a line to transform it; Ctrl-C to stop
  --tour       serve, swap in a rebuilt plugin, reject a broken one, contain a
               crashing and a hanging plugin, report, exit
  --workers N  worker threads (default 3)";

fn main() -> ExitCode {
    let mut tour = false;
    let mut workers = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tour" => tour = true,
            "--workers" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => workers = n,
                _ => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("unknown argument `{arg}`\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }

    println!(
        "fidius demo: building the demo plugins (cargo build -p uppercase -p redact -p fragile)"
    );
    let built = match plugins::build() {
        Ok(built) => built,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let result = if tour {
        tour::run(&built, workers)
    } else {
        serve(&built, workers)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Starts the isolated `fragile` plugin; returns what to do with each typed line
/// (transform it there, and print the outcome).
#[cfg(target_os = "linux")]
fn start_isolated(built: &plugins::Built) -> impl Fn(&str) + Send + 'static {
    let (krate, plugin) = plugins::ISOLATED;
    let isolated = match isolation::Isolated::start(&built.library(krate), plugin) {
        Ok(isolated) => {
            println!(
                "the `fragile` plugin runs isolated (pid {}, deadline {:?}): type `crash` or `hang`",
                isolated.pid().unwrap_or(0),
                isolation::DEADLINE
            );
            println!(
                "  to see a crash and an endless call contained while everything keeps serving."
            );
            Some(isolated)
        }
        Err(e) => {
            println!("the isolated plugin could not start: {e}");
            None
        }
    };
    move |line: &str| {
        if let Some(isolated) = &isolated {
            println!("{}", isolated.line(line));
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn start_isolated(_: &plugins::Built) -> impl Fn(&str) + Send + 'static {
    |_: &str| {}
}

/// Interactive mode: serve until Ctrl-C.
fn serve(built: &plugins::Built, workers: usize) -> Result<(), String> {
    println!(
        "watching {} for TextTransform plugins",
        built.plugin_dir().display()
    );
    let mut service = service::Service::start(&built.plugin_dir(), &built.shadow_dir(), workers)?;
    let status = service.dir.directory_status();
    match status.watcher {
        Some(watcher) => println!("watcher: {watcher}"),
        None => println!("watcher: none"),
    }
    let stop = service.stop_flag();
    ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::SeqCst))
        .map_err(|e| format!("installing the Ctrl-C handler: {e}"))?;
    println!();
    println!("serving with {workers} worker threads. To see a live reload:");
    println!(
        "  1. edit {} (change VERSION or `transform`)",
        built
            .workspace
            .join("demo-plugins/uppercase/src/lib.rs")
            .display()
    );
    println!("  2. run:  cargo build -p uppercase");
    println!(
        "  (make `transform` panic and rebuild: probation rolls the build back within a second)"
    );
    println!("type a line and press Enter to transform it; Ctrl-C to stop.");
    let isolated = start_isolated(built);
    println!();
    service.read_stdin_in_background(isolated);
    let mut last = std::time::Instant::now();
    while !service.stopped() {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() >= Duration::from_secs(5) {
            println!("{}", service.counters_line());
            last = std::time::Instant::now();
        }
    }
    service.shutdown();
    println!("\n{}", service.summary());
    Ok(())
}
