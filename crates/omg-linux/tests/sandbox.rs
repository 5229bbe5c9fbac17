//! The sandbox, tried for real: each test starts this binary again as a child process in a
//! role, the child hardens itself and then tries things, and the parent checks how it ended and
//! what it could do. The harness process itself is never hardened.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ExitCode, exit};
use std::time::{Duration, Instant};

use omg_linux::protected::{MemoryKind, ProtectedBuf};
use omg_linux::sandbox::{Namespace, NamespaceStatus, SandboxOptions, killed_by_sandbox};

use common::{Running, Test, child, describe, harden_child, hex, outcome, parse_hex, run, stdio};

fn main() -> ExitCode {
    common::main(TESTS, play)
}

const TESTS: &[Test] = &[
    (
        "a_hardened_child_that_computes_exits_normally",
        computing_child_exits_normally,
    ),
    ("opening_a_file_kills_the_child", || {
        forbidden_call_kills("open")
    }),
    ("creating_a_socket_kills_the_child", || {
        forbidden_call_kills("socket")
    }),
    ("executing_a_program_kills_the_child", || {
        forbidden_call_kills("exec")
    }),
    (
        "a_crash_is_not_mistaken_for_a_sandbox_kill",
        crash_is_not_a_sandbox_kill,
    ),
    (
        "landlock_alone_denies_every_path_and_tcp",
        landlock_alone_denies_everything,
    ),
    (
        "only_kept_descriptors_survive",
        only_kept_descriptors_survive,
    ),
    (
        "the_hardened_state_is_visible_from_outside",
        hardened_state_is_visible,
    ),
    (
        "a_same_user_reader_cannot_touch_a_hardened_process",
        same_user_reader_is_refused,
    ),
];

/// The roles a child process can play.
fn play(role: &str) {
    match role {
        "compute" => compute(),
        "open" | "socket" | "exec" | "abort" | "panic" => misbehave(role),
        "landlock" => landlock_probe(),
        "fds" => fd_probe(),
        "state" => hold_hardened(),
        "reader" => read_targets(),
        "target-plain" => target(false),
        "target-hardened" => target(true),
        other => panic!("unknown role {other:?}"),
    }
}

/// The arithmetic the computing child does, for the parent to check.
fn expected_sum() -> u64 {
    (0..2_000_000u64).map(|i| i * i % 7919).sum()
}

// ---- Computing is allowed ----

fn compute() {
    // A panic below is caught on purpose: keep its message out of the test output.
    std::panic::set_hook(Box::new(|_| {}));
    let start = Instant::now();
    let report = harden_child(stdio());
    let harden_time = start.elapsed();
    // What an enclave does once hardened: protected memory (memfd_secret, ftruncate, mmap,
    // close), a large growing vector (mmap, mremap, munmap), a HashMap (getrandom), time and
    // sleep, unwinding a caught panic, and printing.
    let mut secret = ProtectedBuf::new(1 << 16).expect("a ProtectedBuf after hardening");
    secret.fill(0x42);
    let mut big = Vec::new();
    for i in 0..2_000_000u64 {
        big.push(i * i % 7919);
    }
    let sum: u64 = big.iter().sum();
    drop(big);
    let mut digits = HashMap::new();
    for d in sum.to_string().chars() {
        *digits.entry(d).or_insert(0) += 1;
    }
    let before = Instant::now();
    std::thread::sleep(Duration::from_millis(2));
    let slept = before.elapsed() >= Duration::from_millis(2);
    let unwound = std::panic::catch_unwind(|| panic!("caught")).is_err();
    println!("report={report}");
    println!("harden_us={}", harden_time.as_micros());
    println!("sum={sum}");
    println!("digits={}", digits.values().sum::<i32>());
    println!("secret_kind={:?}", secret.kind());
    println!("secret_ok={}", secret.iter().all(|&b| b == 0x42));
    println!("slept={slept}");
    println!("unwound={unwound}");
    exit(0)
}

