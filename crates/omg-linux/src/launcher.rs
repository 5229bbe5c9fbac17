//! The trusted launcher: measures the enclave image, starts exactly the bytes it measured,
//! connects the host and platform channels, hands over the audio descriptor and serves the
//! platform channel.
//!
//! The image is copied into a sealed memfd (no further writes, no resizing) and executed from
//! there, so the bytes that run are the bytes that were hashed even if the file on disk changes
//! meanwhile. The child gets a clean environment, no standard input or output, and only three
//! extra descriptors (see [`crate::enclave_entry`]).

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use command_fds::{CommandFdExt, FdMapping};
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use omg_enclave::messages::{EnclaveReply, HostRequest};
use rustix::fs::{MemfdFlags, SealFlags};

use crate::channel::{recv, send};
use crate::enclave_entry::{AUDIO_FD, HOST_FD, PLATFORM_FD};
use crate::identity::DeviceIdentity;
use crate::platform::LinuxPlatform;

/// Environment variable naming another enclave image (a build elsewhere; any change to the
/// image changes its measurement, so sealed data and licences do not follow it).
pub const IMAGE_ENV: &str = "OMG_ENCLAVE_IMAGE";
/// File name of the enclave image, next to the `omg` executable.
pub const IMAGE_NAME: &str = "omg-enclave";
/// Largest enclave image accepted.
pub const MAX_IMAGE_LEN: u64 = 256 << 20;

/// An enclave image read into memory and measured.
pub struct EnclaveImage {
    path: PathBuf,
    bytes: Vec<u8>,
    measurement: [u8; 32],
}

impl std::fmt::Debug for EnclaveImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnclaveImage")
            .field("path", &self.path)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl EnclaveImage {
    /// Where the image is: `$OMG_ENCLAVE_IMAGE`, else `omg-enclave` next to this executable.
    pub fn locate() -> io::Result<PathBuf> {
        if let Some(p) = std::env::var_os(IMAGE_ENV) {
            return Ok(PathBuf::from(p));
        }
        Ok(std::env::current_exe()?.with_file_name(IMAGE_NAME))
    }

    /// Reads and measures the image at `path`.
    pub fn load(path: &Path) -> io::Result<Self> {
        let bytes = crate::fs::read_limited(path, MAX_IMAGE_LEN).map_err(|e| {
            io::Error::new(e.kind(), format!("enclave image {}: {e}", path.display()))
        })?;
        let measurement = omg_protocol::sha256(&bytes);
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            measurement,
        })
    }

    /// The SHA-256 of the image bytes.
    pub fn measurement(&self) -> [u8; 32] {
        self.measurement
    }

    /// Where it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The image in a sealed memfd.
    fn sealed_memfd(&self) -> io::Result<OwnedFd> {
        let fd = rustix::fs::memfd_create(
            "omg-enclave",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = std::fs::File::from(fd);
        file.write_all(&self.bytes)?;
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
        )?;
        // The child execs the image through its descriptor number, after the channels are
        // placed on 3, 4 and 5: keep the image's number clear of them.
        Ok(rustix::io::fcntl_dupfd_cloexec(&file, AUDIO_FD + 1)?)
    }
}

/// Why talking to the enclave failed.
#[derive(Debug)]
pub enum EnclaveFailure {
    /// The host channel failed.
    Io(io::Error),
    /// The enclave ended; how.
    Exited(String),
    /// The enclave reported a failure.
    Failed(String),
}

impl std::fmt::Display for EnclaveFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "enclave channel: {e}"),
            Self::Exited(how) => write!(f, "the enclave {how}"),
            Self::Failed(reason) => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for EnclaveFailure {}

/// How an enclave process ended, in words.
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(0), _) => "exited".into(),
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) if sig == libc_sigsys() => {
            "was killed by its sandbox (SIGSYS: it made a forbidden system call)".into()
        }
        (None, Some(9)) => "was killed (SIGKILL)".into(),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "ended".into(),
    }
}

fn libc_sigsys() -> i32 {
    rustix::process::Signal::SYS.as_raw()
}

