//! The enclave's request loop, independent of how messages and audio travel: the Linux entry
//! (and later an OP-TEE entry) supplies an [`EnclaveIo`] and calls [`Enclave::handle`] for
//! each host request.

use alloc::string::{String, ToString};
use alloc::vec;

use omg_protocol::licence::{InputSource, OutputPolicy};
use omg_protocol::verifying_key_from_sec1;

use crate::EnclaveError;
use crate::messages::{EnclaveReply, HostRequest};
use crate::platform::{Platform, PlatformError};
use crate::provision::Preparation;
use crate::runtime::{Session, initialize};

/// Samples read from the audio descriptor at a time (100 ms at 16 kHz).
pub const AUDIO_BLOCK: usize = 1600;

/// What the enclave's entry provides around the logic: replies, audio and protected memory.
pub trait EnclaveIo {
    /// Protected memory for the decrypted model.
    type Buffer: AsRef<[u8]> + AsMut<[u8]>;

    /// Sends a reply to the host.
    fn send(&mut self, reply: &EnclaveReply) -> Result<(), PlatformError>;

    /// Reads audio samples (mono, 16-bit) into `buf`; 0 means the end of the audio.
    fn read_audio(&mut self, buf: &mut [i16]) -> Result<usize, PlatformError>;

    /// A zeroed protected buffer of `len` bytes.
    fn protected(&mut self, len: usize) -> Result<Self::Buffer, PlatformError>;

    /// How memory is protected, for the host's information (e.g. `"memfd_secret"`).
    fn memory_kind(&self) -> &'static str;

    /// A monotonic clock in µs (to report the pipeline's cost per hop).
    fn monotonic_us(&self) -> u64;
}

/// The enclave: its platform and the state between requests.
pub struct Enclave<P> {
    platform: P,
    preparation: Option<Preparation>,
}

impl<P> core::fmt::Debug for Enclave<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Enclave")
            .field("preparing", &self.preparation.is_some())
            .finish_non_exhaustive()
    }
}

fn source(bit: u8) -> Result<InputSource, EnclaveError> {
    InputSource::from_bit(bit).ok_or(EnclaveError::Mismatch("unknown input source"))
}

fn vendor_key(sec1: &[u8]) -> Result<omg_protocol::VerifyingKey, EnclaveError> {
    Ok(verifying_key_from_sec1(sec1)?)
}

impl<P: Platform> Enclave<P> {
    /// An enclave on `platform`.
    pub fn new(platform: P) -> Self {
        Self {
            platform,
            preparation: None,
        }
    }

    /// Handles one host request, sending its replies through `io`. A returned error is the
    /// request's failure (the caller reports it to the host as [`EnclaveReply::Failed`]); a
    /// session that fails once running is reported here, with how many classifications it made.
    pub fn handle<I: EnclaveIo>(
        &mut self,
        request: HostRequest,
        io: &mut I,
    ) -> Result<(), EnclaveError> {
        match request {
            HostRequest::BeginProvision {
                package,
                vendor_key: key,
                nonce,
            } => {
                self.preparation = None;
                let prep =
                    Preparation::begin(&mut self.platform, &package, &vendor_key(&key)?, &nonce)?;
                io.send(&EnclaveReply::Attested {
                    token: prep.token().to_vec(),
                    enclave_public_key: prep.enclave_public_key().to_vec(),
                    model_id: prep.model_id().to_string(),
                    version: prep.version(),
                })?;
                self.preparation = Some(prep);
                Ok(())
            }
            HostRequest::FinishProvision {
                key_release,
                licence,
            } => {
                let prep = self
                    .preparation
                    .take()
                    .ok_or(EnclaveError::Mismatch("no provisioning in progress"))?;
                let done = prep.finish(&mut self.platform, &key_release, &licence)?;
                let lease = done.licence.lease;
                io.send(&EnclaveReply::Sealed {
                    blob: done.sealed,
                    not_after: done.licence.not_after,
                    renew_after: lease.map(|l| l.renew_after),
                    lease_until: lease.map(|l| l.lease_until),
                })?;
                Ok(())
            }
            HostRequest::Start {
                package,
                sealed,
                vendor_key: key,
                source: bits,
            } => self.operate(&package, &sealed, &key, bits, io),
        }
    }

