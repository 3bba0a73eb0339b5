//! Trusted builds: which libraries a host agrees to load.
//!
//! Loading a library runs its code with the host's privileges, so a host that loads
//! whatever appears in a directory trusts everyone who can write there. With a
//! [`Trust`], a host names whom it trusts instead:
//!
//! * **Signatures.** The host names one or more Ed25519 [`PublicKey`]s (more than one
//!   lets keys be rotated). A library is loaded only with a detached signature by one
//!   of them, in the file beside it named as the library plus `.sig`
//!   ([`signature_path`]). `fidius keygen`, `fidius sign` and `fidius verify` (the
//!   `fidius-cli` crate) make and check keys and signatures.
//! * **Pinned hashes.** Or the host names the exact SHA-256 [`Digest`]s of the builds
//!   it accepts.
//!
//! Both may be given: a library is then accepted when either accepts it.
//!
//! A signature covers the library's content, nothing else: the message signed is
//! `b"fidius signed library v1\n"` followed by the 32 bytes of the SHA-256 of the
//! file. What is verified is always the copy that will be loaded, never the path the
//! copy was made from, and it is verified before the dynamic loader sees it: see
//! [`PluginHost`](super::PluginHost) and the `fidius-hotreload` crate.
//!
//! # File formats
//!
//! Each is text a person can read, copy and paste: comment lines starting with `#`
//! (ignored when read back, so never trusted), and one line of standard base64.
//!
//! ```text
//! # fidius public key 5c0fa2b4e1d39a07
//! RlCtXA+itOHTmgeU5f8Fz8lwCxo3xUtDt0x6J8XJgV6GpVv4jmtCb0wIDg==
//! ```
//!
//! | file | base64 of |
//! |---|---|
//! | public key (`fidius.pub`) | `FP`, the 8-byte key id, the 32-byte Ed25519 public key |
//! | secret key (`fidius.key`) | `FS`, the key id, the 32-byte Ed25519 seed |
//! | signature (`LIB.sig`) | `FG`, the id of the key that signed, the 64-byte signature |
//!
//! A key id is the first 8 bytes of the SHA-256 of `b"fidius key id\n"` and the public
//! key, written as 16 hex digits: it tells which key a signature claims, so that an
//! unknown key is reported as such rather than as a bad signature.
//!
//! Secret keys are stored unencrypted; keep them where only the signer can read them
//! (`fidius keygen` writes them readable by their owner only).
//!
//! ```
//! use fidius_core::host::trust::{Digest, SecretKey, Trust};
//!
//! let secret = SecretKey::from_seed([7; 32]);
//! let library = b"the bytes of a library";
//! let digest = Digest::of(library);
//! let signature = secret.sign(&digest);
//!
//! let trust = Trust::new().key(secret.public_key());
//! assert!(trust.check(&digest, Some(&signature.to_text("libdemo.so")), "libdemo.so.sig".as_ref()).is_ok());
//! assert!(trust.check(&Digest::of(b"other bytes"), Some(&signature.to_text("libdemo.so")), "libdemo.so.sig".as_ref()).is_err());
//! ```

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

const PUBLIC_TAG: &[u8; 2] = b"FP";
const SECRET_TAG: &[u8; 2] = b"FS";
const SIGNATURE_TAG: &[u8; 2] = b"FG";
const SIGNED_PREFIX: &[u8] = b"fidius signed library v1\n";
const KEY_ID_PREFIX: &[u8] = b"fidius key id\n";

/// The signature file of `library`: its path with `.sig` appended
/// (`libgreeter.so` → `libgreeter.so.sig`).
pub fn signature_path(library: &Path) -> PathBuf {
    let mut name = library.as_os_str().to_os_string();
    name.push(".sig");
    PathBuf::from(name)
}

/// When `path` is a signature file, the library it signs.
pub fn signed_library(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let library = name.strip_suffix(".sig")?;
    (!library.is_empty()).then(|| path.with_file_name(library))
}

