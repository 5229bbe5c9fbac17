//! The three phases against an in-memory platform and an in-test vendor: preparation,
//! initialization and operation on the bundled micro_speech model, and every refusal.

use std::collections::BTreeMap;

use omg_enclave::ledger::Ledger;
use omg_enclave::messages::{EnclaveReply, HostRequest};
use omg_enclave::platform::{Counter, ModelScope, Reservation, sign_enclave_token};
use omg_enclave::provision::Preparation;
use omg_enclave::runtime::{OutputEvent, initialize};
use omg_enclave::server::{Enclave, EnclaveIo, Replies};
use omg_enclave::{EnclaveError, Platform, PlatformError};
use omg_protocol::key_release::{HpkePublicKey, KeyRelease};
use omg_protocol::licence::{InputSource, InputSources, Lease, Licence, OutputPolicy, Refusal};
use omg_protocol::package::{Package, PackageHeader};
use omg_protocol::rand_core::{CryptoRng, Rng};
use omg_protocol::sealed::SealingKey;
use omg_protocol::token::Token;
use omg_protocol::{ContentKey, ProtocolError, SigningKey, generate_signing_key, sha256, ueid};
use omg_testkit::DeterministicRng;
use zeroize::Zeroizing;

const NOW: u64 = 1_800_000_000;
const MODEL: &[u8] =
    include_bytes!("../../../assets/pipelines/micro_speech/micro_speech_quantized.tflite");

struct TestPlatform {
    device_key: SigningKey,
    huk: [u8; 32],
    measurement: [u8; 32],
    now: u64,
    epochs: BTreeMap<ScopeKey, u64>,
    /// Per scope: the quota's ledger.
    inferences: BTreeMap<ScopeKey, Ledger<()>>,
    rng: DeterministicRng,
}

type ScopeKey = ([u8; 16], String);

impl TestPlatform {
    fn new(seed: u64) -> Self {
        let mut rng = DeterministicRng::new(seed);
        let mut huk = [0u8; 32];
        rng.fill_bytes(&mut huk);
        Self {
            device_key: generate_signing_key(&mut rng),
            huk,
            measurement: [0x42; 32],
            now: NOW,
            epochs: BTreeMap::new(),
            inferences: BTreeMap::new(),
            rng,
        }
    }
}

fn key(scope: ModelScope<'_>) -> ScopeKey {
    (scope.vendor, scope.model_id.to_string())
}

impl Platform for TestPlatform {
    fn measurement(&self) -> [u8; 32] {
        self.measurement
    }
    fn device_ueid(&self) -> [u8; 33] {
        ueid(self.device_key.verifying_key())
    }
    fn attest(&mut self, nonce: &[u8], hash: [u8; 32]) -> Result<Vec<u8>, PlatformError> {
        sign_enclave_token(
            &self.device_key,
            [7; 32],
            self.measurement,
            [8; 32],
            nonce,
            hash,
        )
    }
    fn sealing_key(&mut self, scope: ModelScope<'_>) -> Result<SealingKey, PlatformError> {
        SealingKey::derive(&self.huk, &self.measurement, &scope.vendor, scope.model_id)
            .map_err(|e| PlatformError::new("sealing key", e.to_string()))
    }
    fn rng(&mut self) -> &mut dyn CryptoRng {
        &mut self.rng
    }
    fn now(&mut self) -> Result<u64, PlatformError> {
        Ok(self.now)
    }
    fn counter(&mut self, scope: ModelScope<'_>, counter: Counter) -> Result<u64, PlatformError> {
        Ok(match counter {
            Counter::Epoch => self.epochs.get(&key(scope)).copied().unwrap_or(0),
            Counter::Inferences => self
                .inferences
                .get(&key(scope))
                .map_or(0, Ledger::committed),
        })
    }
    fn raise_epoch(&mut self, scope: ModelScope<'_>, value: u64) -> Result<u64, PlatformError> {
        let c = self.epochs.entry(key(scope)).or_insert(0);
        *c = (*c).max(value);
        Ok(*c)
    }
    fn reserve_inferences(
        &mut self,
        scope: ModelScope<'_>,
        wanted: u64,
        quota: u64,
    ) -> Result<Reservation, PlatformError> {
        self.inferences
            .entry(key(scope))
            .or_default()
            .reserve(wanted, quota, (), usize::MAX)
            .map_err(|e| PlatformError::new("counter", e.to_string()))
    }
    fn settle_inferences(
        &mut self,
        scope: ModelScope<'_>,
        reservation: Reservation,
        used: u64,
    ) -> Result<(), PlatformError> {
        self.inferences
            .entry(key(scope))
            .or_default()
            .settle(reservation, used);
        Ok(())
    }
}

/// The vendor of these tests: one key, one micro_speech package, licence terms to vary.
struct Vendor {
    key: SigningKey,
    content_key: ContentKey,
    package: Vec<u8>,
    rng: DeterministicRng,
}

fn bundle(policy: OutputPolicy) -> Vec<u8> {
    omg_testkit::micro_speech_bundle(MODEL, None, policy)
        .to_bytes()
        .unwrap()
}

impl Vendor {
    fn new(ceiling: OutputPolicy) -> Self {
        Self::with_seed(ceiling, 99)
    }

