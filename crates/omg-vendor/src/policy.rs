//! The vendor's licensing policy for one model, as written in a TOML file.
//!
//! ```toml
//! allowed_measurements = ["<64 hex digits: SHA-256 of the enclave image>"]
//! max_devices = 100
//! not_after = 1893456000          # licence expiry, seconds since the Unix epoch (inclusive)
//! revocation_epoch = 0            # optional, default 0
//! output_policy = "label"         # "label" | "label_and_score" | "all_scores"; default "label"
//! input_sources = ["mic", "file"] # any of "mic", "file", "stdin"; default all three
//! inference_quota = 100000        # optional; absent = unlimited
//! allow_insecure_lifecycle = false  # optional; true accepts tokens not in the "secured" state
//! lease_seconds = 86400           # optional; absent = licences run to not_after offline
//! offline_grace_seconds = 3600    # optional, default 0; needs lease_seconds
//!
//! [backends.optee]                # optional: devices of the OP-TEE (TrustZone) backend
//! measurements = ["<64 hex digits: the attestation PTA's hash of the TA's memory>"]
//! ```
//!
//! Reference values are per backend: `allowed_measurements` are the Linux backend's (the
//! SHA-256 of the enclave image; the only backend before OP-TEE, hence the name), and
//! `[backends.optee] measurements` the OP-TEE backend's: the TA memory hash that OP-TEE's
//! attestation PTA reports (`PTA_ATTESTATION_HASH_TA_MEMORY`). Never list an OP-TEE TA's
//! signed-header digest or the OP-TEE core's memory hash there: the PTA signs those for any
//! normal-world caller over a nonce of its choice (see `omg_protocol::optee`). A token is
//! checked against its own backend's list only, so a measurement allowed for one backend is
//! refused from the other. At least one list must be non-empty; `allowed_measurements` may be
//! left out when the OP-TEE list is given.
//!
//! With `lease_seconds`, each licence is a lease: the device should renew it online (a fresh
//! attestation) `lease_seconds` after its activation, and the enclave refuses it once
//! `offline_grace_seconds` more have passed (never later than `not_after`). A revoked device or
//! model version gets no renewal, so revocation reaches the device within
//! `lease_seconds + offline_grace_seconds`. Each is at most [`MAX_LEASE_SECONDS`] (ten years),
//! and a lease of 0 is refused.
//!
//! Unknown keys are rejected, so a misspelt option cannot silently loosen the policy.

use std::fmt;

use omg_protocol::licence::{InputSource, InputSources, Lease, OutputPolicy};
use serde::{Deserialize, Serialize};

use crate::device::Backend;
use omg_protocol::hex;

/// What the enclave may reveal about a decision (TOML / JSON names of
/// [`omg_protocol::licence::OutputPolicy`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputPolicyName {
    /// Only the label.
    #[default]
    Label,
    /// The label and its score.
    LabelAndScore,
    /// The label and every class score.
    AllScores,
}

impl From<OutputPolicyName> for OutputPolicy {
    fn from(p: OutputPolicyName) -> Self {
        match p {
            OutputPolicyName::Label => OutputPolicy::LabelOnly,
            OutputPolicyName::LabelAndScore => OutputPolicy::LabelAndScore,
            OutputPolicyName::AllScores => OutputPolicy::AllScores,
        }
    }
}

/// An audio input source (TOML / JSON names of [`omg_protocol::licence::InputSource`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputSourceName {
    /// A microphone.
    Mic,
    /// A file.
    File,
    /// Standard input.
    Stdin,
}

impl From<InputSourceName> for InputSource {
    fn from(s: InputSourceName) -> Self {
        match s {
            InputSourceName::Mic => InputSource::Mic,
            InputSourceName::File => InputSource::File,
            InputSourceName::Stdin => InputSource::Stdin,
        }
    }
}

fn all_sources() -> Vec<InputSourceName> {
    vec![
        InputSourceName::Mic,
        InputSourceName::File,
        InputSourceName::Stdin,
    ]
}

/// Longest lease and longest offline grace a policy may set: ten years, in seconds.
pub const MAX_LEASE_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// The licensing policy of one model (all its versions).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Linux-backend enclave measurements allowed to receive the key: hex SHA-256 (64 hex
    /// digits) each. Every software component of a Linux-backend token must carry one of them.
    #[serde(default)]
    pub allowed_measurements: Vec<String>,
    /// Maximum number of distinct devices that may activate the model (all versions).
    pub max_devices: u32,
    /// Licence expiry (inclusive), seconds since the Unix epoch. No activation after it.
    pub not_after: u64,
    /// Minimum revocation epoch written into licences (the store may hold a higher one).
    #[serde(default)]
    pub revocation_epoch: u32,
    /// Output policy written into licences.
    #[serde(default)]
    pub output_policy: OutputPolicyName,
    /// Allowed input sources written into licences.
    #[serde(default = "all_sources")]
    pub input_sources: Vec<InputSourceName>,
    /// Optional inference quota written into licences; `None` = unlimited.
    #[serde(default)]
    pub inference_quota: Option<u64>,
    /// Accept tokens whose PSA security lifecycle is not "secured" (development only).
    #[serde(default)]
    pub allow_insecure_lifecycle: bool,
    /// Lease length in seconds: the licence asks for an online renewal this long after its
    /// activation; `None` = no lease (the licence runs to `not_after`).
    #[serde(default)]
    pub lease_seconds: Option<u64>,
    /// How long after the renewal time the licence still works offline, in seconds.
    #[serde(default)]
    pub offline_grace_seconds: u64,
    /// Reference values of the other backends (`[backends.optee]`).
    #[serde(default, skip_serializing_if = "Backends::is_empty")]
    pub backends: Backends,
}

