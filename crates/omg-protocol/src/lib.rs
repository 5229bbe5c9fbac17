//! # omg-protocol: the protocol formats of Offline Model Guard
//!
//! `no_std` + `alloc`, no I/O, no `unsafe`, no home-made cryptographic primitives. Every
//! primitive comes from RustCrypto (AES-256-GCM, P-256 ECDSA, SHA-256, HKDF), the `hpke`
//! crate (RFC 9180) and `coset` (COSE, RFC 9052). Randomness is always handed in by the caller
//! (the platform) as a [`rand_core::CryptoRng`]; time is always handed in as seconds since the
//! Unix epoch.
//!
//! | format | module | wire form | max size |
//! |---|---|---|---|
//! | model package `.omgpkg` | [`package`] | COSE_Sign1 (ES256) over `[1, header, COSE_Encrypt0 (A256GCM)]` | 64 MiB |
//! | attestation token | [`token`] | EAT (RFC 9711) with PSA claims (RFC 9783), COSE_Sign1 (ES256) | 4 KiB |
//! | attestation token, OP-TEE backend | [`optee`] | the same EAT, ES256 by an ephemeral key, OP-TEE attestation PTA evidence (RSASSA-PSS) in a protected header | 4 KiB |
//! | challenge | [`challenge`] | CBOR map `{1: nonce, 2: expires_at}` | 128 B |
//! | key release | [`key_release`] | CBOR `[1, enc, ct]`, HPKE base X25519/HKDF-SHA256/AES-256-GCM | 1 KiB |
//! | licence | [`licence`] | COSE_Sign1 (ES256) over a CBOR map | 4 KiB |
//! | endorsement (device maker) | [`endorsement`] | COSE_Sign1 (ES256) over a CBOR map | 1 KiB |
//! | pipeline bundle (package plaintext) | [`bundle`] | canonical CBOR map, models as byte strings | 64 MiB |
//! | sealed blob | [`sealed`] | CBOR `[1, nonce, ct]`, AES-256-GCM under HKDF(HUK, measurement) | 64 KiB |
//!
//! Protocol (docs/design.md, "Phases"): the vendor issues a [`challenge::Challenge`]; the enclave
//! makes an [`key_release::HpkeKeyPair`]; the platform signs a [`token::Token`] over the nonce,
//! the measurement and the hash of the enclave's HPKE public key; the vendor verifies it
//! ([`token::Token::verify`], [`token::Claims::verify_against`]), answers with a
//! [`key_release::KeyRelease`] and a signed [`licence::Licence`]; the enclave seals both with
//! [`sealed::seal`]. Offline, the enclave unseals ([`sealed::unseal`]), checks the package
//! signature ([`package::Package::open_signed`]) and the licence ([`licence::Licence::check`])
//! and decrypts the model ([`package::VerifiedPackage::decrypt_in_place`]).
//!
//! Parsers reject malformed, truncated, oversized, non-canonical or tampered input with a
//! [`ProtocolError`] naming the format and field; they never panic. Secrets live in
//! zeroizing types ([`ContentKey`], [`zeroize::Zeroizing`]); secret-dependent comparisons use
//! `subtle`.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

#[cfg(feature = "api")]
pub mod api;
#[cfg(feature = "base64")]
pub mod base64;
pub mod bundle;
mod cbor;
pub mod challenge;
pub mod cose;
pub mod endorsement;
pub mod error;
pub mod hex;
pub mod key_release;
pub mod keys;
pub mod licence;
pub mod optee;
pub mod package;
pub mod sealed;
pub mod token;

pub use error::{Format, ProtocolError, Result};
pub use keys::{
    ContentKey, KEY_ID_LEN, ct_eq, generate_signing_key, key_id, public_key_sec1, sha256,
    signing_key_from_bytes, ueid, verifying_key_from_sec1,
};
/// The operating system's cryptographic RNG (getrandom's `SysRng`) as an infallible
/// [`rand_core::CryptoRng`]: make one with `OsRng::default()`. If the OS cannot deliver
/// randomness (on Linux only before the entropy pool is initialised at boot, where
/// `getrandom` blocks instead), it panics rather than hand out weak keys or nonces.
#[cfg(feature = "getrandom")]
pub type OsRng = rand_core::UnwrapErr<getrandom::SysRng>;

/// The P-256 ECDSA key types used for every signature of this crate.
pub use p256::ecdsa::{SigningKey, VerifyingKey};
/// The RNG traits (rand_core 0.10) expected by every function that needs randomness.
pub use rand_core;
/// The zeroize crate, for [`zeroize::Zeroizing`] in signatures.
pub use zeroize;
