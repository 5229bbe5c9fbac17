//! The licence: the vendor's signed terms for one model on one device.
//!
//! # Layout
//!
//! ```text
//! Licence = #6.18([                                  ; COSE_Sign1, see crate::cose
//!     << {1: -7, 3: "application/vnd.omg.licence+cbor", 4: kid} >>,   ; kid = key_id(vendor)
//!     {},
//!     << LicenceTerms >>,
//!     bstr .size 64
//! ])
//!
//! LicenceTerms = {
//!     1: bstr .size 33,     ; device UEID (token claim 256)
//!     2: tstr,              ; model id (1..=128 bytes)
//!     3: uint,              ; model version (u32)
//!     4: uint,              ; not after: seconds since the Unix epoch (u64), inclusive
//!     5: uint,              ; revocation epoch (u32)
//!     ? 6: uint,            ; inference quota (u64); absent = unlimited
//!     7: uint,              ; output policy: 0 label only, 1 label and score, 2 all scores
//!     8: uint,              ; allowed input sources, bit set: 1 mic, 2 file, 4 stdin
//!     9: bstr .size 32,     ; activation: SHA-256 of the attestation token this licence answers
//!     ? 10: uint,           ; renew after: seconds since the Unix epoch (u64)   } both or
//!     ? 11: uint,           ; lease until: seconds since the Unix epoch, incl.  } neither
//! }
//! ```
//!
//! Canonical CBOR, no other keys, at most [`MAX_LICENCE_LEN`] bytes in all. The content type in
//! the protected header keeps a licence from being confused with a package signed by the
//! same vendor key.
//!
//! Activation: the licence names the attestation token it was issued for by the token's
//! SHA-256, the same hash the key release uses as its AAD; the enclave accepts a licence only
//! with the key release of the same activation, so an older licence for the same device, model
//! and version cannot be paired with a newer key release.
//!
//! Lease: a licence with a lease is usable offline until `lease until` only; the device should
//! renew it online (a fresh attestation and activation) after `renew after`. A revoked device or
//! model version gets no renewal, so revocation reaches the device when its lease ends. Without
//! a lease the licence runs to its not-after.
//!
//! Revocation: the enclave knows a current revocation epoch (e.g. from its monotonic counter or
//! the newest licence it has seen); a licence whose epoch is lower is revoked.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use coset::cbor::value::Value;
use p256::ecdsa::{SigningKey, VerifyingKey};

use crate::cbor::{self, FieldMap};
use crate::cose;
use crate::error::{Format, ProtocolError, Result};
use crate::keys::{UEID_LEN, ct_eq};

/// Maximum encoded size of a licence.
pub const MAX_LICENCE_LEN: usize = 4096;
/// Maximum length of a model id (the same for every format).
pub use crate::package::MAX_MODEL_ID_LEN;
/// COSE content type of a licence.
pub const LICENCE_CONTENT_TYPE: &str = "application/vnd.omg.licence+cbor";

const F: Format = Format::Licence;
const KEYS: &[(i64, &str)] = &[
    (1, "device ueid"),
    (2, "model id"),
    (3, "model version"),
    (4, "not after"),
    (5, "revocation epoch"),
    (6, "inference quota"),
    (7, "output policy"),
    (8, "input sources"),
    (9, "activation"),
    (10, "renew after"),
    (11, "lease until"),
];

/// What the enclave may reveal about a decision; ordered from the most to the least
/// restrictive, so `a.min(b)` is the stricter of two policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OutputPolicy {
    /// Only the recognised label (and time).
    LabelOnly = 0,
    /// The label and its score.
    LabelAndScore = 1,
    /// The label and the scores of all classes.
    AllScores = 2,
}

impl OutputPolicy {
    pub(crate) fn from_u64(v: u64) -> Option<Self> {
        match v {
            0 => Some(Self::LabelOnly),
            1 => Some(Self::LabelAndScore),
            2 => Some(Self::AllScores),
            _ => None,
        }
    }
}

/// An audio input source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputSource {
    /// A microphone / capture device.
    Mic,
    /// A file.
    File,
    /// Standard input.
    Stdin,
}

