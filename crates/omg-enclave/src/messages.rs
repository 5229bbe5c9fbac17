//! The enclave's two message channels: host ↔ enclave and enclave ↔ platform.
//!
//! Every message is one frame: a 4-byte little-endian length, then that many bytes of CBOR
//! (serde's externally tagged enums, byte strings as CBOR byte strings). Frames are at most
//! [`MAX_FRAME_LEN`] bytes (a 64 MiB package plus headroom); a longer length prefix is refused
//! before anything is allocated. Decoding is strict: a frame must hold exactly one message of
//! the expected type, and every field is re-checked by the phase that uses it.
//!
//! The host channel carries only what the host may see: packages, sealed blobs, tokens, key
//! releases, licences and keyword events. The platform channel carries the platform's services
//! (tokens, sealing keys, time, counters, inference reservations), each per-model service
//! named by a [`Scope`] (vendor key id and model id), and is never exposed to the host.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::platform::ModelScope;

/// Largest frame body accepted on either channel.
pub const MAX_FRAME_LEN: usize = 80 << 20;
/// Length of a frame's length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// A request from the host to the enclave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostRequest {
    /// Preparation, first half: check the package and make an attestation token over `nonce`.
    BeginProvision {
        /// The model package.
        #[serde(with = "serde_bytes")]
        package: Vec<u8>,
        /// The vendor's public key (SEC1).
        #[serde(with = "serde_bytes")]
        vendor_key: Vec<u8>,
        /// The vendor service's nonce.
        #[serde(with = "serde_bytes")]
        nonce: Vec<u8>,
    },
    /// Preparation, second half: the vendor's answer.
    FinishProvision {
        /// The HPKE key release.
        #[serde(with = "serde_bytes")]
        key_release: Vec<u8>,
        /// The signed licence.
        #[serde(with = "serde_bytes")]
        licence: Vec<u8>,
    },
    /// Initialization, then operation on the audio descriptor the platform handed over.
    Start {
        /// The model package.
        #[serde(with = "serde_bytes")]
        package: Vec<u8>,
        /// The sealed blob stored at preparation.
        #[serde(with = "serde_bytes")]
        sealed: Vec<u8>,
        /// The vendor's public key (SEC1).
        #[serde(with = "serde_bytes")]
        vendor_key: Vec<u8>,
        /// The audio source, as the licence names it: 1 mic, 2 file, 4 stdin.
        source: u8,
    },
}

/// A message from the enclave to the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnclaveReply {
    /// The token for the vendor, and what it is for.
    Attested {
        /// The attestation token.
        #[serde(with = "serde_bytes")]
        token: Vec<u8>,
        /// The enclave's HPKE public key.
        #[serde(with = "serde_bytes")]
        enclave_public_key: Vec<u8>,
        /// The package's model id.
        model_id: String,
        /// The package's model version.
        version: u32,
    },
    /// The sealed blob for the host to store.
    Sealed {
        /// The blob.
        #[serde(with = "serde_bytes")]
        blob: Vec<u8>,
        /// The licence's expiry.
        not_after: u64,
        /// When the licence's lease asks for an online renewal (`None`: no lease).
        renew_after: Option<u64>,
        /// The lease's last second (`None`: no lease, the licence runs to `not_after`).
        lease_until: Option<u64>,
    },
    /// Initialization succeeded; audio is being read.
    Ready {
        /// Model id.
        model_id: String,
        /// Model version.
        version: u32,
        /// Output policy in force: 0 label, 1 label and score, 2 all scores.
        output_policy: u8,
        /// The licence's expiry.
        not_after: u64,
        /// When the licence's lease asks for an online renewal (`None`: no lease).
        renew_after: Option<u64>,
        /// The lease's last second (`None`: no lease, the licence runs to `not_after`).
        lease_until: Option<u64>,
        /// How the enclave protects its memory (e.g. "memfd_secret" or "mlock").
        memory: String,
    },
    /// A keyword.
    Event {
        /// The keyword.
        label: String,
        /// Stream time of the detection in ms.
        time_ms: u64,
        /// The averaged score, if the output policy allows it.
        score: Option<u8>,
        /// The classifier's scores, if the output policy allows them.
        scores: Option<Vec<i8>>,
    },
    /// The audio ended.
    Finished {
        /// Samples read.
        samples: u64,
        /// Classifications made.
        classifications: u64,
        /// Time spent in the pipeline (front end, classifier, recognizer), in µs.
        busy_us: u64,
    },
    /// The request failed; the enclave's state is unchanged unless said otherwise.
    Failed {
        /// Why, in words (never secret material).
        reason: String,
    },
}

