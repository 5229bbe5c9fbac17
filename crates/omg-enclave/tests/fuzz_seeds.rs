//! Valid samples of what the `bundle`, `enclave_messages` and `enclave` fuzz targets read,
//! checked here and, with `OMG_WRITE_FUZZ_SEEDS=DIR`, written to `DIR/TARGET/NAME` as the
//! targets' seed corpora (`fuzz/seeds`).

use omg_enclave::messages::{
    EnclaveReply, HostRequest, PlatformReply, PlatformRequest, Scope, decode, encode,
};
use omg_protocol::bundle::Bundle;
use omg_protocol::licence::OutputPolicy;

const MODEL: &[u8] =
    include_bytes!("../../../assets/pipelines/micro_speech/micro_speech_quantized.tflite");

fn write(target: &str, name: &str, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("OMG_WRITE_FUZZ_SEEDS") {
        let dir = std::path::Path::new(&dir).join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn bundle_seeds() {
    let mut bundle = omg_testkit::micro_speech_bundle(MODEL, None, OutputPolicy::LabelAndScore);
    let bytes = bundle.to_bytes().unwrap();
    omg_enclave::pipeline::build(&Bundle::parse(&bytes).unwrap()).unwrap();
    write("bundle", "micro_speech", &bytes);
    // The classifier as a preprocessor too: parses, and the pipeline refuses it.
    bundle.preprocessor = Some(MODEL);
    bundle.classify_every_hops = 3;
    let bytes = bundle.to_bytes().unwrap();
    assert!(omg_enclave::pipeline::build(&Bundle::parse(&bytes).unwrap()).is_err());
    write("bundle", "model_frontend", &bytes);
}

/// Writes `message` as a frame behind `selector` (the target's choice of message type) after
/// checking that it decodes to itself.
fn frame<T>(selector: u8, name: &str, message: &T)
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    let bytes = encode(message).unwrap();
    assert_eq!(&decode::<T>(&bytes[4..]).unwrap(), message);
    let mut seed = vec![selector];
    seed.extend_from_slice(&bytes);
    write("enclave_messages", name, &seed);
}

#[test]
fn message_seeds() {
    frame(
        0,
        "begin_provision",
        &HostRequest::BeginProvision {
            package: vec![0xd2, 0x84, 0x43],
            vendor_key: vec![4; 65],
            nonce: vec![5; 32],
        },
    );
    frame(
        0,
        "finish_provision",
        &HostRequest::FinishProvision {
            key_release: vec![1, 2, 3],
            licence: vec![4, 5],
        },
    );
    frame(
        0,
        "start",
        &HostRequest::Start {
            package: vec![1],
            sealed: vec![2],
            vendor_key: vec![4; 65],
            source: 2,
        },
    );
    frame(1, "bytes", &PlatformReply::Bytes(vec![7; 33]));
    frame(1, "number", &PlatformReply::Number(1_800_000_000));
    frame(1, "failed", &PlatformReply::Failed("no counter".into()));
    frame(
        1,
        "reservation",
        &PlatformReply::Reservation {
            id: 3,
            start: 250,
            granted: 250,
        },
    );
    frame(
        2,
        "event",
        &EnclaveReply::Event {
            label: "yes".into(),
            time_ms: 980,
            score: Some(230),
            scores: Some(vec![-128, -120, 100, -110]),
        },
    );
    frame(
        2,
        "ready",
        &EnclaveReply::Ready {
            model_id: "micro_speech".into(),
            version: 2,
            output_policy: 1,
            not_after: 1_800_003_600,
            renew_after: Some(1_800_000_600),
            lease_until: Some(1_800_001_200),
            memory: "memfd_secret".into(),
        },
    );
    frame(
        3,
        "attest",
        &PlatformRequest::Attest {
            nonce: vec![5; 32],
            enclave_key_hash: vec![6; 32],
        },
    );
    frame(
        3,
        "reserve_inferences",
        &PlatformRequest::ReserveInferences {
            scope: Scope {
                vendor: vec![7; 16],
                model_id: "micro_speech".into(),
            },
            wanted: 250,
            quota: 1000,
        },
    );
}

/// Scripts for the `enclave` target (its input format is described in
/// `fuzz/fuzz_targets/enclave.rs`): provisioning with licence terms, then a start.
#[test]
fn enclave_script_seeds() {
    // begin: flags 0 (the vendor's package and key), a 32-byte nonce.
    let mut begin = vec![0u8, 0, 32];
    begin.extend_from_slice(&[5; 32]);
    // finish: flags 0, terms: policy, sources (file and stdin), expiry +1000 s, epoch 1,
    // quota (x10, 0 = none), nothing wrong.
    let finish = |policy: u8, quota: u8| vec![1u8, 0, policy, 6, 10, 1, quota, 0];
    // start: flags 0 (the last sealed blob, the package), source file, a 4-byte audio
    // pattern repeated to 40 * 64 samples.
    let start = [2u8, 0, 2, 4, 0x00, 0x10, 0x00, 0xf0, 40];
    let script = |mode: u8, parts: &[&[u8]]| {
        let mut s = vec![mode];
        for p in parts {
            s.extend_from_slice(p);
        }
        s
    };
    write(
        "enclave",
        "provision_and_start",
        &script(0, &[&begin, &finish(2, 0), &start]),
    );
    write(
        "enclave",
        "quota",
        &script(0, &[&begin, &finish(1, 1), &start, &start]),
    );
    // A platform answering time and counters from the script (one second later, epoch 1, 0).
    let mut answers = vec![3u8];
    for v in [1u64, 1, 0] {
        answers.extend_from_slice(&v.to_le_bytes());
    }
    write(
        "enclave",
        "lying_platform",
        &script(0x20, &[&answers, &begin, &finish(0, 3), &start]),
    );
    // A start with a sealed blob from the script and no provisioning.
    write(
        "enclave",
        "start_unprovisioned",
        &[0, 2, 1, 3, 1, 2, 3, 2, 0],
    );
}