impl InputSource {
    /// The source's bit in an [`InputSources`] set (and on the enclave's channels): mic 1,
    /// file 2, stdin 4.
    pub const fn bit(self) -> u8 {
        match self {
            InputSource::Mic => 1,
            InputSource::File => 2,
            InputSource::Stdin => 4,
        }
    }

    /// The source whose [`bit`](Self::bit) is `bit`, if any.
    pub const fn from_bit(bit: u8) -> Option<Self> {
        match bit {
            1 => Some(InputSource::Mic),
            2 => Some(InputSource::File),
            4 => Some(InputSource::Stdin),
            _ => None,
        }
    }
}

impl fmt::Display for InputSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputSource::Mic => "mic",
            InputSource::File => "file",
            InputSource::Stdin => "stdin",
        })
    }
}

/// A set of allowed input sources (bit 0 mic, bit 1 file, bit 2 stdin).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct InputSources(u8);

impl InputSources {
    /// No source.
    pub const NONE: Self = Self(0);
    /// Every source.
    pub const ALL: Self = Self(7);

    /// The set holding exactly `sources`.
    pub fn of(sources: &[InputSource]) -> Self {
        Self(sources.iter().fold(0, |acc, s| acc | s.bit()))
    }

    /// The set from its bits; `None` if an undefined bit is set.
    pub fn from_bits(bits: u8) -> Option<Self> {
        (bits & !7 == 0).then_some(Self(bits))
    }

    /// The raw bits.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether `source` is in the set.
    pub fn contains(self, source: InputSource) -> bool {
        self.0 & source.bit() != 0
    }
}

/// Why a licence refuses a use. Each reason is its own variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `now` is past the licence's not-after time.
    Expired {
        /// The licence's not-after (inclusive), seconds since the Unix epoch.
        not_after: u64,
        /// The caller's time.
        now: u64,
    },
    /// The licence is for another device.
    WrongDevice,
    /// The licence is for another model.
    WrongModel,
    /// The licence is for another version of the model.
    WrongVersion {
        /// The licensed version.
        licensed: u32,
        /// The version asked for.
        requested: u32,
    },
    /// The licence's revocation epoch is below the current epoch.
    Revoked {
        /// The licence's epoch.
        licence_epoch: u32,
        /// The current epoch.
        current_epoch: u32,
    },
    /// The input source is not allowed.
    SourceNotAllowed(InputSource),
    /// `now` is past the licence's lease: it must be renewed online.
    LeaseExpired {
        /// The lease's last second (inclusive), seconds since the Unix epoch.
        lease_until: u64,
        /// The caller's time.
        now: u64,
    },
    /// The inference quota is used up.
    QuotaExhausted {
        /// The licensed quota.
        quota: u64,
        /// Inferences used so far.
        used: u64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Expired { not_after, now } => {
                write!(f, "licence expired at {not_after} (now {now})")
            }
            Refusal::WrongDevice => f.write_str("licence is for another device"),
            Refusal::WrongModel => f.write_str("licence is for another model"),
            Refusal::WrongVersion {
                licensed,
                requested,
            } => write!(
                f,
                "licence is for model version {licensed}, not {requested}"
            ),
            Refusal::Revoked {
                licence_epoch,
                current_epoch,
            } => write!(
                f,
                "licence revoked (epoch {licence_epoch} < current epoch {current_epoch})"
            ),
            Refusal::LeaseExpired { lease_until, now } => write!(
                f,
                "licence lease ended at {lease_until} (now {now}); renew it online with `omg renew`"
            ),
            Refusal::SourceNotAllowed(s) => write!(f, "input source {s} is not allowed"),
            Refusal::QuotaExhausted { quota, used } => {
                write!(f, "inference quota exhausted ({used} of {quota} used)")
            }
        }
    }
}

impl core::error::Error for Refusal {}

/// A licence's lease: how long it may be used offline before an online renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// When the device should renew online, seconds since the Unix epoch.
    pub renew_after: u64,
    /// Last second (inclusive) at which the licence may be used without renewal.
    pub lease_until: u64,
}

