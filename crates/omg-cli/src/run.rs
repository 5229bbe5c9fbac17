//! `omg run`: initialization and operation, offline, in the enclave process. The enclave
//! unseals the model's key and licence, checks them, decrypts the pipeline into protected
//! memory and turns the audio it reads from its own descriptor into keyword events filtered by
//! the output policy; this process only sees the events.
//!
//! A licence with a lease is refused by the enclave once the lease has ended (the refusal says
//! to run `omg renew`); past its renewal time, this process warns on stderr before the events.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use omg_enclave::messages::{EnclaveReply, HostRequest};
use omg_enclave::platform::ModelScope;
use omg_linux::channel::recv;
use omg_linux::service::{AppRequest, send_with_fd};
use omg_protocol::licence::InputSource;
use omg_protocol::package::{MAX_PACKAGE_LEN, Package};
use omg_protocol::sealed::MAX_SEALED_LEN;

use crate::audio;
use crate::backend::Backend;
use crate::device::{device_dir, read_public_key, sealed_path};
use crate::files::read_limited;
use crate::stream::{EventLine, EventPrinter, Source};

/// Who can provision a model on the device, named in the refusals that ask for it: the
/// device's own user (`omg provision`), or in the service mode the platform's administrator,
/// since an app cannot provision.
#[derive(Clone, Copy)]
pub enum Provisioner {
    /// The user running `omg` on its own device.
    DeviceUser,
    /// The platform service's administrator (the app reaches the device through the socket).
    Platform,
}

impl Provisioner {
    /// What to do about a model that is not provisioned.
    fn action(self) -> &'static str {
        match self {
            Provisioner::DeviceUser => "run `omg provision` first",
            Provisioner::Platform => "ask the platform's administrator to provision it",
        }
    }
}

/// Finds the vendor key a package was provisioned with (among the provisioned models: the one
/// whose stored vendor.pub verifies the package's signature) and returns it with the verified
/// header. The model's directory is then the one of that vendor and model id. The refusals tell
/// apart a file that is not a package, a device directory that does not exist and a package
/// that is not provisioned, and say who must act.
pub fn provisioned_vendor_key(
    dir: &Path,
    package: &[u8],
    who: Provisioner,
) -> Result<(
    omg_protocol::VerifyingKey,
    omg_protocol::package::PackageHeader,
)> {
    Package::vendor_key_id(package)
        .map_err(|e| anyhow::anyhow!("this is not an omg model package (.omgpkg): {e}"))?;
    // An OP-TEE device keeps no identity here (OP-TEE holds its key), only its models.
    match std::fs::metadata(dir.join(omg_linux::identity::ATTESTATION_PUB))
        .or_else(|_| std::fs::metadata(dir.join("models")))
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "there is no device in {} (check --dir or OMG_HOME; `omg device init` makes one)",
            dir.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot use the device in {}", dir.display()));
        }
    }
    let entries = std::fs::read_dir(dir.join("models"))
        .ok()
        .into_iter()
        .flatten();
    for entry in entries.flatten() {
        let path = entry.path().join("vendor.pub");
        let Ok(key) = read_public_key(&path) else {
            continue;
        };
        if let Ok(verified) = Package::open_signed(package, &key) {
            return Ok((key, verified.header().clone()));
        }
    }
    bail!(
        "this package is not provisioned on this device (no model here has its vendor key, or \
         its signature is wrong); {}",
        who.action()
    )
}

/// What feeds the enclave's audio descriptor.
pub enum Feed {
    /// A WAV clip, decoded block by block and written into a pipe by a thread.
    Wav(audio::WavStream<std::io::BufReader<std::fs::File>>),
    /// The microphone, captured by a thread and written into a pipe.
    Mic,
    /// A readable stream of raw s16le 16 kHz mono, handed over as it is.
    Stream(OwnedFd),
    /// A readable stream of raw s16le 16 kHz mono that the platform service relays to the
    /// enclave (the bytes unchanged, through a 4 KiB buffer), ending the feed with an error
    /// when nothing arrives for the duration: an app cannot hold a session with a silent pipe.
    Watched(OwnedFd, Duration),
}

impl Feed {
    /// The feed for `source` as this process opens it.
    fn open(source: &Source) -> Result<Self> {
        Ok(match source {
            Source::Wav(path) => Feed::Wav(audio::open_wav(path)?),
            Source::Stdin => Feed::Stream(
                std::io::stdin()
                    .as_fd()
                    .try_clone_to_owned()
                    .context("cannot pass standard input on")?,
            ),
            Source::Mic => Feed::Mic,
        })
    }

