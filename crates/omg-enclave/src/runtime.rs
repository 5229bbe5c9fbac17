//! Phases 2 and 3, initialization and operation: unseal, check, decrypt, run.
//!
//! [`initialize`] decides whether the locally stored model may be decrypted at all; it decrypts
//! the bundle straight into a buffer the caller supplies (protected memory in the Linux
//! backend) and returns an [`Unlocked`] model. [`Unlocked::session`] prepares the pipeline over
//! that buffer; [`Session::push_audio`] turns audio into [`OutputEvent`]s reduced to what the
//! output policy allows, and enforces the inference quota through the platform's atomic
//! reservations: a session takes private blocks of inferences
//! ([`Platform::reserve_inferences`]) and gives back what it did not use when it ends
//! ([`Session::settle`]); concurrent sessions never share a block, and together never exceed
//! the quota.

use alloc::vec::Vec;

use omg_kws::Pipeline;
use omg_protocol::VerifyingKey;
use omg_protocol::bundle::Bundle;
use omg_protocol::licence::{InputSource, Licence, OutputPolicy, Refusal};
use omg_protocol::package::Package;

use crate::EnclaveError;
use crate::pipeline;
use crate::platform::{Counter, ModelScope, Platform, PlatformError, Reservation};

/// Inferences reserved from the platform at a time (five seconds of micro_speech): small
/// enough that concurrent sessions share a small quota, large enough that the platform is
/// asked rarely. The unused part of a block goes back at the end of the session.
pub const QUOTA_BLOCK: u64 = 250;

/// A model whose licence allowed it to be decrypted, held in caller-supplied memory.
pub struct Unlocked<B> {
    plaintext: B,
    len: usize,
    vendor: [u8; omg_protocol::KEY_ID_LEN],
    licence: Licence,
    output_policy: OutputPolicy,
}

impl<B> core::fmt::Debug for Unlocked<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Unlocked")
            .field("model_id", &self.licence.model_id)
            .field("version", &self.licence.model_version)
            .field("output_policy", &self.output_policy)
            .finish_non_exhaustive()
    }
}

/// Heap that must remain free once the pipeline is built, for what operation allocates.
pub const OPERATION_HEADROOM: usize = 64 << 10;

/// Initialization: unseals `sealed` with the platform's sealing key for the package's model
/// of this vendor (fails on another device, another enclave build or another vendor), checks
/// the package's vendor signature and the licence (device, model, version, revocation epoch,
/// expiry, lease, `source`, quota), then decrypts the bundle into the buffer `alloc(len)`
/// returns and validates it.
pub fn initialize<P, B>(
    platform: &mut P,
    package: &[u8],
    sealed: &[u8],
    vendor_key: &VerifyingKey,
    source: InputSource,
    alloc: impl FnOnce(usize) -> Result<B, PlatformError>,
) -> Result<Unlocked<B>, EnclaveError>
where
    P: Platform + ?Sized,
    B: AsRef<[u8]> + AsMut<[u8]>,
{
    let package = Package::open_signed(package, vendor_key)?;
    let header = package.header();
    let scope = ModelScope::new(vendor_key, &header.model_id);
    let content = platform.sealing_key(scope)?.unseal(sealed)?;
    let licence = Licence::verify(&content.licence, vendor_key)?;
    let now = platform.now()?;
    let epoch = platform.counter(scope, Counter::Epoch)?;
    let epoch = u32::try_from(epoch).unwrap_or(u32::MAX);
    licence.check(
        now,
        &platform.device_ueid(),
        &header.model_id,
        header.version,
        epoch,
        source,
    )?;
    if licence.quota.is_some() {
        licence.check_quota(platform.counter(scope, Counter::Inferences)?)?;
    }
    let mut plaintext = alloc(package.plaintext_len())?;
    let len = package.decrypt_in_place(&content.content_key, plaintext.as_mut())?;
    let bundle = Bundle::parse(&plaintext.as_ref()[..len])?;
    let output_policy = bundle.output_policy.min(licence.output_policy);
    Ok(Unlocked {
        plaintext,
        len,
        vendor: scope.vendor,
        licence,
        output_policy,
    })
}

impl<B: AsRef<[u8]>> Unlocked<B> {
    /// The licence that allowed the decryption.
    pub fn licence(&self) -> &Licence {
        &self.licence
    }

    /// The output policy in force: the stricter of the bundle's and the licence's.
    pub fn output_policy(&self) -> OutputPolicy {
        self.output_policy
    }