/// A request from the enclave to its platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlatformRequest {
    /// The measurement of the enclave image, as the platform computed it.
    Measurement,
    /// The device UEID.
    DeviceUeid,
    /// An attestation token over the platform's measurement, `nonce` and the key hash.
    Attest {
        /// The verifier's nonce.
        #[serde(with = "serde_bytes")]
        nonce: Vec<u8>,
        /// SHA-256 of the enclave's HPKE public key.
        #[serde(with = "serde_bytes")]
        enclave_key_hash: Vec<u8>,
    },
    /// The sealing key of a vendor's model.
    SealingKey(Scope),
    /// The time, seconds since the Unix epoch.
    Now,
    /// A counter's value.
    Counter {
        /// Whose model.
        scope: Scope,
        /// 0 epoch, 1 inferences.
        counter: u8,
    },
    /// Raise the epoch counter (never lowered); answered with its value afterwards.
    RaiseEpoch {
        /// Whose model.
        scope: Scope,
        /// The value to raise it to.
        value: u64,
    },
    /// Reserve inferences against the quota; answered with a [`PlatformReply::Reservation`].
    ReserveInferences {
        /// Whose model.
        scope: Scope,
        /// How many the session wants.
        wanted: u64,
        /// The licence's quota.
        quota: u64,
    },
    /// End a reservation, `used` of it used; answered with [`PlatformReply::Done`].
    SettleInferences {
        /// Whose model.
        scope: Scope,
        /// The reservation's id.
        id: u64,
        /// The reservation's start.
        start: u64,
        /// How many it granted.
        granted: u64,
        /// How many were used.
        used: u64,
    },
}

/// A [`ModelScope`] on the platform channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// The vendor's key id (16 bytes).
    #[serde(with = "serde_bytes")]
    pub vendor: Vec<u8>,
    /// The model id.
    pub model_id: String,
}

impl From<ModelScope<'_>> for Scope {
    fn from(scope: ModelScope<'_>) -> Self {
        Self {
            vendor: scope.vendor.to_vec(),
            model_id: String::from(scope.model_id),
        }
    }
}

impl Scope {
    /// The scope this message names, if its vendor key id has the right length.
    pub fn scope(&self) -> Option<ModelScope<'_>> {
        Some(ModelScope {
            vendor: self.vendor.as_slice().try_into().ok()?,
            model_id: &self.model_id,
        })
    }
}

/// The platform's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlatformReply {
    /// Bytes: a UEID, a token or a sealing key.
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A number: a time or a counter value.
    Number(u64),
    /// A reservation of inferences.
    Reservation {
        /// Its id.
        id: u64,
        /// Where its range starts.
        start: u64,
        /// How many it holds.
        granted: u64,
    },
    /// Done (a settled reservation).
    Done,
    /// The service failed.
    Failed(String),
}

/// A frame or message could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageError {
    /// The length prefix announces more than [`MAX_FRAME_LEN`].
    TooLarge(usize),
    /// The frame does not hold one message of the expected type.
    Malformed,
    /// The message cannot be encoded.
    Encode,
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(n) => write!(
                f,
                "message of {n} bytes exceeds the limit of {MAX_FRAME_LEN}"
            ),
            Self::Malformed => f.write_str("malformed message"),
            Self::Encode => f.write_str("message cannot be encoded"),
        }
    }
}

impl core::error::Error for MessageError {}

/// Encodes `message` as one frame (length prefix included).
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, MessageError> {
    let mut out = Vec::from([0u8; FRAME_HEADER_LEN]);
    ciborium::into_writer(message, &mut out).map_err(|_| MessageError::Encode)?;
    let len = out.len() - FRAME_HEADER_LEN;
    if len > MAX_FRAME_LEN {
        return Err(MessageError::TooLarge(len));
    }
    out[..FRAME_HEADER_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(out)
}

/// The body length a frame header announces, checked against [`MAX_FRAME_LEN`].
pub fn frame_len(header: [u8; FRAME_HEADER_LEN]) -> Result<usize, MessageError> {
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_FRAME_LEN {
        return Err(MessageError::TooLarge(len));
    }
    Ok(len)
}

/// Decodes a frame body as exactly one message of type `T`.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, MessageError> {
    let mut rest = body;
    let message = ciborium::de::from_reader_with_recursion_limit(&mut rest, 16)
        .map_err(|_| MessageError::Malformed)?;
    if !rest.is_empty() {
        return Err(MessageError::Malformed);
    }
    Ok(message)
}
