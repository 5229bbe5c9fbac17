//! `omg platform serve`: the platform side as a service (the service deployment). It runs
//! under its own user, is the only principal that can read the device directory (identity,
//! HUK, sealed blobs, counters), and launches one enclave per app session. Apps connect to its
//! Unix socket (see `omg_linux::service`), pass a package and an audio descriptor, and receive
//! only `Ready`, `Event` and `Finished` — or one `Failed`.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use omg_enclave::messages::EnclaveReply;
use omg_linux::channel::send;
use omg_linux::launcher::{EnclaveImage, launch};
use omg_linux::service::{AppRequest, Peer, peer, protect_service_process, recv_with_fd};
use omg_protocol::licence::InputSource;
use omg_protocol::package::MAX_PACKAGE_LEN;

use crate::run::{Feed, join_feeder, peak_kb, start_request};

/// How long an app has to send its request after connecting.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the service waits for an app to take an event before it ends the session.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Room for the request's framing around the largest package.
const MAX_REQUEST_LEN: usize = MAX_PACKAGE_LEN + 4096;

/// The service's settings.
pub struct Settings {
    /// The device directory.
    pub dir: PathBuf,
    /// Where to listen.
    pub socket: PathBuf,
    /// The socket's permission bits (who may connect).
    pub socket_mode: u32,
    /// Most sessions (enclaves) at once.
    pub max_sessions: usize,
}

