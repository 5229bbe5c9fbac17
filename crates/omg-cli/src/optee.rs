//! The OP-TEE backend's normal-world side: a libteec session with the omg trusted application,
//! speaking omg-enclave's command layer (`omg_enclave::commands`). Audio is read here from the
//! feed's descriptor and pushed into the TA in blocks; only reply frames (events) come back.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;

use anyhow::{Context as _, Result, anyhow, bail};
use omg_enclave::commands::{
    CMD_AUDIO, CMD_DRAIN, CMD_FINISH, CMD_REQUEST, MAX_AUDIO_BYTES, split_replies,
};
use omg_enclave::messages::{EnclaveReply, HostRequest, encode};
use optee_teec::{
    Context, ErrorKind, Operation, ParamNone, ParamTmpRef, ParamType, ParamValue, Session, Uuid,
};

use crate::backend::EnclaveLink;

/// The omg TA's UUID.
const TA_UUID: &str = include_str!("../../../optee/ta/uuid.txt");
/// OP-TEE's attestation PTA.
const ATTESTATION_PTA_UUID: &str = "39800861-182a-4720-9b67-2bcd622bc0b5";
/// The PTA's command returning its public key (exponent, modulus, algorithm).
const PTA_ATTESTATION_GET_PUBKEY: u32 = 0;
/// The TA's command making an attestation token over a nonce for a key nobody holds.
const CMD_SAMPLE_TOKEN: u32 = 8;
/// Output buffer of a command; larger replies are drained with [`DRAIN_CAPACITY`].
const CAPACITY: usize = 64 << 10;
/// Output buffer of a drain.
const DRAIN_CAPACITY: usize = 4 << 20;

/// A session with the omg TA.
pub struct OpteeLink {
    context: Context,
    session: Session,
    audio: Option<File>,
    carry: Option<u8>,
    queue: VecDeque<EnclaveReply>,
    finished: bool,
}

fn teec(what: &str, e: optee_teec::Error) -> anyhow::Error {
    anyhow!("{what}: {e} (TEE error {:#010x})", e.raw_code())
}

impl OpteeLink {
    /// Opens a session with the TA (OP-TEE loads and checks it); `audio` is the operation's
    /// s16le stream.
    pub fn open(audio: Option<OwnedFd>) -> Result<Self> {
        let mut context = Context::new().map_err(|e| teec("cannot reach OP-TEE", e))?;
        let uuid = Uuid::parse_str(TA_UUID.trim()).map_err(|e| teec("the TA's UUID", e))?;
        let session = context.open_session(uuid).map_err(|e| {
            teec(
                &format!(
                    "cannot open the omg TA {} (is it installed in /lib/optee_armtz and \
                     tee-supplicant running?)",
                    TA_UUID.trim()
                ),
                e,
            )
        })?;
        Ok(Self {
            context,
            session,
            audio: audio.map(File::from),
            carry: None,
            queue: VecDeque::new(),
            finished: false,
        })
    }

    /// Runs `command` on `input` and returns its reply frames, drained when they did not fit.
    fn command(&mut self, command: u32, input: &[u8]) -> Result<Vec<EnclaveReply>> {
        let bytes = match self.invoke(command, input, CAPACITY) {
            Err(e) if e.kind() == ErrorKind::ShortBuffer => {
                self.invoke(CMD_DRAIN, &[], DRAIN_CAPACITY)
            }
            r => r,
        }
        .map_err(|e| teec("the omg TA refused the command", e))?;
        split_replies(&bytes).map_err(|e| anyhow!("the omg TA's replies: {e}"))
    }

    fn invoke(
        &mut self,
        command: u32,
        input: &[u8],
        capacity: usize,
    ) -> Result<Vec<u8>, optee_teec::Error> {
        let mut out = vec![0u8; capacity];
        let len = if input.is_empty() && command != CMD_REQUEST && command != CMD_AUDIO {
            let mut op = Operation::new(
                0,
                ParamNone,
                ParamTmpRef::new_output(&mut out),
                ParamNone,
                ParamNone,
            );
            self.session.invoke_command(command, &mut op)?;
            op.parameters().1.updated_size()
        } else {
            let mut op = Operation::new(
                0,
                ParamTmpRef::new_input(input),
                ParamTmpRef::new_output(&mut out),
                ParamNone,
                ParamNone,
            );
            self.session.invoke_command(command, &mut op)?;
            op.parameters().1.updated_size()
        };
        out.truncate(len);
        Ok(out)
    }