/// A running enclave and the launcher's side of its channels.
pub struct RunningEnclave {
    pid: Pid,
    measurement: [u8; 32],
    host: UnixStream,
    exit: Receiver<ExitStatus>,
    status: Option<ExitStatus>,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

impl std::fmt::Debug for RunningEnclave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEnclave")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// The raw wait status of an exit (for [`ExitStatus::from_raw`]).
fn raw_status(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some((code & 0xff) << 8),
        WaitStatus::Signaled(_, sig, core) => Some(sig as i32 | if core { 0x80 } else { 0 }),
        _ => None,
    }
}

/// The guardian thread: spawns the enclave, takes its one ptrace slot (PTRACE_SEIZE, so no
/// other process, root included, can attach; with EXITKILL, so the enclave dies with its
/// launcher), resumes it from every stop and reaps it, sending its exit status.
fn guardian(
    mut command: Command,
    started: SyncSender<io::Result<Pid>>,
    exit: SyncSender<ExitStatus>,
) -> io::Result<()> {
    let child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = started.send(Err(io::Error::new(
                e.kind(),
                format!("cannot start the enclave: {e}"),
            )));
            return Ok(());
        }
    };
    drop(command);
    let pid = Pid::from_raw(child.id() as i32);
    // The child is reaped below with waitpid, not through `Child`.
    drop(child);
    if let Err(e) = ptrace::seize(pid, ptrace::Options::PTRACE_O_EXITKILL) {
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        let _ = started.send(Err(io::Error::other(format!(
            "cannot guard the enclave against tracing: {e}"
        ))));
        return Ok(());
    }
    let _ = started.send(Ok(pid));
    loop {
        match waitpid(pid, Some(WaitPidFlag::__WALL)) {
            Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                if let Some(raw) = raw_status(s) {
                    let _ = exit.send(ExitStatus::from_raw(raw));
                }
                return Ok(());
            }
            // A signal on its way to the enclave: deliver it.
            Ok(WaitStatus::Stopped(_, sig)) => {
                let _ = ptrace::cont(pid, Some(sig));
            }
            // Any other ptrace stop (e.g. a group stop): resume.
            Ok(_) => {
                let _ = ptrace::cont(pid, None);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(io::Error::other(format!("waiting for the enclave: {e}"))),
        }
    }
}

/// Locked memory an enclave process needs, in bytes: its protected heap
/// ([`crate::enclave_entry::ENCLAVE_HEAP_SIZE`]) and 2 MiB for its other protected buffers.
/// Both `memfd_secret` and `mlock` memory count against `RLIMIT_MEMLOCK` for a process
/// without `CAP_IPC_LOCK`.
pub const ENCLAVE_LOCKED_MEMORY: u64 = crate::enclave_entry::ENCLAVE_HEAP_SIZE as u64 + (2 << 20);

/// Refuses, before anything starts, a locked-memory limit the enclave could not live with
/// (it would die allocating its heap, killed by SIGABRT). Root is not held to the limit.
fn check_locked_memory_limit() -> io::Result<()> {
    use rustix::process::{Resource, geteuid, getrlimit};
    let limit = getrlimit(Resource::Memlock).current;
    match limit {
        Some(current) if current < ENCLAVE_LOCKED_MEMORY && !geteuid().is_root() => {
            Err(io::Error::other(format!(
                "the enclave needs {} KiB of locked memory but this user's limit \
                 (RLIMIT_MEMLOCK) is {} KiB: raise it to at least {} KiB (`ulimit -l {}`, \
                 LimitMEMLOCK= for a systemd service, memlock in limits.conf, or \
                 --ulimit memlock= for a container)",
                ENCLAVE_LOCKED_MEMORY >> 10,
                current >> 10,
                ENCLAVE_LOCKED_MEMORY >> 10,
                ENCLAVE_LOCKED_MEMORY >> 10,
            )))
        }
        _ => Ok(()),
    }
}