    /// The audio descriptor for the enclave, and the thread feeding it (if any).
    pub fn into_fd(self) -> Result<(OwnedFd, Option<JoinHandle<Result<()>>>)> {
        type Source = Box<dyn FnOnce(&mut std::fs::File) -> Result<()> + Send>;
        let source: Source = match self {
            Feed::Stream(fd) => return Ok((fd, None)),
            Feed::Wav(wav) => Box::new(move |out| wav.stream(|block| feed_samples(out, block))),
            Feed::Mic => Box::new(move |out| crate::stream::mic(&mut |b| feed_samples(out, b))),
            Feed::Watched(fd, idle) => Box::new(move |out| relay(fd, idle, out)),
        };
        let (reader, writer) = rustix::pipe::pipe().context("cannot make the audio pipe")?;
        let feeder = std::thread::spawn(move || {
            // The enclave closing its end (it stopped) ends the feeding quietly, and at once:
            // no more decoding or capture for nobody.
            source(&mut std::fs::File::from(writer)).or_else(|e| match e.downcast_ref() {
                Some(EnclaveGone) => Ok(()),
                None => Err(e),
            })
        });
        Ok((reader, Some(feeder)))
    }
}

/// The enclave closed its audio pipe: the feeding stops, without an error.
#[derive(Debug)]
struct EnclaveGone;

impl std::fmt::Display for EnclaveGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the enclave stopped reading audio")
    }
}

impl std::error::Error for EnclaveGone {}

/// Writes `bytes` to the enclave's audio pipe ([`EnclaveGone`] when the enclave closed it).
fn feed(out: &mut std::fs::File, bytes: &[u8]) -> Result<()> {
    match out.write_all(bytes) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(EnclaveGone.into()),
        r => r.context("cannot feed the enclave"),
    }
}

/// Writes a block of samples to the enclave's audio pipe as s16le.
fn feed_samples(out: &mut std::fs::File, block: &[i16]) -> Result<()> {
    let bytes: Vec<u8> = block.iter().flat_map(|s| s.to_le_bytes()).collect();
    feed(out, &bytes)
}

/// Copies `input` to `out` until the end of input; fails when nothing arrives for `idle`.
fn relay(input: OwnedFd, idle: Duration, out: &mut std::fs::File) -> Result<()> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let timeout = Timespec::try_from(idle).context("idle timeout out of range")?;
    let mut input = std::fs::File::from(input);
    let mut buf = [0u8; 4096];
    loop {
        let ready = {
            let mut fds = [PollFd::new(&input, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Err(rustix::io::Errno::INTR) => continue,
                r => r.context("cannot wait for the app's audio")?,
            }
        };
        if ready == 0 {
            bail!(
                "the app sent no audio for {} s; the session was ended",
                idle.as_secs()
            );
        }
        let n = match std::io::Read::read(&mut input, &mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e).context("cannot read the app's audio"),
        };
        feed(out, &buf[..n])?;
    }
}

/// Waits for the thread feeding the enclave, if any, and passes on its error.
pub fn join_feeder(feeder: Option<JoinHandle<Result<()>>>) -> Result<()> {
    match feeder {
        Some(f) => f
            .join()
            .map_err(|_| anyhow::anyhow!("the audio feeder panicked"))?,
        None => Ok(()),
    }
}

/// The peak resident set (VmHWM, KiB) of a process.
pub fn peak_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The enclave's `Start` request for `package` on the device in `dir`: the vendor key it was
/// provisioned with and its sealed blob. The package's signature is checked here too, so that a
/// package that is not provisioned gets a clear answer before any enclave starts.
pub fn start_request(
    dir: &Path,
    package: Vec<u8>,
    source: InputSource,
    who: Provisioner,
    backend: Backend,
) -> Result<HostRequest> {
    let (vendor_key, header) = provisioned_vendor_key(dir, &package, who)?;
    let scope = ModelScope::new(&vendor_key, &header.model_id);
    let sealed_file = sealed_path(dir, scope, header.version, backend);
    let sealed = read_limited(&sealed_file, MAX_SEALED_LEN as u64).with_context(|| {
        format!(
            "{} version {} is not provisioned here for the {} backend; {}",
            header.model_id,
            header.version,
            backend.name(),
            who.action()
        )
    })?;
    Ok(HostRequest::Start {
        package,
        sealed,
        vendor_key: omg_protocol::public_key_sec1(&vendor_key).to_vec(),
        source: source.bit(),
    })
}

