//! `fidius check LIB`: every reason a host would refuse a library, found by the
//! checks a host runs, in the order it runs them: trust (with `--key`/`--pin`), the
//! file, the loader and the registry, then each plugin against the interface
//! `--against` names.

use crate::signing::trust_from;
use crate::{Failure, Options};
use fidius::descriptor::METHOD_OPTIONAL;
use fidius::host::PluginLibrary;
use fidius::{InterfaceInfo, LoadError, MethodSpec, PluginInfo};
use serde_json::json;
use std::path::Path;

/// One reason for refusal.
struct Reason {
    /// `trust`, `load`, `plugin` or `interface`.
    stage: &'static str,
    plugin: Option<String>,
    message: String,
}

#[derive(Default)]
struct Report {
    reasons: Vec<Reason>,
    /// What passed, for the reader.
    notes: Vec<String>,
    /// What was not checked, and why (not a reason of its own).
    unchecked: Vec<String>,
    plugins: Vec<String>,
}

impl Report {
    fn refuse(&mut self, stage: &'static str, plugin: Option<&str>, message: impl Into<String>) {
        self.reasons.push(Reason {
            stage,
            plugin: plugin.map(str::to_string),
            message: message.into(),
        });
    }

    fn finish(self, lib: &str, json: bool) -> Result<(), Failure> {
        if json {
            let reasons: Vec<_> = self
                .reasons
                .iter()
                .map(|r| json!({ "stage": r.stage, "plugin": r.plugin, "message": r.message }))
                .collect();
            let report = json!({
                "library": lib,
                "accepted": self.reasons.is_empty(),
                "plugins": self.plugins,
                "passed": self.notes,
                "not_checked": self.unchecked,
                "reasons": reasons,
            });
            println!("{report:#}");
        } else {
            for note in &self.notes {
                println!("ok: {note}");
            }
            for r in &self.reasons {
                match &r.plugin {
                    Some(p) => println!("refused ({}, plugin `{p}`): {}", r.stage, r.message),
                    None => println!("refused ({}): {}", r.stage, r.message),
                }
            }
            for why in &self.unchecked {
                println!("not checked: {why}");
            }
        }
        match self.reasons.len() {
            0 => {
                if !json {
                    println!("{lib}: a host would accept it");
                }
                Ok(())
            }
            n if json => {
                let _ = n;
                Err(Failure::Refused(String::new()))
            }
            1 => Err(Failure::Refused(format!("{lib}: a host would refuse it"))),
            n => Err(Failure::Refused(format!(
                "{lib}: a host would refuse it, for {n} reasons"
            ))),
        }
    }
}

pub fn check(lib: &str, options: &Options) -> Result<(), Failure> {
    let path = Path::new(lib);
    let mut report = Report::default();
    let trust = trust_from(options)?;
    // With a trust, every library is loaded from a copy judged first, as a host
    // would: nothing untrusted runs, and what runs is what was judged.
    let open = |path: &Path| match &trust {
        Some(trust) => PluginLibrary::open_trusted(path, trust),
        None => PluginLibrary::open(path),
    };
    let expected = match &options.against {
        Some(reference) => {
            let reference = open(Path::new(reference))
                .map_err(|e| Failure::Usage(format!("--against: {e}")))?;
            let interfaces: Vec<InterfaceInfo> = reference.plugins().map(interface_of).collect();
            if interfaces.is_empty() {
                return Err(Failure::Usage(format!(
                    "--against: {} has no plugins to take an interface from",
                    reference.path().display()
                )));
            }
            interfaces
        }
        None => Vec::new(),
    };
    let library = match open(path) {
        Ok(library) => library,
        Err(LoadError::Untrusted { reason, .. }) => {
            report.refuse("trust", None, reason.to_string());
            report.unchecked.push(
                "the rest: those checks load the library, which runs its code, and that is \
                 not done for an untrusted build"
                    .into(),
            );
            return report.finish(lib, options.json);
        }
        Err(e) => {
            report.refuse("load", None, e.to_string());
            return report.finish(lib, options.json);
        }
    };
    if let Some(verified) = library.verified() {
        report.notes.push(format!("trusted: {verified}"));
    }
    report.notes.push(format!(
        "a fidius plugin library with {} plugin(s)",
        library.plugins().count()
    ));
    report.plugins = library.plugins().map(|p| p.name.clone()).collect();
    let chosen: Vec<&PluginInfo> = library
        .plugins()
        .filter(|p| options.plugin.as_ref().is_none_or(|name| *name == p.name))
        .collect();
    if let (Some(name), true) = (&options.plugin, chosen.is_empty()) {
        report.refuse(
            "plugin",
            Some(name),
            format!("not in the library; it has [{}]", report.plugins.join(", ")),
        );
    }
    for plugin in chosen {
        if expected.is_empty() {
            report.notes.push(format!(
                "plugin `{}` implements {}",
                plugin.name,
                plugin.describe()
            ));
            continue;
        }
        let Some(interface) = expected
            .iter()
            .find(|i| i.name == plugin.interface_name)
            .or_else(|| (expected.len() == 1).then(|| &expected[0]))
        else {
            let mut known: Vec<_> = expected.iter().map(|i| i.name).collect();
            known.dedup();
            report.refuse(
                "interface",
                Some(&plugin.name),
                format!(
                    "implements `{}`, and the reference offers only [{}]",
                    plugin.interface_name,
                    known.join(", ")
                ),
            );
            continue;
        };
        let mismatches = plugin.mismatches(interface);
        if mismatches.is_empty() {
            report.notes.push(format!(
                "plugin `{}` matches {}",
                plugin.name,
                interface.describe()
            ));
        }
        for m in mismatches {
            report.refuse("interface", Some(&plugin.name), m.to_string());
        }
    }
    report.finish(lib, options.json)
}

/// The interface a plugin was built against, as a host built against the same
/// interface would expect it. (Leaked: an `InterfaceInfo` is `'static` data, and this
/// process ends soon.)
fn interface_of(plugin: &PluginInfo) -> InterfaceInfo {
    fn leak(s: &str) -> &'static str {
        Box::leak(s.to_owned().into_boxed_str())
    }
    let methods: Vec<MethodSpec> = plugin
        .methods
        .iter()
        .map(|m| MethodSpec {
            name: leak(&m.name),
            signature: leak(&m.signature),
            flags: if m.optional { METHOD_OPTIONAL } else { 0 },
        })
        .collect();
    let optional: Vec<&'static str> = plugin
        .methods
        .iter()
        .filter(|m| m.optional)
        .map(|m| leak(&m.name))
        .collect();
    InterfaceInfo {
        name: leak(&plugin.interface_name),
        hash: plugin.interface_hash,
        version: plugin.interface_version,
        buffer: plugin.buffer_strategy,
        methods: Vec::leak(methods),
        optional: Vec::leak(optional),
    }
}