/// A SHA-256 digest of a library's content: what is signed, and what a host may pin.
/// Written and parsed as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The digest of the file at `path`, read once from start to end.
    pub fn of_file(path: &Path) -> std::io::Result<Self> {
        let mut hasher = Hasher::new();
        let mut file = std::fs::File::open(path)?;
        std::io::copy(&mut file, &mut hasher)?;
        Ok(hasher.finish())
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = KeyError;

    /// 64 hex digits, as `fidius verify` and `sha256sum` print them.
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let s = s.trim();
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyError::Malformed(format!(
                "a SHA-256 digest is 64 hex digits, not {s:?}"
            )));
        }
        let mut out = [0; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("checked hex");
        }
        Ok(Self(out))
    }
}

/// A [`Digest`] computed piece by piece, as a library is copied.
#[derive(Clone, Default)]
pub struct Hasher(Sha256);

impl Hasher {
    /// An empty hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Which key made a signature: 8 bytes, written as 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct KeyId([u8; 8]);

impl KeyId {
    fn of(key: &VerifyingKey) -> Self {
        let hash = Sha256::new()
            .chain_update(KEY_ID_PREFIX)
            .chain_update(key.as_bytes())
            .finalize();
        let mut id = [0; 8];
        id.copy_from_slice(&hash[..8]);
        Self(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Why a key, signature or digest could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not what was expected.
    #[error("{0}")]
    Malformed(String),
    /// A file's text is not what was expected.
    #[error("{path}: {reason}")]
    MalformedFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Reads `path` and parses it with `parse`, naming the file in any error.
fn read_file<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, KeyError>,
) -> Result<T, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|e| match e {
        KeyError::Malformed(reason) => KeyError::MalformedFile {
            path: path.to_path_buf(),
            reason,
        },
        other => other,
    })
}

/// The payload of a key or signature text: its one non-comment line, decoded, checked
/// for `tag` and `len` bytes in all.
fn payload(text: &str, what: &str, tag: &[u8; 2], len: usize) -> Result<Vec<u8>, KeyError> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Err(KeyError::Malformed(format!(
            "a fidius {what} is one line of base64 (after any `#` comment lines)"
        )));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line)
        .map_err(|e| KeyError::Malformed(format!("not a fidius {what}: bad base64 ({e})")))?;
    if bytes.len() != len || &bytes[..2] != tag {
        let looks_like = match bytes.get(..2) {
            Some(t) if t == PUBLIC_TAG => " (it is a public key)",
            Some(t) if t == SECRET_TAG => " (it is a secret key)",
            Some(t) if t == SIGNATURE_TAG => " (it is a signature)",
            _ => "",
        };
        return Err(KeyError::Malformed(format!(
            "not a fidius {what}{looks_like}"
        )));
    }
    Ok(bytes)
}

fn encode(parts: &[&[u8]]) -> String {
    base64::engine::general_purpose::STANDARD.encode(parts.concat())
}

/// An Ed25519 public key a host trusts.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    id: KeyId,
    key: VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

impl PublicKey {
    /// Its id, which signatures by it carry.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Parses a public key file's text.
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        let bytes = payload(text, "public key", PUBLIC_TAG, 2 + 8 + 32)?;
        let key_bytes: [u8; 32] = bytes[10..].try_into().expect("length checked");
        let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| {
            KeyError::Malformed("not a fidius public key: not a point on the curve".into())
        })?;
        let id = KeyId::of(&key);
        if bytes[2..10] != id.0 {
            return Err(KeyError::Malformed(
                "not a fidius public key: its key id does not match the key".into(),
            ));
        }
        Ok(Self { id, key })
    }

    /// Reads a public key file (as `fidius keygen` writes it).
    pub fn read(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        read_file(path.as_ref(), Self::from_text)
    }

    /// The text of a public key file.
    pub fn to_text(&self) -> String {
        format!(
            "# fidius public key {}\n{}\n",
            self.id,
            encode(&[PUBLIC_TAG, &self.id.0, self.key.as_bytes()])
        )
    }

    /// Whether `signature` is this key's signature of content with `digest`.
    fn verifies(&self, digest: &Digest, signature: &Signature) -> bool {
        self.key
            .verify_strict(&signed_message(digest), &signature.signature)
            .is_ok()
    }
}

