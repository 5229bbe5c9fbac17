//! The enclave process's thin Linux entry: adopt the descriptors the launcher passed, harden
//! the process, then serve host requests with omg-enclave's logic, reaching the platform only
//! through the platform channel.
//!
//! Descriptors (placed by the launcher): [`HOST_FD`] the host channel, [`PLATFORM_FD`] the
//! platform channel, [`AUDIO_FD`] raw s16le 16 kHz mono audio (only when running).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;
use std::time::Duration;

use omg_enclave::messages::{EnclaveReply, HostRequest, PlatformReply, PlatformRequest};
use omg_enclave::platform::{Counter, ModelScope, Reservation};
use omg_enclave::server::{Enclave, EnclaveIo, Replies};
use omg_enclave::{Platform, PlatformError};
use omg_protocol::OsRng;
use omg_protocol::rand_core::CryptoRng;
use omg_protocol::sealed::SealingKey;

use crate::channel::{recv, recv_limited, send};

/// The host channel's descriptor in the enclave process.
pub const HOST_FD: RawFd = 3;
/// The platform channel's descriptor in the enclave process.
pub const PLATFORM_FD: RawFd = 4;
/// The audio descriptor in the enclave process.
pub const AUDIO_FD: RawFd = 5;
/// The enclave's heap: everything it allocates lives in this much protected memory. It must
/// stay under `RLIMIT_MEMLOCK` (8 MiB by default) for an unprivileged platform user.
pub const ENCLAVE_HEAP_SIZE: usize = 6 << 20;
/// The largest host request the enclave reads: a request's package is held up to three times
/// over (the frame, the message, the verified ciphertext) besides its decrypted bundle.
pub const MAX_HOST_REQUEST: usize = ENCLAVE_HEAP_SIZE / 5;

/// How long the enclave waits for the host's next request before it ends (between the two
/// halves of provisioning the host talks to the vendor service).
pub const HOST_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the enclave waits for the host to take a reply (an event) before it ends.
pub const HOST_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the enclave waits for the platform to take a request or answer it.
pub const PLATFORM_TIMEOUT: Duration = Duration::from_secs(10);

/// Bounds every wait on the socket `fd`: reads after `read`, writes after `write` fail with
/// `EAGAIN` instead of blocking for ever. (The audio descriptor has no such bound: a live
/// source may pause.)
fn set_timeouts(fd: &OwnedFd, read: Duration, write: Duration) -> io::Result<()> {
    use rustix::net::sockopt::{Timeout, set_socket_timeout};
    set_socket_timeout(fd, Timeout::Recv, Some(read))?;
    set_socket_timeout(fd, Timeout::Send, Some(write))?;
    Ok(())
}

/// Takes ownership of a descriptor the launcher placed, if it is open.
#[allow(unsafe_code)]
fn adopt(fd: RawFd) -> Option<OwnedFd> {
    // F_GETFD fails with EBADF on a closed descriptor.
    rustix::io::fcntl_getfd(
        // SAFETY: `fd` is only borrowed for this call; it is not closed meanwhile.
        unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) },
    )
    .ok()?;
    // SAFETY: the launcher placed `fd` for this process alone and nothing else in this process
    // owns it (it is adopted once, at start-up), so taking ownership is sound.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn channel_error(e: io::Error) -> PlatformError {
    PlatformError::new("channel", e.to_string())
}

/// The platform, reached over the platform channel.
struct ChannelPlatform {
    channel: File,
    measurement: [u8; 32],
    ueid: [u8; 33],
    rng: OsRng,
}

impl ChannelPlatform {
    fn call(&mut self, request: &PlatformRequest) -> Result<PlatformReply, PlatformError> {
        send(&mut self.channel, request).map_err(channel_error)?;
        match recv::<PlatformReply>(&mut self.channel).map_err(channel_error)? {
            Some(PlatformReply::Failed(reason)) => Err(PlatformError::new("platform", reason)),
            Some(reply) => Ok(reply),
            None => Err(PlatformError::new(
                "channel",
                "the platform closed the channel",
            )),
        }
    }

    fn bytes<const N: usize>(
        &mut self,
        request: &PlatformRequest,
    ) -> Result<[u8; N], PlatformError> {
        match self.call(request)? {
            PlatformReply::Bytes(b) => b
                .try_into()
                .map_err(|_| PlatformError::new("platform", "answer of the wrong length")),
            _ => Err(PlatformError::new("platform", "unexpected answer")),
        }
    }

    fn number(&mut self, request: &PlatformRequest) -> Result<u64, PlatformError> {
        match self.call(request)? {
            PlatformReply::Number(n) => Ok(n),
            _ => Err(PlatformError::new("platform", "unexpected answer")),
        }
    }