/// The reference values of backends other than Linux (`[backends.*]` tables).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backends {
    /// The OP-TEE backend (`[backends.optee]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optee: Option<BackendPolicy>,
}

impl Backends {
    fn is_empty(&self) -> bool {
        self.optee.is_none()
    }
}

/// One backend's reference values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendPolicy {
    /// Allowed measurements, hex SHA-256 (64 hex digits) each. For OP-TEE: the attestation
    /// PTA's hash of the TA's code and read-only data in memory.
    pub measurements: Vec<String>,
}

/// Why a policy is invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// The TOML (or JSON) text does not parse into a policy.
    Parse(String),
    /// A field has an invalid value.
    Invalid(&'static str),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Parse(e) => write!(f, "policy does not parse: {e}"),
            PolicyError::Invalid(e) => write!(f, "invalid policy: {e}"),
        }
    }
}

impl std::error::Error for PolicyError {}

impl Policy {
    /// Parses and validates a policy from TOML.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks the values: at least one measurement (Linux or OP-TEE; an OP-TEE table, if
    /// present, not empty), each 64 hex digits; at least one device;
    /// at least one input source; a lease (if any) of 1 to [`MAX_LEASE_SECONDS`] seconds, and an
    /// offline grace of at most as much, only with a lease.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let optee = self.backends.optee.as_ref().map(|b| &b.measurements);
        if optee.is_some_and(Vec::is_empty) {
            return Err(PolicyError::Invalid(
                "backends.optee.measurements must not be empty (or leave the table out)",
            ));
        }
        if self.allowed_measurements.is_empty() && optee.is_none() {
            return Err(PolicyError::Invalid(
                "allowed_measurements must not be empty (or give [backends.optee] measurements)",
            ));
        }
        if self
            .allowed_measurements
            .iter()
            .any(|m| hex::decode_n::<32>(m).is_none())
        {
            return Err(PolicyError::Invalid(
                "allowed_measurements: each must be 64 hex digits (SHA-256)",
            ));
        }
        if optee
            .into_iter()
            .flatten()
            .any(|m| hex::decode_n::<32>(m).is_none())
        {
            return Err(PolicyError::Invalid(
                "backends.optee.measurements: each must be 64 hex digits (SHA-256)",
            ));
        }
        if self.max_devices == 0 {
            return Err(PolicyError::Invalid("max_devices must be at least 1"));
        }
        if self.input_sources.is_empty() {
            return Err(PolicyError::Invalid("input_sources must not be empty"));
        }
        match self.lease_seconds {
            Some(0) => return Err(PolicyError::Invalid("lease_seconds must be at least 1")),
            Some(s) if s > MAX_LEASE_SECONDS => {
                return Err(PolicyError::Invalid(
                    "lease_seconds must be at most ten years (315360000)",
                ));
            }
            None if self.offline_grace_seconds != 0 => {
                return Err(PolicyError::Invalid(
                    "offline_grace_seconds needs lease_seconds",
                ));
            }
            _ => {}
        }
        if self.offline_grace_seconds > MAX_LEASE_SECONDS {
            return Err(PolicyError::Invalid(
                "offline_grace_seconds must be at most ten years (315360000)",
            ));
        }
        Ok(())
    }

    /// The lease of a licence activated at `now` and ending no later than `not_after`, if the
    /// policy sets one: renew after `now + lease_seconds`, usable until the grace has passed.
    pub fn lease(&self, now: u64) -> Option<Lease> {
        let renew_after = now.saturating_add(self.lease_seconds?);
        Some(Lease {
            renew_after,
            lease_until: renew_after
                .saturating_add(self.offline_grace_seconds)
                .min(self.not_after),
        })
    }

    /// The Linux backend's allowed measurements as bytes (invalid entries are skipped; see
    /// [`Policy::validate`]).
    pub fn measurements(&self) -> Vec<[u8; 32]> {
        self.measurements_for(Backend::Linux)
    }

    /// The allowed measurements of `backend` as bytes (empty when the policy lists none for
    /// it; invalid entries are skipped, see [`Policy::validate`]).
    pub fn measurements_for(&self, backend: Backend) -> Vec<[u8; 32]> {
        let list: &[String] = match backend {
            Backend::Linux => &self.allowed_measurements,
            Backend::Optee => self
                .backends
                .optee
                .as_ref()
                .map_or(&[][..], |b| &b.measurements[..]),
        };
        list.iter().filter_map(|m| hex::decode_n::<32>(m)).collect()
    }

    /// The input sources as the licence's bit set.
    pub fn input_source_set(&self) -> InputSources {
        let sources: Vec<InputSource> = self.input_sources.iter().map(|&s| s.into()).collect();
        InputSources::of(&sources)
    }

    pub(crate) fn to_json(&self) -> String {
        // A Policy always serializes (plain fields, string enums).
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(crate) fn from_json(text: &str) -> Result<Self, PolicyError> {
        serde_json::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))
    }
}