/// An Ed25519 secret key, for signing libraries.
pub struct SecretKey {
    id: KeyId,
    key: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}, ..)", self.id)
    }
}

impl SecretKey {
    /// The key made from a 32-byte seed. Take the seed from a secure random source
    /// (`fidius keygen` does).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let key = SigningKey::from_bytes(&seed);
        Self {
            id: KeyId::of(&key.verifying_key()),
            key,
        }
    }

    /// Its public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Parses a secret key file's text.
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        let bytes = payload(text, "secret key", SECRET_TAG, 2 + 8 + 32)?;
        let seed: [u8; 32] = bytes[10..].try_into().expect("length checked");
        let key = Self::from_seed(seed);
        if bytes[2..10] != key.id.0 {
            return Err(KeyError::Malformed(
                "not a fidius secret key: its key id does not match the key".into(),
            ));
        }
        Ok(key)
    }

    /// Reads a secret key file (as `fidius keygen` writes it).
    pub fn read(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        read_file(path.as_ref(), Self::from_text)
    }

    /// The text of a secret key file.
    pub fn to_text(&self) -> String {
        format!(
            "# fidius secret key {}: keep it private\n{}\n",
            self.id,
            encode(&[SECRET_TAG, &self.id.0, self.key.as_bytes()])
        )
    }

    /// Signs content with `digest`.
    pub fn sign(&self, digest: &Digest) -> Signature {
        Signature {
            key: self.id,
            signature: self.key.sign(&signed_message(digest)),
            digest: Some(*digest),
        }
    }
}

fn signed_message(digest: &Digest) -> Vec<u8> {
    [SIGNED_PREFIX, digest.as_bytes()].concat()
}

/// A detached signature of a library.
#[derive(Clone)]
pub struct Signature {
    key: KeyId,
    signature: ed25519_dalek::Signature,
    /// The digest signed, when known (it is not read back from a file: comments are
    /// never trusted).
    digest: Option<Digest>,
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(by {})", self.key)
    }
}

impl Signature {
    /// The id of the key that made it.
    pub fn key_id(&self) -> KeyId {
        self.key
    }

    /// Parses a signature file's text.
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        let bytes = payload(text, "signature", SIGNATURE_TAG, 2 + 8 + 64)?;
        let mut key = [0; 8];
        key.copy_from_slice(&bytes[2..10]);
        let signature: [u8; 64] = bytes[10..].try_into().expect("length checked");
        Ok(Self {
            key: KeyId(key),
            signature: ed25519_dalek::Signature::from_bytes(&signature),
            digest: None,
        })
    }

    /// The text of a signature file for the library named `library`. Its comments
    /// name the library, the key and the digest, for people; only the last line counts.
    pub fn to_text(&self, library: &str) -> String {
        let digest = self
            .digest
            .map(|d| format!("# sha256 {d}\n"))
            .unwrap_or_default();
        format!(
            "# fidius signature of {library} by key {}\n{digest}{}\n",
            self.key,
            encode(&[SIGNATURE_TAG, &self.key.0, &self.signature.to_bytes()])
        )
    }
}

/// Whom a host trusts: the public keys whose signatures it accepts, and the content
/// digests it accepts without a signature. See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    keys: Vec<PublicKey>,
    pins: Vec<Digest>,
}

/// Why a build was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verified {
    /// Signed by this trusted key.
    Signed(KeyId),
    /// Its digest is pinned.
    Pinned(Digest),
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verified::Signed(key) => write!(f, "signed by trusted key {key}"),
            Verified::Pinned(digest) => write!(f, "pinned sha256 {digest}"),
        }
    }
}