    fn operate<I: EnclaveIo>(
        &mut self,
        package: &[u8],
        sealed: &[u8],
        key: &[u8],
        bits: u8,
        io: &mut I,
    ) -> Result<(), EnclaveError> {
        let unlocked = initialize(
            &mut self.platform,
            package,
            sealed,
            &vendor_key(key)?,
            source(bits)?,
            |len| io.protected(len),
        )?;
        let licence = unlocked.licence();
        let mut session = unlocked.session()?;
        io.send(&EnclaveReply::Ready {
            model_id: licence.model_id.clone(),
            version: licence.model_version,
            output_policy: match unlocked.output_policy() {
                OutputPolicy::LabelOnly => 0,
                OutputPolicy::LabelAndScore => 1,
                OutputPolicy::AllScores => 2,
            },
            not_after: licence.not_after,
            renew_after: licence.lease.map(|l| l.renew_after),
            lease_until: licence.lease.map(|l| l.lease_until),
            memory: io.memory_kind().to_string(),
        })?;
        let mut block = vec![0i16; AUDIO_BLOCK];
        let streamed = stream(&mut self.platform, &mut session, &mut block, io);
        block.fill(0);
        // The session's reservation ends here, on every path: what it did not use goes back.
        let settled = session.settle(&mut self.platform);
        let (samples, busy_us) = match streamed.and_then(|s| settled.map(|()| s)) {
            Ok(s) => s,
            Err(e) => {
                io.send(&EnclaveReply::Failed {
                    reason: alloc::format!(
                        "{e} (after {} classification(s) in this session)",
                        session.classifications()
                    ),
                })?;
                return Ok(());
            }
        };
        io.send(&EnclaveReply::Finished {
            samples,
            classifications: session.classifications(),
            busy_us,
        })?;
        Ok(())
    }
}

/// Operation's loop: reads audio from `io` until it ends (then one second of silence), feeds
/// it to `session` and sends its events; audio that starts with a WAV header is refused. Returns the samples read and the µs spent in the
/// pipeline.
fn stream<P: Platform, I: EnclaveIo>(
    platform: &mut P,
    session: &mut Session<'_>,
    block: &mut [i16],
    io: &mut I,
) -> Result<(u64, u64), EnclaveError> {
    let mut samples = 0u64;
    let mut busy_us = 0u64;
    // One extra second of silence at the end lets a final keyword reach the classifier.
    let mut tail = 16_000usize;
    loop {
        let n = io.read_audio(block)?;
        let n = if n == 0 {
            if tail == 0 {
                return Ok((samples, busy_us));
            }
            let n = tail.min(block.len());
            block[..n].fill(0);
            tail -= n;
            n
        } else {
            // A WAV file piped in as raw samples would be heard header and all.
            if samples == 0 && omg_kws::input::starts_like_wav(&block[..n]) {
                return Err(PlatformError::new("audio", omg_kws::input::WAV_ON_RAW_INPUT).into());
            }
            samples += n as u64;
            n
        };
        let mut failure = None;
        let t = io.monotonic_us();
        let pushed = session.push_audio(platform, &block[..n], |e| {
            let reply = EnclaveReply::Event {
                label: String::from(e.label),
                time_ms: e.time_ms,
                score: e.score,
                scores: e.scores.map(<[i8]>::to_vec),
            };
            if let Err(err) = io.send(&reply) {
                failure.get_or_insert(err);
            }
        });
        busy_us += io.monotonic_us().saturating_sub(t);
        pushed?;
        if let Some(err) = failure {
            return Err(err.into());
        }
    }
}