    /// Reads the next block of audio (whole samples) from the feed; empty at its end.
    fn read_audio(&mut self) -> Result<Vec<u8>> {
        let Some(audio) = self.audio.as_mut() else {
            bail!("no audio was handed to the OP-TEE session");
        };
        let mut buf = vec![0u8; MAX_AUDIO_BYTES / 2];
        loop {
            let start = usize::from(self.carry.is_some());
            if let Some(b) = self.carry.take() {
                buf[0] = b;
            }
            let n = match audio.read(&mut buf[start..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("cannot read the audio"),
            };
            if n == 0 {
                // The end; a dangling odd byte is dropped, as the Linux enclave does.
                return Ok(Vec::new());
            }
            let mut have = start + n;
            if have % 2 == 1 {
                have -= 1;
                self.carry = Some(buf[have]);
            }
            if have > 0 {
                buf.truncate(have);
                return Ok(buf);
            }
        }
    }
}

/// What `omg device info --backend optee` prints: the attestation PTA's public key, and the
/// TA's memory hash from a token the TA makes now over a fresh nonce, verified against that
/// key (the values a vendor enrolls and lists in its policy).
pub struct DeviceInfo {
    /// The attestation PTA's RSA public key.
    pub key: omg_protocol::optee::DeviceKey,
    /// The TA's measurement: the PTA's hash of its code and read-only data in memory.
    pub measurement: [u8; 32],
}

/// Asks OP-TEE and the omg TA for [`DeviceInfo`].
pub fn device_info() -> Result<DeviceInfo> {
    use omg_protocol::rand_core::Rng as _;
    let mut link = OpteeLink::open(None)?;
    let der = link.device_public_key()?;
    let key = omg_protocol::optee::DeviceKey::from_der(&der)
        .map_err(|e| anyhow!("the attestation PTA's public key: {e}"))?;
    let mut nonce = [0u8; 32];
    omg_protocol::OsRng::default().fill_bytes(&mut nonce);
    let token = link
        .invoke(CMD_SAMPLE_TOKEN, &nonce, CAPACITY)
        .map_err(|e| teec("the omg TA made no attestation token", e))?;
    let claims = omg_protocol::optee::OpteeToken::verify(&token, &key)
        .map_err(|e| anyhow!("the TA's token does not verify against the PTA's key: {e}"))?;
    if claims.nonce != nonce {
        bail!("the TA's token is over another nonce");
    }
    let measurement = match &claims.software_components[..] {
        [one] => one.measurement_value.as_slice().try_into().ok(),
        _ => None,
    }
    .ok_or_else(|| anyhow!("the TA's token does not hold one 32-byte measurement"))?;
    Ok(DeviceInfo { key, measurement })
}

/// A `Failed` reply as an error.
fn checked(reply: EnclaveReply) -> Result<EnclaveReply> {
    match reply {
        EnclaveReply::Failed { reason } => bail!("{reason}"),
        reply => Ok(reply),
    }
}

impl EnclaveLink for OpteeLink {
    fn request(&mut self, request: &HostRequest) -> Result<EnclaveReply> {
        let frame = encode(request).map_err(|e| anyhow!("the request: {e}"))?;
        let mut replies = self.command(CMD_REQUEST, &frame)?.into_iter();
        match (replies.next(), replies.next()) {
            (Some(reply), None) => checked(reply),
            _ => bail!("the omg TA answered out of turn"),
        }
    }

    fn next_reply(&mut self) -> Result<EnclaveReply> {
        loop {
            if let Some(reply) = self.queue.pop_front() {
                return checked(reply);
            }
            if self.finished {
                bail!("the omg TA ended the operation without finishing it");
            }
            let block = self.read_audio()?;
            let replies = if block.is_empty() {
                self.finished = true;
                self.command(CMD_FINISH, &[])?
            } else {
                self.command(CMD_AUDIO, &block)?
            };
            self.queue.extend(replies);
        }
    }

    fn device_public_key(&mut self) -> Result<Vec<u8>> {
        let uuid = Uuid::parse_str(ATTESTATION_PTA_UUID).map_err(|e| teec("PTA UUID", e))?;
        let mut pta = self
            .context
            .open_session(uuid)
            .map_err(|e| teec("cannot open OP-TEE's attestation PTA", e))?;
        let (mut e, mut n) = (vec![0u8; 16], vec![0u8; 1024]);
        let mut op = Operation::new(
            0,
            ParamTmpRef::new_output(&mut e),
            ParamTmpRef::new_output(&mut n),
            ParamValue::new(0, 0, ParamType::ValueOutput),
            ParamNone,
        );
        pta.invoke_command(PTA_ATTESTATION_GET_PUBKEY, &mut op)
            .map_err(|e| teec("the attestation PTA's public key", e))?;
        let (elen, nlen) = (
            op.parameters().0.updated_size(),
            op.parameters().1.updated_size(),
        );
        e.truncate(elen);
        n.truncate(nlen);
        let key = omg_protocol::optee::DeviceKey::from_components(&e, &n)
            .map_err(|e| anyhow!("the attestation PTA's public key: {e}"))?;
        Ok(key.to_der().to_vec())
    }

    fn measurement(&self, token: &[u8]) -> Result<[u8; 32]> {
        let opened = omg_protocol::optee::OpteeToken::open(token)
            .map_err(|e| anyhow!("the TA's token: {e}"))?;
        Ok(opened.evidence.ta_hash)
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn close(self: Box<Self>) -> Result<()> {
        // Closing the session ends the TA's operation (its quota settled) and the instance.
        drop(self);
        Ok(())
    }
}