/// The terms of a licence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Licence {
    /// UEID of the licensed device (the token's instance id).
    pub device_ueid: [u8; UEID_LEN],
    /// The licensed model id.
    pub model_id: String,
    /// The licensed model version.
    pub model_version: u32,
    /// Last second (inclusive) at which the licence is valid, seconds since the Unix epoch.
    pub not_after: u64,
    /// Revocation epoch.
    pub epoch: u32,
    /// Maximum number of inferences, `None` for unlimited.
    pub quota: Option<u64>,
    /// Output policy.
    pub output_policy: OutputPolicy,
    /// Allowed input sources.
    pub input_sources: InputSources,
    /// SHA-256 of the attestation token this licence answers (the key release's AAD).
    pub activation: [u8; 32],
    /// The lease, `None` for a licence that runs to its not-after.
    pub lease: Option<Lease>,
}

fn invalid(field: &'static str, reason: &'static str) -> ProtocolError {
    ProtocolError::InvalidField {
        format: F,
        field,
        reason,
    }
}

impl Licence {
    fn to_cbor(&self) -> Result<Vec<u8>> {
        if self.model_id.is_empty() || self.model_id.len() > MAX_MODEL_ID_LEN {
            return Err(ProtocolError::InvalidInput {
                format: F,
                field: "model id",
                reason: "must be 1..=128 bytes",
            });
        }
        let mut m = alloc::vec![
            (1, Value::Bytes(self.device_ueid.to_vec())),
            (2, Value::Text(self.model_id.clone())),
            (3, cbor::u(self.model_version.into())),
            (4, cbor::u(self.not_after)),
            (5, cbor::u(self.epoch.into())),
        ];
        if let Some(q) = self.quota {
            m.push((6, cbor::u(q)));
        }
        m.push((7, cbor::u(self.output_policy as u64)));
        m.push((8, cbor::u(self.input_sources.bits().into())));
        m.push((9, Value::Bytes(self.activation.to_vec())));
        if let Some(lease) = self.lease {
            m.push((10, cbor::u(lease.renew_after)));
            m.push((11, cbor::u(lease.lease_until)));
        }
        cbor::encode(&cbor::int_map(m), F)
    }

    fn from_cbor(bytes: &[u8]) -> Result<Self> {
        let value = cbor::decode_canonical(bytes, F)?;
        let mut map = FieldMap::parse(value, F, "licence terms must be a CBOR map", KEYS, true)?;
        let device_ueid =
            cbor::bytes_n::<UEID_LEN>(map.require(1, "device ueid")?, F, "device ueid")?;
        let model_id = cbor::text(map.require(2, "model id")?, F, "model id", MAX_MODEL_ID_LEN)?;
        let model_version = cbor::uint32(map.require(3, "model version")?, F, "model version")?;
        let not_after = cbor::uint(map.require(4, "not after")?, F, "not after")?;
        let epoch = cbor::uint32(map.require(5, "revocation epoch")?, F, "revocation epoch")?;
        let quota = map
            .take(6)
            .map(|v| cbor::uint(v, F, "inference quota"))
            .transpose()?;
        let output_policy = OutputPolicy::from_u64(cbor::uint(
            map.require(7, "output policy")?,
            F,
            "output policy",
        )?)
        .ok_or(invalid("output policy", "must be 0, 1 or 2"))?;
        let bits = cbor::uint(map.require(8, "input sources")?, F, "input sources")?;
        let input_sources = u8::try_from(bits)
            .ok()
            .and_then(InputSources::from_bits)
            .ok_or(invalid("input sources", "undefined source bit set"))?;
        let activation = cbor::bytes_n::<32>(map.require(9, "activation")?, F, "activation")?;
        let renew_after = map.take(10).map(|v| cbor::uint(v, F, "renew after"));
        let lease_until = map.take(11).map(|v| cbor::uint(v, F, "lease until"));
        let lease = match (renew_after.transpose()?, lease_until.transpose()?) {
            (Some(renew_after), Some(lease_until)) => Some(Lease {
                renew_after,
                lease_until,
            }),
            (None, None) => None,
            _ => return Err(invalid("lease", "renew after and lease until go together")),
        };
        Ok(Licence {
            device_ueid,
            model_id,
            model_version,
            not_after,
            epoch,
            quota,
            output_policy,
            input_sources,
            activation,
            lease,
        })
    }