    /// Another vendor (another key) shipping the same model id.
    fn with_seed(ceiling: OutputPolicy, seed: u64) -> Self {
        let mut rng = DeterministicRng::new(seed);
        let key = generate_signing_key(&mut rng);
        let content_key = ContentKey::generate(&mut rng);
        let header = PackageHeader::new("micro_speech", 2, NOW - 10, key.verifying_key());
        let package =
            Package::seal(&header, &bundle(ceiling), &content_key, &key, &mut rng).unwrap();
        Self {
            key,
            content_key,
            package,
            rng,
        }
    }

    fn scope(&self) -> ModelScope<'static> {
        ModelScope::new(self.key.verifying_key(), "micro_speech")
    }

    fn terms(&self, platform: &TestPlatform) -> Licence {
        Licence {
            device_ueid: platform.device_ueid(),
            model_id: "micro_speech".into(),
            model_version: 2,
            not_after: NOW + 3600,
            epoch: 1,
            quota: None,
            output_policy: OutputPolicy::AllScores,
            input_sources: InputSources::of(&[InputSource::File, InputSource::Stdin]),
            // Set to the token's hash by `provision`.
            activation: [0; 32],
            lease: None,
        }
    }
}

fn provision(
    platform: &mut TestPlatform,
    vendor: &mut Vendor,
    terms: &Licence,
) -> Result<Vec<u8>, EnclaveError> {
    let nonce = [5u8; 32];
    let prep = Preparation::begin(
        platform,
        &vendor.package,
        vendor.key.verifying_key(),
        &nonce,
    )?;
    // The token verifies with the device key and carries the nonce and the enclave key hash.
    let claims = Token::verify(prep.token(), platform.device_key.verifying_key()).unwrap();
    assert_eq!(claims.nonce, nonce);
    assert_eq!(
        claims.software_components[0].measurement_value,
        platform.measurement
    );
    claims
        .check_enclave_key(&prep.enclave_public_key())
        .unwrap();
    let enclave_key = HpkePublicKey::from_bytes(&prep.enclave_public_key()).unwrap();
    let release = KeyRelease::seal(
        &enclave_key,
        prep.token(),
        &vendor.content_key,
        "micro_speech",
        2,
        &mut vendor.rng,
    )
    .unwrap();
    let licence = Licence {
        activation: sha256(prep.token()),
        ..terms.clone()
    };
    prep.finish(platform, &release, &licence.sign(&vendor.key).unwrap())
        .map(|p| p.sealed)
}

fn clip(name: &str) -> Vec<i16> {
    let path = format!(
        "{}/../../assets/clips/{name}.wav",
        env!("CARGO_MANIFEST_DIR")
    );
    hound::WavReader::open(path)
        .unwrap()
        .samples::<i16>()
        .map(Result::unwrap)
        .collect()
}

fn protected(len: usize) -> Result<Zeroizing<Vec<u8>>, PlatformError> {
    Ok(Zeroizing::new(vec![0u8; len]))
}

/// An event as the host saw it: label, score, all scores.
type Seen = (String, Option<u8>, Option<Vec<i8>>);

/// Runs `samples` (plus a second of silence) and returns the events as owned values.
fn run(
    platform: &mut TestPlatform,
    vendor: &Vendor,
    sealed: &[u8],
    samples: &[i16],
) -> Result<Vec<Seen>, EnclaveError> {
    let unlocked = initialize(
        platform,
        &vendor.package,
        sealed,
        vendor.key.verifying_key(),
        InputSource::File,
        protected,
    )?;
    let mut session = unlocked.session()?;
    let mut events = Vec::new();
    let mut audio = samples.to_vec();
    audio.extend(std::iter::repeat_n(0, 16_000));
    session.push_audio(platform, &audio, |e: OutputEvent<'_>| {
        events.push((e.label.to_string(), e.score, e.scores.map(<[i8]>::to_vec)));
    })?;
    Ok(events)
}

