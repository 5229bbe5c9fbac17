//! The enclave's request loop, independent of how messages and audio travel.
//!
//! Two ways to drive operation share one implementation:
//!
//! - **push** (an OP-TEE TA, which cannot block waiting for the normal world): the host calls
//!   [`Enclave::start`] (answered with [`EnclaveReply::Ready`]), then [`Enclave::push_audio`]
//!   for each block of audio (its events go to a [`Replies`]), then [`Enclave::finish`]
//!   (answered with [`EnclaveReply::Finished`]), or [`Enclave::close`] to end early;
//! - **pull** (the Linux enclave process): the entry supplies an [`EnclaveIo`] and calls
//!   [`Enclave::handle`] for each host request; a `Start` request reads audio from the entry
//!   until it ends, through the same start, push and finish steps.
//!
//! The session's quota reservation is settled on every path: when the operation finishes,
//! fails, or is closed early.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec;

use omg_protocol::licence::{InputSource, OutputPolicy};
use omg_protocol::verifying_key_from_sec1;

use crate::EnclaveError;
use crate::messages::{EnclaveReply, HostRequest};
use crate::platform::{Platform, PlatformError};
use crate::provision::Preparation;
use crate::runtime::{Session, Unlocked, initialize};

/// Samples read from the audio descriptor at a time (100 ms at 16 kHz).
pub const AUDIO_BLOCK: usize = 1600;

/// Silence fed after the end of the audio (one second at 16 kHz), so that a final keyword
/// reaches the classifier.
pub const TAIL_SAMPLES: usize = 16_000;

/// Where an operation's replies go, and the clock that times the pipeline.
pub trait Replies {
    /// Sends a reply to the host.
    fn send(&mut self, reply: &EnclaveReply) -> Result<(), PlatformError>;

    /// A monotonic clock in µs (to report the pipeline's cost per hop).
    fn monotonic_us(&self) -> u64;
}

/// What the enclave's entry provides around the logic for the pull loop: replies, audio and
/// protected memory.
pub trait EnclaveIo: Replies {
    /// Protected memory for the decrypted model.
    type Buffer: AsRef<[u8]> + AsMut<[u8]> + 'static;

    /// Reads audio samples (mono, 16-bit) into `buf`; 0 means the end of the audio.
    fn read_audio(&mut self, buf: &mut [i16]) -> Result<usize, PlatformError>;

    /// A zeroed protected buffer of `len` bytes.
    fn protected(&mut self, len: usize) -> Result<Self::Buffer, PlatformError>;

    /// How memory is protected, for the host's information (e.g. `"memfd_secret"`).
    fn memory_kind(&self) -> &'static str;
}

/// Memory holding a decrypted bundle: any byte buffer the entry supplies. Its `Drop` is where
/// the plaintext is wiped (the Linux backend unmaps secret memory; a TA zeroes its heap buffer).
pub trait ProtectedBuffer: AsRef<[u8]> + AsMut<[u8]> {}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ProtectedBuffer for T {}

/// The entry's protected buffer, whatever its type.
struct AnyBuffer(Box<dyn ProtectedBuffer>);

impl AsRef<[u8]> for AnyBuffer {
    fn as_ref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl AsMut<[u8]> for AnyBuffer {
    fn as_mut(&mut self) -> &mut [u8] {
        (*self.0).as_mut()
    }
}

/// The decrypted model of a running operation, in the entry's protected memory.
type Model = Unlocked<AnyBuffer>;

/// An operation's session and what it counted.
struct Operation<'m> {
    session: Session<'m>,
    /// Samples of the host's audio pushed (the tail's silence not counted).
    samples: u64,
    /// µs spent in the pipeline.
    busy_us: u64,
}

self_cell::self_cell!(
    /// A running operation: the decrypted model and the session that borrows it. Dropping it
    /// drops the session, then the model's buffer.
    struct Running {
        owner: Model,
        #[not_covariant]
        dependent: Operation,
    }
);

impl Operation<'_> {
    /// Feeds `samples` to the session and sends its events to `out`. `count`: the samples are
    /// the host's audio (counted, and the first block must not be a WAV header), not the tail.
    fn push<P: Platform + ?Sized, R: Replies + ?Sized>(
        &mut self,
        platform: &mut P,
        samples: &[i16],
        out: &mut R,
        count: bool,
    ) -> Result<(), EnclaveError> {
        if samples.is_empty() {
            return Ok(());
        }
        if count {
            // A WAV file piped in as raw samples would be heard header and all.
            if self.samples == 0 && omg_kws::input::starts_like_wav(samples) {
                return Err(PlatformError::new("audio", omg_kws::input::WAV_ON_RAW_INPUT).into());
            }
            self.samples += samples.len() as u64;
        }
        let mut failure = None;
        let t = out.monotonic_us();
        let pushed = self.session.push_audio(platform, samples, |e| {
            let reply = EnclaveReply::Event {
                label: String::from(e.label),
                time_ms: e.time_ms,
                score: e.score,
                scores: e.scores.map(<[i8]>::to_vec),
            };
            if let Err(err) = out.send(&reply) {
                failure.get_or_insert(err);
            }
        });
        self.busy_us += out.monotonic_us().saturating_sub(t);
        pushed?;
        match failure {
            Some(err) => Err(err.into()),
            None => Ok(()),
        }
    }
}