fn computing_child_exits_normally() {
    let (status, out) = run(child("compute"));
    let fields = fields_of(&out);
    assert!(status.success(), "{}: {out}", describe(status));
    assert_eq!(fields["sum"], expected_sum().to_string());
    assert_eq!(
        fields["digits"],
        expected_sum().to_string().len().to_string()
    );
    assert_eq!(fields["secret_kind"], format!("{:?}", MemoryKind::Secret));
    for key in ["secret_ok", "slept", "unwound"] {
        assert_eq!(fields[key], "true", "{key}");
    }
    assert!(fields["report"].contains("seccomp allow-list"), "{out}");
    eprintln!(
        "    hardened in {} µs: {}",
        fields["harden_us"], fields["report"]
    );
}

// ---- Anything else kills ----

fn misbehave(role: &str) {
    // Keep the expected panic's message out of the test output.
    std::panic::set_hook(Box::new(|_| {}));
    let report = harden_child(stdio());
    println!("hardened={report}");
    let attempt = match role {
        "open" => outcome(std::fs::File::open("/etc/passwd")),
        "socket" => outcome(std::net::UdpSocket::bind("127.0.0.1:0")),
        "exec" => {
            let path = c"/bin/true";
            let argv = [path.as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null()];
            // SAFETY: NUL-terminated path, argument and environment arrays that outlive the
            // call; on success the process image is replaced.
            unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            outcome::<()>(Err(std::io::Error::last_os_error()))
        }
        "abort" => std::process::abort(),
        "panic" => panic!("a bug in the enclave"),
        _ => unreachable!(),
    };
    println!("survived={attempt}");
    exit(0)
}

fn forbidden_call_kills(role: &str) {
    let (status, out) = run(child(role));
    assert!(
        out.contains("hardened="),
        "the child did not get as far as the attempt: {out}"
    );
    assert!(!out.contains("survived"), "{role} was allowed: {out}");
    assert!(
        killed_by_sandbox(status),
        "{role}: {} instead of SIGSYS",
        describe(status)
    );
}

fn crash_is_not_a_sandbox_kill() {
    let (status, out) = run(child("abort"));
    assert!(out.contains("hardened="), "{out}");
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "abort: {}",
        describe(status)
    );
    assert!(!killed_by_sandbox(status));
    let (status, out) = run(child("panic"));
    assert!(out.contains("hardened="), "{out}");
    assert_eq!(status.code(), Some(101), "panic: {}", describe(status));
}

// ---- Landlock on its own ----

fn landlock_probe() {
    let port: u16 = std::env::var("OMG_TCP_PORT").unwrap().parse().unwrap();
    let created = std::env::temp_dir().join(format!("omg-landlock-probe-{}", std::process::id()));
    println!("control={}", outcome(std::fs::File::open("/etc/passwd")));
    let report = harden_child(SandboxOptions {
        keep_fds: vec![0, 1, 2],
        namespaces: false,
        seccomp: false,
        ..SandboxOptions::default()
    });
    println!("report={report}");
    println!("read_file={}", outcome(std::fs::File::open("/etc/passwd")));
    println!("read_dir={}", outcome(std::fs::read_dir("/")));
    println!("proc={}", outcome(std::fs::File::open("/proc/self/status")));
    let dev_null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null");
    println!("dev_null={}", outcome(dev_null));
    println!("create={}", outcome(std::fs::File::create(&created)));
    println!("created_path={}", created.display());
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port));
    println!("tcp={}", outcome(tcp));
    exit(0)
}

fn landlock_alone_denies_everything() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut command = child("landlock");
    command.env(
        "OMG_TCP_PORT",
        listener.local_addr().unwrap().port().to_string(),
    );
    let (status, out) = run(command);
    assert!(status.success(), "{}: {out}", describe(status));
    let fields = fields_of(&out);
    // A file the probe could create (Landlock not enforced) is removed before anything fails.
    let created = std::path::Path::new(&fields["created_path"]);
    let leaked = created.exists();
    let _ = std::fs::remove_file(created);
    assert_eq!(fields["control"], "ok", "the path opens before hardening");
    assert!(fields["report"].contains("NO seccomp"), "{out}");
    assert!(
        fields["report"].contains("Landlock ABI"),
        "Landlock is not enforced on this kernel: {out}"
    );
    for key in ["read_file", "read_dir", "proc", "dev_null", "create"] {
        assert_eq!(fields[key], "EACCES", "{key} under Landlock alone: {out}");
    }
    assert!(!leaked, "the probe created {}", created.display());
    // TCP rules came with Landlock ABI 4 (Linux 6.7); on older kernels seccomp alone denies
    // sockets in the real sandbox.
    let abi: u32 = fields["report"]
        .split("Landlock ABI ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Landlock ABI in the report: {out}"));
    if abi >= 4 {
        assert_eq!(fields["tcp"], "EACCES", "tcp under Landlock alone: {out}");
        assert!(
            listener.accept().is_err(),
            "a TCP connection got through Landlock"
        );
    }
}