/// Why a build is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Untrusted {
    /// There is no signature file, and the digest is not pinned.
    #[error(
        "not signed: there is no {signature}{}; sign the library with `fidius sign`",
        pinned_note(*pinned)
    )]
    Unsigned {
        /// The signature file that was looked for.
        signature: PathBuf,
        /// The content's SHA-256.
        sha256: String,
        /// How many digests the host pins.
        pinned: usize,
    },
    /// The signature file is not a fidius signature.
    #[error("{signature}: {reason}")]
    Malformed {
        /// The signature file.
        signature: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Signed by a key the host does not trust.
    #[error(
        "signed by key {key}, which this host does not trust (it trusts {})",
        list(trusted)
    )]
    UnknownKey {
        /// The key the signature names.
        key: String,
        /// The keys the host trusts.
        trusted: Vec<String>,
    },
    /// The signature does not match the content: the library changed after it was
    /// signed, or the signature was made for another build.
    #[error(
        "the signature by key {key} does not match the library's content (sha256 {sha256}): \
         the library changed after it was signed, or the signature belongs to another build"
    )]
    BadSignature {
        /// The key the signature names.
        key: String,
        /// The content's SHA-256.
        sha256: String,
    },
    /// The host accepts pinned digests only, and this is not one of them.
    #[error("sha256 {sha256} is not one of the {pinned} pinned digests")]
    NotPinned {
        /// The content's SHA-256.
        sha256: String,
        /// How many digests the host pins.
        pinned: usize,
    },
}

fn pinned_note(pinned: usize) -> String {
    match pinned {
        0 => String::new(),
        n => format!(", and its digest is not one of the {n} pinned"),
    }
}

fn list(keys: &[String]) -> String {
    match keys {
        [] => "no key".into(),
        [one] => format!("key {one}"),
        many => format!("keys {}", many.join(", ")),
    }
}

impl Trust {
    /// Trusts nothing yet: add keys or pinned digests.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also accepts libraries signed by `key`.
    pub fn key(mut self, key: PublicKey) -> Self {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
        self
    }

    /// Also accepts the build whose content has this SHA-256 digest.
    pub fn pin(mut self, digest: Digest) -> Self {
        if !self.pins.contains(&digest) {
            self.pins.push(digest);
        }
        self
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The pinned digests.
    pub fn pins(&self) -> &[Digest] {
        &self.pins
    }

    /// Judges content with `digest`, and the text of its signature file if there is
    /// one (`signature_file` names that file in messages).
    pub fn check(
        &self,
        digest: &Digest,
        signature: Option<&str>,
        signature_file: &Path,
    ) -> Result<Verified, Untrusted> {
        if self.pins.contains(digest) {
            return Ok(Verified::Pinned(*digest));
        }
        let sha256 = digest.to_string();
        if self.keys.is_empty() {
            return Err(Untrusted::NotPinned {
                sha256,
                pinned: self.pins.len(),
            });
        }
        let Some(text) = signature else {
            return Err(Untrusted::Unsigned {
                signature: signature_file.to_path_buf(),
                sha256,
                pinned: self.pins.len(),
            });
        };
        let signature = Signature::from_text(text).map_err(|e| Untrusted::Malformed {
            signature: signature_file.to_path_buf(),
            reason: e.to_string(),
        })?;
        let Some(key) = self.keys.iter().find(|k| k.id == signature.key) else {
            return Err(Untrusted::UnknownKey {
                key: signature.key.to_string(),
                trusted: self.keys.iter().map(|k| k.id.to_string()).collect(),
            });
        };
        if key.verifies(digest, &signature) {
            Ok(Verified::Signed(key.id))
        } else {
            Err(Untrusted::BadSignature {
                key: key.id.to_string(),
                sha256,
            })
        }
    }
}

/// Reads the signature file of a library, if there is one: `Ok(None)` when it does not
/// exist. It must be a regular file (a FIFO is refused, not waited on) of at most
/// 64 KiB of UTF-8; otherwise the error's kind is `InvalidData` (a malformed
/// signature) or `InvalidInput` (not a regular file).
pub fn read_signature(signature_file: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read as _;
    const MAX: u64 = 64 * 1024;
    let file = match super::platform::open_regular(signature_file) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    file.take(MAX + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "larger than any fidius signature",
        ));
    }
    Ok(Some(text))
}

