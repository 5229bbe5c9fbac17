//! The enclave's protocol in the TA (commands 9-12, `omg_enclave::commands`) against a vendor
//! made in this process: a micro_speech package, provisioning (the TA's OP-TEE token verified
//! against the attestation PTA's key, the content key released to the TA's HPKE key, a
//! licence), then an operation on the yes and no clips, whose events must equal the omg
//! pipeline's in the normal world; then hostile commands.

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use omg_enclave::commands::{
    CMD_AUDIO, CMD_DRAIN, CMD_FINISH, CMD_REQUEST, audio_bytes, split_replies,
};
use omg_enclave::messages::{EnclaveReply, HostRequest, encode};
use omg_protocol::bundle::Bundle;
use omg_protocol::key_release::{HpkePublicKey, KeyRelease};
use omg_protocol::licence::{InputSource, InputSources, Licence, OutputPolicy};
use omg_protocol::optee::{DeviceKey, OpteeToken};
use omg_protocol::package::{Package, PackageHeader};
use omg_protocol::{ContentKey, generate_signing_key, public_key_sec1, sha256};
use optee_teec::{Context, Operation, ParamNone, ParamTmpRef, Session};

use crate::{Report, TEE_ERROR_BAD_FORMAT, TEE_ERROR_BAD_PARAMETERS, TEE_ERROR_SHORT_BUFFER};

/// Runs `command` with `input` (none when empty and the command takes none) and an output
/// buffer of `capacity` bytes; returns the reply frames or the TA's error code.
fn command(
    session: &mut Session,
    command: u32,
    input: &[u8],
    capacity: usize,
) -> Result<Vec<EnclaveReply>, u32> {
    let out = if matches!(command, CMD_REQUEST | CMD_AUDIO) {
        crate::bytes_command(session, command, input, capacity)?
    } else {
        let mut out = vec![0u8; capacity];
        let mut op = Operation::new(
            0,
            ParamNone,
            ParamTmpRef::new_output(&mut out),
            ParamNone,
            ParamNone,
        );
        session
            .invoke_command(command, &mut op)
            .map_err(|e| e.raw_code())?;
        let len = op.parameters().1.updated_size();
        out.truncate(len);
        out
    };
    split_replies(&out).map_err(|_| 0)
}

fn request(session: &mut Session, request: &HostRequest) -> Result<EnclaveReply, String> {
    let frame = encode(request).map_err(|e| e.to_string())?;
    let mut replies =
        command(session, CMD_REQUEST, &frame, 64 << 10).map_err(|c| format!("request: {c:#x}"))?;
    if replies.len() != 1 {
        return Err(format!("request: {} replies", replies.len()));
    }
    Ok(replies.remove(0))
}

/// A keyword event: label, time, score.
type Seen = (String, u64, Option<u8>);

fn events(replies: &[EnclaveReply]) -> Vec<Seen> {
    replies
        .iter()
        .filter_map(|r| match r {
            EnclaveReply::Event {
                label,
                time_ms,
                score,
                ..
            } => Some((label.clone(), *time_ms, *score)),
            _ => None,
        })
        .collect()
}