// ---- Descriptors ----

fn fd_probe() {
    let fd = |name: &str| -> RawFd { std::env::var(name).unwrap().parse().unwrap() };
    let (keep, lose) = (fd("OMG_KEEP_FD"), fd("OMG_LOSE_FD"));
    // SAFETY: both are pipe write ends this process inherited and owns; `lose` is written to
    // after it is closed only to see the write fail with EBADF, which touches no memory.
    let write =
        |fd: RawFd, what: &[u8]| rustix::io::write(unsafe { BorrowedFd::borrow_raw(fd) }, what);
    write(keep, b"before\n").unwrap();
    write(lose, b"before\n").unwrap();
    println!("stdout before hardening");
    let report = harden_child(SandboxOptions {
        keep_fds: vec![keep],
        ..SandboxOptions::default()
    });
    // Standard streams now write to /dev/null.
    println!("stdout after hardening");
    let lost = match write(lose, b"after\n") {
        Ok(_) => "open".to_owned(),
        Err(e) => common::errno_name(e.raw_os_error()),
    };
    let line = format!("after\nlost={lost}\nreport={report}\n");
    write(keep, line.as_bytes()).unwrap();
    exit(0)
}

fn only_kept_descriptors_survive() {
    let (keep_read, keep_write) = inheritable_pipe();
    let (lose_read, lose_write) = inheritable_pipe();
    let mut command = child("fds");
    command
        .env("OMG_KEEP_FD", keep_write.as_raw_fd().to_string())
        .env("OMG_LOSE_FD", lose_write.as_raw_fd().to_string());
    let mut running = Running::start(command);
    // Only the child holds the write ends now, so each pipe ends when the child closes it.
    drop((keep_write, lose_write));
    let stdout = running.rest();
    let status = running.wait();
    let kept = std::io::read_to_string(std::fs::File::from(keep_read)).unwrap();
    let lost = std::io::read_to_string(std::fs::File::from(lose_read)).unwrap();
    assert!(status.success(), "{}: {kept}", describe(status));
    assert_eq!(
        lost, "before\n",
        "the descriptor not kept was still writable"
    );
    assert!(kept.starts_with("before\nafter\nlost=EBADF\n"), "{kept}");
    assert!(kept.contains("kept fds ["), "{kept}");
    assert!(kept.contains("[0, 1, 2] on /dev/null"), "{kept}");
    assert_eq!(
        stdout, "stdout before hardening\n",
        "stdout was not redirected"
    );
}

/// A pipe whose ends are inherited by children (no `O_CLOEXEC`): (read end, write end).
fn inheritable_pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::empty()).unwrap()
}

// ---- The hardened state, seen from /proc ----

fn hold_hardened() {
    let cpu: usize = std::env::var("OMG_CPU").unwrap().parse().unwrap();
    let report = harden_child(SandboxOptions {
        cpu: Some(cpu),
        ..stdio()
    });
    println!("report={report}");
    println!("ready");
    common::wait_for_parent();
    exit(0)
}

