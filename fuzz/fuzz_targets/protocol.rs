//! The protocol parsers on arbitrary bytes: attestation token (strict and lenient), model
//! package, licence, key release, sealed blob, device maker's endorsement and challenge. The
//! first byte picks the parser.
//! Signatures fail on mutated input, so what this exercises is everything before and around
//! them: size limits, canonical CBOR decoding, COSE structure and header checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omg_protocol::challenge::Challenge;
use omg_protocol::endorsement::Endorsement;
use omg_protocol::key_release::{HpkePrivateKey, KeyRelease};
use omg_protocol::licence::Licence;
use omg_protocol::package::Package;
use omg_protocol::token::Token;
use omg_protocol::{SigningKey, sealed};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let vendor = SigningKey::from_slice(&[7u8; 32]).expect("valid scalar");
    let key = vendor.verifying_key();
    match selector % 7 {
        0 => {
            let _ = Token::verify(rest, key);
            let _ = Token::verify_foreign(rest, key);
        }
        1 => {
            let _ = Package::open_signed(rest, key);
        }
        2 => {
            let _ = Licence::verify(rest, key);
        }
        3 => {
            let enclave = HpkePrivateKey::from_bytes(&[3u8; 32]).expect("valid X25519 key");
            let _ = KeyRelease::open(rest, &enclave, b"token");
        }
        4 => {
            let _ = sealed::unseal(rest, &[9u8; 32], &[1u8; 32], &[2u8; 16], "model");
        }
        5 => {
            let _ = Endorsement::maker_key_id(rest);
            let _ = Endorsement::verify(rest, key);
        }
        _ => {
            let _ = Challenge::from_bytes(rest);
        }
    }
});
