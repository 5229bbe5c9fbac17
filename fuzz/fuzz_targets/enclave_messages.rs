//! The enclave's message frames on arbitrary bytes: a 4-byte little-endian length, then CBOR.
//! The first byte picks the message type: host requests and platform replies (what the enclave
//! decodes from outside), and enclave replies and platform requests (what the host and the
//! platform decode from the enclave). Whatever decodes must encode again and decode to the
//! same message.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use omg_enclave::messages::{
    EnclaveReply, FRAME_HEADER_LEN, HostRequest, PlatformReply, PlatformRequest, decode, encode,
    frame_len,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Decodes one frame as `T`; on success, checks the encode/decode round trip.
fn frame<T: Serialize + DeserializeOwned + PartialEq + core::fmt::Debug>(data: &[u8]) {
    let Some((header, body)) = data.split_first_chunk::<FRAME_HEADER_LEN>() else {
        return;
    };
    let Ok(len) = frame_len(*header) else { return };
    let Some(body) = body.get(..len) else { return };
    let Ok(message) = decode::<T>(body) else {
        return;
    };
    let again = encode(&message).expect("a decoded message encodes");
    let back: T = decode(&again[FRAME_HEADER_LEN..]).expect("an encoded message decodes");
    assert_eq!(back, message);
    // The encoding is a fixed point: decoding and encoding it again gives the same bytes.
    assert_eq!(encode(&back).expect("encodes"), again);
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => frame::<HostRequest>(rest),
        1 => frame::<PlatformReply>(rest),
        2 => frame::<EnclaveReply>(rest),
        _ => frame::<PlatformRequest>(rest),
    }
});
