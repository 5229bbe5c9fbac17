//! [`LinuxPlatform`]: the platform services of the Linux backend.

use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use omg_enclave::platform::{Counter, ModelScope, Reservation, sign_enclave_token};
use omg_enclave::{Platform, PlatformError};
use omg_protocol::OsRng;
use omg_protocol::rand_core::CryptoRng;
use omg_protocol::sealed::SealingKey;

use crate::counters::{Counters, Holder};
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
///
/// Inference reservations are held in this process's name; those the enclave has not settled
/// when the platform is dropped (the enclave died mid-session) are settled then as used
/// whole, so a killed session's block is counted and never handed out again.
pub struct LinuxPlatform {
    identity: DeviceIdentity,
    measurement: [u8; 32],
    counters: Counters,
    /// Reservations granted and not yet settled: vendor key id, model id, reservation.
    open: Vec<([u8; omg_protocol::KEY_ID_LEN], String, Reservation)>,
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
            open: Vec::new(),
            rng: OsRng::default(),
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

    fn sealing_key(&mut self, scope: ModelScope<'_>) -> Result<SealingKey, PlatformError> {
        SealingKey::derive(
            self.identity.huk(),
            &self.measurement,
            &scope.vendor,
            scope.model_id,
        )
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

    fn counter(&mut self, scope: ModelScope<'_>, counter: Counter) -> Result<u64, PlatformError> {
        self.counters
            .get(scope, counter)
            .map_err(|e| platform_error("counter", e))
    }

    fn raise_epoch(&mut self, scope: ModelScope<'_>, value: u64) -> Result<u64, PlatformError> {
        self.counters
            .raise_epoch(scope, value)
            .map_err(|e| platform_error("counter", e))
    }

    fn reserve_inferences(
        &mut self,
        scope: ModelScope<'_>,
        wanted: u64,
        quota: u64,
    ) -> Result<Reservation, PlatformError> {
        let holder = Holder::current().map_err(|e| platform_error("counter", e))?;
        let reservation = self
            .counters
            .reserve(scope, wanted, quota, holder)
            .map_err(|e| platform_error("counter", e))?;
        if reservation.granted > 0 {
            self.open
                .push((scope.vendor, scope.model_id.to_string(), reservation));
        }
        Ok(reservation)
    }

    fn settle_inferences(
        &mut self,
        scope: ModelScope<'_>,
        reservation: Reservation,
        used: u64,
    ) -> Result<(), PlatformError> {
        self.counters
            .settle(scope, reservation, used)
            .map_err(|e| platform_error("counter", e))?;
        self.open.retain(|(vendor, model_id, r)| {
            !(*vendor == scope.vendor && model_id == scope.model_id && *r == reservation)
        });
        Ok(())
    }
}

impl Drop for LinuxPlatform {
    fn drop(&mut self) {
        for (vendor, model_id, reservation) in std::mem::take(&mut self.open) {
            let scope = ModelScope {
                vendor,
                model_id: &model_id,
            };
            // Counted whole; should this fail, the next reservation folds it whole anyway once
            // this process is gone.
            let _ = self
                .counters
                .settle(scope, reservation, reservation.granted);
        }
    }
}
