//! [`LinuxPlatform`]: the platform services of the Linux backend.

use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use omg_enclave::platform::{Counter, sign_enclave_token};
use omg_enclave::{Platform, PlatformError};
use omg_protocol::OsRng;
use omg_protocol::rand_core::CryptoRng;
use omg_protocol::sealed::SealingKey;

use crate::counters::Counters;
use crate::identity::DeviceIdentity;

/// Implementation id claimed in tokens: SHA-256 of `"omg linux backend v1"`.
pub const IMPLEMENTATION_ID: &str = "omg linux backend v1";
/// Signer id claimed for enclave images: Linux enclave images are not signed, so this is the
/// SHA-256 of `"omg unsigned image"`; verifiers rely on the measurement alone.
pub const SIGNER_ID: &str = "omg unsigned image";

/// SHA-256 of a file's bytes (the measurement of an enclave image).
pub fn measure_file(path: &Path) -> io::Result<[u8; 32]> {
    let bytes = std::fs::read(path)?;
    Ok(omg_protocol::sha256(&bytes))
}

/// The Linux backend's platform: device identity, the measurement of the enclave image it
/// launched, counters in files, the OS RNG and the system clock.
pub struct LinuxPlatform {
    identity: DeviceIdentity,
    measurement: [u8; 32],
    counters: Counters,
    rng: OsRng,
}

impl std::fmt::Debug for LinuxPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxPlatform")
            .field("identity", &self.identity)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl LinuxPlatform {
    /// A platform for the enclave image measured as `measurement`, with the identity in its
    /// directory and the counters in its `counters` subdirectory.
    pub fn new(identity: DeviceIdentity, measurement: [u8; 32]) -> Self {
        let counters = Counters::new(&identity.dir().join("counters"));
        Self {
            identity,
            measurement,
            counters,
            rng: OsRng,
        }
    }

    /// The device identity.
    pub fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }
}

fn platform_error(service: &'static str, e: io::Error) -> PlatformError {
    PlatformError::new(service, e.to_string())
}

impl Platform for LinuxPlatform {
    fn measurement(&self) -> [u8; 32] {
        self.measurement
    }

    fn device_ueid(&self) -> [u8; 33] {
        self.identity.ueid()
    }

    fn attest(
        &mut self,
        nonce: &[u8],
        enclave_key_hash: [u8; 32],
    ) -> Result<Vec<u8>, PlatformError> {
        sign_enclave_token(
            self.identity.attestation_key(),
            omg_protocol::sha256(IMPLEMENTATION_ID.as_bytes()),
            self.measurement,
            omg_protocol::sha256(SIGNER_ID.as_bytes()),
            nonce,
            enclave_key_hash,
        )
    }

    fn sealing_key(&mut self, model_id: &str) -> Result<SealingKey, PlatformError> {
        SealingKey::derive(self.identity.huk(), &self.measurement, model_id)
            .map_err(|e| PlatformError::new("sealing key", e.to_string()))
    }

    fn rng(&mut self) -> &mut dyn CryptoRng {
        &mut self.rng
    }

    fn now(&mut self) -> Result<u64, PlatformError> {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|_| PlatformError::new("time", "the system clock is before 1970"))
    }

    fn counter(&mut self, model_id: &str, counter: Counter) -> Result<u64, PlatformError> {
        self.counters
            .get(model_id, counter)
            .map_err(|e| platform_error("counter", e))
    }

    fn raise_counter(
        &mut self,
        model_id: &str,
        counter: Counter,
        value: u64,
    ) -> Result<u64, PlatformError> {
        self.counters
            .raise(model_id, counter, value)
            .map_err(|e| platform_error("counter", e))
    }
}