/// The verdict on a signature file that could not be read as one: `Some` when the
/// file is there but is no signature (too large, not text, not a regular file), which
/// is final; `None` for other I/O errors, which may pass.
pub fn unreadable_signature(signature_file: &Path, error: &std::io::Error) -> Option<Untrusted> {
    matches!(
        error.kind(),
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
    )
    .then(|| Untrusted::Malformed {
        signature: signature_file.to_path_buf(),
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig_file() -> &'static Path {
        Path::new("libx.so.sig")
    }

    #[test]
    fn keys_and_signatures_round_trip_through_their_texts() {
        let secret = SecretKey::from_seed([1; 32]);
        let again = SecretKey::from_text(&secret.to_text()).unwrap();
        assert_eq!(again.public_key(), secret.public_key());
        let public = PublicKey::from_text(&secret.public_key().to_text()).unwrap();
        assert_eq!(public, secret.public_key());
        let digest = Digest::of(b"library");
        let text = secret.sign(&digest).to_text("libx.so");
        assert!(text.contains(&digest.to_string()), "{text}");
        let trust = Trust::new().key(public);
        assert_eq!(
            trust.check(&digest, Some(&text), sig_file()),
            Ok(Verified::Signed(secret.public_key().id()))
        );
    }

    #[test]
    fn every_refusal_names_what_is_wrong() {
        let signer = SecretKey::from_seed([2; 32]);
        let other = SecretKey::from_seed([3; 32]);
        let digest = Digest::of(b"library");
        let signed = signer.sign(&digest).to_text("libx.so");
        let trust = Trust::new().key(signer.public_key());

        let changed = trust.check(&Digest::of(b"changed"), Some(&signed), sig_file());
        assert!(
            matches!(changed, Err(Untrusted::BadSignature { .. })),
            "{changed:?}"
        );

        let unknown = Trust::new().key(other.public_key());
        let e = unknown
            .check(&digest, Some(&signed), sig_file())
            .unwrap_err();
        assert!(matches!(e, Untrusted::UnknownKey { .. }));
        let message = e.to_string();
        assert!(
            message.contains(&signer.public_key().id().to_string()),
            "{message}"
        );
        assert!(
            message.contains(&other.public_key().id().to_string()),
            "{message}"
        );

        let e = trust.check(&digest, None, sig_file()).unwrap_err();
        assert!(e.to_string().contains("libx.so.sig"), "{e}");

        let e = trust
            .check(&digest, Some(&signer.public_key().to_text()), sig_file())
            .unwrap_err();
        assert!(e.to_string().contains("it is a public key"), "{e}");

        // One flipped bit of the signature.
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(signed.lines().last().unwrap())
            .unwrap();
        bytes[20] ^= 1;
        let flipped = encode(&[&bytes]);
        assert!(matches!(
            trust.check(&digest, Some(&flipped), sig_file()),
            Err(Untrusted::BadSignature { .. })
        ));
    }

    #[test]
    fn pinned_digests_need_no_signature() {
        let digest = Digest::of(b"library");
        let trust = Trust::new().pin(digest);
        assert_eq!(
            trust.check(&digest, None, sig_file()),
            Ok(Verified::Pinned(digest))
        );
        let e = trust
            .check(&Digest::of(b"other"), None, sig_file())
            .unwrap_err();
        assert!(matches!(e, Untrusted::NotPinned { pinned: 1, .. }), "{e:?}");
        assert_eq!(digest.to_string().parse::<Digest>().unwrap(), digest);
        assert!("abc".parse::<Digest>().is_err());
    }

    #[test]
    fn comments_are_not_trusted_and_a_tampered_id_is_refused() {
        let secret = SecretKey::from_seed([4; 32]);
        let text = secret.public_key().to_text();
        let payload_line = text.lines().last().unwrap();
        let key = PublicKey::from_text(&format!("# anything at all\n\n{payload_line}\n")).unwrap();
        assert_eq!(key, secret.public_key());
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(payload_line)
            .unwrap();
        bytes[3] ^= 1;
        assert!(PublicKey::from_text(&encode(&[&bytes])).is_err());
    }

    #[test]
    fn signature_paths() {
        let lib = Path::new("/plugins/libgreeter.so");
        let sig = signature_path(lib);
        assert_eq!(sig, Path::new("/plugins/libgreeter.so.sig"));
        assert_eq!(signed_library(&sig).as_deref(), Some(lib));
        assert_eq!(signed_library(lib), None);
    }
}