    /// Signs the licence with the vendor key.
    pub fn sign(&self, vendor_key: &SigningKey) -> Result<Vec<u8>> {
        let bytes = cose::sign(self.to_cbor()?, vendor_key, Some(LICENCE_CONTENT_TYPE), F)?;
        cbor::check_size(&bytes, MAX_LICENCE_LEN, F)?;
        Ok(bytes)
    }

    /// Verifies a licence signed by `vendor_public_key` and returns its terms (not yet checked
    /// against a use: see [`Licence::check`]).
    pub fn verify(bytes: &[u8], vendor_public_key: &VerifyingKey) -> Result<Self> {
        let payload = cose::verify_strict(
            bytes,
            vendor_public_key,
            Some(LICENCE_CONTENT_TYPE),
            F,
            MAX_LICENCE_LEN,
        )?;
        Self::from_cbor(&payload)
    }

    /// Decides whether this licence allows running `model_id` version `version` on the device
    /// `device_ueid` from `source` at time `now`, given the current revocation epoch.
    /// Checks in this order: device, model, version, revocation, expiry, lease, source.
    pub fn check(
        &self,
        now: u64,
        device_ueid: &[u8],
        model_id: &str,
        version: u32,
        current_epoch: u32,
        source: InputSource,
    ) -> Result<(), Refusal> {
        if !ct_eq(&self.device_ueid, device_ueid) {
            return Err(Refusal::WrongDevice);
        }
        if self.model_id != model_id {
            return Err(Refusal::WrongModel);
        }
        if self.model_version != version {
            return Err(Refusal::WrongVersion {
                licensed: self.model_version,
                requested: version,
            });
        }
        if self.epoch < current_epoch {
            return Err(Refusal::Revoked {
                licence_epoch: self.epoch,
                current_epoch,
            });
        }
        if now > self.not_after {
            return Err(Refusal::Expired {
                not_after: self.not_after,
                now,
            });
        }
        if let Some(lease) = self.lease
            && now > lease.lease_until
        {
            return Err(Refusal::LeaseExpired {
                lease_until: lease.lease_until,
                now,
            });
        }
        if !self.input_sources.contains(source) {
            return Err(Refusal::SourceNotAllowed(source));
        }
        Ok(())
    }

    /// Checks the inference quota: `used` inferences already made, one more requested.
    pub fn check_quota(&self, used: u64) -> Result<(), Refusal> {
        match self.quota {
            Some(quota) if used >= quota => Err(Refusal::QuotaExhausted { quota, used }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(lease: Option<Lease>) -> Licence {
        Licence {
            device_ueid: [1; UEID_LEN],
            model_id: "m".into(),
            model_version: 1,
            not_after: 100,
            epoch: 0,
            quota: None,
            output_policy: OutputPolicy::LabelOnly,
            input_sources: InputSources::ALL,
            activation: [2; 32],
            lease,
        }
    }

    /// The encoded terms with the entry of key `drop` left out.
    fn without(licence: &Licence, drop: i64) -> Vec<u8> {
        let Value::Map(entries) = cbor::decode_canonical(&licence.to_cbor().unwrap(), F).unwrap()
        else {
            unreachable!("terms are a map");
        };
        let kept = entries
            .into_iter()
            .filter(|(k, _)| *k != Value::Integer(drop.into()))
            .collect();
        cbor::encode(&Value::Map(kept), F).unwrap()
    }

    #[test]
    fn activation_is_required_and_the_lease_is_both_fields_or_none() {
        let leased = terms(Some(Lease {
            renew_after: 50,
            lease_until: 60,
        }));
        assert_eq!(
            Licence::from_cbor(&leased.to_cbor().unwrap()),
            Ok(leased.clone())
        );
        assert!(Licence::from_cbor(&without(&leased, 9)).is_err());
        for half in [10, 11] {
            assert_eq!(
                Licence::from_cbor(&without(&leased, half)),
                Err(invalid("lease", "renew after and lease until go together"))
            );
        }
        let plain = terms(None);
        assert_eq!(Licence::from_cbor(&plain.to_cbor().unwrap()), Ok(plain));
    }
}
