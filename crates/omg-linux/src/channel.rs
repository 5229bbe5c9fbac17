//! Framed messages over a byte stream (a Unix socket): see `omg_enclave::messages` for the
//! frame format. Reads check the length prefix against the limit before allocating.

use std::io::{self, Read, Write};

use omg_enclave::messages::{FRAME_HEADER_LEN, MAX_FRAME_LEN, decode, encode, frame_len};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An [`io::ErrorKind::InvalidData`] error saying `e`.
pub(crate) fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// A Unix socket read and written as a byte stream, its writes sent with `MSG_NOSIGNAL`: a peer
/// that closed its end is an [`io::ErrorKind::BrokenPipe`] error, never a `SIGPIPE`. A Rust
/// program ignores that signal anyway; a C program hosting omg (the C API) does not, and must
/// not be killed because an enclave or a service went away.
pub struct NoSignal<'a>(pub &'a std::os::unix::net::UnixStream);

impl Read for NoSignal<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.0;
        s.read(buf)
    }
}

impl Write for NoSignal<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match rustix::net::send(self.0, buf, rustix::net::SendFlags::NOSIGNAL) {
                Err(rustix::io::Errno::INTR) => {}
                r => return r.map_err(io::Error::from),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes one message as one frame.
pub fn send<T: Serialize>(w: &mut impl Write, message: &T) -> io::Result<()> {
    let frame = encode(message).map_err(invalid)?;
    w.write_all(&frame)?;
    w.flush()
}

/// Reads one message; `Ok(None)` at a clean end of stream (before a frame starts).
pub fn recv<T: DeserializeOwned>(r: &mut impl Read) -> io::Result<Option<T>> {
    recv_limited(r, MAX_FRAME_LEN)
}

/// Like [`recv`], refusing a frame longer than `limit` bytes before reading its body (the
/// enclave's fixed heap bounds what it can take in).
pub fn recv_limited<T: DeserializeOwned>(r: &mut impl Read, limit: usize) -> io::Result<Option<T>> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    read_frame_body(r, header, limit).map(Some)
}

/// Reads the body of the frame whose length prefix is `header` and decodes it, refusing a
/// body longer than `limit` bytes before reading it.
pub(crate) fn read_frame_body<T: DeserializeOwned>(
    r: &mut impl Read,
    header: [u8; FRAME_HEADER_LEN],
    limit: usize,
) -> io::Result<T> {
    let len = frame_len(header).map_err(invalid)?;
    if len > limit {
        return Err(invalid(format!(
            "a message of {len} bytes exceeds this side's limit of {limit}"
        )));
    }
    let mut body = Vec::new();
    r.take(len as u64).read_to_end(&mut body)?;
    if body.len() != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    decode(&body).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame sent to a peer that closed its end is a broken pipe error; a frame sent to a
    /// live peer arrives whole.
    #[test]
    fn no_signal_sends_frames_and_reports_a_closed_peer() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        send(&mut NoSignal(&a), &"hello".to_string()).unwrap();
        let got: Option<String> = recv(&mut NoSignal(&b)).unwrap();
        assert_eq!(got.as_deref(), Some("hello"));
        drop(b);
        let big = vec![7u8; 1 << 20];
        let e = NoSignal(&a).write_all(&big).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