/// Starts `image` as an enclave process for the device `identity`, with `audio` (raw s16le
/// 16 kHz mono) as its audio descriptor if given. A guardian thread holds the enclave's ptrace
/// slot and reaps it; the platform channel is served on another thread by a
/// [`LinuxPlatform`] with the measurement computed here, only once the guard is in place (the
/// enclave asks the platform before it hardens itself). A locked-memory limit under
/// [`ENCLAVE_LOCKED_MEMORY`] is refused first, in one line saying what to raise.
pub fn launch(
    image: &EnclaveImage,
    identity: DeviceIdentity,
    audio: Option<OwnedFd>,
) -> io::Result<RunningEnclave> {
    check_locked_memory_limit()?;
    let memfd = image.sealed_memfd()?;
    let (host, host_child) = UnixStream::pair()?;
    let (platform_end, platform_child) = UnixStream::pair()?;
    let mut mappings = vec![
        FdMapping {
            parent_fd: OwnedFd::from(host_child),
            child_fd: HOST_FD,
        },
        FdMapping {
            parent_fd: OwnedFd::from(platform_child),
            child_fd: PLATFORM_FD,
        },
    ];
    if let Some(fd) = audio {
        mappings.push(FdMapping {
            parent_fd: fd,
            child_fd: AUDIO_FD,
        });
    }
    let mut command = Command::new(format!("/proc/self/fd/{}", memfd.as_raw_fd()));
    command
        .arg0(IMAGE_NAME)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command
        .fd_mappings(mappings)
        .map_err(|e| io::Error::other(format!("cannot pass descriptors: {e}")))?;
    let (started_tx, started_rx) = sync_channel(1);
    let (exit_tx, exit_rx) = sync_channel(1);
    let guard = std::thread::Builder::new()
        .name("omg-guardian".into())
        .spawn(move || guardian(command, started_tx, exit_tx))?;
    let pid = started_rx
        .recv()
        .map_err(|_| io::Error::other("the enclave guardian stopped"))??;
    // The child has the image open now (or failed to start).
    drop(memfd);
    let mut platform = LinuxPlatform::new(identity, image.measurement);
    let serve = std::thread::Builder::new()
        .name("omg-platform".into())
        .spawn(move || {
            let mut channel = crate::channel::NoSignal(&platform_end);
            crate::platform_server::serve(&mut platform, &mut channel)
        })?;
    Ok(RunningEnclave {
        pid,
        measurement: image.measurement,
        host,
        exit: exit_rx,
        status: None,
        threads: vec![guard, serve],
    })
}

impl RunningEnclave {
    /// The enclave's process id.
    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// The measurement of the image this enclave runs (as the launcher computed it).
    pub fn measurement(&self) -> [u8; 32] {
        self.measurement
    }

    /// Sends a request.
    pub fn send(&mut self, request: &HostRequest) -> Result<(), EnclaveFailure> {
        match send(&mut crate::channel::NoSignal(&self.host), request) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.ended().unwrap_or(EnclaveFailure::Io(e))),
        }
    }

    /// The next reply; a [`EnclaveReply::Failed`] becomes [`EnclaveFailure::Failed`], the
    /// enclave's end becomes [`EnclaveFailure::Exited`] with how it ended.
    pub fn reply(&mut self) -> Result<EnclaveReply, EnclaveFailure> {
        match recv::<EnclaveReply>(&mut self.host) {
            Ok(Some(EnclaveReply::Failed { reason })) => Err(EnclaveFailure::Failed(reason)),
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err(self
                .ended()
                .unwrap_or_else(|| EnclaveFailure::Exited("closed its channel".into()))),
            Err(e) => Err(self.ended().unwrap_or(EnclaveFailure::Io(e))),
        }
    }

    /// The enclave's exit status, waiting up to `timeout` for it.
    fn exit_status(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.exit.recv_timeout(timeout).ok();
        }
        self.status
    }

    /// If the enclave has ended (waiting briefly for it), how.
    fn ended(&mut self) -> Option<EnclaveFailure> {
        self.exit_status(Duration::from_millis(500))
            .map(|s| EnclaveFailure::Exited(describe_exit(s)))
    }

    /// Closes the host channel and waits for the enclave and the launcher's threads.
    pub fn shutdown(mut self) -> Result<(), EnclaveFailure> {
        let _ = self.host.shutdown(std::net::Shutdown::Both);
        let status = self.exit_status(Duration::from_secs(30));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        match status {
            Some(s) if s.success() => Ok(()),
            Some(s) => Err(EnclaveFailure::Exited(describe_exit(s))),
            None => Err(EnclaveFailure::Exited("did not stop".into())),
        }
    }
}

impl Drop for RunningEnclave {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            let _ = self.host.shutdown(std::net::Shutdown::Both);
            if self.exit_status(Duration::ZERO).is_none() {
                let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
            }
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}