/// The enclave: its platform and the state between requests (a provisioning in progress, a
/// running operation).
pub struct Enclave<P> {
    platform: P,
    preparation: Option<Preparation>,
    operation: Option<Running>,
}

impl<P> core::fmt::Debug for Enclave<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Enclave")
            .field("preparing", &self.preparation.is_some())
            .field("operating", &self.operation.is_some())
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
            operation: None,
        }
    }

    /// The platform (e.g. to read its counters).
    pub fn platform_mut(&mut self) -> &mut P {
        &mut self.platform
    }

    /// Handles one provisioning request: [`HostRequest::BeginProvision`] is answered with
    /// [`EnclaveReply::Attested`], [`HostRequest::FinishProvision`] with
    /// [`EnclaveReply::Sealed`]. A `Start` is refused here (it is [`Enclave::start`]'s).
    pub fn provision(&mut self, request: HostRequest) -> Result<EnclaveReply, EnclaveError> {
        match request {
            HostRequest::BeginProvision {
                package,
                vendor_key: key,
                nonce,
            } => {
                self.preparation = None;
                let prep =
                    Preparation::begin(&mut self.platform, &package, &vendor_key(&key)?, &nonce)?;
                let reply = EnclaveReply::Attested {
                    token: prep.token().to_vec(),
                    enclave_public_key: prep.enclave_public_key().to_vec(),
                    model_id: prep.model_id().to_string(),
                    version: prep.version(),
                };
                self.preparation = Some(prep);
                Ok(reply)
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
                Ok(EnclaveReply::Sealed {
                    blob: done.sealed,
                    not_after: done.licence.not_after,
                    renew_after: lease.map(|l| l.renew_after),
                    lease_until: lease.map(|l| l.lease_until),
                })
            }
            HostRequest::Start { .. } => Err(EnclaveError::Mismatch(
                "an operation is not a provisioning request",
            )),
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
        let HostRequest::Start {
            package,
            sealed,
            vendor_key: key,
            source: bits,
        } = request
        else {
            let reply = self.provision(request)?;
            io.send(&reply)?;
            return Ok(());
        };
        let memory = io.memory_kind();
        let ready = self.start(&package, &sealed, &key, bits, memory, |len| {
            io.protected(len)
        })?;
        if let Err(e) = io.send(&ready) {
            // Nothing was classified: the close settles nothing, and the send's error is the
            // one to report.
            let _ = self.close();
            return Err(e.into());
        }
        let mut block = vec![0i16; AUDIO_BLOCK];
        let streamed = loop {
            let n = match io.read_audio(&mut block) {
                Ok(n) => n,
                Err(e) => break Err(self.fail(e.into())),
            };
            if n == 0 {
                break self.finish(io);
            }
            if let Err(e) = self.push_audio(&block[..n], io) {
                break Err(e);
            }
        };
        block.fill(0);
        match streamed {
            Ok(finished) => io.send(&finished)?,
            Err(e) => io.send(&EnclaveReply::Failed {
                reason: e.to_string(),
            })?,
        }
        Ok(())
    }

    /// Initialization: unseals `sealed`, checks package and licence for `source` (the licence's
    /// input source bit), decrypts the bundle into the buffer `alloc(len)` returns and prepares
    /// the pipeline. Returns the [`EnclaveReply::Ready`] for the host; the operation then runs
    /// until [`Enclave::finish`] or [`Enclave::close`]. Refused while another operation runs.
    pub fn start<B: ProtectedBuffer + 'static>(
        &mut self,
        package: &[u8],
        sealed: &[u8],
        vendor_key_sec1: &[u8],
        source_bit: u8,
        memory: &str,
        alloc: impl FnOnce(usize) -> Result<B, PlatformError>,
    ) -> Result<EnclaveReply, EnclaveError> {
        if self.operation.is_some() {
            return Err(EnclaveError::Mismatch(
                "an operation is already running (finish or close it first)",
            ));
        }
        let unlocked: Model = initialize(
            &mut self.platform,
            package,
            sealed,
            &vendor_key(vendor_key_sec1)?,
            source(source_bit)?,
            |len| alloc(len).map(|b| AnyBuffer(Box::new(b))),
        )?;
        let running = Running::try_new(unlocked, |model| {
            model.session().map(|session| Operation {
                session,
                samples: 0,
                busy_us: 0,
            })
        })?;
        let model = running.borrow_owner();
        let licence = model.licence();
        let ready = EnclaveReply::Ready {
            model_id: licence.model_id.clone(),
            version: licence.model_version,
            output_policy: match model.output_policy() {
                OutputPolicy::LabelOnly => 0,
                OutputPolicy::LabelAndScore => 1,
                OutputPolicy::AllScores => 2,
            },
            not_after: licence.not_after,
            renew_after: licence.lease.map(|l| l.renew_after),
            lease_until: licence.lease.map(|l| l.lease_until),
            memory: memory.to_string(),
        };
        self.operation = Some(running);
        Ok(ready)
    }

    /// Whether an operation is running (started, not yet finished, failed or closed).
    pub fn operating(&self) -> bool {
        self.operation.is_some()
    }

    /// Feeds a block of the host's audio (mono, 16-bit, the bundle's rate; any length) to the
    /// running operation and sends its keyword events to `out`. A failure (the pipeline, the
    /// quota, a first block that is a WAV header, a reply that cannot be sent) ends the
    /// operation, settled, as [`EnclaveError::Stopped`]; without a running operation this is
    /// [`EnclaveError::Mismatch`].
    pub fn push_audio<R: Replies + ?Sized>(
        &mut self,
        samples: &[i16],
        out: &mut R,
    ) -> Result<(), EnclaveError> {
        let platform = &mut self.platform;
        let running = self
            .operation
            .as_mut()
            .ok_or(EnclaveError::Mismatch("no operation is running"))?;
        let pushed = running.with_dependent_mut(|_, op| op.push(platform, samples, out, true));
        pushed.map_err(|e| self.fail(e))
    }

    /// Ends the running operation: feeds one second of silence (so a final keyword is heard),
    /// settles the quota reservation and returns [`EnclaveReply::Finished`]. A failure ends the
    /// operation as in [`Enclave::push_audio`].
    pub fn finish<R: Replies + ?Sized>(
        &mut self,
        out: &mut R,
    ) -> Result<EnclaveReply, EnclaveError> {
        let platform = &mut self.platform;
        let running = self
            .operation
            .as_mut()
            .ok_or(EnclaveError::Mismatch("no operation is running"))?;
        let silence = [0i16; AUDIO_BLOCK];
        let tail = running.with_dependent_mut(|_, op| {
            let mut left = TAIL_SAMPLES;
            while left > 0 {
                let n = left.min(silence.len());
                op.push(platform, &silence[..n], out, false)?;
                left -= n;
            }
            Ok(())
        });
        if let Err(e) = tail {
            return Err(self.fail(e));
        }
        let Some(mut running) = self.operation.take() else {
            return Err(EnclaveError::Mismatch("no operation is running"));
        };
        let platform = &mut self.platform;
        running.with_dependent_mut(|_, op| {
            let classifications = op.session.classifications();
            op.session
                .settle(platform)
                .map_err(|e| stopped(e, classifications))?;
            Ok(EnclaveReply::Finished {
                samples: op.samples,
                classifications,
                busy_us: op.busy_us,
            })
        })
    }

    /// Ends the running operation early, if any: its quota reservation is settled (the
    /// classifications made are counted, the rest goes back) and the decrypted model dropped.
    /// Call it when the host goes away (e.g. a TA session closed).
    pub fn close(&mut self) -> Result<(), EnclaveError> {
        let Some(mut running) = self.operation.take() else {
            return Ok(());
        };
        let platform = &mut self.platform;
        running.with_dependent_mut(|_, op| op.session.settle(platform))
    }

    /// Ends the running operation after `error`: settles it (the first error is the one
    /// reported) and returns the error with the classifications made.
    fn fail(&mut self, error: EnclaveError) -> EnclaveError {
        let Some(mut running) = self.operation.take() else {
            return error;
        };
        let platform = &mut self.platform;
        running.with_dependent_mut(|_, op| {
            // The operation's own error comes first; a failed settle only loses the unused
            // part of the block (counted as used).
            let _ = op.session.settle(platform);
            stopped(error, op.session.classifications())
        })
    }
}

fn stopped(error: EnclaveError, classifications: u64) -> EnclaveError {
    EnclaveError::Stopped {
        cause: Box::new(error),
        classifications,
    }
}
