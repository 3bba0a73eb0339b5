//! `keygen`, `sign`, `verify` and `hash`: the keys and signatures of trusted builds
//! (`fidius::host::trust` has the formats and the rules).

use crate::{Failure, Options};
use fidius::host::trust::{
    read_signature, signature_path, Digest, PublicKey, SecretKey, Trust, Untrusted, Verified,
};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `fidius keygen`: a new key pair, `BASE.key` and `BASE.pub`.
pub fn keygen(options: &Options) -> Result<(), Failure> {
    let base = PathBuf::from(options.out.clone().unwrap_or_else(|| "fidius".into()));
    let secret_path = with_suffix(&base, ".key");
    let public_path = with_suffix(&base, ".pub");
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| Failure::Usage(format!("no secure random numbers here: {e}")))?;
    let secret = SecretKey::from_seed(seed);
    write_new(&secret_path, &secret.to_text(), true, options.force)?;
    write_new(
        &public_path,
        &secret.public_key().to_text(),
        false,
        options.force,
    )?;
    println!(
        "key {}: secret key in {} (keep it private), public key in {} (give it to hosts)",
        secret.public_key().id(),
        secret_path.display(),
        public_path.display()
    );
    Ok(())
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut name = base.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes a key file, refusing to replace one unless `force`. The file is written
/// whole under a temporary name (created new, readable by its owner only for a secret
/// key) and renamed into place, so a replaced key never keeps the old file's
/// permissions, and a link at the name is replaced, not followed.
fn write_new(path: &Path, text: &str, secret: bool, force: bool) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::Usage(format!("{}: {e}", path.display()));
    if !force && std::fs::symlink_metadata(path).is_ok() {
        return Err(Failure::Usage(format!(
            "{}: already exists (--force replaces it)",
            path.display()
        )));
    }
    let temporary = with_suffix(path, &format!(".{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let _ = secret;
    let written = options
        .open(&temporary)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(fail(e));
    }
    Ok(())
}

fn digest_of(lib: &Path) -> Result<Digest, Failure> {
    Digest::of_file(lib).map_err(|e| Failure::Usage(format!("{}: {e}", lib.display())))
}

/// `fidius sign LIB --key SECRET`: writes `LIB.sig`, replacing it whole (a host
/// watching the directory never reads half a signature).
pub fn sign(lib: &str, options: &Options) -> Result<(), Failure> {
    let [key] = options.keys.as_slice() else {
        return Err(Failure::Usage(
            "usage: fidius sign LIB --key SECRET (one secret key file)".into(),
        ));
    };
    let secret = SecretKey::read(key).map_err(|e| Failure::Usage(e.to_string()))?;
    let lib = Path::new(lib);
    let digest = digest_of(lib)?;
    let name = lib
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = secret.sign(&digest).to_text(&name);
    let sig = signature_path(lib);
    let temporary = with_suffix(&sig, ".tmp");
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, &sig))
        .map_err(|e| Failure::Usage(format!("{}: {e}", sig.display())))?;
    println!(
        "signed {} with key {} (sha256 {digest}) into {}",
        lib.display(),
        secret.public_key().id(),
        sig.display()
    );
    Ok(())
}

/// The trust the `--key` and `--pin` options describe, if any.
pub fn trust_from(options: &Options) -> Result<Option<Trust>, Failure> {
    if options.keys.is_empty() && options.pins.is_empty() {
        return Ok(None);
    }
    let mut trust = Trust::new();
    for key in &options.keys {
        trust = trust.key(PublicKey::read(key).map_err(|e| Failure::Usage(e.to_string()))?);
    }
    for pin in &options.pins {
        trust = trust.pin(
            pin.parse()
                .map_err(|e| Failure::Usage(format!("--pin: {e}")))?,
        );
    }
    Ok(Some(trust))
}

/// Judges `lib` (its content and its signature file) as a host with `trust` would.
pub fn judge(lib: &Path, trust: &Trust) -> Result<Result<Verified, Untrusted>, Failure> {
    let digest = digest_of(lib)?;
    let sig = signature_path(lib);
    let text =
        read_signature(&sig).map_err(|e| Failure::Usage(format!("{}: {e}", sig.display())))?;
    Ok(trust.check(&digest, text.as_deref(), &sig))
}

/// `fidius verify LIB --key PUB...`.
pub fn verify(lib: &str, options: &Options) -> Result<(), Failure> {
    let Some(trust) = trust_from(options)? else {
        return Err(Failure::Usage(
            "usage: fidius verify LIB --key PUB... [--pin SHA256]... (at least one)".into(),
        ));
    };
    let path = Path::new(lib);
    let verdict = judge(path, &trust)?;
    if options.json {
        let report = match &verdict {
            Ok(verified) => {
                json!({ "library": lib, "trusted": true, "reason": verified.to_string() })
            }
            Err(why) => json!({ "library": lib, "trusted": false, "reason": why.to_string() }),
        };
        println!("{report:#}");
    }
    match verdict {
        Ok(verified) => {
            if !options.json {
                println!("{lib}: trusted, {verified}");
            }
            Ok(())
        }
        Err(why) if options.json => {
            let _ = why;
            Err(Failure::Refused(String::new()))
        }
        Err(why) => Err(Failure::Refused(format!("{lib}: not trusted: {why}"))),
    }
}

/// `fidius hash LIB`: the digest to pin, printed as `sha256sum` does.
pub fn hash(lib: &str) -> Result<(), Failure> {
    println!("{}  {lib}", digest_of(Path::new(lib))?);
    Ok(())
}
