//! The service deployment through the real binaries: `omg platform serve` runs as a platform
//! user that alone can read the device directory, and an app running as another, unprivileged
//! user gets keyword events through the socket — the same events the embedded mode gives —
//! while it cannot read the device secrets, trace or read the enclave or the service, or use the
//! device directory itself. Also: a bad package, a garbage frame and a busy service get clear
//! refusals, and the service keeps serving.
//!
//! Two users need root to arrange (CI runs as root); as another user the test says so and
//! checks only what one user can.

mod support;

use std::io::{BufRead, Read, Write};
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{
    Device, Ended, OMG, Streaming, TempDir, children, clip, ended, ok, omg, silence, spawn_service,
    streaming,
};

/// The platform service's user and group (numeric: no account needed).
const PLATFORM_ID: u32 = 61_873;
/// The app's user and group.
const APP_ID: u32 = 61_874;
/// Set (to the attack's targets) when this binary runs as the attacker, see [`attacker_role`].
const ATTACK_ENV: &str = "OMG_TEST_ATTACK";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A command running as `id` (user and group) when root, else as this user.
fn as_user(program: impl AsRef<std::ffi::OsStr>, id: u32) -> Command {
    let mut c = Command::new(program);
    if is_root() {
        // std drops the supplementary groups when root sets a uid.
        c.uid(id).gid(id);
    }
    c
}

fn chown_tree(path: &Path, id: u32) {
    chown(path, Some(id), Some(id)).unwrap();
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap().flatten() {
            chown_tree(&e.path(), id);
        }
    }
}

/// A running `omg platform serve`; killed on drop. Its log is collected.
struct Service {
    child: Child,
    socket: PathBuf,
    log: Arc<Mutex<String>>,
}

