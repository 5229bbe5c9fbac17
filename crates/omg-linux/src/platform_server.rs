//! The platform side of the platform channel: answers the enclave's requests with a
//! [`LinuxPlatform`]'s services until the enclave closes the channel.

use std::io::{self, Read, Write};

use omg_enclave::Platform;
use omg_enclave::messages::{PlatformReply, PlatformRequest};
use omg_enclave::platform::{Counter, Reservation};

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
        PlatformRequest::SealingKey(scope) => match scope.scope() {
            Some(scope) => platform
                .sealing_key(scope)
                .map_or_else(failed, |k| PlatformReply::Bytes(k.to_bytes().to_vec())),
            None => bad_scope(),
        },
        PlatformRequest::Now => platform.now().map_or_else(failed, PlatformReply::Number),
        PlatformRequest::Counter { scope, counter: c } => {
            match (scope.scope(), Counter::from_code(c)) {
                (Some(scope), Some(c)) => platform
                    .counter(scope, c)
                    .map_or_else(failed, PlatformReply::Number),
                (None, _) => bad_scope(),
                (_, None) => PlatformReply::Failed("unknown counter".into()),
            }
        }
        PlatformRequest::RaiseEpoch { scope, value } => match scope.scope() {
            Some(scope) => platform
                .raise_epoch(scope, value)
                .map_or_else(failed, PlatformReply::Number),
            None => bad_scope(),
        },
        PlatformRequest::ReserveInferences {
            scope,
            wanted,
            quota,
        } => match scope.scope() {
            Some(scope) => platform
                .reserve_inferences(scope, wanted, quota)
                .map_or_else(failed, |r| PlatformReply::Reservation {
                    id: r.id,
                    start: r.start,
                    granted: r.granted,
                }),
            None => bad_scope(),
        },
        PlatformRequest::SettleInferences {
            scope,
            id,
            start,
            granted,
            used,
        } => match scope.scope() {
            Some(scope) => platform
                .settle_inferences(scope, Reservation { id, start, granted }, used)
                .map_or_else(failed, |()| PlatformReply::Done),
            None => bad_scope(),
        },
    }
}

fn bad_scope() -> PlatformReply {
    PlatformReply::Failed("the vendor key id must be 16 bytes".into())
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