/// Shows a session's replies as they come: the ready line, one line per event and the
/// summary. `enclave` is the enclave's pid when this process can see it (the embedded mode).
fn present(
    json: bool,
    started: Instant,
    enclave: Option<u32>,
    mut next: impl FnMut() -> Result<EnclaveReply>,
) -> Result<()> {
    let EnclaveReply::Ready {
        model_id,
        version,
        output_policy,
        not_after,
        renew_after,
        lease_until,
        memory,
    } = next().context("the enclave refused to start")?
    else {
        bail!("the enclave answered out of turn");
    };
    if let (Some(renew), Some(until)) = (renew_after, lease_until)
        && crate::clock::unix_now() > renew
    {
        eprintln!(
            "omg: warning: the licence's lease was due for renewal at {renew} and ends at \
             {until}; run `omg renew` while online"
        );
    }
    if !json {
        let pid = enclave.map(|p| format!(" (pid {p})")).unwrap_or_default();
        eprintln!(
            "omg: {model_id} version {version} ready in the enclave{pid} in {:.1} ms; \
             licence until {not_after}, output {}, memory {memory}",
            started.elapsed().as_secs_f64() * 1e3,
            ["label only", "label and score", "all scores"]
                .get(usize::from(output_policy))
                .unwrap_or(&"?"),
        );
    }
    let mut printer = EventPrinter::new(json);
    loop {
        match next().context("the enclave stopped")? {
            EnclaveReply::Event {
                label,
                time_ms,
                score,
                scores,
            } => printer.event(&EventLine {
                label: &label,
                time_ms,
                score,
                scores: scores.as_deref(),
            })?,
            EnclaveReply::Finished {
                samples,
                classifications,
                busy_us,
            } => {
                if !json {
                    if let Some(kb) = enclave.and_then(peak_kb) {
                        eprintln!(
                            "omg: enclave peak resident memory {:.1} MB",
                            kb as f64 / 1024.0
                        );
                    }
                    eprintln!("omg: {classifications} classification(s)");
                }
                printer.summary(samples, Some(Duration::from_micros(busy_us)));
                return Ok(());
            }
            _ => bail!("the enclave answered out of turn"),
        }
    }
}

/// `omg run PACKAGE SOURCE`: the enclave unseals, checks and decrypts the model, reads the
/// audio descriptor and sends back keyword events. With `socket`, the platform service
/// listening there does the launching (the service deployment): this process passes it the
/// package and its audio descriptor and only sees the events.
pub fn run(
    package_path: &Path,
    source: Source,
    dir: Option<PathBuf>,
    socket: Option<PathBuf>,
    backend: Backend,
    json: bool,
) -> Result<()> {
    let started = Instant::now();
    crate::backend::available(backend)?;
    let package = read_limited(package_path, MAX_PACKAGE_LEN as u64)?;
    if let Some(socket) = socket {
        // The platform opens the microphone in the service mode: its build decides.
        return run_through_service(&socket, package, &source, json, started);
    }
    if let Source::Mic = source {
        crate::stream::mic_supported()?;
    }
    let dir = device_dir(dir)?;
    let start = start_request(
        &dir,
        package,
        source.input_source(),
        Provisioner::DeviceUser,
        backend,
    )?;
    let (audio, feeder) = Feed::open(&source)?.into_fd()?;
    let mut enclave = crate::backend::open(backend, &dir, Some(audio))?;
    let ready = enclave.request(&start);
    let pid = enclave.pid();
    let mut ready = Some(ready);
    present(json, started, pid, || match ready.take() {
        Some(reply) => reply,
        None => enclave.next_reply(),
    })?;
    enclave.close()?;
    join_feeder(feeder)
}