/// Binds `path`, replacing a stale socket left by a service that died, but never a live one
/// or anything that is not a socket.
fn bind(path: &Path, mode: u32) -> Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!("{} exists and is not a socket", path.display());
        }
        if UnixStream::connect(path).is_ok() {
            bail!(
                "another platform service is listening on {}",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the permissions of {}", path.display()))?;
    Ok(listener)
}

/// What the app's request asks for, checked against the descriptor that came with it: the
/// licence's input source is decided here, by the platform, not by the app's word alone.
fn feed_for(source: u8, fd: Option<OwnedFd>) -> Result<(InputSource, Feed)> {
    let source = InputSource::from_bit(source).context("unknown input source")?;
    match (source, fd) {
        (InputSource::Mic, None) => Ok((source, Feed::Mic)),
        (InputSource::Mic, Some(_)) => {
            bail!("the microphone is opened by the platform; do not pass a descriptor")
        }
        (_, None) => bail!("the {source} source needs its descriptor passed with the request"),
        (InputSource::File, Some(fd)) => {
            let file = File::from(fd);
            let kind = file
                .metadata()
                .context("cannot inspect the audio descriptor")?;
            if !kind.is_file() {
                bail!("the file source must be a regular file");
            }
            let clip = crate::audio::decode_wav(io::BufReader::new(file))?;
            Ok((source, Feed::Clip(clip.samples)))
        }
        (InputSource::Stdin, Some(fd)) => Ok((source, Feed::Stream(fd))),
    }
}

/// One app session: request, enclave, events. Returns a line for the service's log.
fn session(settings: &Settings, image: &EnclaveImage, stream: &UnixStream) -> Result<String> {
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
    let Some((AppRequest::Run { package, source }, fd)) =
        recv_with_fd::<AppRequest>(stream, MAX_REQUEST_LEN).context("a malformed request")?
    else {
        bail!("the app left before asking");
    };
    let (source, feed) = feed_for(source, fd)?;
    let start = start_request(&settings.dir, package, source)?;
    let (audio, feeder) = feed.into_fd()?;
    let identity = crate::enclave::identity(&settings.dir)?;
    let mut enclave = launch(image, identity, Some(audio)).context("cannot launch the enclave")?;
    enclave.send(&start)?;
    let mut replies = stream;
    let mut events = 0u64;
    let pid = enclave.pid();
    let (finished, samples, peak) = loop {
        let reply = enclave.reply()?;
        match &reply {
            EnclaveReply::Ready { .. } => {}
            EnclaveReply::Event { .. } => events += 1,
            // The enclave is still there until its channel closes: read its peak now.
            EnclaveReply::Finished { samples, .. } => {
                let samples = *samples;
                break (reply, samples, peak_kb(pid));
            }
            _ => bail!("the enclave answered out of turn"),
        }
        // An app that went away ends the session: dropping the enclave kills it.
        send(&mut replies, &reply).context("the app stopped listening")?;
    };
    enclave.shutdown()?;
    // A feed that failed (an unreadable clip, no microphone) fails the session: the app must
    // not take the end of its audio for the end of the clip.
    join_feeder(feeder)?;
    send(&mut replies, &finished).context("the app stopped listening")?;
    Ok(format!(
        "{source} source, {events} event(s) in {:.1} s of audio, enclave peak {:.1} MB",
        samples as f64 / 16_000.0,
        peak.unwrap_or(0) as f64 / 1024.0
    ))
}

/// Serves one connection; any failure goes to the app as `Failed`. Returns the line for the
/// service's log.
fn serve_connection(
    settings: &Settings,
    image: &EnclaveImage,
    stream: UnixStream,
    n: u64,
) -> String {
    let started = Instant::now();
    let who = match peer(&stream) {
        Ok(Peer { pid, uid, .. }) => format!("uid {uid} pid {pid}"),
        Err(_) => "unknown peer".to_string(),
    };
    match session(settings, image, &stream) {
        Ok(line) => format!(
            "omg platform: session {n} ({who}): {line}, {:.0} ms",
            started.elapsed().as_secs_f64() * 1e3
        ),
        Err(e) => {
            let reason = format!("{e:#}");
            let mut out = &stream;
            let _ = send(
                &mut out,
                &EnclaveReply::Failed {
                    reason: reason.clone(),
                },
            );
            format!("omg platform: session {n} ({who}) failed: {reason}")
        }
    }
}

/// `omg platform serve`: listens until killed.
pub fn serve(settings: Settings) -> Result<()> {
    protect_service_process().context("cannot make the service non-dumpable")?;
    // Fail early on a device that cannot serve.
    let identity = crate::enclave::identity(&settings.dir)?;
    drop(identity);
    let image = Arc::new(crate::enclave::image()?);
    let listener = bind(&settings.socket, settings.socket_mode)?;
    eprintln!(
        "omg platform: serving the device in {} on {} (mode {:o}, at most {} sessions); \
         enclave {}",
        settings.dir.display(),
        settings.socket.display(),
        settings.socket_mode,
        settings.max_sessions,
        crate::identity::hex(&image.measurement())
    );
    let settings = Arc::new(settings);
    let active = Arc::new(AtomicUsize::new(0));
    let count = AtomicU64::new(0);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("omg platform: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let n = count.fetch_add(1, Ordering::Relaxed) + 1;
        if active.fetch_add(1, Ordering::AcqRel) >= settings.max_sessions {
            active.fetch_sub(1, Ordering::AcqRel);
            eprintln!("omg platform: session {n} refused: busy");
            let reason = format!(
                "the platform service is busy ({} sessions running); try again later",
                settings.max_sessions
            );
            let mut out = &stream;
            let _ = send(&mut out, &EnclaveReply::Failed { reason });
            continue;
        }
        let (settings, image, slot) = (settings.clone(), image.clone(), active.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("omg-session-{n}"))
            .spawn(move || {
                let line = serve_connection(&settings, &image, stream, n);
                // The slot is free before the log says the session ended.
                slot.fetch_sub(1, Ordering::AcqRel);
                eprintln!("{line}");
            });
        if let Err(e) = spawned {
            // The connection went with the closure; the slot comes back here.
            active.fetch_sub(1, Ordering::AcqRel);
            eprintln!("omg platform: session {n}: cannot start a thread: {e}");
        }
    }
    Ok(())
}
