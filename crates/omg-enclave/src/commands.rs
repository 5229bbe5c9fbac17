//! The enclave's protocol as commands over byte buffers, for an entry whose host cannot hold a
//! stream open to it: an OP-TEE trusted application, where every command is one call from the
//! normal world with an input buffer and an output buffer.
//!
//! | command | input | output |
//! |---|---|---|
//! | [`CMD_REQUEST`] | one [`HostRequest`] frame ([`crate::messages`] encoding) | its reply frame: `Attested`, `Sealed`, `Ready` or `Failed` |
//! | [`CMD_AUDIO`] | audio of the running operation, s16le mono | an `Event` frame per keyword, then `Failed` if the operation stopped |
//! | [`CMD_FINISH`] | nothing | the tail's `Event` frames, then `Finished` (or `Failed`) |
//! | [`CMD_DRAIN`] | nothing | the frames a short output buffer could not take |
//!
//! The output of every command is the frames of its replies, one after another. When they do
//! not fit the output buffer, the command fails with [`CommandError::ShortBuffer`] and keeps
//! them: [`CMD_DRAIN`] with a larger buffer returns them (a command is never run twice).
//! Bytes that are not a command's input are a [`CommandError`] (an error code for the normal
//! world), never a panic; a request the enclave refuses is a `Failed` reply.

use alloc::string::ToString;
use alloc::vec::Vec;

use crate::Platform;
use crate::messages::{
    EnclaveReply, FRAME_HEADER_LEN, HostRequest, MessageError, decode, encode, frame_len,
};
use crate::platform::PlatformError;
use crate::server::{Enclave, ProtectedBuffer, Replies};

/// Command: one host request (provisioning, or `Start` of an operation).
pub const CMD_REQUEST: u32 = 9;
/// Command: a block of the running operation's audio.
pub const CMD_AUDIO: u32 = 10;
/// Command: the end of the running operation's audio.
pub const CMD_FINISH: u32 = 11;
/// Command: the replies a short output buffer could not take.
pub const CMD_DRAIN: u32 = 12;

/// Largest request frame (packages up to about 1 MiB: the TA's heap also holds the decoded
/// request, the decrypted bundle and the pipeline).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Largest audio block, in bytes (16384 samples, about one second at 16 kHz).
pub const MAX_AUDIO_BYTES: usize = 32 << 10;

/// Why a command's bytes were refused; each is one error code for the normal world.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// Unknown command, an input too long, audio of an odd length, input to a command that
    /// takes none.
    BadParameters,
    /// The request is not one well-formed frame of a [`HostRequest`].
    BadFormat,
    /// The replies do not fit the output buffer; they wait for [`CMD_DRAIN`].
    ShortBuffer,
    /// The enclave's memory cannot hold the input.
    OutOfMemory,
}

impl core::fmt::Display for CommandError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::BadParameters => "bad parameters",
            Self::BadFormat => "not a well-formed host request",
            Self::ShortBuffer => "the replies do not fit the output buffer",
            Self::OutOfMemory => "out of memory",
        })
    }
}

impl core::error::Error for CommandError {}

/// Reply frames waiting for the normal world, and the clock timing the pipeline.
struct Outbox {
    frames: Vec<u8>,
    clock: fn() -> u64,
}

impl Replies for Outbox {
    fn send(&mut self, reply: &EnclaveReply) -> Result<(), PlatformError> {
        let frame = encode(reply).map_err(|e| PlatformError::new("reply", e.to_string()))?;
        self.frames
            .try_reserve(frame.len())
            .map_err(|_| PlatformError::new("reply", "out of memory"))?;
        self.frames.extend_from_slice(&frame);
        Ok(())
    }

    fn monotonic_us(&self) -> u64 {
        (self.clock)()
    }
}

/// One host's enclave behind the command layer (a TA session's state).
pub struct Commands<P, B> {
    enclave: Enclave<P>,
    outbox: Outbox,
    memory: &'static str,
    alloc: fn(usize) -> Result<B, PlatformError>,
}

impl<P, B> core::fmt::Debug for Commands<P, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Commands")
            .field("enclave", &self.enclave)
            .field("pending", &self.outbox.frames.len())
            .finish_non_exhaustive()
    }
}