fn hardened_state_is_visible() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = cpus - 1;
    let mut command = child("state");
    command.env("OMG_CPU", cpu.to_string());
    let mut running = Running::start(command);
    let fields = running.fields();
    let pid = running.pid();
    let proc = |file: &str| std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
    let status = proc("status");
    let line = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    let limits = proc("limits");
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let ns_differs = |ns: &str| {
        std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap()
            != std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap()
    };
    let namespaces: Vec<bool> = ["net", "ipc", "mnt", "uts"].map(ns_differs).to_vec();
    let exit_status = running.wait();
    assert!(exit_status.success(), "{}", describe(exit_status));
    assert_eq!(line("NoNewPrivs:"), "1");
    assert_eq!(line("Seccomp:"), "2", "seccomp filter mode");
    assert_eq!(line("Cpus_allowed_list:"), cpu.to_string());
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().collect::<Vec<_>>()[4..6],
        ["0", "0"],
        "{core}"
    );
    let mut fds = fds;
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"], "descriptors left open");
    assert_eq!(namespaces, [true; 4], "new net, ipc, mnt, uts namespaces");
    assert!(fields["report"].contains("network new"), "{fields:?}");
}

// ---- Another process of the same user ----

/// Holds a marker in ordinary heap memory, hardened or not, until released.
fn target(hardened: bool) {
    let marker = b"ORDINARY-HEAP-MARKER-0123456789ab".to_vec();
    if hardened {
        println!("report={}", harden_child(stdio()));
    }
    println!("addr={}", hex(marker.as_ptr() as usize));
    println!("ready");
    common::wait_for_parent();
    std::hint::black_box(&marker);
    exit(0)
}

/// Runs as an ordinary user: starts a plain and a hardened target (its own children, so that
/// a Yama ptrace scope of 1 would not get in the way) and tries to read each.
fn read_targets() {
    println!("uid={}", rustix::process::getuid().as_raw());
    for name in ["plain", "hardened"] {
        let mut target = Running::start(child(&format!("target-{name}")));
        let fields = target.fields();
        let pid = target.pid();
        let addr = parse_hex(fields.get("addr"));
        let mem = common::read_proc_mem(pid, addr, 8);
        let read_back = mem.as_ref().is_ok_and(|m| m == b"ORDINARY");
        println!("{name}.mem={}", outcome(mem));
        println!("{name}.mem_read_back={read_back}");
        println!("{name}.vm={}", outcome(common::read_vm(pid, addr, 8)));
        println!("{name}.ptrace={}", common::ptrace_peek(pid, &[addr]).0);
        if let Some(report) = fields.get("report") {
            println!("{name}.report={report}");
        }
        let status = target.wait();
        println!("{name}.status={}", describe(status));
    }
    std::io::stdout().flush().unwrap();
    exit(0)
}

fn same_user_reader_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("    skipped: needs root to start processes as another user");
        return;
    }
    // A copy of this binary that any user may run, wherever the build directory is.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join("sandbox-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    // 65534 is `nobody`: an ordinary user with no capabilities.
    let mut command = common::child_at(&exe, "reader");
    command.uid(65534).gid(65534);
    let (status, out) = run(command);
    assert!(status.success(), "{}: {out}", describe(status));
    let fields = fields_of(&out);
    assert_eq!(fields["uid"], "65534");
    // The control: a dumpable process of the same user is readable and traceable.
    assert_eq!(fields["plain.mem"], "ok", "{out}");
    assert_eq!(fields["plain.mem_read_back"], "true", "{out}");
    assert_eq!(fields["plain.vm"], "ok", "{out}");
    assert_eq!(fields["plain.ptrace"], "ok", "{out}");
    // Hardened (non-dumpable), it is not.
    assert_eq!(fields["hardened.mem"], "EACCES", "{out}");
    assert_eq!(fields["hardened.vm"], "EPERM", "{out}");
    assert_eq!(fields["hardened.ptrace"], "EPERM", "{out}");
    assert_eq!(fields["hardened.status"], "exit code 0", "{out}");
    let report = &fields["hardened.report"];
    if user_namespaces_enabled() {
        // Unprivileged, the target made a user namespace to get the others.
        for part in [
            format!("{} {}", Namespace::User, NamespaceStatus::New),
            format!("{} {}", Namespace::Network, NamespaceStatus::New),
        ] {
            assert!(report.contains(&part), "{part:?} missing: {report}");
        }
    }
    eprintln!("    unprivileged target: {report}");
}

fn user_namespaces_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .is_ok_and(|n| n.trim().parse::<u64>().is_ok_and(|n| n > 0))
}

/// The `key=value` lines of a child's output.
fn fields_of(out: &str) -> HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}
