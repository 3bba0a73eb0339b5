//! The `fragile` plugin, run isolated in a process of its own: a crash or an endless
//! call in it costs that call, not the demo (Linux; see fidius-isolated).

use fidius::CallError;
use fidius_isolated::{IsolatedHandle, IsolatedPlugin};
use std::path::Path;
use std::time::{Duration, Instant};
use text_interface::{RiskyTransform, RiskyTransformClient};

/// Each call's deadline.
pub const DEADLINE: Duration = Duration::from_millis(300);

pub struct Isolated {
    pub plugin: IsolatedPlugin,
    client: RiskyTransformClient<IsolatedHandle>,
}

impl Isolated {
    pub fn start(library: &Path, plugin: &str) -> Result<Self, String> {
        let plugin = IsolatedPlugin::builder::<dyn RiskyTransform>(library, plugin)
            .deadline(DEADLINE)
            .build()
            .map_err(|e| format!("starting the isolated plugin: {e}"))?;
        let client = RiskyTransformClient::new(plugin.handle()).map_err(|e| e.to_string())?;
        Ok(Self { plugin, client })
    }

    pub fn transform(&self, line: &str) -> Result<String, CallError> {
        self.client.transform(line.to_string())
    }

    /// The process serving it now.
    pub fn pid(&self) -> Option<u32> {
        self.plugin.status().pid
    }

    /// One line for the output: the result, or what happened instead.
    pub fn line(&self, line: &str) -> String {
        match self.transform(line) {
            Ok(out) => format!(
                "  fragile (isolated, pid {}): {out}",
                self.pid().unwrap_or(0)
            ),
            Err(e) => format!("  fragile (isolated): {e}"),
        }
    }
}

/// The tour's isolation step: a crash and an endless call, each contained while the
/// hot-reloading plugins keep serving. `check` reports each check.
pub fn tour(
    library: &Path,
    plugin: &str,
    check: impl Fn(bool, &str) -> Result<(), String>,
) -> Result<(), String> {
    let isolated = Isolated::start(library, plugin)?;
    let out = isolated
        .transform("contained crashes")
        .map_err(|e| e.to_string())?;
    let first = isolated.pid();
    check(
        out == "deniatnoc sehsarc",
        &format!(
            "it serves from its own process (pid {}): {out}",
            first.unwrap_or(0)
        ),
    )?;
    let crashed = isolated.transform("crash");
    println!("[tour]   `crash`: {}", display(&crashed));
    check(
        matches!(crashed, Err(CallError::Crashed { .. })),
        "the segmentation fault ended the call with CallError::Crashed, and the demo is still up",
    )?;
    let out = isolated
        .transform("served again")
        .map_err(|e| e.to_string())?;
    check(
        out == "devres niaga" && isolated.pid() != first,
        &format!(
            "the next call is served by a new process (pid {})",
            isolated.pid().unwrap_or(0)
        ),
    )?;
    let started = Instant::now();
    let hung = isolated.transform("hang");
    let took = started.elapsed();
    println!("[tour]   `hang`: {}", display(&hung));
    check(
        matches!(hung, Err(CallError::Timeout { .. }))
            && took < DEADLINE + Duration::from_millis(500),
        &format!(
            "the endless call returned CallError::Timeout after {took:?} (deadline {DEADLINE:?})"
        ),
    )?;
    let out = isolated
        .transform("still here")
        .map_err(|e| e.to_string())?;
    check(out == "llits ereh", "and the next call is served again")?;
    check(
        isolated.plugin.status().restarts == 2,
        "two processes replaced, the host never restarted",
    )
}

fn display(result: &Result<String, CallError>) -> String {
    match result {
        Ok(out) => out.clone(),
        Err(e) => e.to_string(),
    }
}