impl<P: Platform, B: ProtectedBuffer + 'static> Commands<P, B> {
    /// The command layer over an enclave on `platform`; `alloc(len)` gives a zeroed protected
    /// buffer for a decrypted bundle (whose drop wipes it), `memory` says how it is protected
    /// (in the `Ready` reply), `clock` is a monotonic clock in µs.
    pub fn new(
        platform: P,
        memory: &'static str,
        alloc: fn(usize) -> Result<B, PlatformError>,
        clock: fn() -> u64,
    ) -> Self {
        Self {
            enclave: Enclave::new(platform),
            outbox: Outbox {
                frames: Vec::new(),
                clock,
            },
            memory,
            alloc,
        }
    }

    /// Runs command `id` on `input` and returns the reply frames for an output buffer of
    /// `capacity` bytes (see the module's table).
    pub fn command(
        &mut self,
        id: u32,
        input: &[u8],
        capacity: usize,
    ) -> Result<Vec<u8>, CommandError> {
        match id {
            CMD_REQUEST => self.request(input)?,
            CMD_AUDIO => self.audio(input)?,
            CMD_FINISH | CMD_DRAIN if !input.is_empty() => {
                return Err(CommandError::BadParameters);
            }
            CMD_FINISH => {
                let reply = self.enclave.finish(&mut self.outbox);
                self.reply(reply)?;
            }
            CMD_DRAIN => {}
            _ => return Err(CommandError::BadParameters),
        }
        if self.outbox.frames.len() > capacity {
            return Err(CommandError::ShortBuffer);
        }
        Ok(core::mem::take(&mut self.outbox.frames))
    }

    /// Ends the running operation, if any, its quota reservation settled (the host went away).
    pub fn close(&mut self) -> Result<(), crate::EnclaveError> {
        self.outbox.frames.clear();
        self.enclave.close()
    }

    /// Whether an operation is running.
    pub fn operating(&self) -> bool {
        self.enclave.operating()
    }

    fn reply(
        &mut self,
        reply: Result<EnclaveReply, crate::EnclaveError>,
    ) -> Result<(), CommandError> {
        let reply = reply.unwrap_or_else(|e| EnclaveReply::Failed {
            reason: e.to_string(),
        });
        self.outbox
            .send(&reply)
            .map_err(|_| CommandError::OutOfMemory)
    }

    fn request(&mut self, input: &[u8]) -> Result<(), CommandError> {
        if input.len() > MAX_REQUEST_BYTES {
            return Err(CommandError::BadParameters);
        }
        let request: HostRequest = decode_frame(input).map_err(|_| CommandError::BadFormat)?;
        let reply = match request {
            HostRequest::Start {
                package,
                sealed,
                vendor_key,
                source,
            } => self.enclave.start(
                &package,
                &sealed,
                &vendor_key,
                source,
                self.memory,
                self.alloc,
            ),
            provisioning => self.enclave.provision(provisioning),
        };
        self.reply(reply)
    }

    fn audio(&mut self, input: &[u8]) -> Result<(), CommandError> {
        if input.len() > MAX_AUDIO_BYTES || !input.len().is_multiple_of(2) {
            return Err(CommandError::BadParameters);
        }
        let mut samples = omg_engine::memory::filled(input.len() / 2, 0i16, "audio block")
            .map_err(|_| CommandError::OutOfMemory)?;
        for (s, pair) in samples.iter_mut().zip(input.chunks_exact(2)) {
            *s = i16::from_le_bytes([pair[0], pair[1]]);
        }
        let pushed = self.enclave.push_audio(&samples, &mut self.outbox);
        samples.fill(0);
        match pushed {
            Ok(()) => Ok(()),
            Err(e) => self.reply(Err(e)),
        }
    }
}

/// Decodes one whole frame (length prefix and body, nothing after) as a `T`.
pub fn decode_frame<T: for<'de> serde::Deserialize<'de>>(frame: &[u8]) -> Result<T, MessageError> {
    let (header, body) = frame
        .split_first_chunk::<FRAME_HEADER_LEN>()
        .ok_or(MessageError::Malformed)?;
    if frame_len(*header)? != body.len() {
        return Err(MessageError::Malformed);
    }
    decode(body)
}

/// The replies in a command's output: frames one after another.
pub fn split_replies(mut bytes: &[u8]) -> Result<Vec<EnclaveReply>, MessageError> {
    let mut replies = Vec::new();
    while !bytes.is_empty() {
        let (header, rest) = bytes
            .split_first_chunk::<FRAME_HEADER_LEN>()
            .ok_or(MessageError::Malformed)?;
        let len = frame_len(*header)?;
        let body = rest.get(..len).ok_or(MessageError::Malformed)?;
        replies.push(decode(body)?);
        bytes = &rest[len..];
    }
    Ok(replies)
}

/// Audio samples as [`CMD_AUDIO`]'s input (s16le).
pub fn audio_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}