/// The check (see the module doc).
pub fn enclave_protocol(ctx: &mut Context, data: &Path, report: &mut Report) -> Result<(), String> {
    let model = crate::read(data, "micro_speech/models/micro_speech_quantized.tflite")?;
    let mut audio = Vec::new();
    for clip in ["yes", "no"] {
        let bytes = crate::read(data, &format!("micro_speech/testdata/{clip}_1000ms.wav"))?;
        let samples = crate::wav_samples(&bytes)?;
        audio.extend(
            samples
                .chunks_exact(2)
                .map(|p| i16::from_le_bytes([p[0], p[1]])),
        );
        audio.extend(std::iter::repeat_n(0i16, 16_000));
    }
    // The vendor: key, content key, package.
    let mut rng = omg_testkit::DeterministicRng::new(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_nanos() as u64,
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let vendor = generate_signing_key(&mut rng);
    let vendor_sec1 = public_key_sec1(vendor.verifying_key()).to_vec();
    let content_key = ContentKey::generate(&mut rng);
    let bundle = omg_testkit::micro_speech_bundle(&model, None, OutputPolicy::LabelAndScore)
        .to_bytes()
        .map_err(|e| e.to_string())?;
    let header = PackageHeader::new("micro_speech", 2, now - 10, vendor.verifying_key());
    let package = Package::seal(&header, &bundle, &content_key, &vendor, &mut rng)
        .map_err(|e| e.to_string())?;

    // The normal world's events on the same audio, with the same pipeline code.
    let parsed = Bundle::parse(&bundle).map_err(|e| e.to_string())?;
    let mut pipeline = omg_enclave::pipeline::build(&parsed).map_err(|e| e.to_string())?;
    let hop = omg_enclave::pipeline::hop_samples(&parsed).map_err(|e| e.to_string())?;
    let mut expected = Vec::new();
    for chunk in audio
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0, 16_000))
        .collect::<Vec<_>>()
        .chunks(hop)
    {
        pipeline
            .push_samples(chunk, |e| {
                expected.push((
                    omg_testkit::MICRO_SPEECH_LABELS[e.label_index].to_string(),
                    e.time_ms,
                    Some(e.score),
                ))
            })
            .map_err(|e| e.to_string())?;
    }

    let (e, n) = crate::attestation_key(ctx)?;
    let device = DeviceKey::from_components(&e, &n).map_err(|e| e.to_string())?;
    let mut session = crate::open(ctx).map_err(|c| format!("open: {c:#x}"))?;
    let mut nonce = [0u8; 32];
    rand_fill(&mut nonce)?;
    let t = Instant::now();
    let EnclaveReply::Attested {
        token,
        enclave_public_key,
        model_id,
        version,
    } = request(
        &mut session,
        &HostRequest::BeginProvision {
            package: package.clone(),
            vendor_key: vendor_sec1.clone(),
            nonce: nonce.to_vec(),
        },
    )?
    else {
        return Err("BeginProvision: not Attested".into());
    };
    let attested = t.elapsed();
    report.check(
        model_id == "micro_speech" && version == 2,
        "Attested names the package's model and version",
    );
    let claims = OpteeToken::verify(&token, &device).map_err(|e| format!("token: {e}"))?;
    report.check(claims.nonce == nonce, "the TA's token carries the nonce");
    report.check(
        claims.check_enclave_key(&enclave_public_key).is_ok(),
        "the TA's token binds its HPKE key",
    );
    let release = KeyRelease::seal(
        &HpkePublicKey::from_bytes(&enclave_public_key).map_err(|e| e.to_string())?,
        &token,
        &content_key,
        "micro_speech",
        2,
        &mut rng,
    )
    .map_err(|e| e.to_string())?;
    let licence = Licence {
        device_ueid: claims.instance_id,
        model_id: "micro_speech".into(),
        model_version: 2,
        not_after: now + 3600,
        epoch: 1,
        quota: Some(1_000_000),
        output_policy: OutputPolicy::LabelAndScore,
        input_sources: InputSources::of(&[InputSource::File]),
        activation: sha256(&token),
        lease: None,
    }
    .sign(&vendor)
    .map_err(|e| e.to_string())?;
    let t = Instant::now();
    let EnclaveReply::Sealed { blob, .. } = request(
        &mut session,
        &HostRequest::FinishProvision {
            key_release: release,
            licence,
        },
    )?
    else {
        return Err("FinishProvision: not Sealed".into());
    };
    let sealed_time = t.elapsed();
    let start = HostRequest::Start {
        package: package.clone(),
        sealed: blob.clone(),
        vendor_key: vendor_sec1.clone(),
        source: InputSource::File.bit(),
    };
    let t = Instant::now();
    let ready = request(&mut session, &start)?;
    let ready_time = t.elapsed();
    report.check(
        matches!(
            &ready,
            EnclaveReply::Ready {
                output_policy: 1,
                ..
            }
        ),
        "Start: Ready, label and score",
    );
    let t = Instant::now();
    let mut replies = Vec::new();
    let mut blocks = 0u32;
    for block in audio.chunks(4000) {
        replies.extend(
            command(&mut session, CMD_AUDIO, &audio_bytes(block), 64 << 10)
                .map_err(|c| format!("audio: {c:#x}"))?,
        );
        blocks += 1;
    }
    replies.extend(
        command(&mut session, CMD_FINISH, &[], 64 << 10).map_err(|c| format!("finish: {c:#x}"))?,
    );
    let run_time = t.elapsed();
    let seen = events(&replies);
    println!("omg-optee: enclave protocol: TA events {seen:?}, normal world {expected:?}");
    report.check(
        seen.iter().map(|e| e.0.as_str()).collect::<Vec<_>>() == ["yes", "no"],
        "the TA hears yes, then no",
    );
    report.check(seen == expected, "the TA's events equal the normal world's");
    report.check(
        matches!(replies.last(), Some(EnclaveReply::Finished { samples, .. }) if *samples == audio.len() as u64),
        "Finished counts the samples pushed",
    );
    println!(
        "omg-optee: enclave protocol: attest {:.0} ms, seal {:.0} ms, start {:.0} ms, {} audio blocks of 4000 samples + finish {:.0} ms",
        attested.as_secs_f64() * 1e3,
        sealed_time.as_secs_f64() * 1e3,
        ready_time.as_secs_f64() * 1e3,
        blocks,
        run_time.as_secs_f64() * 1e3
    );

    // Hostile and out-of-order commands; the session keeps answering.
    report.check(
        command(&mut session, CMD_REQUEST, b"\x05\x00\x00\x00garbage", 4096)
            == Err(TEE_ERROR_BAD_FORMAT),
        "a garbage request: BAD_FORMAT",
    );
    report.check(
        command(&mut session, CMD_AUDIO, &[1, 2, 3], 4096) == Err(TEE_ERROR_BAD_PARAMETERS),
        "audio of an odd length: BAD_PARAMETERS",
    );
    report.check(
        matches!(&command(&mut session, CMD_FINISH, &[], 4096).as_deref(),
            Ok([EnclaveReply::Failed { reason }]) if reason.contains("no operation")),
        "finish without an operation: Failed",
    );
    let mut tampered = blob.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let refused = request(
        &mut session,
        &HostRequest::Start {
            package: package.clone(),
            sealed: tampered,
            vendor_key: vendor_sec1.clone(),
            source: InputSource::File.bit(),
        },
    )?;
    report.check(
        matches!(refused, EnclaveReply::Failed { .. }),
        "a changed sealed blob: Failed",
    );
    let refused = request(
        &mut session,
        &HostRequest::Start {
            package: package.clone(),
            sealed: blob.clone(),
            vendor_key: vendor_sec1,
            source: InputSource::Mic.bit(),
        },
    )?;
    report.check(
        matches!(refused, EnclaveReply::Failed { .. }),
        "a source the licence does not allow: Failed",
    );
    // Again, in a new session (another TA instance): the sealed blob opens there; a short
    // output buffer keeps the events for the drain.
    drop(session);
    let mut session = crate::open(ctx).map_err(|c| format!("open: {c:#x}"))?;
    report.check(
        matches!(request(&mut session, &start)?, EnclaveReply::Ready { .. }),
        "Start in another session: Ready",
    );
    let first = &audio[..32_000];
    report.check(
        command(
            &mut session,
            CMD_AUDIO,
            &audio_bytes(&first[..16_000]),
            4096,
        ) == Ok(Vec::new()),
        "the first second of yes: no event yet",
    );
    report.check(
        command(&mut session, CMD_AUDIO, &audio_bytes(&first[16_000..]), 4)
            == Err(TEE_ERROR_SHORT_BUFFER),
        "an event into a 4-byte buffer: SHORT_BUFFER",
    );
    let drained =
        command(&mut session, CMD_DRAIN, &[], 4096).map_err(|c| format!("drain: {c:#x}"))?;
    report.check(
        events(&drained).first().map(|e| e.0.as_str()) == Some("yes"),
        "the drain returns the event kept",
    );
    Ok(())
}

fn rand_fill(out: &mut [u8]) -> Result<(), String> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(out))
        .map_err(|e| format!("/dev/urandom: {e}"))
}
