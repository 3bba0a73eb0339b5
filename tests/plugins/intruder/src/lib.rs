//! A shared library whose constructor records that it ran: the code an attacker would
//! like a host to load. It is not a fidius plugin. The constructor runs inside
//! `dlopen`, before any check a loader makes afterwards could refuse the library.
//!
//! When the environment variable `FIDIUS_INTRUDER_LOG` names a file, the constructor
//! appends one line to it: `pid=<pid> uid=<uid of the process>`.

#[cfg(target_os = "linux")]
extern "C" fn intrude() {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let Some(log) = std::env::var_os("FIDIUS_INTRUDER_LOG") else {
        return;
    };
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(file, "pid={} uid={uid}", std::process::id());
    }
}

/// Run by the dynamic loader when the library is loaded.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static INTRUDE: extern "C" fn() = intrude;

#[unsafe(no_mangle)]
pub extern "C" fn intruder_present() -> i32 {
    1
}
