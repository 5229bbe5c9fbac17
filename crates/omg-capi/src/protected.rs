//! The protected path's safe core, the app's side: a session running a provisioned package in
//! an enclave, fed with PCM, its keyword events back. Two deployments, as `omg run` has them:
//!
//! * the platform service (`omg platform serve`): the app connects to its Unix socket and
//!   passes the package and the read end of its audio stream; the service checks, launches
//!   the enclave and relays its replies;
//! * the embedded launcher: this process starts the Linux enclave process itself for a device
//!   directory it can read (as `omg run` without `--socket`).
//!
//! Both go through omg-cli's session code (`omg_cli::run`), which speaks the protocols. The
//! audio travels through a socket pair whose write end this handle keeps (written with
//! `MSG_NOSIGNAL`: an enclave or service that went away is an error, never a `SIGPIPE` in the
//! host); a thread reads the session's replies into a channel, so that a slow reader never
//! stalls the enclave and the events reach the app on its own thread, in `feed` and `finish`.
//! Provisioning and attestation for platform integrators are here too.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use omg_enclave::messages::EnclaveReply;
use omg_protocol::licence::InputSource;

use crate::error::{Failure, OmgStatus};

/// Most events kept for polling when no callback is set; past it the oldest are dropped (and
/// counted).
pub const OMG_MAX_QUEUED_PROTECTED_EVENTS: usize = 256;

/// A keyword event from the enclave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedEvent {
    /// Index of the label in the handle's interned labels ([`Protected::label`]).
    pub label: usize,
    /// End of the audio that triggered it, in ms since the session started.
    pub time_ms: u64,
    /// The averaged score, when the licence's output policy reveals it.
    pub score: Option<u8>,
}

/// What the enclave said when it became ready.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The package's model id.
    pub model_id: CString,
    /// The package's model version.
    pub version: u32,
    /// The output policy in force: 0 label only, 1 label and score, 2 all scores.
    pub output_policy: u8,
    /// The licence's end (seconds since the Unix epoch).
    pub not_after: u64,
    /// With a lease: when to renew it (seconds since the Unix epoch).
    pub renew_after: Option<u64>,
    /// With a lease: when it ends.
    pub lease_until: Option<u64>,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Samples the enclave read.
    pub samples: u64,
    /// Classifications it made.
    pub classifications: u64,
}

/// What the reply thread hands over.
enum Reply {
    Event {
        label: String,
        time_ms: u64,
        score: Option<u8>,
    },
    Finished(Summary),
    Failed(String),
}

/// The end of a session: not yet, or how it ended.
enum End {
    Running,
    Finished(Summary),
    Failed(String),
}

/// A running protected session.
pub struct Protected {
    /// The audio stream's write end; `None` once finished.
    audio: Option<OwnedFd>,
    /// The service's socket (service deployment), shut down to end the reply thread early.
    service: Option<UnixStream>,
    replies: Arc<Replies>,
    thread: Option<JoinHandle<()>>,
    ready: Ready,
    labels: Vec<CString>,
    end: End,
    queue: VecDeque<ProtectedEvent>,
    dropped: u64,
}

/// Most distinct labels a session may send (the enclave's labels are the manifest's).
const MAX_LABELS: usize = 4096;

fn pipeline_failure(e: anyhow::Error) -> Failure {
    let io = e.chain().any(|c| c.is::<std::io::Error>());
    let status = if io {
        OmgStatus::Io
    } else {
        OmgStatus::Refused
    };
    Failure::new(status, format!("{e:#}"))
}

fn ready_of(reply: EnclaveReply) -> Result<Ready, Failure> {
    match reply {
        EnclaveReply::Ready {
            model_id,
            version,
            output_policy,
            not_after,
            renew_after,
            lease_until,
            ..
        } => Ok(Ready {
            model_id: CString::new(model_id.replace('\0', "?")).unwrap_or_default(),
            version,
            output_policy,
            not_after,
            renew_after,
            lease_until,
        }),
        _ => Err(Failure::new(
            OmgStatus::Refused,
            "the enclave answered out of turn",
        )),
    }
}

/// Converts a session reply for the app; `None` for replies that are not the app's.
fn reply_of(reply: anyhow::Result<EnclaveReply>) -> Reply {
    match reply {
        Ok(EnclaveReply::Event {
            label,
            time_ms,
            score,
            ..
        }) => Reply::Event {
            label,
            time_ms,
            score,
        },
        Ok(EnclaveReply::Finished {
            samples,
            classifications,
            ..
        }) => Reply::Finished(Summary {
            samples,
            classifications,
        }),
        Ok(_) => Reply::Failed("the enclave answered out of turn".into()),
        Err(e) => Reply::Failed(format!("{e:#}")),
    }
}