    fn connect(channel: File) -> Result<Self, PlatformError> {
        let mut p = Self {
            channel,
            measurement: [0; 32],
            ueid: [0; 33],
            rng: OsRng::default(),
        };
        p.measurement = p.bytes(&PlatformRequest::Measurement)?;
        p.ueid = p.bytes(&PlatformRequest::DeviceUeid)?;
        Ok(p)
    }
}

impl Platform for ChannelPlatform {
    fn measurement(&self) -> [u8; 32] {
        self.measurement
    }

    fn device_ueid(&self) -> [u8; 33] {
        self.ueid
    }

    fn attest(&mut self, nonce: &[u8], hash: [u8; 32]) -> Result<Vec<u8>, PlatformError> {
        match self.call(&PlatformRequest::Attest {
            nonce: nonce.to_vec(),
            enclave_key_hash: hash.to_vec(),
        })? {
            PlatformReply::Bytes(token) => Ok(token),
            _ => Err(PlatformError::new("attest", "unexpected answer")),
        }
    }

    fn sealing_key(&mut self, scope: ModelScope<'_>) -> Result<SealingKey, PlatformError> {
        let key =
            zeroize::Zeroizing::new(self.bytes::<32>(&PlatformRequest::SealingKey(scope.into()))?);
        SealingKey::from_bytes(*key, &scope.vendor, scope.model_id)
            .map_err(|e| PlatformError::new("sealing key", e.to_string()))
    }

    fn rng(&mut self) -> &mut dyn CryptoRng {
        &mut self.rng
    }

    fn now(&mut self) -> Result<u64, PlatformError> {
        self.number(&PlatformRequest::Now)
    }

    fn counter(&mut self, scope: ModelScope<'_>, counter: Counter) -> Result<u64, PlatformError> {
        self.number(&PlatformRequest::Counter {
            scope: scope.into(),
            counter: counter.code(),
        })
    }

    fn raise_epoch(&mut self, scope: ModelScope<'_>, value: u64) -> Result<u64, PlatformError> {
        self.number(&PlatformRequest::RaiseEpoch {
            scope: scope.into(),
            value,
        })
    }

    fn reserve_inferences(
        &mut self,
        scope: ModelScope<'_>,
        wanted: u64,
        quota: u64,
    ) -> Result<Reservation, PlatformError> {
        match self.call(&PlatformRequest::ReserveInferences {
            scope: scope.into(),
            wanted,
            quota,
        })? {
            PlatformReply::Reservation { id, start, granted } => {
                Ok(Reservation { id, start, granted })
            }
            _ => Err(PlatformError::new("counter", "unexpected answer")),
        }
    }

    fn settle_inferences(
        &mut self,
        scope: ModelScope<'_>,
        reservation: Reservation,
        used: u64,
    ) -> Result<(), PlatformError> {
        match self.call(&PlatformRequest::SettleInferences {
            scope: scope.into(),
            id: reservation.id,
            start: reservation.start,
            granted: reservation.granted,
            used,
        })? {
            PlatformReply::Done => Ok(()),
            _ => Err(PlatformError::new("counter", "unexpected answer")),
        }
    }
}

/// Replies, audio and protected memory of the enclave process.
struct ProcessIo<A> {
    host: File,
    audio: Option<File>,
    carry: Option<u8>,
    bytes: Vec<u8>,
    memory: &'static str,
    alloc: A,
    started: std::time::Instant,
}

impl<A, B> EnclaveIo for ProcessIo<A>
where
    A: FnMut(usize) -> io::Result<B>,
    B: AsRef<[u8]> + AsMut<[u8]> + 'static,
{
    type Buffer = B;

    fn read_audio(&mut self, buf: &mut [i16]) -> Result<usize, PlatformError> {
        let Some(audio) = self.audio.as_mut() else {
            return Err(PlatformError::new(
                "audio",
                "no audio source was handed over",
            ));
        };
        self.bytes.resize(buf.len() * 2, 0);
        loop {
            let start = usize::from(self.carry.is_some());
            if let Some(b) = self.carry.take() {
                self.bytes[0] = b;
            }
            let n = match audio.read(&mut self.bytes[start..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(PlatformError::new("audio", e.to_string())),
            };
            let have = start + n;
            if n == 0 {
                // End of audio; a dangling odd byte is dropped.
                return Ok(0);
            }
            let samples = have / 2;
            if have % 2 == 1 {
                self.carry = Some(self.bytes[have - 1]);
            }
            if samples == 0 {
                continue;
            }
            for (s, pair) in buf
                .iter_mut()
                .zip(self.bytes[..samples * 2].chunks_exact(2))
            {
                *s = i16::from_le_bytes([pair[0], pair[1]]);
            }
            self.bytes[..have].fill(0);
            return Ok(samples);
        }
    }

    fn protected(&mut self, len: usize) -> Result<Self::Buffer, PlatformError> {
        (self.alloc)(len).map_err(|e| PlatformError::new("memory", e.to_string()))
    }

    fn memory_kind(&self) -> &'static str {
        self.memory
    }
}

