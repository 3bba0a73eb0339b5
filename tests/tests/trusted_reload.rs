//! Trusted builds in hot reloading and isolated plugins: every load path judges the
//! private copy it loads, an untrusted build never replaces a trusted one, and a
//! signature deployed after its library is picked up.
#![cfg(target_os = "linux")]

use fidius::host::trust::{signature_path, Digest, SecretKey, Trust, Untrusted};
use fidius::LoadError;
use fidius_hotreload::{DirectoryEvent, HotDirectory, HotPlugin, ReloadEvent, Stage};
use fidius_tests::{hot_build, lib_file, recv_until, Deploy, HotDir};
use hot_interface::{Versioned, VersionedClient};
use std::path::Path;

fn signer() -> SecretKey {
    SecretKey::from_seed([11; 32])
}

fn trust() -> Trust {
    Trust::new().key(signer().public_key())
}

/// The signature file text of hot build `which`.
fn signature_of(which: &str) -> String {
    let digest = Digest::of_file(&hot_build(which)).unwrap();
    signer().sign(&digest).to_text(&lib_file("hot"))
}

/// Writes `text` as the signature of `library`, whole (written beside it, renamed).
fn put_signature(library: &Path, text: &str) {
    let sig = signature_path(library);
    let staged = sig.with_extension("staged-sig");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, &sig).unwrap();
}

fn untrusted(e: &ReloadEvent) -> Option<&Untrusted> {
    match e {
        ReloadEvent::Rejected(r) if r.stage == Stage::Trust => match r.error.as_deref() {
            Some(LoadError::Untrusted { reason, .. }) => Some(reason),
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn an_unsigned_first_build_is_refused() {
    let dir = HotDir::new("v1");
    let Err(err) = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .trust(trust())
        .build()
    else {
        panic!("an unsigned build was loaded")
    };
    assert_eq!(err.stage, Stage::Trust, "{err}");
    assert!(err.reason.contains("not signed"), "{err}");
    assert!(
        err.to_string().contains(&dir.file.display().to_string()),
        "{err}"
    );
}

/// An unsigned build is rejected and the signed one keeps serving; once its
/// signature arrives (after the library, as a careless deploy does it), it serves.
#[test]
fn an_unsigned_reload_keeps_the_trusted_version_until_its_signature_arrives() {
    let dir = HotDir::new("v1");
    put_signature(&dir.file, &signature_of("v1"));
    let hot = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .trust(trust())
        .build()
        .unwrap();
    let rx = hot.subscribe();
    let client = VersionedClient::new(hot.handle()).unwrap();
    assert_eq!(client.version().unwrap(), 1);

    // v2 lands with v1's signature still beside it: it does not match.
    dir.deploy("v2", Deploy::Rename);
    let seen = recv_until(&rx, |e| untrusted(e).is_some());
    assert!(
        matches!(
            untrusted(seen.last().unwrap()),
            Some(Untrusted::BadSignature { .. })
        ),
        "{seen:#?}"
    );
    assert_eq!(client.version().unwrap(), 1, "an untrusted build serves");

    // Its signature follows: a change of the signature alone reloads the plugin.
    put_signature(&dir.file, &signature_of("v2"));
    recv_until(&rx, |e| matches!(e, ReloadEvent::Swapped { .. }));
    assert_eq!(client.version().unwrap(), 2);

    // Signed by a stranger: refused, and v2 serves on.
    let stranger = SecretKey::from_seed([12; 32]);
    let digest = Digest::of_file(&hot_build("v3")).unwrap();
    put_signature(&dir.file, &stranger.sign(&digest).to_text("x"));
    dir.deploy("v3", Deploy::Rename);
    let seen = recv_until(&rx, |e| {
        matches!(untrusted(e), Some(Untrusted::UnknownKey { .. }))
    });
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, ReloadEvent::Swapped { .. })),
        "{seen:#?}"
    );
    assert_eq!(client.version().unwrap(), 2);
}

/// The careful order, signature first and then the library, swaps once.
#[test]
fn signature_first_then_library_swaps() {
    let dir = HotDir::new("v1");
    put_signature(&dir.file, &signature_of("v1"));
    let hot = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .trust(trust())
        .build()
        .unwrap();
    let rx = hot.subscribe();
    let client = VersionedClient::new(hot.handle()).unwrap();
    put_signature(&dir.file, &signature_of("v3"));
    dir.deploy("v3", Deploy::Rename);
    recv_until(&rx, |e| matches!(e, ReloadEvent::Swapped { .. }));
    assert_eq!(client.version().unwrap(), 3);
}

/// A pinned digest is enough, without any signature.
#[test]
fn a_pinned_build_reloads_without_a_signature() {
    let dir = HotDir::new("v1");
    let pins = Trust::new()
        .pin(Digest::of_file(&hot_build("v1")).unwrap())
        .pin(Digest::of_file(&hot_build("v2")).unwrap());
    let hot = HotPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
        .shadow_dir(&dir.shadow)
        .trust(pins)
        .watch(false)
        .build()
        .unwrap();
    let client = VersionedClient::new(hot.handle()).unwrap();
    dir.deploy("v2", Deploy::Rename);
    hot.reload_now().unwrap();
    assert_eq!(client.version().unwrap(), 2);
    dir.deploy("v3", Deploy::Rename);
    let rejection = hot.reload_now().unwrap_err();
    assert_eq!(rejection.stage, Stage::Trust);
    assert!(rejection.reason.contains("pinned"), "{rejection}");
    assert_eq!(client.version().unwrap(), 2);
}