#[test]
fn provision_then_run_offline_finds_the_keyword() {
    let mut platform = TestPlatform::new(1);
    let mut vendor = Vendor::new(OutputPolicy::AllScores);
    let terms = vendor.terms(&platform);
    let sealed = provision(&mut platform, &mut vendor, &terms).unwrap();
    assert_eq!(platform.counter(vendor.scope(), Counter::Epoch).unwrap(), 1);
    for (name, label) in [("yes_en-us", "yes"), ("no_en-us", "no")] {
        let events = run(&mut platform, &vendor, &sealed, &clip(name)).unwrap();
        assert_eq!(events.len(), 1, "{name}: {events:?}");
        assert_eq!(events[0].0, label);
        assert!(events[0].1.is_some() && events[0].2.as_ref().is_some_and(|s| s.len() == 4));
    }
    assert!(
        run(&mut platform, &vendor, &sealed, &clip("silence"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn output_policy_is_the_stricter_of_bundle_and_licence() {
    for (ceiling, licensed, score, scores) in [
        (
            OutputPolicy::AllScores,
            OutputPolicy::LabelOnly,
            false,
            false,
        ),
        (
            OutputPolicy::LabelOnly,
            OutputPolicy::AllScores,
            false,
            false,
        ),
        (
            OutputPolicy::LabelAndScore,
            OutputPolicy::AllScores,
            true,
            false,
        ),
        (OutputPolicy::AllScores, OutputPolicy::AllScores, true, true),
    ] {
        let mut platform = TestPlatform::new(2);
        let mut vendor = Vendor::new(ceiling);
        let mut terms = vendor.terms(&platform);
        terms.output_policy = licensed;
        let sealed = provision(&mut platform, &mut vendor, &terms).unwrap();
        let events = run(&mut platform, &vendor, &sealed, &clip("yes_en-gb")).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].1.is_some(), events[0].2.is_some()),
            (score, scores)
        );
    }
}

#[test]
fn sealed_blob_is_bound_to_device_and_enclave() {
    let mut platform = TestPlatform::new(3);
    let mut vendor = Vendor::new(OutputPolicy::LabelOnly);
    let terms = vendor.terms(&platform);
    let sealed = provision(&mut platform, &mut vendor, &terms).unwrap();
    // Another HUK (the blob copied to another device).
    let mut other = TestPlatform::new(3);
    other.huk[0] ^= 1;
    assert!(matches!(
        run(&mut other, &vendor, &sealed, &[]),
        Err(EnclaveError::Protocol(
            ProtocolError::DecryptionFailed { .. }
        ))
    ));
    // Another enclave build (measurement).
    let mut changed = TestPlatform::new(3);
    changed.measurement[31] ^= 1;
    assert!(matches!(
        run(&mut changed, &vendor, &sealed, &[]),
        Err(EnclaveError::Protocol(
            ProtocolError::DecryptionFailed { .. }
        ))
    ));
    // Tampered blob.
    let mut bad = sealed.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(run(&mut platform, &vendor, &bad, &[]).is_err());
    assert!(run(&mut platform, &vendor, &sealed, &[]).is_ok());
}

#[test]
fn preparation_refuses_what_does_not_fit() {
    let mut platform = TestPlatform::new(4);
    let mut vendor = Vendor::new(OutputPolicy::LabelOnly);
    // A licence for another device.
    let mut terms = vendor.terms(&platform);
    terms.device_ueid[5] ^= 1;
    assert_eq!(
        provision(&mut platform, &mut vendor, &terms).unwrap_err(),
        EnclaveError::Mismatch("the licence is for another device")
    );
    // A licence for another version.
    let mut terms = vendor.terms(&platform);
    terms.model_version = 3;
    assert!(matches!(
        provision(&mut platform, &mut vendor, &terms),
        Err(EnclaveError::Mismatch(_))
    ));
    // A package signed by someone else.
    let terms = vendor.terms(&platform);
    let mut forged = Vendor::new(OutputPolicy::LabelOnly);
    forged.key = generate_signing_key(&mut DeterministicRng::new(5));
    assert!(
        Preparation::begin(
            &mut platform,
            &vendor.package,
            forged.key.verifying_key(),
            &[1; 32]
        )
        .is_err()
    );
    // A key release made for another token (another enclave session).
    let prep = Preparation::begin(
        &mut platform,
        &vendor.package,
        vendor.key.verifying_key(),
        &[1; 32],
    )
    .unwrap();
    let other = Preparation::begin(
        &mut platform,
        &vendor.package,
        vendor.key.verifying_key(),
        &[2; 32],
    )
    .unwrap();
    let enclave_key = HpkePublicKey::from_bytes(&other.enclave_public_key()).unwrap();
    let release = KeyRelease::seal(
        &enclave_key,
        other.token(),
        &vendor.content_key,
        "micro_speech",
        2,
        &mut vendor.rng,
    )
    .unwrap();
    assert!(
        prep.finish(&mut platform, &release, &terms.sign(&vendor.key).unwrap())
            .is_err()
    );
    // The wrong content key (the vendor's database mixed up).
    let prep = Preparation::begin(
        &mut platform,
        &vendor.package,
        vendor.key.verifying_key(),
        &[3; 32],
    )
    .unwrap();
    let enclave_key = HpkePublicKey::from_bytes(&prep.enclave_public_key()).unwrap();
    let wrong = ContentKey::generate(&mut vendor.rng);
    let licence = Licence {
        activation: sha256(prep.token()),
        ..terms.clone()
    };
    let release = KeyRelease::seal(
        &enclave_key,
        prep.token(),
        &wrong,
        "micro_speech",
        2,
        &mut vendor.rng,
    )
    .unwrap();
    assert!(matches!(
        prep.finish(&mut platform, &release, &licence.sign(&vendor.key).unwrap()),
        Err(EnclaveError::Protocol(
            ProtocolError::DecryptionFailed { .. }
        ))
    ));
}

#[test]
fn initialization_enforces_the_licence() {
    let mut platform = TestPlatform::new(6);
    let mut vendor = Vendor::new(OutputPolicy::LabelOnly);
    let terms = vendor.terms(&platform);
    let sealed = provision(&mut platform, &mut vendor, &terms).unwrap();
    let init = |p: &mut TestPlatform, source| {
        initialize(
            p,
            &vendor.package,
            &sealed,
            vendor.key.verifying_key(),
            source,
            protected,
        )
        .map(|_| ())
    };
    assert_eq!(
        init(&mut platform, InputSource::Mic).unwrap_err(),
        EnclaveError::Refused(Refusal::SourceNotAllowed(InputSource::Mic))
    );
    // Expired.
    platform.now = NOW + 3601;
    assert!(matches!(
        init(&mut platform, InputSource::File),
        Err(EnclaveError::Refused(Refusal::Expired { .. }))
    ));
    platform.now = NOW;
    // A newer licence was seen (epoch 2): this older blob is a rollback.
    platform.raise_epoch(vendor.scope(), 2).unwrap();
    assert_eq!(
        init(&mut platform, InputSource::File).unwrap_err(),
        EnclaveError::Refused(Refusal::Revoked {
            licence_epoch: 1,
            current_epoch: 2
        })
    );
}

#[test]
fn quota_stops_before_the_first_uncovered_inference() {
    let mut platform = TestPlatform::new(7);
    let mut vendor = Vendor::new(OutputPolicy::LabelOnly);
    let mut terms = vendor.terms(&platform);
    terms.quota = Some(100);
    let sealed = provision(&mut platform, &mut vendor, &terms).unwrap();
    // 1 s of audio makes 48 classifications (49-frame window full after 1 s, then one per hop).
    let second = vec![0i16; 16_000];
    let unlocked = initialize(
        &mut platform,
        &vendor.package,
        &sealed,
        vendor.key.verifying_key(),
        InputSource::File,
        protected,
    )
    .unwrap();
    let mut session = unlocked.session().unwrap();
    session.push_audio(&mut platform, &second, |_| {}).unwrap();
    session.push_audio(&mut platform, &second, |_| {}).unwrap();
    let used = session.classifications();
    assert!(used < 100, "{used}");
    assert_eq!(
        session
            .push_audio(&mut platform, &second, |_| {})
            .unwrap_err(),
        EnclaveError::Refused(Refusal::QuotaExhausted {
            quota: 100,
            used: 100
        })
    );
    assert_eq!(session.classifications(), 100);
    session.settle(&mut platform).unwrap();
    assert_eq!(
        platform
            .counter(vendor.scope(), Counter::Inferences)
            .unwrap(),
        100
    );
    drop(session);
    // The next start is refused before anything is decrypted.
    assert!(matches!(
        initialize(
            &mut platform,
            &vendor.package,
            &sealed,
            vendor.key.verifying_key(),
            InputSource::File,
            protected
        ),
        Err(EnclaveError::Refused(Refusal::QuotaExhausted { .. }))
    ));
}

/// Sessions give back what they did not use: three runs of one second (and the second of
/// silence after it, 51 classifications each) fit in a quota of 200.
#[test]
fn settled_sessions_return_their_unused_inferences() {
    let mut platform = TestPlatform::new(8);
    let mut vendor = Vendor::new(OutputPolicy::LabelOnly);
    let mut terms = vendor.terms(&platform);
    terms.quota = Some(200);
    let sealed = provision(&mut platform, &mut vendor, &terms).unwrap();
    let audio = vec![0i16; 32_000];
    let mut total = 0;
    for _ in 0..3 {
        let unlocked = initialize(
            &mut platform,
            &vendor.package,
            &sealed,
            vendor.key.verifying_key(),
            InputSource::File,
            protected,
        )
        .unwrap();
        let mut session = unlocked.session().unwrap();
        session.push_audio(&mut platform, &audio, |_| {}).unwrap();
        session.settle(&mut platform).unwrap();
        total += session.classifications();
    }
    assert_eq!(total, 3 * 51);
    assert_eq!(
        platform
            .counter(vendor.scope(), Counter::Inferences)
            .unwrap(),
        total
    );
}

/// A second vendor's package of the same model id, with a huge revocation epoch, touches
/// neither the first vendor's epoch nor its sealing key: the first vendor's model still runs,
/// and neither vendor's sealed blob opens as the other's.
#[test]
fn another_vendors_model_of_the_same_id_is_kept_apart() {
    let mut platform = TestPlatform::new(9);
    let mut first = Vendor::new(OutputPolicy::LabelOnly);
    let terms = first.terms(&platform);
    let sealed = provision(&mut platform, &mut first, &terms).unwrap();
    let mut second = Vendor::with_seed(OutputPolicy::LabelOnly, 100);
    let mut terms = second.terms(&platform);
    terms.epoch = u32::MAX;
    let other_sealed = provision(&mut platform, &mut second, &terms).unwrap();
    assert_eq!(platform.counter(first.scope(), Counter::Epoch).unwrap(), 1);
    assert_eq!(
        platform.counter(second.scope(), Counter::Epoch).unwrap(),
        u64::from(u32::MAX)
    );
    assert_eq!(
        run(&mut platform, &first, &sealed, &clip("yes_en-us"))
            .unwrap()
            .len(),
        1
    );
    for (vendor, blob) in [(&first, &other_sealed), (&second, &sealed)] {
        assert!(matches!(
            initialize(
                &mut platform,
                &vendor.package,
                blob,
                vendor.key.verifying_key(),
                InputSource::File,
                protected,
            ),
            Err(EnclaveError::Protocol(
                ProtocolError::DecryptionFailed { .. }
            ))
        ));
    }
}

/// Two activations of the same device, model and version: the licence of the first paired
/// with the key release of the second is refused (it names the first token), and nothing is
/// sealed or raised; the second's own licence is accepted.
#[test]
fn a_licence_from_an_earlier_activation_is_refused() {
    let mut platform = TestPlatform::new(8);
    let mut vendor = Vendor::new(OutputPolicy::LabelOnly);
    let terms = vendor.terms(&platform);
    let scope = vendor.scope();
    let mut activate = |platform: &mut TestPlatform, nonce: [u8; 32]| {
        let prep = Preparation::begin(
            platform,
            &vendor.package,
            vendor.key.verifying_key(),
            &nonce,
        )
        .unwrap();
        let enclave_key = HpkePublicKey::from_bytes(&prep.enclave_public_key()).unwrap();
        let release = KeyRelease::seal(
            &enclave_key,
            prep.token(),
            &vendor.content_key,
            "micro_speech",
            2,
            &mut vendor.rng,
        )
        .unwrap();
        let licence = Licence {
            activation: sha256(prep.token()),
            ..terms.clone()
        }
        .sign(&vendor.key)
        .unwrap();
        (prep, release, licence)
    };
    let (_, _, earlier_licence) = activate(&mut platform, [1; 32]);
    let (prep, release, licence) = activate(&mut platform, [2; 32]);
    assert_eq!(
        prep.finish(&mut platform, &release, &earlier_licence)
            .unwrap_err(),
        EnclaveError::Mismatch("the licence answers another activation than this key release")
    );
    assert_eq!(platform.counter(scope, Counter::Epoch).unwrap(), 0);
    let (prep, release, _) = activate(&mut platform, [3; 32]);
    assert!(matches!(
        prep.finish(&mut platform, &release, &licence),
        Err(EnclaveError::Mismatch(_))
    ));
    let (prep, release, licence) = activate(&mut platform, [4; 32]);
    prep.finish(&mut platform, &release, &licence).unwrap();
}

/// A leased licence: initialization works up to the lease's last second and is refused with
/// `LeaseExpired` after it (the not-after is still far), and `Ready`'s lease comes from it.
#[test]
fn initialization_refuses_a_licence_past_its_lease() {
    let mut platform = TestPlatform::new(9);
    let mut vendor = Vendor::new(OutputPolicy::LabelOnly);
    let mut terms = vendor.terms(&platform);
    terms.lease = Some(Lease {
        renew_after: NOW + 60,
        lease_until: NOW + 120,
    });
    let sealed = provision(&mut platform, &mut vendor, &terms).unwrap();
    let mut init = |now| {
        platform.now = now;
        initialize(
            &mut platform,
            &vendor.package,
            &sealed,
            vendor.key.verifying_key(),
            InputSource::File,
            protected,
        )
        .map(|u| u.licence().lease)
    };
    assert_eq!(init(NOW + 120).unwrap(), terms.lease);
    assert_eq!(
        init(NOW + 121).unwrap_err(),
        EnclaveError::Refused(Refusal::LeaseExpired {
            lease_until: NOW + 120,
            now: NOW + 121
        })
    );
}

/// The host of the push and pull tests: records replies; serves `audio` in reads of at most
/// `chunk` samples to the pull loop.
struct Host {
    sent: Vec<EnclaveReply>,
    audio: Vec<i16>,
    read: usize,
    chunk: usize,
}

impl Host {
    fn new(audio: Vec<i16>, chunk: usize) -> Self {
        Self {
            sent: Vec::new(),
            audio,
            read: 0,
            chunk,
        }
    }
}

impl Replies for Host {
    fn send(&mut self, reply: &EnclaveReply) -> Result<(), PlatformError> {
        self.sent.push(reply.clone());
        Ok(())
    }
    fn monotonic_us(&self) -> u64 {
        0
    }
}

impl EnclaveIo for Host {
    type Buffer = Zeroizing<Vec<u8>>;
    fn read_audio(&mut self, buf: &mut [i16]) -> Result<usize, PlatformError> {
        let n = buf.len().min(self.chunk).min(self.audio.len() - self.read);
        buf[..n].copy_from_slice(&self.audio[self.read..self.read + n]);
        self.read += n;
        Ok(n)
    }
    fn protected(&mut self, len: usize) -> Result<Self::Buffer, PlatformError> {
        protected(len)
    }
    fn memory_kind(&self) -> &'static str {
        "heap"
    }
}