impl Service {
    fn start(device_dir: &Path, socket: &Path, extra: &[&str]) -> Service {
        let mut serve = as_user(OMG, PLATFORM_ID);
        serve
            .args(["platform", "serve", "--dir"])
            .arg(device_dir)
            .arg("--socket")
            .arg(socket)
            .args(extra);
        let (child, mut stderr, banner) = spawn_service(serve);
        assert!(banner.contains("serving the device"), "{banner:?}");
        let log = Arc::new(Mutex::new(banner));
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while stderr.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Service {
            child,
            socket: socket.to_path_buf(),
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log has `n` session lines.
    fn wait_sessions(&self, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if log.matches("omg platform: session").count() >= n || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs [`attacker_role`] as `id` against the processes `pids` and the files `files`; returns
/// its report.
fn attack(id: u32, pids: &[u32], files: &[&str]) -> String {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let out = Command::new(std::env::current_exe().unwrap())
        .uid(id)
        .gid(id)
        .env(
            ATTACK_ENV,
            format!("{};{}", pids.join(" "), files.join(" ")),
        )
        .args([
            "--exact",
            "attacker_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// `omg run PACKAGE ARGS --socket S --json` as the app.
fn app_run(device: &Device, service: &Service, args: &[&str]) -> Command {
    let mut c = as_user(OMG, APP_ID);
    c.arg("run")
        .arg(&device.package)
        .args(args)
        .arg("--socket")
        .arg(&service.socket)
        .arg("--json")
        .env_remove("OMG_HOME");
    c
}

fn output(mut c: Command) -> Output {
    c.output().unwrap()
}

/// Hands a device provisioned by this user to the platform user: its home becomes private to
/// that user; the package and the socket's directory (returned) are reachable by all.
fn hand_to_platform(device: &Device) -> PathBuf {
    std::fs::set_permissions(&device.package, PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&device.dir.0, PermissionsExt::from_mode(0o755)).unwrap();
    let run = device.dir.path("run");
    std::fs::create_dir(&run).unwrap();
    if is_root() {
        chown_tree(&device.home, PLATFORM_ID);
        chown_tree(&run, PLATFORM_ID);
        std::fs::set_permissions(&device.home, PermissionsExt::from_mode(0o700)).unwrap();
    }
    run
}

#[test]
fn an_app_of_another_user_gets_only_events_through_the_platform_service() {
    let device = support::provisioned(TempDir::new("service"), "micro_speech");
    // What the embedded mode hears in the clip, before the device changes hands.
    let embedded = ok(omg(
        &device.home,
        &[
            "run",
            device.package.to_str().unwrap(),
            "--wav",
            &clip("yes_en-us"),
            "--json",
        ],
    ));
    let run = hand_to_platform(&device);
    // The stream below stays silent while the attacks run: a long idle timeout.
    let service = Service::start(
        &device.home.join("device"),
        &run.join("p.sock"),
        &["--idle-timeout", "600"],
    );

    // A clip as a file: the service decodes it, the enclave hears "yes".
    let out = ok(output(app_run(
        &device,
        &service,
        &["--wav", &clip("yes_en-us")],
    )));
    assert_eq!(out, embedded);
    let event: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(event["label"], "yes");
    let log = service.wait_sessions(1);
    if is_root() {
        assert!(log.contains(&format!("(uid {APP_ID} pid")), "{log}");
    }
    assert!(log.contains("file source, 1 event(s)"), "{log}");

    // A stream held open: the enclave runs as the platform user, and the app can do nothing to
    // it, to the service, or to the device's files.
    let Streaming {
        child: mut app,
        stdin,
        mut stdout,
    } = streaming(app_run(&device, &service, &["--stdin"]), "no_en-us", "no");
    let enclaves = children(service.child.id());
    assert_eq!(enclaves.len(), 1, "{enclaves:?}");
    let enclave = enclaves[0];
    let status = std::fs::read_to_string(format!("/proc/{enclave}/status")).unwrap();
    assert!(status.contains("Seccomp:\t2"), "{status}");
    if is_root() {
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(uid_line.contains(&PLATFORM_ID.to_string()), "{uid_line}");
        let device_dir = device.home.join("device");
        let sealed = std::fs::read_dir(device_dir.join("models"))
            .unwrap()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
            .map(|f| f.path())
            .find(|p| p.extension().is_some_and(|e| e == "sealed"))
            .expect("a sealed blob");
        let files = [
            device_dir.join("huk"),
            device_dir.join("attestation.key"),
            sealed,
        ];
        let files: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
        let report = attack(APP_ID, &[enclave, service.child.id()], &files);
        assert!(report.contains("refused: 11 of 11"), "{report}");
        // The control: the platform user reads the same files.
        let report = attack(PLATFORM_ID, &[], &files);
        assert!(report.contains("refused: 0 of 3"), "{report}");
        // Nor can the app use the device directory itself (the embedded mode).
        let direct = output({
            let mut c = as_user(OMG, APP_ID);
            c.arg("run")
                .arg(&device.package)
                .args(["--wav", &clip("yes_en-us"), "--dir"])
                .arg(&device_dir);
            c
        });
        assert!(!direct.status.success());
        assert!(
            String::from_utf8_lossy(&direct.stderr).contains("Permission denied"),
            "{direct:?}"
        );
    } else {
        eprintln!("not root: the two-user checks need root and are skipped (CI runs them)");
    }
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(app.wait().unwrap().success(), "{rest}");
    assert!(
        service
            .wait_sessions(2)
            .contains("stdin source, 1 event(s)"),
        "{}",
        service.log()
    );

    // A file that is not a package: a clear refusal, no enclave needed.
    let other = device.dir.path("policy.toml");
    let out = output({
        let mut c = as_user(OMG, APP_ID);
        c.arg("run")
            .arg(&other)
            .args(["--wav", &clip("yes_en-us"), "--socket"])
            .arg(&service.socket);
        c
    });
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not an omg model package"), "{err}");

    // Garbage on the socket: a length prefix far beyond any request, then a frame that is not
    // a request. Each gets a refusal; neither brings the service down.
    for garbage in [
        &[0xff, 0xff, 0xff, 0x7f][..],
        &[3, 0, 0, 0, 0xa1, 0x01, 0x02][..],
    ] {
        let mut raw = UnixStream::connect(&service.socket).unwrap();
        raw.write_all(garbage).unwrap();
        let mut answer = Vec::new();
        raw.read_to_end(&mut answer).unwrap();
        let reply: omg_enclave::messages::EnclaveReply =
            omg_enclave::messages::decode(&answer[4..]).unwrap();
        assert!(
            matches!(&reply, omg_enclave::messages::EnclaveReply::Failed { reason } if reason.contains("malformed request")),
            "{reply:?}"
        );
    }
    // And the service still serves.
    let out = ok(output(app_run(
        &device,
        &service,
        &["--wav", &clip("no_en-us")],
    )));
    assert!(out.contains("\"no\""), "{out}");
    drop(service);
    drop(device);
}

#[test]
fn a_busy_service_refuses_more_sessions_than_it_allows() {
    let device = support::provisioned(TempDir::new("service-busy"), "micro_speech");
    let run = hand_to_platform(&device);
    let service = Service::start(
        &device.home.join("device"),
        &run.join("p.sock"),
        &["--max-sessions", "1"],
    );
    let Streaming {
        child: mut first,
        stdin,
        ..
    } = streaming(app_run(&device, &service, &["--stdin"]), "yes_en-us", "yes");
    let second = output(app_run(&device, &service, &["--wav", &clip("no_en-us")]));
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("busy"), "{err}");
    drop(stdin);
    assert!(first.wait().unwrap().success());
    // The slot is free again once the first session ended.
    service.wait_sessions(2);
    let third = ok(output(app_run(
        &device,
        &service,
        &["--wav", &clip("no_en-us")],
    )));
    assert!(third.contains("\"no\""), "{third}");
}

/// Four apps at once through the service (its sessions are threads of one process) against a
/// quota smaller than their total demand: together they never classify more than the quota,
/// each either finishes or is refused with the quota message, and none fails on the counter
/// files.
#[test]
fn parallel_sessions_through_the_service_stay_within_the_quota() {
    const QUOTA: u64 = 600;
    let device = support::provisioned_with(
        TempDir::new("service-quota"),
        "micro_speech",
        &format!("inference_quota = {QUOTA}\n"),
    );
    // 4 s of audio and the second after it: about 250 classifications per session.
    let wav = silence(&device.dir, 4);
    let run = hand_to_platform(&device);
    let service = Service::start(
        &device.home.join("device"),
        &run.join("p.sock"),
        &["--max-sessions", "8", "--max-sessions-per-uid", "8"],
    );
    let app = || {
        let mut c = as_user(OMG, APP_ID);
        c.arg("run")
            .arg(&device.package)
            .arg("--wav")
            .arg(&wav)
            .arg("--socket")
            .arg(&service.socket)
            .env_remove("OMG_HOME")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };
    let apps: Vec<Child> = (0..4).map(|_| app().spawn().unwrap()).collect();
    let ends: Vec<Ended> = apps
        .into_iter()
        .map(|c| ended(&c.wait_with_output().unwrap()))
        .collect();
    let total: u64 = ends.iter().map(|e| e.classifications).sum();
    assert!(total <= QUOTA, "{total} classifications: {ends:?}");
    assert!(ends.iter().any(|e| e.refused), "{ends:?}");
    assert!(ends.iter().any(|e| !e.refused), "{ends:?}");
    let last = ended(&app().output().unwrap());
    assert!(last.refused, "{last:?}");
    assert!(total + last.classifications <= QUOTA);
    let log = service.wait_sessions(5);
    assert!(!log.contains("No such file"), "{log}");
}

/// A third user, for the per-user limit.
const OTHER_APP_ID: u32 = 61_875;

/// An app whose stream goes silent is cut after the idle timeout, with the reason; the service
/// goes on serving.
#[test]
fn a_silent_stream_is_cut_after_the_idle_timeout() {
    let device = support::provisioned(TempDir::new("service-idle"), "micro_speech");
    let run = hand_to_platform(&device);
    let service = Service::start(
        &device.home.join("device"),
        &run.join("p.sock"),
        &["--idle-timeout", "2"],
    );
    // Audio flows (an event comes back), then the app sends nothing but keeps its pipe open.
    let Streaming {
        child: mut app,
        stdin,
        ..
    } = streaming(app_run(&device, &service, &["--stdin"]), "yes_en-us", "yes");
    let silent_since = Instant::now();
    let mut err = String::new();
    app.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = app.wait().unwrap();
    let waited = silent_since.elapsed();
    drop(stdin);
    assert!(!status.success());
    assert!(
        err.contains("the app sent no audio for 2 s; the session was ended"),
        "{err}"
    );
    assert!(waited >= Duration::from_millis(1900), "{waited:?}");
    assert!(waited < Duration::from_secs(15), "{waited:?}");
    let log = service.wait_sessions(1);
    assert!(
        log.contains("failed: the app sent no audio for 2 s"),
        "{log}"
    );
    // A clip, which never waits on the app, is not affected.
    let out = ok(output(app_run(
        &device,
        &service,
        &["--wav", &clip("no_en-us")],
    )));
    assert!(out.contains("\"no\""), "{out}");
}

/// One user cannot take every session: past its own limit it is refused while another user
/// still gets one.
#[test]
fn a_user_over_its_session_limit_is_refused_while_another_is_served() {
    let device = support::provisioned(TempDir::new("service-uid"), "micro_speech");
    let run = hand_to_platform(&device);
    let service = Service::start(
        &device.home.join("device"),
        &run.join("p.sock"),
        // The first session's stream waits silent while the others run.
        &[
            "--max-sessions",
            "4",
            "--max-sessions-per-uid",
            "1",
            "--idle-timeout",
            "600",
        ],
    );
    let Streaming {
        child: mut first,
        stdin,
        ..
    } = streaming(app_run(&device, &service, &["--stdin"]), "yes_en-us", "yes");
    let second = output(app_run(&device, &service, &["--wav", &clip("no_en-us")]));
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    let uid = if is_root() {
        APP_ID
    } else {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() }
    };
    assert!(
        err.contains(&format!(
            "uid {uid} already has 1 sessions running, the most one user may have"
        )),
        "{err}"
    );
    if is_root() {
        let mut other = app_run(&device, &service, &["--wav", &clip("no_en-us")]);
        other.uid(OTHER_APP_ID).gid(OTHER_APP_ID);
        let out = ok(output(other));
        assert!(out.contains("\"no\""), "{out}");
        let log = service.wait_sessions(3);
        assert!(log.contains(&format!("(uid {OTHER_APP_ID} pid")), "{log}");
    } else {
        eprintln!("not root: another user's session needs root and is skipped (CI runs it)");
    }
    drop(stdin);
    assert!(first.wait().unwrap().success());
}

/// The peak resident memory (VmHWM) of a process, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Writes at `path` a 16-bit PCM WAV header announcing `data_bytes` of samples, and makes the
/// file that long without writing them (sparse: they read as silence).
fn sparse_wav(path: &Path, channels: u16, rate: u32, data_bytes: u32) {
    let align = channels * 2;
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data_bytes).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
    h.extend_from_slice(&align.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_bytes.to_le_bytes());
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&h).unwrap();
    f.set_len(h.len() as u64 + u64::from(data_bytes)).unwrap();
}

/// The review's crafted WAV (4 KB on disk: 32 channels at 384 kHz, a 256 MiB data chunk) took
/// the service that decoded it whole from 14 MB to 1.1 GB resident. Decoded as a stream, it
/// and a 30 s 192 kHz stereo clip (which the service held whole before, as 44 MiB of
/// interleaved floats and 22 MiB of mono ones) raise the service's peak resident memory by less
/// than 16 MiB over its peak at start (which holds the enclave image it measured: 46 MB in a
/// debug build, so an absolute bound would measure the image's size, not the streaming), and a
/// header announcing more data than accepted is refused before anything is read.
/// (Longer clips take minutes through an unoptimized enclave; memory does not grow with
/// length.)
#[test]
fn wav_clips_stream_through_the_service_in_bounded_memory() {
    const GROWTH_KIB: u64 = 16 * 1024;
    let device = support::provisioned(TempDir::new("service-wav"), "micro_speech");
    let run = hand_to_platform(&device);
    let service = Service::start(&device.home.join("device"), &run.join("p.sock"), &[]);
    let pid = service.child.id();
    let started = peak_kib(pid);
    let bound = started + GROWTH_KIB;

    let crafted = device.dir.path("crafted.wav");
    sparse_wav(&crafted, 32, 384_000, 256 << 20);
    let out = output(app_run(
        &device,
        &service,
        &["--wav", crafted.to_str().unwrap()],
    ));
    assert!(out.status.success(), "{out:?}");
    let log = service.wait_sessions(1);
    assert!(
        log.contains("file source, 0 event(s) in 10.9 s of audio"),
        "{log}"
    );
    let after_crafted = peak_kib(pid);

    let long = device.dir.path("long.wav");
    sparse_wav(&long, 2, 192_000, 30 * 768_000);
    let out = output(app_run(
        &device,
        &service,
        &["--wav", long.to_str().unwrap()],
    ));
    assert!(out.status.success(), "{out:?}");
    let log = service.wait_sessions(2);
    assert!(log.contains("in 30.0 s of audio"), "{log}");
    let after_long = peak_kib(pid);
    eprintln!(
        "service peak resident memory: {started} KiB at start, {after_crafted} KiB after the \
         crafted clip, {after_long} KiB after the long one"
    );
    assert!(after_crafted < bound, "{after_crafted} KiB");
    assert!(after_long < bound, "{after_long} KiB");

    // 32 channels at 384 kHz, 16-bit: 4 GiB of data is 175 s, within the hour but over the
    // byte bound. Refused at once, with the reason.
    let huge = device.dir.path("huge.wav");
    sparse_wav(&huge, 32, 384_000, u32::MAX / 64 * 64);
    let out = output(app_run(
        &device,
        &service,
        &["--wav", huge.to_str().unwrap()],
    ));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bytes of sample data"), "{err}");
    assert!(peak_kib(pid) < bound);
}

/// Not a test on its own: the attacker, started by [`attack`] as another user with
/// `OMG_TEST_ATTACK="PID...;FILE..."`. It tries to trace and read each process and to read
/// each file, and prints how many attempts were refused.
#[test]
fn attacker_role() {
    let Ok(targets) = std::env::var(ATTACK_ENV) else {
        return;
    };
    let (pids, files) = targets.split_once(';').unwrap();
    let pids: Vec<i32> = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let files: Vec<&str> = files.split_whitespace().collect();
    let mut refused = 0;
    let mut tried = 0;
    let mut check = |what: &str, outcome: Result<(), std::io::Error>| {
        tried += 1;
        match outcome {
            Err(e) => {
                println!("{what}: refused ({e})");
                refused += 1;
            }
            Ok(()) => println!("{what}: SUCCEEDED"),
        }
    };
    for pid in pids {
        // SAFETY: PTRACE_ATTACH on another process touches no memory of this one.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_ATTACH,
                pid,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            )
        };
        check(
            &format!("ptrace attach {pid}"),
            if r == -1 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            },
        );
        check(
            &format!("open /proc/{pid}/mem"),
            std::fs::File::open(format!("/proc/{pid}/mem")).map(drop),
        );
        let mut buf = [0u8; 64];
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: 0x10000 as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: `local` describes `buf`, valid for writes of its length.
        let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
        let e = std::io::Error::last_os_error();
        // Reading address 0x10000 of a process one may read gives EFAULT (nothing mapped
        // there): only EPERM means the read was refused.
        check(
            &format!("process_vm_readv {pid}"),
            if n == -1 && e.raw_os_error() == Some(libc::EPERM) {
                Err(e)
            } else {
                Ok(())
            },
        );
        check(
            &format!("read /proc/{pid}/environ"),
            std::fs::read(format!("/proc/{pid}/environ")).map(drop),
        );
    }
    for f in &files {
        check(&format!("read {f}"), std::fs::read(f).map(drop));
    }
    println!("refused: {refused} of {tried}");
}