/// The replies the reader thread hands over, and a condition variable to wait for them (a
/// mutex and a futex: unlike a channel's blocking receive, nothing is kept in the waiting
/// thread's locals, which a C host's main thread never destroys).
#[derive(Default)]
struct Replies {
    queue: Mutex<VecDeque<Reply>>,
    arrived: Condvar,
}

impl Replies {
    fn push(&self, reply: Reply) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(reply);
        self.arrived.notify_all();
    }

    /// The next reply; with `wait`, waits for one, else `None` if there is none yet.
    fn next(&self, wait: bool) -> Option<Reply> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(reply) = queue.pop_front() {
                return Some(reply);
            }
            if !wait {
                return None;
            }
            queue = self
                .arrived
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Reads replies with `next` into a [`Replies`] until the session ends (a `Finished` or a
/// failure, always the last reply), then runs `end` with whether it finished.
fn spawn_reader(
    mut next: impl FnMut() -> anyhow::Result<EnclaveReply> + Send + 'static,
    end: impl FnOnce(bool) + Send + 'static,
) -> Result<(Arc<Replies>, JoinHandle<()>), Failure> {
    let replies = Arc::new(Replies::default());
    let out = replies.clone();
    let thread = std::thread::Builder::new()
        .name("omg-protected-replies".into())
        .spawn(move || {
            let finished = loop {
                // A panic is the session's failure, not a reader that never answers.
                let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut next))
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("internal error: omg panicked")));
                let reply = reply_of(reply);
                let done = match &reply {
                    Reply::Event { .. } => None,
                    Reply::Finished(_) => Some(true),
                    Reply::Failed(_) => Some(false),
                };
                out.push(reply);
                if let Some(finished) = done {
                    break finished;
                }
            };
            end(finished);
        })
        .map_err(|e| Failure::new(OmgStatus::Io, format!("cannot start a thread: {e}")))?;
    Ok((replies, thread))
}

/// Runs `f` (`what`) on a thread of its own and waits for it. The launcher waits for the
/// enclave on std's channels, which keep per-thread state (the waiting thread's handle) that
/// lives until the thread ends: on a short thread it is freed at once, where on a C host's
/// main thread it would never be (and leak checkers would say so).
fn on_own_thread<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, Failure> {
    std::thread::Builder::new()
        .name("omg-protected-call".into())
        .spawn(f)
        .map_err(|e| Failure::new(OmgStatus::Io, format!("cannot start a thread: {e}")))?
        .join()
        .map_err(|_| {
            Failure::new(
                OmgStatus::Panic,
                format!("internal error (omg panicked while {what}); please report it"),
            )
        })?
        .map_err(pipeline_failure)
}

/// The audio stream: the read end for the enclave or service, the write end for the handle.
fn audio_pair() -> Result<(OwnedFd, OwnedFd), Failure> {
    let (ours, theirs) = UnixStream::pair()
        .map_err(|e| Failure::new(OmgStatus::Io, format!("cannot make the audio stream: {e}")))?;
    // The enclave only reads; the handle only writes.
    let _ = ours.shutdown(std::net::Shutdown::Read);
    let _ = theirs.shutdown(std::net::Shutdown::Write);
    Ok((OwnedFd::from(ours), OwnedFd::from(theirs)))
}

impl Protected {
    /// Runs `package` through the platform service listening at `socket` (the service
    /// deployment); returns once the enclave is ready, or with the refusal (the package not
    /// provisioned on the device, another device's blob, a licence that ended or does not
    /// allow a stream source, the service busy or missing).
    pub fn through_service(socket: &Path, package: Vec<u8>) -> Result<Self, Failure> {
        let (ours, theirs) = audio_pair()?;
        use std::os::fd::AsFd;
        let stream = omg_cli::run::connect_service(
            socket,
            package,
            InputSource::Stdin,
            Some(theirs.as_fd()),
        )
        .map_err(pipeline_failure)?;
        // The service holds its own copy of the read end now.
        drop(theirs);
        let ready = omg_cli::run::service_reply(&stream).map_err(pipeline_failure)?;
        let ready = ready_of(ready)?;
        let reader = stream
            .try_clone()
            .map_err(|e| Failure::new(OmgStatus::Io, format!("cannot share the socket: {e}")))?;
        let (replies, thread) = spawn_reader(move || omg_cli::run::service_reply(&reader), |_| {})?;
        Ok(Self::new(ours, Some(stream), replies, thread, ready))
    }