    /// The decrypted bundle.
    pub fn bundle(&self) -> Result<Bundle<'_>, EnclaveError> {
        Ok(Bundle::parse(&self.plaintext.as_ref()[..self.len])?)
    }

    /// Validates and prepares the pipeline and starts an operation session.
    pub fn session(&self) -> Result<Session<'_>, EnclaveError> {
        let bundle = self.bundle()?;
        let pipeline = pipeline::build(&bundle)?;
        // The pipeline's large buffers are allocated fallibly; what operation allocates
        // (events, replies) must still fit beside them.
        drop(omg_engine::memory::filled(
            OPERATION_HEADROOM,
            0u8,
            "operation (the pipeline leaves too little of the enclave's memory)",
        )?);
        Ok(Session {
            hop: pipeline::hop_samples(&bundle)?,
            pipeline,
            labels: bundle.labels,
            policy: self.output_policy,
            scope: ModelScope {
                vendor: self.vendor,
                model_id: &self.licence.model_id,
            },
            quota: self.licence.quota,
            block: None,
            block_base: 0,
            classified: 0,
        })
    }
}

/// A keyword event as it may leave the enclave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputEvent<'a> {
    /// The keyword.
    pub label: &'a str,
    /// Stream time of the detection in ms.
    pub time_ms: u64,
    /// The averaged score (0..=255), if the output policy allows scores.
    pub score: Option<u8>,
    /// The classifier's int8 scores of the deciding window, if the policy allows all scores.
    pub scores: Option<&'a [i8]>,
}

/// The operation phase: audio in, policy-filtered keyword events out. A session with a quota
/// holds a reservation of the platform's: end it with [`Session::settle`] (a session that is
/// never settled has its whole block counted as used).
pub struct Session<'m> {
    pipeline: Pipeline<'m>,
    labels: Vec<&'m str>,
    hop: usize,
    policy: OutputPolicy,
    scope: ModelScope<'m>,
    quota: Option<u64>,
    /// The block of inferences this session holds, if any.
    block: Option<Reservation>,
    /// Classifications made before `block` was granted.
    block_base: u64,
    /// Classifications made in this session.
    classified: u64,
}

impl core::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("scope", &self.scope)
            .field("policy", &self.policy)
            .field("classified", &self.classified)
            .finish_non_exhaustive()
    }
}

impl Session<'_> {
    /// Classifications made so far in this session.
    pub fn classifications(&self) -> u64 {
        self.classified
    }

    /// Makes sure one more classification is covered by the quota: within the block this
    /// session holds, else the used-up block is settled and the next one reserved.
    fn reserve_one<P: Platform + ?Sized>(&mut self, platform: &mut P) -> Result<(), EnclaveError> {
        let Some(quota) = self.quota else {
            return Ok(());
        };
        if let Some(block) = self.block {
            if self.classified - self.block_base < block.granted {
                return Ok(());
            }
            self.block = None;
            platform.settle_inferences(self.scope, block, block.granted)?;
        }
        let block = platform.reserve_inferences(self.scope, QUOTA_BLOCK, quota)?;
        if block.granted == 0 {
            return Err(EnclaveError::Refused(Refusal::QuotaExhausted {
                quota,
                used: block.start,
            }));
        }
        if block.granted > QUOTA_BLOCK || block.start.saturating_add(block.granted) > quota {
            return Err(EnclaveError::Mismatch(
                "the platform granted inferences beyond the quota",
            ));
        }
        self.block = Some(block);
        self.block_base = self.classified;
        Ok(())
    }

    /// Ends the session's reservation: what it used is counted, the rest of its block goes
    /// back to the quota. Call it once the session ends, whether it failed or not.
    pub fn settle<P: Platform + ?Sized>(&mut self, platform: &mut P) -> Result<(), EnclaveError> {
        if let Some(block) = self.block.take() {
            let used = (self.classified - self.block_base).min(block.granted);
            platform.settle_inferences(self.scope, block, used)?;
        }
        Ok(())
    }

    /// Feeds audio (mono, the bundle's sample rate) and calls `on_event` for each keyword, with
    /// only what the output policy allows. Audio is processed one hop at a time, so each event
    /// comes with the scores of the window that decided it. Stops with
    /// [`Refusal::QuotaExhausted`] before a classification the quota does not cover.
    pub fn push_audio<P: Platform + ?Sized>(
        &mut self,
        platform: &mut P,
        samples: &[i16],
        mut on_event: impl FnMut(OutputEvent<'_>),
    ) -> Result<(), EnclaveError> {
        for chunk in samples.chunks(self.hop) {
            // At most one classification per hop: reserve it first.
            self.reserve_one(platform)?;
            let mut event = None;
            let before = self.pipeline.classifications();
            self.pipeline.push_samples(chunk, |e| event = Some(e))?;
            self.classified += self.pipeline.classifications() - before;
            if let Some(e) = event {
                let label = self.labels.get(e.label_index).copied().unwrap_or("?");
                on_event(OutputEvent {
                    label,
                    time_ms: e.time_ms,
                    score: (self.policy >= OutputPolicy::LabelAndScore).then_some(e.score),
                    scores: (self.policy == OutputPolicy::AllScores)
                        .then(|| self.pipeline.scores()),
                });
            }
        }
        Ok(())
    }

    /// Clears the audio and recognizer state (e.g. between independent clips).
    pub fn reset(&mut self) {
        self.pipeline.reset();
    }
}
