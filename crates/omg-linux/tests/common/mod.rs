//! What the sandbox test binaries share: a small harness (libtest would run each test on a
//! thread of its own, and seccomp, Landlock and `unshare` need a single-threaded process), and
//! helpers to start child processes from the test binary itself, each in a named role.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::panic;
use std::process::{Child, ChildStdout, Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use omg_linux::sandbox::{SandboxOptions, harden};

/// The environment variable naming the role a child process plays.
const ROLE: &str = "OMG_SANDBOX_TEST_ROLE";

/// How long any child may take before it is killed and its test fails.
const CHILD_DEADLINE: Duration = Duration::from_secs(60);

/// A test: its name and its body, which fails by panicking.
pub type Test = (&'static str, fn());

/// The `main` of a test binary: plays the role named in the environment (a child started by
/// [`child`]; the role function exits the process itself), or else runs the tests selected by
/// the command-line filters and prints libtest's summary line.
pub fn main(tests: &[Test], play: fn(&str)) -> ExitCode {
    if let Ok(role) = std::env::var(ROLE) {
        play(&role);
        eprintln!("role {role:?} returned instead of exiting");
        return ExitCode::from(99);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in tests {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&Test> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    let start = Instant::now();
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, run) in &selected {
        println!("test {name} ...");
        match panic::catch_unwind(run) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out; \
         finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len(),
        tests.len() - selected.len(),
        start.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A command that runs this test binary in `role`, with piped stdin and stdout.
pub fn child(role: &str) -> Command {
    child_at(
        &std::env::current_exe().expect("the test binary's path"),
        role,
    )
}

/// A command that runs the test binary at `exe` (this one, or a copy of it) in `role`.
pub fn child_at(exe: &std::path::Path, role: &str) -> Command {
    let mut command = Command::new(exe);
    command
        .env(ROLE, role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// A started child, killed if it outlives [`CHILD_DEADLINE`], with its stdout read line by line.
pub struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
    done: Arc<AtomicBool>,
}

impl Running {
    /// Starts `command` (from [`child`]).
    pub fn start(mut command: Command) -> Running {
        let mut child = command.spawn().expect("cannot start the child process");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let done = Arc::new(AtomicBool::new(false));
        let watched = Arc::clone(&done);
        let pid = child.id() as libc::pid_t;
        std::thread::spawn(move || {
            let deadline = Instant::now() + CHILD_DEADLINE;
            while !watched.load(Ordering::SeqCst) {
                if Instant::now() > deadline {
                    eprintln!("child {pid} took too long: killing it");
                    // SAFETY: kill takes no memory; the child is not reaped before `done`.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Running {
            child,
            stdout,
            done,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads `key=value` lines up to a line `ready` (or the end of the output).
    pub fn fields(&mut self) -> HashMap<String, String> {
        let mut fields = HashMap::new();
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).expect("reading the child") == 0 {
                return fields;
            }
            let line = line.trim_end();
            if line == "ready" {
                return fields;
            }
            if let Some((key, value)) = line.split_once('=') {
                fields.insert(key.to_owned(), value.to_owned());
            }
        }
    }

    /// Everything the child still prints.
    pub fn rest(&mut self) -> String {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).expect("reading the child");
        rest
    }

    /// Tells the child to finish (a line on its stdin, which it then sees closed).
    pub fn release(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"go\n");
        }
    }

    /// Waits for the child to end.
    pub fn wait(mut self) -> ExitStatus {
        self.release();
        let status = self.child.wait().expect("waiting for the child");
        self.done.store(true, Ordering::SeqCst);
        status
    }
}

/// Runs `command` to its end: its status and everything it printed.
pub fn run(command: Command) -> (ExitStatus, String) {
    let mut running = Running::start(command);
    let out = running.rest();
    (running.wait(), out)
}

/// A wait status in words.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => format!("{status:?}"),
    }
}

/// In a child role: waits until the parent releases it.
pub fn wait_for_parent() {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// The result of a system call as a word: `ok` or the errno's name.
pub fn outcome<T>(result: std::io::Result<T>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
    }
}

/// The symbolic name of the error numbers these tests expect.
pub fn errno_name(errno: i32) -> String {
    match errno {
        libc::EACCES => "EACCES".to_owned(),
        libc::EPERM => "EPERM".to_owned(),
        libc::EIO => "EIO".to_owned(),
        libc::EFAULT => "EFAULT".to_owned(),
        libc::EBADF => "EBADF".to_owned(),
        libc::ENOENT => "ENOENT".to_owned(),
        other => format!("errno {other}"),
    }
}

/// Reads `len` bytes at `addr` of process `pid` through `/proc/PID/mem`.
pub fn read_proc_mem(pid: u32, addr: usize, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem"))?;
    let mut buf = vec![0; len];
    mem.read_exact_at(&mut buf, addr as u64)?;
    Ok(buf)
}

/// Reads `len` bytes at `addr` of process `pid` with `process_vm_readv(2)`.
pub fn read_vm(pid: u32, addr: usize, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: the local iovec describes `buf`, writable for `len` bytes; the remote one is only
    // read by the kernel, in the other process.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// `ptrace(PTRACE_SEIZE)` of `pid`; on success the tracee is stopped with `PTRACE_INTERRUPT`,
/// the first word at each of `addrs` is peeked, and the tracee is detached again. Returns the
/// outcome of the seize and of each peek.
pub fn ptrace_peek(pid: u32, addrs: &[usize]) -> (String, Vec<Result<u64, i32>>) {
    let pid = pid as libc::pid_t;
    // SAFETY: PTRACE_SEIZE takes no memory from the caller.
    if unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) } < 0 {
        return (
            outcome::<()>(Err(std::io::Error::last_os_error())),
            Vec::new(),
        );
    }
    // SAFETY: as above; the tracee is ours now.
    unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0) };
    let mut status = 0;
    // SAFETY: `status` is a valid place for the kernel to write the wait status.
    unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    let peeks = addrs
        .iter()
        .map(|&addr| {
            // PTRACE_PEEKDATA returns the word, so errors show only in errno.
            // SAFETY: errno is thread-local; PEEKDATA reads the tracee, not our memory.
            unsafe {
                *libc::__errno_location() = 0;
                let word = libc::ptrace(libc::PTRACE_PEEKDATA, pid, addr, 0);
                match *libc::__errno_location() {
                    0 => Ok(word as u64),
                    errno => Err(errno),
                }
            }
        })
        .collect();
    // SAFETY: detaching a stopped tracee of ours takes no memory.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
    ("ok".to_owned(), peeks)
}

/// Formats an address for a child's report.
pub fn hex(addr: usize) -> String {
    format!("{addr:#x}")
}

/// Parses an address from a child's report.
pub fn parse_hex(field: Option<&String>) -> usize {
    let field = field.expect("an address from the child");
    usize::from_str_radix(field.trim_start_matches("0x"), 16).expect("a hexadecimal address")
}

/// In a child role: hardens the process, or exits with code 90 saying why. Returns the report.
pub fn harden_child(options: SandboxOptions) -> String {
    // SAFETY: a child role holds no descriptors but its standard streams and those its parent
    // passed it on purpose, and uses none that `options` does not keep afterwards.
    match unsafe { harden(&options) } {
        Ok(report) => report.to_string(),
        Err(e) => {
            eprintln!("harden failed: {e}");
            std::process::exit(90)
        }
    }
}

/// Sandbox options keeping the standard streams, which the roles report on.
pub fn stdio() -> SandboxOptions {
    SandboxOptions {
        keep_fds: vec![0, 1, 2],
        ..SandboxOptions::default()
    }
}
