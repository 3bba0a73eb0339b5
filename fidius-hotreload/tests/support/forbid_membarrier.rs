//! Test support, shared by the hazard unit tests (`src/hazard.rs`) and the
//! end-to-end tests (`tests/tests/membarrier_lost.rs`): makes `membarrier` fail, the
//! way a seccomp filter applied after start-up would.

/// Makes `membarrier` fail from now on, in every thread of the process: a seccomp
/// filter that answers it with `EPERM`. It cannot be taken back, so only a child
/// process calls it. An error where filters cannot be installed.
pub fn forbid_membarrier() -> std::io::Result<()> {
    use libc::{sock_filter, sock_fprog};
    let op = |code: u32, k: u32, jt: u8, jf: u8| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let program = [
        // The system call's number: the first word of `struct seccomp_data`.
        op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            libc::SYS_membarrier as u32,
            0,
            1,
        ),
        op(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
            0,
            0,
        ),
        op(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW, 0, 0),
    ];
    let fprog = sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: prctl with integer arguments only; it changes no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fprog` points at `program`, both alive for the call; the kernel
    // copies the program and keeps no pointer to it. TSYNC applies the filter to
    // every thread of the process (a positive result names one it could not).
    let result = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &fprog as *const sock_fprog,
        )
    };
    match result {
        0 => Ok(()),
        -1 => Err(std::io::Error::last_os_error()),
        tid => Err(std::io::Error::other(format!(
            "thread {tid} could not take the filter"
        ))),
    }
}

/// Whether this is the child process running test `name` (the full path libtest
/// knows it by). In the parent, runs that test alone in a child process, shows its
/// output and asserts that it passed, then returns `false`: a filter installed in
/// the child stays there.
pub fn in_child_process(name: &str) -> bool {
    const CHILD: &str = "FIDIUS_TEST_CHILD_PROCESS";
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprint!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the child process failed");
    assert!(stdout.contains("1 passed"), "the child ran no test");
    false
}