/// An enclave with micro_speech provisioned under `terms` (changed by `change`), and the
/// vendor's package, key and sealed blob for `Enclave::start`.
fn provisioned_enclave(
    seed: u64,
    change: impl FnOnce(&mut Licence),
) -> (Enclave<TestPlatform>, Vendor, Vec<u8>) {
    let mut platform = TestPlatform::new(seed);
    let mut vendor = Vendor::new(OutputPolicy::AllScores);
    let mut terms = vendor.terms(&platform);
    change(&mut terms);
    let sealed = provision(&mut platform, &mut vendor, &terms).unwrap();
    (Enclave::new(platform), vendor, sealed)
}

fn start(
    enclave: &mut Enclave<TestPlatform>,
    vendor: &Vendor,
    sealed: &[u8],
) -> Result<EnclaveReply, EnclaveError> {
    enclave.start(
        &vendor.package,
        sealed,
        &omg_protocol::public_key_sec1(vendor.key.verifying_key()),
        InputSource::File.bit(),
        "heap",
        protected,
    )
}

fn inferences(enclave: &mut Enclave<TestPlatform>, vendor: &Vendor) -> u64 {
    enclave
        .platform_mut()
        .counter(vendor.scope(), Counter::Inferences)
        .unwrap()
}

/// Four clips, each followed by a second of silence: yes, no, yes, no.
fn four_clips() -> Vec<i16> {
    ["yes_en-gb", "no_en-gb", "yes_en-us", "no_en-us"]
        .iter()
        .flat_map(|c| {
            let mut audio = clip(c);
            audio.extend(std::iter::repeat_n(0, 16_000));
            audio
        })
        .collect()
}

