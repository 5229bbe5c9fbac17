//! `omg platform serve`: the platform side as a service (the service deployment). It runs
//! under its own user, is the only principal that can read the device directory (identity,
//! HUK, sealed blobs, counters), and launches one enclave per app session. Apps connect to its
//! Unix socket (see `omg_linux::service`), pass a package and an audio descriptor, and receive
//! only `Ready`, `Event` and `Finished` — or one `Failed`.
//!
//! Bounds: at most `max_sessions` sessions at once, and `max_sessions_per_uid` for one user
//! (the socket's peer credentials); a clip's header is checked and its samples decoded as a
//! stream ([`crate::audio::WavStream`]), so memory stays bounded whatever the file announces;
//! a stream the app passes is relayed by the service and ends the session when it sends
//! nothing for `idle_timeout`.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use omg_enclave::messages::EnclaveReply;
use omg_linux::channel::send;
use omg_linux::launcher::{EnclaveImage, launch};
use omg_linux::service::{AppRequest, Peer, peer, protect_service_process, recv_with_fd};
use omg_protocol::licence::InputSource;
use omg_protocol::package::MAX_PACKAGE_LEN;

use crate::run::{Feed, Provisioner, join_feeder, peak_kb, start_request};

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
    /// Most sessions at once for one user (uid).
    pub max_sessions_per_uid: usize,
    /// How long an app's audio stream may send nothing before its session is ended.
    pub idle_timeout: Duration,
}

/// The permission bits of a socket directory the service creates: the owner's, and search
/// (only) for the classes the socket's `mode` lets connect (connecting needs write permission
/// on the socket and search permission on its directory): 0711 for a socket of mode 0666, 0710
/// for 0660, 0700 for 0600. Nobody else may list the directory or put files in it.
fn socket_dir_mode(mode: u32) -> u32 {
    let mut dir = 0o700;
    if mode & 0o020 != 0 {
        dir |= 0o010;
    }
    if mode & 0o002 != 0 {
        dir |= 0o001;
    }
    dir
}

/// Creates the socket's directory `dir` if it is missing (its parent must exist), with
/// [`socket_dir_mode`]; returns whether it was created.
fn create_socket_dir(dir: &Path, mode: u32) -> Result<bool> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(false);
    }
    let dir_mode = socket_dir_mode(mode);
    match std::fs::DirBuilder::new().mode(dir_mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
            "cannot create the socket's directory {}: its parent does not exist (create it, or \
             choose another --socket)",
            dir.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => bail!(
            "cannot create the socket's directory {}: permission denied; an administrator \
             creates it for the platform's user (`install -d -o USER -m {dir_mode:o} {}`), or \
             choose another --socket",
            dir.display(),
            dir.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| {
                format!("cannot create the socket's directory {}", dir.display())
            });
        }
    }
    // The mode given to mkdir is masked by the umask: set it exactly.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))
        .with_context(|| format!("cannot set the permissions of {}", dir.display()))?;
    Ok(true)
}

/// A socket the service bound, and the directory it created for it: removed when the service
/// ends (see [`Bound::remove`]).
struct Bound {
    socket: PathBuf,
    created_dir: Option<PathBuf>,
}

impl Bound {
    /// Removes the socket, then the directory if the service created it and it is empty.
    fn remove(&self) {
        let _ = std::fs::remove_file(&self.socket);
        if let Some(dir) = &self.created_dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Removes what it holds when dropped: on an error or a panic of the service's main thread.
struct RemoveOnDrop(Arc<OnceLock<Bound>>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(bound) = self.0.get() {
            bound.remove();
        }
    }
}

/// Binds `path` (creating its directory if missing, see [`create_socket_dir`]), replacing a
/// stale socket left by a service that died, but never a live one or anything that is not a
/// socket.
fn bind(path: &Path, mode: u32) -> Result<(UnixListener, Bound)> {
    let parent = path.parent().unwrap_or(Path::new(""));
    let created = create_socket_dir(parent, mode)?;
    let created_dir = created.then(|| parent.to_path_buf());
    let bound = Bound {
        socket: path.to_path_buf(),
        created_dir,
    };
    // A directory made here is removed again if binding fails.
    let fail = |e: anyhow::Error| {
        if let Some(dir) = &bound.created_dir {
            let _ = std::fs::remove_dir(dir);
        }
        e
    };
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
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))
        .map_err(fail)?;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        bound.remove();
        return Err(e).with_context(|| format!("cannot set the permissions of {}", path.display()));
    }
    Ok((listener, bound))
}