impl<A> Replies for ProcessIo<A> {
    fn send(&mut self, reply: &EnclaveReply) -> Result<(), PlatformError> {
        send(&mut self.host, reply).map_err(channel_error)
    }

    fn monotonic_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// Hardens this process (see [`crate::sandbox::harden`]), keeping only `keep`.
#[allow(unsafe_code)]
fn harden(keep: &[RawFd]) -> Result<crate::sandbox::Report, crate::sandbox::SandboxError> {
    let options = crate::sandbox::SandboxOptions {
        keep_fds: keep.to_vec(),
        ..crate::sandbox::SandboxOptions::default()
    };
    // SAFETY: called at the start of the enclave's `main`, single-threaded, when the only
    // descriptors this process owns are the channels and the audio source adopted above, all
    // of which are in `keep`; no object refers to any descriptor that will be closed.
    unsafe { crate::sandbox::harden(&options) }
}

/// Runs the enclave: name the process `omg-enclave` (in ps and top), adopt the descriptors,
/// check the protected heap (`heap`, which tells how memory is protected), harden the process,
/// connect the platform, then answer host requests until the host closes its channel.
/// `protected(len)` allocates protected memory for the decrypted model.
pub fn main<H, A, B>(heap: H, protected: A) -> ExitCode
where
    H: FnOnce() -> Result<crate::protected::MemoryKind, String>,
    A: FnMut(usize) -> io::Result<B>,
    B: AsRef<[u8]> + AsMut<[u8]> + 'static,
{
    // Started from a memfd, the process would show in ps and top as its descriptor number;
    // name it (without allocating: the protected heap is not checked yet).
    let _ = rustix::thread::set_name(c"omg-enclave");
    let (Some(host), Some(platform)) = (adopt(HOST_FD), adopt(PLATFORM_FD)) else {
        eprintln!("omg-enclave: must be started by the omg launcher (no channels)");
        return ExitCode::from(2);
    };
    let audio = adopt(AUDIO_FD);
    let timeouts = set_timeouts(&host, HOST_IDLE_TIMEOUT, HOST_SEND_TIMEOUT)
        .and_then(|()| set_timeouts(&platform, PLATFORM_TIMEOUT, PLATFORM_TIMEOUT));
    // Ask the platform first: it answers only once the launcher guards this process against
    // tracing, which must happen before the process makes itself non-dumpable.
    let mut host = File::from(host);
    let connected = match timeouts {
        Ok(()) => ChannelPlatform::connect(File::from(platform)),
        Err(e) => Err(PlatformError::new("channel timeouts", e.to_string())),
    };
    let platform = match connected {
        Ok(p) => p,
        Err(e) => {
            let _ = send(
                &mut host,
                &EnclaveReply::Failed {
                    reason: e.to_string(),
                },
            );
            return ExitCode::FAILURE;
        }
    };
    // Standard error stays for diagnostics; everything else the launcher did not place goes.
    let mut keep = vec![2, HOST_FD, PLATFORM_FD];
    if audio.is_some() {
        keep.push(AUDIO_FD);
    }
    let hardened = heap().and_then(|kind| {
        harden(&keep).map_err(|e| e.to_string())?;
        Ok(match kind {
            crate::protected::MemoryKind::Secret => "memfd_secret",
            crate::protected::MemoryKind::Locked => "mlock (memfd_secret unavailable)",
        })
    });
    let memory = match hardened {
        Ok(kind) => kind,
        Err(e) => {
            let _ = send(
                &mut host,
                &EnclaveReply::Failed {
                    reason: format!("the enclave cannot harden itself: {e}"),
                },
            );
            return ExitCode::FAILURE;
        }
    };
    let mut io = ProcessIo {
        host,
        audio: audio.map(File::from),
        carry: None,
        bytes: Vec::new(),
        memory,
        alloc: protected,
        started: std::time::Instant::now(),
    };
    let mut enclave = Enclave::new(platform);
    loop {
        let request = match recv_limited::<HostRequest>(&mut io.host, MAX_HOST_REQUEST) {
            Ok(Some(r)) => r,
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => {
                let _ = io.send(&EnclaveReply::Failed {
                    reason: format!("bad request: {e}"),
                });
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = enclave.handle(request, &mut io) {
            let _ = io.send(&EnclaveReply::Failed {
                reason: e.to_string(),
            });
        }
        let _ = io.host.flush();
    }
}
