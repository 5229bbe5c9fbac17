//! Phase 1, preparation: attest to the vendor, receive the model key, seal it.
//!
//! ```text
//! host: challenge nonce ──► Preparation::begin ──► token, enclave public key ──► vendor
//! host: key release, licence ──► Preparation::finish ──► sealed blob ──► host stores it
//! ```
//!
//! The HPKE private key never leaves the [`Preparation`] value, which is consumed by
//! [`Preparation::finish`], so a key release can be opened at most once; the licence must name
//! the same activation (the token's hash), so an older licence cannot ride on a new release.

use alloc::vec::Vec;

use omg_protocol::key_release::{HpkeKeyPair, KeyRelease};
use omg_protocol::licence::Licence;
use omg_protocol::package::{Package, VerifiedPackage};
use omg_protocol::sealed::SealedContent;
use omg_protocol::{VerifyingKey, ct_eq, sha256};

use crate::EnclaveError;
use crate::platform::{ModelScope, Platform};

/// A preparation in progress: the package is verified and the token made; waiting for the
/// vendor's key release and licence.
pub struct Preparation {
    package: VerifiedPackage,
    vendor_key: VerifyingKey,
    enclave_key: HpkeKeyPair,
    token: Vec<u8>,
}

impl core::fmt::Debug for Preparation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Preparation")
            .field("model_id", &self.package.header().model_id)
            .field("version", &self.package.header().version)
            .finish_non_exhaustive()
    }
}

impl Preparation {
    /// Checks the package's vendor signature, makes the enclave's ephemeral HPKE key pair and
    /// has the platform sign an attestation token over `nonce` and the key's hash.
    pub fn begin<P: Platform + ?Sized>(
        platform: &mut P,
        package: &[u8],
        vendor_key: &VerifyingKey,
        nonce: &[u8],
    ) -> Result<Self, EnclaveError> {
        let package = Package::open_signed(package, vendor_key)?;
        let enclave_key = HpkeKeyPair::generate(platform.rng());
        let token = platform.attest(nonce, enclave_key.public_key_hash())?;
        Ok(Self {
            package,
            vendor_key: *vendor_key,
            enclave_key,
            token,
        })
    }

    /// The attestation token to send to the vendor.
    pub fn token(&self) -> &[u8] {
        &self.token
    }

    /// The enclave's HPKE public key (X25519) to send with the token.
    pub fn enclave_public_key(&self) -> [u8; 32] {
        self.enclave_key.public_key.to_bytes()
    }

    /// Model id of the package being provisioned.
    pub fn model_id(&self) -> &str {
        &self.package.header().model_id
    }

    /// Model version of the package being provisioned.
    pub fn version(&self) -> u32 {
        self.package.header().version
    }

    /// Opens the vendor's key release, checks the licence (vendor signature, this device,
    /// this model and version, this activation: the SHA-256 of this preparation's token, as
    /// the key release's AAD), proves that the key decrypts the package, raises the epoch
    /// counter of this vendor's model to the licence's epoch, and returns the sealed blob for the
    /// host to store with the licence's terms.
    pub fn finish<P: Platform + ?Sized>(
        self,
        platform: &mut P,
        key_release: &[u8],
        licence: &[u8],
    ) -> Result<Provisioned, EnclaveError> {
        let header = self.package.header();
        let released = KeyRelease::open(key_release, &self.enclave_key.private_key, &self.token)?;
        released.check_model(&header.model_id, header.version)?;
        let terms = Licence::verify(licence, &self.vendor_key)?;
        if !ct_eq(&terms.device_ueid, &platform.device_ueid()) {
            return Err(EnclaveError::Mismatch("the licence is for another device"));
        }
        if terms.model_id != header.model_id || terms.model_version != header.version {
            return Err(EnclaveError::Mismatch(
                "the licence is for another model or version",
            ));
        }
        if !ct_eq(&terms.activation, &sha256(&self.token)) {
            return Err(EnclaveError::Mismatch(
                "the licence answers another activation than this key release",
            ));
        }
        // A wrong key would only be noticed offline, too late: check it now. The plaintext
        // is zeroized when `bundle` is dropped.
        let bundle = self.package.decrypt(&released.content_key)?;
        drop(bundle);
        let scope = ModelScope::new(&self.vendor_key, &header.model_id);
        platform.raise_epoch(scope, terms.epoch.into())?;
        let sealing_key = platform.sealing_key(scope)?;
        let content = SealedContent {
            content_key: released.content_key,
            licence: licence.to_vec(),
        };
        Ok(Provisioned {
            sealed: sealing_key.seal(&content, platform.rng())?,
            licence: terms,
        })
    }
}

/// The outcome of a preparation.
#[derive(Debug)]
pub struct Provisioned {
    /// The sealed blob (content key and licence) for the host to store.
    pub sealed: Vec<u8>,
    /// The licence's terms.
    pub licence: Licence,
}