/// What the app's request asks for, checked against the descriptor that came with it: the
/// licence's input source is decided here, by the platform, not by the app's word alone. A
/// stream is watched: `idle` without audio ends the session.
fn feed_for(source: u8, fd: Option<OwnedFd>, idle: Duration) -> Result<(InputSource, Feed)> {
    let source = InputSource::from_bit(source).context("unknown input source")?;
    match (source, fd) {
        (InputSource::Mic, None) => {
            crate::stream::mic_supported()?;
            Ok((source, Feed::Mic))
        }
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
            // The header is checked (and bounded: an hour, 1 GiB) now; the samples stream while
            // the enclave runs.
            let wav = crate::audio::WavStream::open(io::BufReader::new(file))?.bounded()?;
            Ok((source, Feed::Wav(wav)))
        }
        (InputSource::Stdin, Some(fd)) => Ok((source, Feed::Watched(fd, idle))),
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
    let (source, feed) = feed_for(source, fd, settings.idle_timeout)?;
    let start = start_request(
        &settings.dir,
        package,
        source,
        Provisioner::Platform,
        crate::backend::Backend::Linux,
    )?;
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

/// Serves one connection of the app `who`; any failure goes to the app as `Failed`. Returns
/// the line for the service's log.
fn serve_connection(
    settings: &Settings,
    image: &EnclaveImage,
    stream: UnixStream,
    n: u64,
    who: &str,
) -> String {
    let started = Instant::now();
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

/// The sessions running, in total and per user.
#[derive(Default)]
struct Sessions {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

/// A running session's place in [`Sessions`], given back when dropped.
struct Slot {
    sessions: Arc<Mutex<Sessions>>,
    uid: u32,
}

impl Slot {
    /// Takes a place for a session of `uid`, or says why there is none.
    fn take(sessions: &Arc<Mutex<Sessions>>, uid: u32, settings: &Settings) -> Result<Slot> {
        let mut s = sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if s.total >= settings.max_sessions {
            bail!(
                "the platform service is busy ({} sessions running); try again later",
                settings.max_sessions
            );
        }
        let mine = s.per_uid.entry(uid).or_default();
        if *mine >= settings.max_sessions_per_uid {
            bail!(
                "uid {uid} already has {} sessions running, the most one user may have; \
                 end one first",
                settings.max_sessions_per_uid
            );
        }
        *mine += 1;
        s.total += 1;
        Ok(Slot {
            sessions: sessions.clone(),
            uid,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        s.total -= 1;
        if let Some(n) = s.per_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                s.per_uid.remove(&self.uid);
            }
        }
    }
}

/// `omg platform serve`: listens until stopped. The socket (and its directory, if the service
/// created it) is removed on every way out: an error, a panic, and SIGINT, SIGTERM or SIGHUP,
/// which end the service with status 128 + the signal's number (130 for Ctrl-C).
pub fn serve(settings: Settings) -> Result<()> {
    protect_service_process().context("cannot make the service non-dumpable")?;
    // Fail early on a device that cannot serve.
    let identity = crate::enclave::identity(&settings.dir)?;
    drop(identity);
    let image = Arc::new(crate::enclave::image()?);
    // Before any thread starts (see `on_termination`); what is bound is removed on a signal.
    let bound = Arc::new(OnceLock::new());
    let on_signal = bound.clone();
    crate::signals::on_termination(move || {
        if let Some(bound) = on_signal.get() {
            Bound::remove(bound);
        }
    })?;
    let (listener, socket) = bind(&settings.socket, settings.socket_mode)?;
    let _ = bound.set(socket);
    let _remove = RemoveOnDrop(bound);
    eprintln!(
        "omg platform: serving the device in {} on {} (mode {:o}, at most {} sessions, {} per \
         user, {} s idle timeout); enclave {}",
        settings.dir.display(),
        settings.socket.display(),
        settings.socket_mode,
        settings.max_sessions,
        settings.max_sessions_per_uid,
        settings.idle_timeout.as_secs(),
        crate::identity::hex(&image.measurement())
    );
    let settings = Arc::new(settings);
    let sessions = Arc::new(Mutex::new(Sessions::default()));
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
        let slot = peer(&stream)
            .context("cannot identify the app")
            .and_then(|p| Ok((Slot::take(&sessions, p.uid, &settings)?, p)));
        let (slot, Peer { pid, uid, .. }) = match slot {
            Ok(s) => s,
            Err(e) => {
                let reason = format!("{e:#}");
                eprintln!("omg platform: session {n} refused: {reason}");
                let mut out = &stream;
                let _ = send(&mut out, &EnclaveReply::Failed { reason });
                continue;
            }
        };
        let (settings, image) = (settings.clone(), image.clone());
        // A thread that cannot start drops the closure: the connection and the slot with it.
        let spawned = std::thread::Builder::new()
            .name(format!("omg-session-{n}"))
            .spawn(move || {
                let who = format!("uid {uid} pid {pid}");
                let line = serve_connection(&settings, &image, stream, n, &who);
                // The slot is free before the log says the session ended.
                drop(slot);
                eprintln!("{line}");
            });
        if let Err(e) = spawned {
            eprintln!("omg platform: session {n}: cannot start a thread: {e}");
        }
    }
    Ok(())
}
