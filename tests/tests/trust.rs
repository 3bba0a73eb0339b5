//! Trusted builds on the one-shot load path: a host with a `Trust` loads only signed
//! (or pinned) libraries, checks the copy it loads, and refuses the rest before any of
//! their code runs.

use fidius::host::trust::{signature_path, Digest, SecretKey, Trust, Untrusted, Verified};
use fidius::host::PluginLibrary;
use fidius::{LoadError, PluginHost};
use fidius_tests::{fixture, private_copy};
use std::path::Path;

fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed([seed; 32])
}

/// Signs `library` with `key`, writing the signature file beside it.
fn sign(library: &Path, key: &SecretKey) {
    let digest = Digest::of_file(library).unwrap();
    let name = library.file_name().unwrap().to_str().unwrap();
    std::fs::write(signature_path(library), key.sign(&digest).to_text(name)).unwrap();
}

fn untrusted(err: LoadError) -> Untrusted {
    match err {
        LoadError::Untrusted { reason, .. } => reason,
        other => panic!("expected an untrusted build, got {other:?}"),
    }
}

#[test]
fn a_signed_library_loads_and_says_by_whom() {
    let (_dir, lib) = private_copy("calc-plugins");
    let signer = key(1);
    sign(&lib, &signer);
    let host = PluginHost::builder()
        .trust(
            Trust::new()
                .key(key(9).public_key())
                .key(signer.public_key()),
        )
        .build();
    let library = host.open(&lib).unwrap();
    assert_eq!(
        library.verified(),
        Some(&Verified::Signed(signer.public_key().id()))
    );
    // Errors and paths name the user's file, not the copy.
    assert_eq!(library.path(), lib);
    let handle = library.handle("BasicCalc", None).unwrap();
    let sum: i64 = handle.call_method(0, &(40i64, 2i64)).unwrap();
    assert_eq!(sum, 42);
}

#[test]
fn unsigned_unknown_key_and_changed_builds_are_refused_with_reasons() {
    let (_dir, lib) = private_copy("calc-plugins");
    let trusted = key(1);
    let host = PluginHost::builder()
        .trust(Trust::new().key(trusted.public_key()))
        .build();

    let err = host.load_from(&lib, "BasicCalc").unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&lib.display().to_string()), "{message}");
    assert!(
        message.contains(&signature_path(&lib).display().to_string()),
        "{message}"
    );
    assert!(matches!(untrusted(err), Untrusted::Unsigned { .. }));

    let stranger = key(2);
    sign(&lib, &stranger);
    let reason = untrusted(host.load_from(&lib, "BasicCalc").unwrap_err());
    assert!(matches!(&reason, Untrusted::UnknownKey { key, trusted: t }
        if *key == stranger.public_key().id().to_string()
            && *t == vec![trusted.public_key().id().to_string()]));

    // Signed, then changed by one byte at the end.
    sign(&lib, &trusted);
    let mut bytes = std::fs::read(&lib).unwrap();
    bytes.push(0);
    std::fs::write(&lib, &bytes).unwrap();
    let reason = untrusted(host.load_from(&lib, "BasicCalc").unwrap_err());
    assert!(matches!(reason, Untrusted::BadSignature { .. }), "{reason}");

    // A signature file that is something else.
    std::fs::write(signature_path(&lib), trusted.public_key().to_text()).unwrap();
    let reason = untrusted(host.load_from(&lib, "BasicCalc").unwrap_err());
    assert!(
        reason.to_string().contains("it is a public key"),
        "{reason}"
    );
}

#[test]
fn a_pinned_digest_needs_no_signature() {
    let (_dir, lib) = private_copy("calc-plugins");
    let digest = Digest::of_file(&lib).unwrap();
    let library = PluginLibrary::open_trusted(&lib, &Trust::new().pin(digest)).unwrap();
    assert_eq!(library.verified(), Some(&Verified::Pinned(digest)));

    let other = Digest::of(b"another build");
    let reason =
        untrusted(PluginLibrary::open_trusted(&lib, &Trust::new().pin(other)).unwrap_err());
    assert!(matches!(reason, Untrusted::NotPinned { pinned: 1, .. }));
}

/// The check comes before the dynamic loader: an unsigned library's constructor,
/// which would run inside `dlopen`, never runs.
#[cfg(target_os = "linux")]
#[test]
fn an_untrusted_library_never_runs() {
    let (dir, lib) = private_copy("intruder");
    let log = dir.path().join("intruded.log");
    // The constructor logs where FIDIUS_INTRUDER_LOG says; only this test sets it.
    std::env::set_var("FIDIUS_INTRUDER_LOG", &log);
    let host = PluginHost::builder()
        .trust(Trust::new().key(key(1).public_key()))
        .build();
    let reason = untrusted(host.open(&lib).unwrap_err());
    assert!(matches!(reason, Untrusted::Unsigned { .. }));
    sign(&lib, &key(2));
    assert!(matches!(
        untrusted(host.open(&lib).unwrap_err()),
        Untrusted::UnknownKey { .. }
    ));
    assert!(!log.exists(), "the untrusted library's constructor ran");
    // The same library, trusted, does run: the test can see a constructor run.
    sign(&lib, &key(1));
    let err = host.open(&lib).unwrap_err();
    assert!(matches!(err, LoadError::MissingRegistry { .. }), "{err:?}");
    assert!(
        log.exists(),
        "a trusted load should have run the constructor"
    );
}

/// Searching for a plugin: when the only libraries there were refused as untrusted,
/// that refusal is the error; otherwise "not found" names them, with the reason.
#[test]
fn a_search_reports_untrusted_libraries() {
    let dir = fidius_tests::dir_with(&["calc-plugins"]);
    let host = PluginHost::builder()
        .search_path(dir.path())
        .trust(Trust::new().key(key(1).public_key()))
        .build();
    let err = host.load("BasicCalc").unwrap_err();
    assert!(matches!(untrusted(err), Untrusted::Unsigned { .. }));

    // With a trusted library there too, a missing plugin is "not found", naming the
    // untrusted one.
    let signed = dir.path().join(lib_name("calc-alt"));
    std::fs::copy(fixture("calc-alt"), &signed).unwrap();
    sign(&signed, &key(1));
    let message = host.load("NoSuchPlugin").unwrap_err().to_string();
    assert!(message.contains("not found"), "{message}");
    assert!(message.contains("not trusted"), "{message}");
    assert!(message.contains(&lib_name("calc-plugins")), "{message}");
    // The error's Debug, as `main` prints it, is that message too.
    let debug = format!("{:?}", host.load("NoSuchPlugin").unwrap_err());
    assert!(
        debug.starts_with("PluginNotFound: plugin `NoSuchPlugin` not found"),
        "{debug}"
    );
}

fn lib_name(fixture_name: &str) -> String {
    fixture(fixture_name)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}