/// `omg run --socket`: one session with the platform service.
fn run_through_service(
    socket: &Path,
    package: Vec<u8>,
    source: &Source,
    json: bool,
    started: Instant,
) -> Result<()> {
    // The service reads a clip itself from the descriptor (its own WAV decoder, so the
    // licence's "file" means a file) and relays a stream to the enclave, ending the session
    // when it stays silent.
    let file;
    let stdin = std::io::stdin();
    let fd = match source {
        Source::Wav(path) => {
            file = std::fs::File::open(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(file.as_fd())
        }
        Source::Stdin => Some(stdin.as_fd()),
        Source::Mic => None,
    };
    let stream = connect_service(socket, package, source.input_source(), fd)?;
    present(json, started, None, || service_reply(&stream))
}

/// Opens a session with the platform service listening at `socket` (the service deployment):
/// asks it to run `package` on the audio of `source`, read from `fd` (a WAV file for
/// [`InputSource::File`], a stream of raw s16le 16 kHz mono for [`InputSource::Stdin`], none
/// for the microphone, which the platform opens). The session's replies are then read with
/// [`service_reply`], `Ready` first; a service that refuses at once says why here.
pub fn connect_service(
    socket: &Path,
    package: Vec<u8>,
    source: InputSource,
    fd: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<UnixStream> {
    let stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the platform service at {} (is `omg platform serve` running?)",
            socket.display()
        )
    })?;
    let request = AppRequest::Run {
        package,
        source: source.bit(),
    };
    if let Err(e) = send_with_fd(&stream, &request, fd) {
        // A service that refuses at once (busy) answers before it has read the whole request.
        let mut replies = &stream;
        if let Ok(Some(EnclaveReply::Failed { reason })) = recv::<EnclaveReply>(&mut replies) {
            bail!("{reason}");
        }
        return Err(e).context("cannot send the request to the platform service");
    }
    Ok(stream)
}

/// The next reply of a session with the platform service (see [`connect_service`]): `Ready`,
/// then `Event`s, then `Finished`; the service's `Failed` is an error with its reason, and so
/// is a session the service closed.
pub fn service_reply(stream: &UnixStream) -> Result<EnclaveReply> {
    let mut replies = stream;
    match recv::<EnclaveReply>(&mut replies).context("the platform service's channel")? {
        Some(EnclaveReply::Failed { reason }) => bail!("{reason}"),
        Some(reply) => Ok(reply),
        None => bail!("the platform service closed the session"),
    }
}

/// Starts a session in the embedded launcher (the Linux enclave process, as `omg run` without
/// `--socket` starts it) for the device in `dir`: checks that `package` is provisioned here,
/// launches the enclave image at `image` (`None`: where `omg` finds it, see
/// [`crate::enclave::image`]) with `audio` as its audio descriptor (raw s16le 16 kHz mono for
/// [`InputSource::Stdin`]), and waits for its answer to `Start`. Returns the running enclave,
/// whose next replies are the session's events and `Finished`, and its `Ready` reply; a
/// refusal (another device's blob, a licence that ended or does not allow `source`) is an
/// error with the enclave's reason.
pub fn start_embedded(
    dir: &Path,
    image: Option<&Path>,
    package: Vec<u8>,
    source: InputSource,
    audio: OwnedFd,
) -> Result<(omg_linux::launcher::RunningEnclave, EnclaveReply)> {
    let start = start_request(
        dir,
        package,
        source,
        Provisioner::DeviceUser,
        Backend::Linux,
    )?;
    let image = match image {
        Some(path) => crate::enclave::image_at(path)?,
        None => crate::enclave::image()?,
    };
    let identity = crate::enclave::identity(dir)?;
    let mut enclave = omg_linux::launcher::launch(&image, identity, Some(audio))
        .context("cannot launch the enclave")?;
    enclave
        .send(&start)
        .context("the enclave refused to start")?;
    let ready = enclave.reply().context("the enclave refused to start")?;
    anyhow::ensure!(
        matches!(ready, EnclaveReply::Ready { .. }),
        "the enclave answered out of turn"
    );
    Ok((enclave, ready))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clip's feeder stops as soon as the enclave closes its pipe, instead of decoding the
    /// rest of the file for nobody: here a sparse 32-channel 384 kHz clip announcing 1 GiB,
    /// which takes minutes to decode.
    #[test]
    fn a_clip_feeder_stops_when_the_enclave_closes_its_pipe() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let path = dir.join("big.wav");
        let spec = hound::WavSpec {
            channels: 32,
            sample_rate: 384_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        hound::WavWriter::create(&path, spec)
            .unwrap()
            .finalize()
            .unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let data: u32 = (1 << 30) - 64;
        let at = bytes.windows(4).position(|w| w == b"data").unwrap() + 4;
        bytes[at..at + 4].copy_from_slice(&data.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(bytes.len() as u64 + u64::from(data)).unwrap();

        let (pipe, feeder) = Feed::Wav(audio::open_wav(&path).unwrap())
            .into_fd()
            .unwrap();
        drop(pipe);
        let started = Instant::now();
        join_feeder(feeder).unwrap();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
}