/// The push API (blocks of any size) gives the same replies as the pull loop on the same
/// audio: the same ready line, the same events with their scores, the same counts.
#[test]
fn pushed_audio_gives_the_pull_loops_events() {
    let (mut enclave, vendor, sealed) = provisioned_enclave(20, |t| t.quota = Some(10_000));
    let audio = four_clips();
    let mut pulled = Host::new(audio.clone(), 1000);
    enclave
        .handle(
            HostRequest::Start {
                package: vendor.package.clone(),
                sealed: sealed.clone(),
                vendor_key: omg_protocol::public_key_sec1(vendor.key.verifying_key()).to_vec(),
                source: InputSource::File.bit(),
            },
            &mut pulled,
        )
        .unwrap();
    assert!(!enclave.operating());
    let labels: Vec<_> = pulled
        .sent
        .iter()
        .filter_map(|r| match r {
            EnclaveReply::Event { label, .. } => Some(label.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(labels, ["yes", "no", "yes", "no"]);
    let pulled_count = inferences(&mut enclave, &vendor);

    let mut pushed = Host::new(Vec::new(), 0);
    let ready = start(&mut enclave, &vendor, &sealed).unwrap();
    pushed.sent.push(ready);
    assert!(enclave.operating());
    // Blocks of irregular sizes, an empty one among them.
    let mut rest = audio.as_slice();
    for size in [1, 0, 777, 5000, 3, 16_000].iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (block, tail) = rest.split_at((*size).min(rest.len()));
        enclave.push_audio(block, &mut pushed).unwrap();
        rest = tail;
    }
    let finished = enclave.finish(&mut pushed).unwrap();
    pushed.sent.push(finished);
    assert!(!enclave.operating());

    let without_time = |replies: &[EnclaveReply]| -> Vec<EnclaveReply> {
        replies
            .iter()
            .map(|r| match r {
                EnclaveReply::Finished {
                    samples,
                    classifications,
                    ..
                } => EnclaveReply::Finished {
                    samples: *samples,
                    classifications: *classifications,
                    busy_us: 0,
                },
                r => r.clone(),
            })
            .collect()
    };
    assert_eq!(without_time(&pushed.sent), without_time(&pulled.sent));
    let Some(EnclaveReply::Finished {
        samples,
        classifications,
        ..
    }) = pushed.sent.last()
    else {
        panic!("no Finished reply: {:?}", pushed.sent.last());
    };
    assert_eq!(*samples, audio.len() as u64);
    // Both sessions were settled: exactly their classifications were counted.
    assert_eq!(pulled_count, *classifications);
    assert_eq!(inferences(&mut enclave, &vendor), 2 * classifications);
}

/// An operation closed early, or stopped by a failure, counts what it classified and gives the
/// rest of its reserved block back.
#[test]
fn operations_ended_early_are_settled() {
    let (mut enclave, vendor, sealed) = provisioned_enclave(21, |t| t.quota = Some(100));
    let mut host = Host::new(Vec::new(), 0);
    start(&mut enclave, &vendor, &sealed).unwrap();
    enclave.push_audio(&clip("yes_en-gb"), &mut host).unwrap();
    enclave.push_audio(&[0; 8000], &mut host).unwrap();
    enclave.close().unwrap();
    assert!(!enclave.operating());
    let first = inferences(&mut enclave, &vendor);
    // Less than the block of 250 the session held (and than the quota): only what was used.
    assert!(first > 0 && first < 100, "{first}");

    // A first block that is a WAV header stops the operation, nothing classified.
    start(&mut enclave, &vendor, &sealed).unwrap();
    let mut wav = Vec::new();
    for pair in b"RIFF\x24\x7d\x00\x00WAVEfmt ".chunks(2) {
        wav.push(i16::from_le_bytes([pair[0], pair[1]]));
    }
    wav.resize(1600, 0);
    let e = enclave.push_audio(&wav, &mut host).unwrap_err();
    assert!(
        matches!(
            &e,
            EnclaveError::Stopped {
                classifications: 0,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!enclave.operating());
    assert_eq!(inferences(&mut enclave, &vendor), first);

    // The quota runs out in the middle of a block: stopped at exactly the quota.
    start(&mut enclave, &vendor, &sealed).unwrap();
    let e = enclave.push_audio(&[0; 80_000], &mut host).unwrap_err();
    let EnclaveError::Stopped {
        cause,
        classifications,
    } = &e
    else {
        panic!("{e:?}");
    };
    assert_eq!(
        **cause,
        EnclaveError::Refused(Refusal::QuotaExhausted {
            quota: 100,
            used: 100
        })
    );
    assert_eq!(*classifications, 100 - first);
    assert!(e.to_string().ends_with(&format!(
        "(after {} classification(s) in this session)",
        100 - first
    )));
    assert!(!enclave.operating());
    assert_eq!(inferences(&mut enclave, &vendor), 100);
    // And the next start is refused before anything is decrypted.
    assert!(matches!(
        start(&mut enclave, &vendor, &sealed),
        Err(EnclaveError::Refused(Refusal::QuotaExhausted { .. }))
    ));
}

/// Commands out of order are refused and change nothing.
#[test]
fn operation_commands_out_of_order_are_refused() {
    let (mut enclave, vendor, sealed) = provisioned_enclave(22, |_| {});
    let mut host = Host::new(Vec::new(), 0);
    let none = EnclaveError::Mismatch("no operation is running");
    assert_eq!(enclave.push_audio(&[0; 100], &mut host).unwrap_err(), none);
    assert_eq!(enclave.finish(&mut host).unwrap_err(), none);
    enclave.close().unwrap();
    assert!(matches!(
        start(&mut enclave, &vendor, &sealed).unwrap(),
        EnclaveReply::Ready { .. }
    ));
    // A second start while one runs: refused, the first goes on.
    assert!(matches!(
        start(&mut enclave, &vendor, &sealed),
        Err(EnclaveError::Mismatch(_))
    ));
    // A start is no provisioning request.
    assert!(matches!(
        enclave.provision(HostRequest::Start {
            package: vendor.package.clone(),
            sealed: sealed.clone(),
            vendor_key: Vec::new(),
            source: 2,
        }),
        Err(EnclaveError::Mismatch(_))
    ));
    assert!(enclave.operating());
    enclave.push_audio(&clip("yes_en-us"), &mut host).unwrap();
    assert!(matches!(
        enclave.finish(&mut host).unwrap(),
        EnclaveReply::Finished { .. }
    ));
    assert!(
        host.sent
            .iter()
            .any(|r| matches!(r, EnclaveReply::Event { label, .. } if label == "yes"))
    );
    assert_eq!(enclave.push_audio(&[0; 100], &mut host).unwrap_err(), none);
    assert_eq!(enclave.finish(&mut host).unwrap_err(), none);
    // A provisioning finish without its beginning.
    assert_eq!(
        enclave
            .provision(HostRequest::FinishProvision {
                key_release: vec![1],
                licence: vec![2],
            })
            .unwrap_err(),
        EnclaveError::Mismatch("no provisioning in progress")
    );
}

fn clock() -> u64 {
    0
}

type TaCommands = omg_enclave::commands::Commands<TestPlatform, Zeroizing<Vec<u8>>>;

fn replies(
    commands: &mut TaCommands,
    id: u32,
    input: &[u8],
) -> Result<Vec<EnclaveReply>, omg_enclave::commands::CommandError> {
    let out = commands.command(id, input, 1 << 20)?;
    Ok(omg_enclave::commands::split_replies(&out).unwrap())
}

/// The command layer of the OP-TEE TA, on the test platform: provisioning, then an operation
/// in audio blocks, gives the pull loop's events; a short output buffer keeps the replies for
/// the drain command.
#[test]
fn commands_provision_and_operate() {
    use omg_enclave::commands::{
        CMD_AUDIO, CMD_DRAIN, CMD_FINISH, CMD_REQUEST, CommandError, audio_bytes,
    };
    use omg_enclave::messages::encode;
    let platform = TestPlatform::new(23);
    let mut vendor = Vendor::new(OutputPolicy::AllScores);
    let mut terms = vendor.terms(&platform);
    terms.quota = Some(10_000);
    let device = *platform.device_key.verifying_key();
    let mut commands = TaCommands::new(platform, "heap", protected, clock);
    let vendor_key = omg_protocol::public_key_sec1(vendor.key.verifying_key()).to_vec();
    let begin = encode(&HostRequest::BeginProvision {
        package: vendor.package.clone(),
        vendor_key: vendor_key.clone(),
        nonce: vec![5; 32],
    })
    .unwrap();
    let [
        EnclaveReply::Attested {
            token,
            enclave_public_key,
            ..
        },
    ] = &replies(&mut commands, CMD_REQUEST, &begin).unwrap()[..]
    else {
        panic!("no Attested reply");
    };
    Token::verify(token, &device).unwrap();
    let release = KeyRelease::seal(
        &HpkePublicKey::from_bytes(enclave_public_key).unwrap(),
        token,
        &vendor.content_key,
        "micro_speech",
        2,
        &mut vendor.rng,
    )
    .unwrap();
    let licence = Licence {
        activation: sha256(token),
        ..terms
    };
    let finish = encode(&HostRequest::FinishProvision {
        key_release: release,
        licence: licence.sign(&vendor.key).unwrap(),
    })
    .unwrap();
    let [EnclaveReply::Sealed { blob, .. }] =
        &replies(&mut commands, CMD_REQUEST, &finish).unwrap()[..]
    else {
        panic!("no Sealed reply");
    };
    let start = HostRequest::Start {
        package: vendor.package.clone(),
        sealed: blob.clone(),
        vendor_key,
        source: InputSource::File.bit(),
    };

    let audio = four_clips();
    let ready = replies(&mut commands, CMD_REQUEST, &encode(&start).unwrap()).unwrap();
    assert!(
        matches!(&ready[..], [EnclaveReply::Ready { .. }]),
        "{ready:?}"
    );
    let mut pushed = Vec::new();
    for block in audio.chunks(3000) {
        pushed.extend(replies(&mut commands, CMD_AUDIO, &audio_bytes(block)).unwrap());
    }
    pushed.extend(replies(&mut commands, CMD_FINISH, &[]).unwrap());
    let labels: Vec<_> = pushed
        .iter()
        .filter_map(|r| match r {
            EnclaveReply::Event { label, scores, .. } => {
                assert!(scores.is_some());
                Some(label.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(labels, ["yes", "no", "yes", "no"]);
    assert!(matches!(
        pushed.last(),
        Some(EnclaveReply::Finished { samples, .. }) if *samples == audio.len() as u64
    ));
    assert!(!commands.operating());

    // A short output buffer: the events wait for the drain, the command is not run twice.
    replies(&mut commands, CMD_REQUEST, &encode(&start).unwrap()).unwrap();
    let mut yes = clip("yes_en-gb");
    yes.extend(std::iter::repeat_n(0, 16_000));
    assert_eq!(
        commands.command(CMD_AUDIO, &audio_bytes(&yes[..16_000]), usize::MAX),
        Ok(Vec::new())
    );
    assert_eq!(
        commands.command(CMD_AUDIO, &audio_bytes(&yes[16_000..]), 4),
        Err(CommandError::ShortBuffer)
    );
    let drained = replies(&mut commands, CMD_DRAIN, &[]).unwrap();
    assert!(
        matches!(&drained[..], [EnclaveReply::Event { label, .. }] if label == "yes"),
        "{drained:?}"
    );
    assert!(replies(&mut commands, CMD_DRAIN, &[]).unwrap().is_empty());
    // Closing ends the operation.
    commands.close().unwrap();
    assert!(!commands.operating());
}

/// Hostile bytes get error codes or `Failed` replies, and the layer keeps answering.
#[test]
fn commands_refuse_hostile_bytes() {
    use omg_enclave::commands::{
        CMD_AUDIO, CMD_DRAIN, CMD_FINISH, CMD_REQUEST, CommandError, MAX_AUDIO_BYTES,
        MAX_REQUEST_BYTES,
    };
    use omg_enclave::messages::encode;
    let (enclave, vendor, sealed) = provisioned_enclave(24, |_| {});
    drop(enclave);
    let mut commands = TaCommands::new(TestPlatform::new(24), "heap", protected, clock);
    let start = encode(&HostRequest::Start {
        package: vendor.package.clone(),
        sealed,
        vendor_key: omg_protocol::public_key_sec1(vendor.key.verifying_key()).to_vec(),
        source: InputSource::File.bit(),
    })
    .unwrap();
    let bad = |c: &mut TaCommands, id: u32, input: &[u8]| c.command(id, input, 1 << 20);
    assert_eq!(
        bad(&mut commands, 99, &[]),
        Err(CommandError::BadParameters)
    );
    for input in [
        &[][..],
        &[1, 2, 3],
        &[0, 0, 0, 0],
        &[0xff, 0xff, 0xff, 0xff, 1],
        &start[..start.len() - 1],
        b"\x05\x00\x00\x00garbage",
    ] {
        assert_eq!(
            bad(&mut commands, CMD_REQUEST, input),
            Err(CommandError::BadFormat),
            "{input:?}"
        );
    }
    let mut longer = start.clone();
    longer.push(0);
    assert_eq!(
        bad(&mut commands, CMD_REQUEST, &longer),
        Err(CommandError::BadFormat)
    );
    assert_eq!(
        bad(&mut commands, CMD_REQUEST, &vec![0; MAX_REQUEST_BYTES + 1]),
        Err(CommandError::BadParameters)
    );
    // Every truncation and a sample of byte changes of a valid request: never a panic.
    for n in (0..start.len()).step_by(97) {
        let _ = bad(&mut commands, CMD_REQUEST, &start[..n]);
    }
    for i in (0..start.len()).step_by(31) {
        let mut changed = start.clone();
        changed[i] ^= 0x41;
        if let Ok(out) = bad(&mut commands, CMD_REQUEST, &changed) {
            let r = omg_enclave::commands::split_replies(&out).unwrap();
            if matches!(&r[..], [EnclaveReply::Ready { .. }]) {
                commands.close().unwrap();
            }
        }
    }
    // Audio and finish without an operation: Failed replies.
    for (id, input) in [(CMD_AUDIO, &[0u8, 0][..]), (CMD_FINISH, &[][..])] {
        let r = replies(&mut commands, id, input).unwrap();
        assert!(
            matches!(&r[..], [EnclaveReply::Failed { reason }] if reason.contains("no operation")),
            "{r:?}"
        );
    }
    assert_eq!(
        bad(&mut commands, CMD_FINISH, &[1]),
        Err(CommandError::BadParameters)
    );
    assert_eq!(
        bad(&mut commands, CMD_DRAIN, &[1]),
        Err(CommandError::BadParameters)
    );
    // A valid start still works; odd or oversized audio is refused without ending it.
    let ready = replies(&mut commands, CMD_REQUEST, &start).unwrap();
    assert!(
        matches!(&ready[..], [EnclaveReply::Ready { .. }]),
        "{ready:?}"
    );
    assert_eq!(
        bad(&mut commands, CMD_AUDIO, &[1, 2, 3]),
        Err(CommandError::BadParameters)
    );
    assert_eq!(
        bad(&mut commands, CMD_AUDIO, &vec![0; MAX_AUDIO_BYTES + 2]),
        Err(CommandError::BadParameters)
    );
    assert!(commands.operating());
    let r = replies(&mut commands, CMD_FINISH, &[]).unwrap();
    assert!(
        matches!(r.last(), Some(EnclaveReply::Finished { .. })),
        "{r:?}"
    );
}
