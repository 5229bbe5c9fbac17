//! The service deployment's app channel: how an app asks the platform service (a daemon under
//! its own user, holding the device secrets and launching enclaves) to run a model.
//!
//! An app connects to the service's Unix socket and sends one [`AppRequest`] frame (the frame
//! format of [`omg_enclave::messages`]). The audio travels as a descriptor passed with the
//! frame's first bytes (`SCM_RIGHTS`): the app never streams audio through this socket, and the
//! service never opens a file on the app's behalf (it decodes a clip from the descriptor, and
//! relays a stream to its enclave so that a silent one can end the session). The service answers with
//! [`omg_enclave::messages::EnclaveReply`] frames, and only three kinds of them: `Ready`,
//! `Event` and `Finished`, or one `Failed` that ends the session. Packages are public
//! (encrypted and signed); sealed blobs, licences, tokens and keys never cross this channel.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use omg_enclave::messages::{FRAME_HEADER_LEN, encode};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};
use serde::{Deserialize, Serialize};

use crate::channel::{invalid, read_frame_body};

/// Where the platform service listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/omg/platform.sock";
/// Environment variable naming the platform service's socket for `omg run --socket`.
pub const SOCKET_ENV: &str = "OMG_PLATFORM_SOCKET";

/// A request from an app to the platform service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppRequest {
    /// Run the model in `package` (provisioned on this device) on the audio named by `source`
    /// and stream its keyword events back.
    Run {
        /// The model package (public: encrypted and signed by the vendor).
        #[serde(with = "serde_bytes")]
        package: Vec<u8>,
        /// The audio source as the licence names it: 1 mic (no descriptor: the service opens
        /// the microphone itself), 2 file (a regular file holding a WAV clip, passed with the
        /// request), 4 stdin (any readable stream of raw s16le 16 kHz mono, passed with the
        /// request).
        source: u8,
    },
}

/// Sends `message` as one frame on `stream`, with `fd` attached to its first bytes.
pub fn send_with_fd<T: Serialize>(
    stream: &UnixStream,
    message: &T,
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let frame = encode(message).map_err(invalid)?;
    let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("cannot attach the descriptor"));
    }
    let sent = loop {
        match sendmsg(
            stream,
            &[IoSlice::new(&frame)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Err(rustix::io::Errno::INTR) => {}
            r => break r?,
        }
    };
    crate::channel::NoSignal(stream).write_all(&frame[sent..])
}

/// Reads one frame from `stream` with the descriptor attached to it, if any: `Ok(None)` at a
/// clean end of stream. A frame longer than `limit` bytes is refused before its body is read;
/// more than one descriptor is refused (all are closed).
pub fn recv_with_fd<T: serde::de::DeserializeOwned>(
    stream: &UnixStream,
    limit: usize,
) -> io::Result<Option<(T, Option<OwnedFd>)>> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        match recvmsg(
            stream,
            &mut [IoSliceMut::new(&mut header)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => {}
            r => break r?.bytes,
        }
    };
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if got == 0 {
        return Ok(None);
    }
    if fds.len() > 1 {
        return Err(invalid("more than one descriptor came with the request"));
    }
    let mut reader = stream;
    reader.read_exact(&mut header[got..])?;
    let message = read_frame_body(&mut reader, header, limit)?;
    Ok(Some((message, fds.pop())))
}

/// Who is at the other end of a Unix socket, as the kernel says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its process id (at connection time).
    pub pid: i32,
    /// Its user id.
    pub uid: u32,
    /// Its group id.
    pub gid: u32,
}

/// The credentials of `stream`'s peer (`SO_PEERCRED`).
pub fn peer(stream: &UnixStream) -> io::Result<Peer> {
    let cred = rustix::net::sockopt::socket_peercred(stream.as_fd())?;
    Ok(Peer {
        pid: cred.pid.as_raw_nonzero().get(),
        uid: cred.uid.as_raw(),
        gid: cred.gid.as_raw(),
    })
}

/// Makes the calling process (the platform service, which holds the device secrets) not
/// dumpable: no core dumps, and only root may trace it or read its memory.
pub fn protect_service_process() -> io::Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_request_and_its_descriptor_cross_together() {
        let (a, b) = UnixStream::pair().unwrap();
        let (r, mut w) = UnixStream::pair().unwrap();
        let request = AppRequest::Run {
            package: vec![7; 300_000],
            source: 4,
        };
        let sender = std::thread::spawn(move || {
            send_with_fd(&a, &request, Some(r.as_fd())).unwrap();
            request
        });
        let (got, fd) = recv_with_fd::<AppRequest>(&b, 1 << 20).unwrap().unwrap();
        assert_eq!(got, sender.join().unwrap());
        // The descriptor is the same socket: what is written at one end reads at the other.
        let fd = fd.unwrap();
        assert!(fd.as_raw_fd() > 2);
        w.write_all(b"hi").unwrap();
        let mut passed = UnixStream::from(fd);
        let mut buf = [0u8; 2];
        passed.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
    }

    #[test]
    fn no_descriptor_an_oversized_frame_and_a_clean_end() {
        let (a, b) = UnixStream::pair().unwrap();
        let request = AppRequest::Run {
            package: vec![1; 64],
            source: 2,
        };
        send_with_fd(&a, &request, None).unwrap();
        let (got, fd) = recv_with_fd::<AppRequest>(&b, 1 << 20).unwrap().unwrap();
        assert_eq!(got, request);
        assert!(fd.is_none());
        send_with_fd(&a, &request, None).unwrap();
        let e = recv_with_fd::<AppRequest>(&b, 16).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        assert!(recv_with_fd::<AppRequest>(&b, 16).unwrap().is_none());
    }

    #[test]
    fn the_peer_is_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let p = peer(&a).unwrap();
        assert_eq!(p.pid as u32, std::process::id());
        assert_eq!(p.uid, rustix::process::getuid().as_raw());
    }
}