    /// Runs `package` in the embedded launcher for the device in `dir` (the Linux enclave
    /// process, started by this process from the image at `image`, else from where `omg`
    /// finds it); returns once the enclave is ready, or with its refusal.
    pub fn embedded(dir: &Path, image: Option<&Path>, package: Vec<u8>) -> Result<Self, Failure> {
        let (ours, theirs) = audio_pair()?;
        let (dir, image) = (dir.to_path_buf(), image.map(Path::to_path_buf));
        let (enclave, ready) = on_own_thread("launching the enclave", move || {
            omg_cli::run::start_embedded(
                &dir,
                image.as_deref(),
                package,
                InputSource::Stdin,
                theirs,
            )
        })?;
        let ready = ready_of(ready)?;
        let enclave = Arc::new(Mutex::new(Some(enclave)));
        let (reading, ending) = (enclave.clone(), enclave);
        let (replies, thread) = spawn_reader(
            move || {
                let mut guard = reading.lock().unwrap_or_else(PoisonError::into_inner);
                match guard.as_mut() {
                    Some(e) => e.reply().map_err(anyhow::Error::from),
                    None => anyhow::bail!("the enclave is gone"),
                }
            },
            move |finished| {
                let enclave = ending.lock().unwrap_or_else(PoisonError::into_inner).take();
                // A finished enclave exits by itself; any other is killed by its drop.
                if let (true, Some(e)) = (finished, enclave) {
                    let _ = e.shutdown();
                }
            },
        )?;
        Ok(Self::new(ours, None, replies, thread, ready))
    }

    fn new(
        audio: OwnedFd,
        service: Option<UnixStream>,
        replies: Arc<Replies>,
        thread: JoinHandle<()>,
        ready: Ready,
    ) -> Self {
        Self {
            audio: Some(audio),
            service,
            replies,
            thread: Some(thread),
            ready,
            labels: Vec::new(),
            end: End::Running,
            queue: Default::default(),
            dropped: 0,
        }
    }

    /// What the enclave said when it became ready.
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// Interned label `index`.
    pub fn label(&self, index: usize) -> Option<&CString> {
        self.labels.get(index)
    }

    fn intern(&mut self, label: String) -> usize {
        let c = CString::new(label.replace('\0', "?")).unwrap_or_default();
        if let Some(i) = self.labels.iter().position(|l| *l == c) {
            return i;
        }
        if self.labels.len() == MAX_LABELS {
            // An enclave does not send that many labels; keep memory bounded all the same.
            return self.intern_overflow();
        }
        self.labels.push(c);
        self.labels.len() - 1
    }

    fn intern_overflow(&mut self) -> usize {
        let c = CString::new("?").unwrap_or_default();
        match self.labels.iter().position(|l| *l == c) {
            Some(i) => i,
            None => {
                self.labels.push(c);
                self.labels.len() - 1
            }
        }
    }

    /// Takes the replies that arrived (all of them until the end with `wait`).
    fn drain(&mut self, wait: bool) -> Vec<ProtectedEvent> {
        let mut events = Vec::new();
        while matches!(self.end, End::Running) {
            let Some(reply) = self.replies.next(wait) else {
                break;
            };
            match reply {
                Reply::Event {
                    label,
                    time_ms,
                    score,
                } => {
                    let label = self.intern(label);
                    events.push(ProtectedEvent {
                        label,
                        time_ms,
                        score,
                    });
                }
                Reply::Finished(s) => self.end = End::Finished(s),
                Reply::Failed(reason) => self.end = End::Failed(reason),
            }
        }
        events
    }

    fn ended_failure(&self) -> Option<Failure> {
        match &self.end {
            End::Failed(reason) => Some(Failure::new(
                OmgStatus::Refused,
                format!("the session ended: {reason}"),
            )),
            _ => None,
        }
    }

