//! The platform side of the platform channel: answers the enclave's requests with a
//! [`LinuxPlatform`]'s services until the enclave closes the channel.

use std::io::{self, Read, Write};

use omg_enclave::Platform;
use omg_enclave::messages::{PlatformReply, PlatformRequest};
use omg_enclave::platform::Counter;

use crate::channel::{recv, send};
use crate::platform::LinuxPlatform;

/// One request's answer.
pub fn answer(platform: &mut LinuxPlatform, request: PlatformRequest) -> PlatformReply {
    let failed = |e: omg_enclave::PlatformError| PlatformReply::Failed(e.to_string());
    match request {
        PlatformRequest::Measurement => PlatformReply::Bytes(platform.measurement().to_vec()),
        PlatformRequest::DeviceUeid => PlatformReply::Bytes(platform.device_ueid().to_vec()),
        PlatformRequest::Attest {
            nonce,
            enclave_key_hash,
        } => match <[u8; 32]>::try_from(enclave_key_hash.as_slice()) {
            Ok(hash) => platform
                .attest(&nonce, hash)
                .map_or_else(failed, PlatformReply::Bytes),
            Err(_) => PlatformReply::Failed("the enclave key hash must be 32 bytes".into()),
        },
        PlatformRequest::SealingKey { model_id } => platform
            .sealing_key(&model_id)
            .map_or_else(failed, |k| PlatformReply::Bytes(k.to_bytes().to_vec())),
        PlatformRequest::Now => platform.now().map_or_else(failed, PlatformReply::Number),
        PlatformRequest::Counter {
            model_id,
            counter: c,
        } => match Counter::from_code(c) {
            Some(c) => platform
                .counter(&model_id, c)
                .map_or_else(failed, PlatformReply::Number),
            None => PlatformReply::Failed("unknown counter".into()),
        },
        PlatformRequest::RaiseCounter {
            model_id,
            counter: c,
            value,
        } => match Counter::from_code(c) {
            Some(c) => platform
                .raise_counter(&model_id, c, value)
                .map_or_else(failed, PlatformReply::Number),
            None => PlatformReply::Failed("unknown counter".into()),
        },
    }
}

/// Serves requests from `channel` until the enclave closes it. A malformed request ends the
/// session (the enclave is trusted code; garbage means it is not the enclave we measured).
pub fn serve(platform: &mut LinuxPlatform, channel: &mut (impl Read + Write)) -> io::Result<()> {
    while let Some(request) = recv::<PlatformRequest>(channel)? {
        let reply = answer(platform, request);
        send(channel, &reply)?;
    }
    Ok(())
}