/// In a directory, each library is judged with its own signature.
#[test]
fn a_directory_loads_only_its_signed_libraries() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let signed = plugins.join(lib_file("signed"));
    std::fs::copy(hot_build("v1"), &signed).unwrap();
    put_signature(&signed, &signature_of("v1"));
    let dir = HotDirectory::builder::<dyn Versioned>(&plugins)
        .shadow_dir(tmp.path().join("shadow"))
        .trust(trust())
        .build()
        .unwrap();
    let rx = dir.subscribe();
    assert!(
        dir.get("Hot").is_some(),
        "the signed library was not loaded"
    );

    let unsigned = plugins.join(lib_file("unsigned"));
    std::fs::copy(hot_build("other"), &unsigned).unwrap();
    let seen = recv_until(
        &rx,
        |e| matches!(e, DirectoryEvent::Rejected(r) if r.path == unsigned && r.stage == Stage::Trust),
    );
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, DirectoryEvent::Added { .. })),
        "{seen:#?}"
    );
}

/// An isolated plugin with a trust hands its process the judged copy.
#[test]
fn an_isolated_plugin_loads_only_a_trusted_build() {
    let dir = HotDir::new("v1");
    let start = || {
        fidius_isolated::IsolatedPlugin::builder::<dyn Versioned>(&dir.file, "Hot")
            .trust(trust())
            .build()
    };
    match start() {
        Err(fidius_isolated::StartError::Load(LoadError::Untrusted { reason, .. })) => {
            assert!(matches!(reason, Untrusted::Unsigned { .. }), "{reason}")
        }
        other => panic!("expected an untrusted build, got {other:?}"),
    }
    put_signature(&dir.file, &signature_of("v1"));
    let plugin = start().unwrap();
    // The original may change now: the process loaded (and restarts load) the copy.
    dir.deploy("v2", Deploy::InPlace);
    let client = VersionedClient::new(plugin.handle()).unwrap();
    assert_eq!(client.version().unwrap(), 1);
}

/// A trusted library that stays mapped after it is closed (pinned by a thread-local
/// destructor on this thread) keeps its copy's descriptor: the next trusted load,
/// of another build, must load that build, not be handed the pinned one by the
/// dynamic loader under a reused `/proc/self/fd/N` name.
#[test]
fn a_pinned_trusted_library_is_never_handed_back_for_a_new_build() {
    use fidius::PluginHost;
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join(lib_file("hot"));
    let host = PluginHost::builder()
        .expect_interface::<dyn Versioned>()
        .trust(Trust::new().key(signer().public_key()))
        .build();
    std::fs::copy(hot_build("pin"), &lib).unwrap();
    put_signature(&lib, &signature_of("pin"));
    {
        let pinned = VersionedClient::new(host.load_from(&lib, "Hot").unwrap()).unwrap();
        // Registers the plugin's thread-local destructor on this (living) thread.
        assert_eq!(pinned.work(1).unwrap(), 16 + 2);
    }
    for _ in 0..3 {
        std::fs::copy(hot_build("v3"), &lib).unwrap();
        put_signature(&lib, &signature_of("v3"));
        let fresh = VersionedClient::new(host.load_from(&lib, "Hot").unwrap()).unwrap();
        assert_eq!(fresh.version().unwrap(), 3);
    }
}

/// A FIFO where the signature (or the library) should be is refused at once, never
/// waited on: whoever can write the directory must not be able to hang the host.
#[test]
fn a_fifo_is_refused_not_waited_on() {
    use fidius::PluginHost;
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join(lib_file("hot"));
    std::fs::copy(hot_build("v1"), &lib).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(signature_path(&lib))
        .status()
        .unwrap();
    assert!(status.success());
    let host = PluginHost::builder().trust(trust()).build();
    match host.open(&lib).unwrap_err() {
        LoadError::Untrusted {
            reason: Untrusted::Malformed { reason, .. },
            ..
        } => assert!(reason.contains("not a regular file"), "{reason}"),
        other => panic!("expected a malformed signature, got {other:?}"),
    }
    // Hot reloading refuses it too, at once and for good.
    let hot = HotPlugin::builder::<dyn Versioned>(&lib, "Hot")
        .shadow_dir(dir.path().join("shadow"))
        .trust(trust())
        .build();
    let Err(rejection) = hot else {
        panic!("loaded with a FIFO for a signature")
    };
    assert_eq!(rejection.stage, Stage::Trust);
    assert!(!rejection.transient, "{rejection}");

    let fifo_lib = dir.path().join(lib_file("fifo"));
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo_lib)
        .status()
        .unwrap();
    assert!(status.success());
    let err = host.open(&fifo_lib).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}