    /// Sends `samples` (s16 mono at 16 kHz) to the enclave; returns the events that arrived
    /// meanwhile (also when the sending failed) and whether it succeeded. Blocks while the
    /// enclave is behind (the stream's buffer full).
    pub fn feed(&mut self, samples: &[i16]) -> (Vec<ProtectedEvent>, Result<(), Failure>) {
        let mut events = self.drain(false);
        if let Some(f) = self.ended_failure() {
            return (events, Err(f));
        }
        let Some(audio) = self.audio.as_ref() else {
            let f = Failure::invalid("the session is finished: open a new one to send more audio");
            return (events, Err(f));
        };
        let mut bytes = Vec::with_capacity(samples.len() * 2);
        bytes.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            match rustix::net::send(audio, rest, rustix::net::SendFlags::NOSIGNAL) {
                Ok(n) => rest = &rest[n..],
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    // The enclave or service stopped reading: say why if it said.
                    self.audio = None;
                    events.extend(self.drain(true));
                    let f = self.ended_failure().unwrap_or_else(|| {
                        Failure::new(
                            OmgStatus::Io,
                            format!("the enclave stopped reading audio: {e}"),
                        )
                    });
                    return (events, Err(f));
                }
            }
        }
        events.extend(self.drain(false));
        (events, Ok(()))
    }

    /// Ends the audio and waits for the enclave to process what it holds; returns its last
    /// events and how the session ended (again the same if called again).
    pub fn finish(&mut self) -> (Vec<ProtectedEvent>, Result<Summary, Failure>) {
        self.audio = None;
        let events = self.drain(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let result = match &self.end {
            End::Finished(s) => Ok(*s),
            End::Failed(_) => Err(self
                .ended_failure()
                .unwrap_or_else(|| Failure::new(OmgStatus::Refused, "the session ended"))),
            End::Running => Err(Failure::new(OmgStatus::Refused, "the session did not end")),
        };
        (events, result)
    }

    /// Queues `events` for [`Self::poll`], dropping the oldest past
    /// [`OMG_MAX_QUEUED_PROTECTED_EVENTS`].
    pub fn enqueue(&mut self, events: Vec<ProtectedEvent>) {
        for e in events {
            if self.queue.len() == OMG_MAX_QUEUED_PROTECTED_EVENTS {
                self.queue.pop_front();
                self.dropped += 1;
            }
            self.queue.push_back(e);
        }
    }

    /// The oldest queued event.
    pub fn poll(&mut self) -> Option<ProtectedEvent> {
        self.queue.pop_front()
    }

    /// Events dropped from a full queue.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl Drop for Protected {
    /// Ends the session: the audio closed (the enclave finishes what it holds), the service's
    /// socket shut down, the reply thread joined.
    fn drop(&mut self) {
        self.audio = None;
        if let Some(s) = &self.service {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What provisioning stored.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The model version provisioned.
    pub version: u32,
    /// The licence's end.
    pub not_after: u64,
    /// With a lease: when to renew it.
    pub renew_after: Option<u64>,
    /// With a lease: when it ends.
    pub lease_until: Option<u64>,
    /// The attested enclave's measurement.
    pub measurement: [u8; 32],
}

/// Provisions `package`, signed by the vendor key `vendor_key` (SEC1), for the device in
/// `dir` against the vendor service at `server` (`ca_cert`: a PEM file of the certificate to
/// trust for https), as `omg provision --backend linux` does; the enclave image is found as
/// `omg` finds it (`OMG_ENCLAVE_IMAGE`, else beside the executable).
pub fn provision(
    dir: &Path,
    package: Vec<u8>,
    vendor_key: &[u8],
    server: &str,
    ca_cert: Option<&Path>,
) -> Result<Provisioned, Failure> {
    let key = omg_protocol::verifying_key_from_sec1(vendor_key)
        .map_err(|_| Failure::invalid("the vendor key is not a P-256 public key (SEC1)"))?;
    if package.is_empty() {
        return Err(Failure::invalid("the package holds no bytes"));
    }
    let (server, dir, ca_cert) = (
        server.to_string(),
        dir.to_path_buf(),
        ca_cert.map(Path::to_path_buf),
    );
    let out = on_own_thread("provisioning", move || {
        omg_cli::device::provision_package(
            "the package",
            package,
            &server,
            key,
            &dir,
            ca_cert.as_deref(),
            omg_cli::backend::Backend::Linux,
        )
    })?;
    let measurement = omg_protocol::hex::decode(&out.measurement)
        .and_then(|m| <[u8; 32]>::try_from(m).ok())
        .ok_or_else(|| Failure::new(OmgStatus::Refused, "the enclave's measurement is odd"))?;
    Ok(Provisioned {
        version: out.version,
        not_after: out.not_after,
        renew_after: out.renew_after,
        lease_until: out.lease_until,
        measurement,
    })
}
