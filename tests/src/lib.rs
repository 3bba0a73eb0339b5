//! Helpers shared by the end-to-end tests: where the compiled plugin fixtures are.
//!
//! The fixtures (real cdylibs from `tests/plugins/`) are built once by this crate's
//! build script.

use std::path::{Path, PathBuf};

/// The directory holding the compiled fixture libraries.
pub fn fixture_dir() -> &'static Path {
    Path::new(env!("FIDIUS_FIXTURE_DIR"))
}

/// The workspace root.
pub fn workspace_dir() -> &'static Path {
    Path::new(env!("FIDIUS_WORKSPACE_DIR"))
}

/// `name` as this platform names a library file: `libname.so`, `libname.dylib`,
/// `name.dll`.
pub fn lib_file(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// The path of fixture library `crate_name` (e.g. `calc-plugins`).
pub fn fixture(crate_name: &str) -> PathBuf {
    let path = fixture_dir().join(lib_file(&crate_name.replace('-', "_")));
    assert!(path.exists(), "fixture {} was not built", path.display());
    path
}

/// A fresh temporary directory holding copies of the given fixtures.
pub fn dir_with(fixtures: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    for f in fixtures {
        let src = fixture(f);
        std::fs::copy(&src, dir.path().join(src.file_name().unwrap())).expect("copying a fixture");
    }
    dir
}

/// A copy of fixture `crate_name` in a fresh directory, and its path. Loading it gives a
/// test its own instance of the plugin, whatever else has the shared fixture loaded.
pub fn private_copy(crate_name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = dir_with(&[crate_name]);
    let path = dir.path().join(fixture(crate_name).file_name().unwrap());
    (dir, path)
}

/// One of the builds of `tests/plugins/hot-plugin`: `"v1"`, `"v2"`, `"v3"` (three
/// versions of plugin `Hot`), `"other"` (a plugin `Hot` of another interface),
/// `"pin"` (version 2, pinning itself), `"newer"` (built against a newer
/// interface) or `"panics"` (version 2, panicking in every call).
pub fn hot_build(which: &str) -> PathBuf {
    let path = fixture_dir()
        .join("versions")
        .join(lib_file(&format!("hot_{which}")));
    assert!(path.exists(), "hot build {} was not built", path.display());
    path
}

/// The build of `tests/plugins/bench-plugin` whose global allocator is
/// `fidius::SharedAllocator` (the plain build is `fixture("bench-plugin")`).
pub fn bench_shared_build() -> PathBuf {
    let path = fixture_dir()
        .join("versions")
        .join(lib_file("bench_shared"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// One of the builds of `tests/plugins/counter-plugin`: `"v1"`, `"v2"` (carrying
/// their counters across), `"refuse"` (refusing any state) or `"stateless"` (not
/// opting in).
pub fn counter_build(which: &str) -> PathBuf {
    let path = fixture_dir()
        .join("versions")
        .join(lib_file(&format!("counter_{which}")));
    assert!(
        path.exists(),
        "counter build {} was not built",
        path.display()
    );
    path
}

/// A directory holding a watched plugin file and its shadow directory, for one
/// hot-reload test.
pub struct HotDir {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The watched plugin file.
    pub file: PathBuf,
    /// Where shadow copies go.
    pub shadow: PathBuf,
}

/// How a new build replaces the watched file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deploy {
    /// Written next to it, then renamed over it (`mv`).
    Rename,
    /// Removed, then hard-linked from the finished build, as cargo does.
    CargoStyle,
    /// Rewritten in place in several chunks, then closed (`cp` over it).
    InPlace,
}

impl HotDir {
    /// A fresh directory whose watched file starts as hot build `which`.
    pub fn new(which: &str) -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let file = dir.path().join(lib_file("hot"));
        let shadow = dir.path().join("shadow");
        std::fs::copy(hot_build(which), &file).unwrap();
        Self { dir, file, shadow }
    }

    /// Replaces the watched file with `bytes`, the way `how` says.
    pub fn deploy_bytes(&self, bytes: &[u8], how: Deploy) {
        use std::io::Write;
        let staged = self
            .dir
            .path()
            .join(format!("staged-{}", std::process::id()));
        match how {
            Deploy::Rename => {
                std::fs::write(&staged, bytes).unwrap();
                std::fs::rename(&staged, &self.file).unwrap();
            }
            Deploy::CargoStyle => {
                std::fs::write(&staged, bytes).unwrap();
                let _ = std::fs::remove_file(&self.file);
                std::fs::hard_link(&staged, &self.file).unwrap();
                std::fs::remove_file(&staged).unwrap();
            }
            Deploy::InPlace => {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&self.file)
                    .unwrap();
                for chunk in bytes.chunks(bytes.len().div_ceil(8).max(1)) {
                    f.write_all(chunk).unwrap();
                    f.flush().unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                f.sync_all().unwrap();
            }
        }
    }

    /// Replaces the watched file with hot build `which`.
    pub fn deploy(&self, which: &str, how: Deploy) {
        self.deploy_bytes(&std::fs::read(hot_build(which)).unwrap(), how);
    }

    /// How many private copies of the watched file this process maps, in memory or
    /// in the shadow directory.
    pub fn mapped_copies(&self) -> usize {
        mapped_copies_of(&self.file, &self.shadow)
    }

    /// Files currently in the shadow directory. Copies are unlinked once loaded, so
    /// this stays empty unless something is wrong.
    pub fn shadow_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.shadow)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

/// The names of everything this process maps (Linux: the path field of
/// `/proc/self/maps`, without a trailing ` (deleted)`), each once.
pub fn mapped_names() -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut names: Vec<String> = maps
        .lines()
        .filter_map(|l| {
            // address perms offset dev inode name: the name is the rest of the line.
            let mut rest = l;
            for _ in 0..5 {
                rest = rest.trim_start().split_once(' ')?.1;
            }
            let name = rest.trim_start();
            let name = name.strip_suffix(" (deleted)").unwrap_or(name);
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// How many mappings of files in `dir` this process has (Linux).
pub fn mapped_files_in(dir: &Path) -> usize {
    let dir = dir.display().to_string();
    mapped_names()
        .iter()
        .filter(|n| n.starts_with(&dir))
        .count()
}

/// How many private copies of `source` this process maps: in-memory copies
/// (`/memfd:fidius:<file name>:<hash of the path>:...`, as fidius-hotreload names them)
/// and files in the shadow directory `shadow`.
pub fn mapped_copies_of(source: &Path, shadow: &Path) -> usize {
    let memory = format!(
        "/memfd:fidius:{}:{:08x}:",
        source.file_name().unwrap().to_string_lossy(),
        fidius::fnv1a(source.as_os_str().as_encoded_bytes()) as u32
    );
    let dir = shadow.display().to_string();
    mapped_names()
        .iter()
        .filter(|n| n.starts_with(&memory) || n.starts_with(&dir))
        .count()
}

/// How many descriptors this process holds open on in-memory copies of `source`
/// (named as in [`mapped_copies_of`]), mapped or not.
pub fn open_copies_of(source: &Path) -> usize {
    let memory = format!(
        "/memfd:fidius:{}:{:08x}:",
        source.file_name().unwrap().to_string_lossy(),
        fidius::fnv1a(source.as_os_str().as_encoded_bytes()) as u32
    );
    std::fs::read_dir("/proc/self/fd")
        .map(|fds| {
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter(|target| target.to_string_lossy().starts_with(&memory))
                .count()
        })
        .unwrap_or(0)
}

/// The `fidius` command-line tool, built with the fixtures.
pub fn fidius_tool() -> PathBuf {
    let path = fixture_dir().join(format!("fidius{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "the fidius tool was not built: {}",
        path.display()
    );
    path
}

/// The demo host, built with the fixtures, and the target directory it should use
/// (the fixtures' own, so it never waits on the outer build's lock).
pub fn demo_app() -> (PathBuf, PathBuf) {
    let path = fixture_dir().join(format!("demo-app{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "the demo was not built: {}", path.display());
    (path, fixture_dir().parent().unwrap().to_path_buf())
}

/// How many inotify instances this process has open (Linux: the descriptors in
/// `/proc/self/fd` that link to `anon_inode:inotify`).
pub fn inotify_instances() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.as_os_str() == "anon_inode:inotify")
                })
                .count()
        })
        .unwrap_or(0)
}

/// How many threads this process runs (Linux: `Threads:` in `/proc/self/status`).
pub fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// `path` (absolute) as a path relative to the current directory: `../../x/y`.
pub fn relative_to_cwd(path: &Path) -> PathBuf {
    let cwd = std::env::current_dir().expect("the current directory");
    let (cwd, path) = (
        std::fs::canonicalize(cwd).unwrap(),
        std::fs::canonicalize(path).unwrap(),
    );
    let common = cwd
        .components()
        .zip(path.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut relative = PathBuf::new();
    for _ in cwd.components().skip(common) {
        relative.push("..");
    }
    for part in path.components().skip(common) {
        relative.push(part);
    }
    assert!(relative.is_relative(), "{}", relative.display());
    relative
}

/// Puts hot build `which` at `to` the way deploy tools do: a link (or copy) of the
/// build written beside it, then renamed over it. No bytes are copied where the
/// fixtures and `to` share a file system.
pub fn place_build(which: &str, to: &Path) {
    place_build_from(&hot_build(which), to);
}

/// Puts the library `build` at `to` as a deploy does: hard-linked (else copied)
/// beside it, then renamed over it.
pub fn place_build_from(build: &Path, to: &Path) {
    let staged = to.with_extension("staged");
    let _ = std::fs::remove_file(&staged);
    if std::fs::hard_link(build, &staged).is_err() {
        std::fs::copy(build, &staged).expect("copying a build");
    }
    std::fs::rename(&staged, to).expect("renaming a build into place");
}

/// Receives from `rx` until `done` matches an item (returned last), or panics after
/// 20 s showing everything received.
pub fn recv_until<E: std::fmt::Debug>(
    rx: &std::sync::mpsc::Receiver<E>,
    done: impl Fn(&E) -> bool,
) -> Vec<E> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(e) => {
                let stop = done(&e);
                seen.push(e);
                if stop {
                    return seen;
                }
            }
            Err(_) => panic!("timed out; saw {seen:#?}"),
        }
    }
}

/// A live process, as `/proc/<pid>/stat` tells it (Linux).
pub struct ProcStat {
    /// Its state letter (`R`, `S`, `Z`...).
    pub state: String,
    /// Its parent.
    pub ppid: u32,
    /// Its process group.
    pub pgrp: u32,
}

/// What `/proc/<pid>/stat` says of `pid`, if it exists.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces and parentheses).
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    Some(ProcStat {
        state: fields.next()?.to_string(),
        ppid: fields.next()?.parse().ok()?,
        pgrp: fields.next()?.parse().ok()?,
    })
}

/// Every process that is neither reaped nor a zombie, with what its stat says
/// (Linux).
pub fn live_processes() -> Vec<(u32, ProcStat)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, proc_stat(pid)?)))
        .filter(|(_, stat)| stat.state != "Z")
        .collect()
}

/// Processes whose parent is this process and that are neither reaped nor zombies
/// (Linux).
pub fn live_children() -> Vec<u32> {
    let me = std::process::id();
    live_processes()
        .into_iter()
        .filter(|(_, stat)| stat.ppid == me)
        .map(|(pid, _)| pid)
        .collect()
}

/// Whether process `pid` exists and is not a zombie (Linux).
pub fn running(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|stat| stat.state != "Z")
}
