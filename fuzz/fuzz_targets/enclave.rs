//! The enclave's request loop (`omg_enclave::server::Enclave::handle`) as a state machine,
//! driven by a script of host requests, platform answers and audio read from the input.
//!
//! The target plays an honest vendor (one key, one micro_speech package whose output-policy
//! ceiling is "label and score") and a deterministic in-memory platform whose services can be
//! made to fail or to answer with values from the input. Each request is either built from
//! that state (the real package, a key release sealed to the enclave key the enclave just
//! attested, a licence signed on terms from the input, the last sealed blob) or taken raw from
//! the input. After each request it checks that only the allowed replies left: `Attested`
//! after `BeginProvision`, `Sealed` after `FinishProvision`, `Ready`, keyword `Event`s
//! within the output policy in force and `Finished` after `Start` (a prefix of these on
//! failure), and that the content key never appears in any reply.
//!
//! Input: byte 0 sets the platform's failures (bit 0 attest, 1 sealing key, 2 time,
//! 3 counters, 4 raising the epoch and reserving or settling inferences) and bit 5 makes it
//! answer counters, reservations and time with values from the input. Then operations, at most [`MAX_OPS`]: `0` begin provisioning, `1` finish
//! it, `2` start, `3` set the platform's answers; each reads its own parameters (see the
//! functions below). Missing bytes read as zeros.
#![no_main]
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use omg_enclave::ledger::Ledger;
use omg_enclave::messages::{EnclaveReply, HostRequest, encode};
use omg_enclave::platform::{Counter, ModelScope, Reservation, sign_enclave_token};
use omg_enclave::server::{Enclave, EnclaveIo, Replies};
use omg_enclave::{Platform, PlatformError};
use omg_protocol::key_release::{HpkePublicKey, KeyRelease};
use omg_protocol::licence::{InputSource, InputSources, Lease, Licence, OutputPolicy};
use omg_protocol::package::{Package, PackageHeader};
use omg_protocol::rand_core::{CryptoRng, Rng};
use omg_protocol::sealed::SealingKey;
use omg_protocol::{ContentKey, SigningKey, generate_signing_key, public_key_sec1, sha256, ueid};
use omg_testkit::DeterministicRng;

const NOW: u64 = 1_800_000_000;
const MODEL: &[u8] =
    include_bytes!("../../assets/pipelines/micro_speech/micro_speech_quantized.tflite");
/// Operations per input.
const MAX_OPS: usize = 8;
/// `Start` requests per input (each runs the classifier on at least a second of audio).
const MAX_STARTS: usize = 2;
/// Audio samples one `Start` reads from the input at most.
const MAX_AUDIO: usize = 8_000;
/// The package's output-policy ceiling.
const CEILING: OutputPolicy = OutputPolicy::LabelAndScore;
/// The bundle's labels; only the last two are keywords.

/// The vendor: its key, content key and package, made once.
struct Vendor {
    key: SigningKey,
    content_key: [u8; 32],
    package: Vec<u8>,
}

fn vendor() -> &'static Vendor {
    static VENDOR: OnceLock<Vendor> = OnceLock::new();
    VENDOR.get_or_init(|| {
        let mut rng = DeterministicRng::new(99);
        let key = generate_signing_key(&mut rng);
        let content_key = sha256(b"omg fuzz content key");
        let bundle = omg_testkit::micro_speech_bundle(MODEL, None, CEILING)
            .to_bytes()
            .expect("valid bundle");
        let header = PackageHeader::new("micro_speech", 2, NOW - 10, key.verifying_key());
        let package = Package::seal(
            &header,
            &bundle,
            &ContentKey::from_bytes(content_key),
            &key,
            &mut rng,
        )
        .expect("package");
        Vendor {
            key,
            content_key,
            package,
        }
    })
}

/// Reads the script; past its end every read gives zeros.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|_| self.byte()))
    }
    /// A length byte, then that many bytes (as many as there are).
    fn bytes(&mut self) -> Vec<u8> {
        let n = usize::from(self.byte()).min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b.to_vec()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The in-memory platform: honest unless told to fail or to answer with the input's values.
struct FakePlatform {
    device_key: SigningKey,
    huk: [u8; 32],
    fail: u8,
    lie: bool,
    /// Time and counter answers (epoch, inferences), set by the script.
    answers: Rc<Cell<[u64; 3]>>,
    epochs: BTreeMap<ScopeKey, u64>,
    /// Per scope: the quota's ledger.
    inferences: BTreeMap<ScopeKey, Ledger<()>>,
    rng: DeterministicRng,
}

type ScopeKey = ([u8; 16], String);

fn key(scope: ModelScope<'_>) -> ScopeKey {
    (scope.vendor, scope.model_id.to_string())
}

impl FakePlatform {
    fn check(&self, bit: u8, service: &'static str) -> Result<(), PlatformError> {
        if self.fail & (1 << bit) != 0 {
            return Err(PlatformError::new(service, "failed as told"));
        }
        Ok(())
    }
}

impl Platform for FakePlatform {
    fn measurement(&self) -> [u8; 32] {
        [0x42; 32]
    }
    fn device_ueid(&self) -> [u8; 33] {
        ueid(self.device_key.verifying_key())
    }
    fn attest(&mut self, nonce: &[u8], hash: [u8; 32]) -> Result<Vec<u8>, PlatformError> {
        self.check(0, "attest")?;
        sign_enclave_token(&self.device_key, [7; 32], [0x42; 32], [8; 32], nonce, hash)
    }
    fn sealing_key(&mut self, scope: ModelScope<'_>) -> Result<SealingKey, PlatformError> {
        self.check(1, "sealing key")?;
        SealingKey::derive(&self.huk, &[0x42; 32], &scope.vendor, scope.model_id)
            .map_err(|e| PlatformError::new("sealing key", e.to_string()))
    }
    fn rng(&mut self) -> &mut dyn CryptoRng {
        &mut self.rng
    }
    fn now(&mut self) -> Result<u64, PlatformError> {
        self.check(2, "time")?;
        Ok(if self.lie { self.answers.get()[0] } else { NOW })
    }
    fn counter(&mut self, scope: ModelScope<'_>, counter: Counter) -> Result<u64, PlatformError> {
        self.check(3, "counter")?;
        if self.lie {
            return Ok(self.answers.get()[1 + counter as usize]);
        }
        Ok(match counter {
            Counter::Epoch => self.epochs.get(&key(scope)).copied().unwrap_or(0),
            Counter::Inferences => self
                .inferences
                .get(&key(scope))
                .map_or(0, Ledger::committed),
        })
    }
    fn raise_epoch(&mut self, scope: ModelScope<'_>, value: u64) -> Result<u64, PlatformError> {
        self.check(4, "counter")?;
        if self.lie {
            return Ok(self.answers.get()[1]);
        }
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
        self.check(4, "counter")?;
        if self.lie {
            let [_, _, n] = self.answers.get();
            return Ok(Reservation {
                id: 0,
                start: n,
                granted: n % 512,
            });
        }
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
        self.check(4, "counter")?;
        if self.lie {
            return Ok(());
        }
        self.inferences
            .entry(key(scope))
            .or_default()
            .settle(reservation, used);
        Ok(())
    }
}

/// The entry around the enclave: records replies, serves audio from the input.
struct Io {
    sent: Vec<EnclaveReply>,
    audio: Vec<i16>,
    read: usize,
    clock: u64,
}

impl Replies for Io {
    fn send(&mut self, reply: &EnclaveReply) -> Result<(), PlatformError> {
        self.sent.push(reply.clone());
        Ok(())
    }
    fn monotonic_us(&self) -> u64 {
        self.clock
    }
}

impl EnclaveIo for Io {
    type Buffer = Vec<u8>;

    fn read_audio(&mut self, buf: &mut [i16]) -> Result<usize, PlatformError> {
        let n = buf.len().min(self.audio.len() - self.read).min(777);
        buf[..n].copy_from_slice(&self.audio[self.read..self.read + n]);
        self.read += n;
        Ok(n)
    }
    fn protected(&mut self, len: usize) -> Result<Vec<u8>, PlatformError> {
        Ok(vec![0; len])
    }
    fn memory_kind(&self) -> &'static str {
        "heap"
    }
}

/// What the script's vendor and host remember between requests.
#[derive(Default)]
struct Host {
    /// Token and enclave public key of the last `Attested`.
    attested: Option<(Vec<u8>, Vec<u8>)>,
    /// The output policy of the licence being provisioned.
    offered: Option<OutputPolicy>,
    /// Sealed blobs received, with their licence's output policy.
    sealed: Vec<(Vec<u8>, OutputPolicy)>,
    starts: usize,
}

fn policy(b: u8) -> OutputPolicy {
    [
        OutputPolicy::LabelOnly,
        OutputPolicy::LabelAndScore,
        OutputPolicy::AllScores,
    ][usize::from(b % 3)]
}

/// `0 flags nonce`: flags bit 0 takes the package from the input, bit 1 the vendor key.
fn begin(s: &mut Script<'_>, v: &Vendor) -> HostRequest {
    let flags = s.byte();
    let package = if flags & 1 != 0 {
        s.bytes()
    } else {
        v.package.clone()
    };
    let vendor_key = if flags & 2 != 0 {
        s.bytes()
    } else {
        public_key_sec1(v.key.verifying_key()).to_vec()
    };
    HostRequest::BeginProvision {
        package,
        vendor_key,
        nonce: s.bytes(),
    }
}

/// `1 flags [terms]`: flags bit 0 takes the key release from the input (else the vendor seals
/// the content key to the last attested enclave key), bit 1 the licence (else the vendor signs
/// terms read from the input: policy, sources, expiry offset, epoch, quota, and flags: bit 0
/// another device, bit 1 another model, bit 2 another version, bit 3 another activation (not
/// the last attested token), bit 4 a lease that ends at the target's time).
fn finish(s: &mut Script<'_>, v: &Vendor, device: [u8; 33], host: &mut Host) -> HostRequest {
    let flags = s.byte();
    let mut rng = DeterministicRng::new(7);
    let key_release = match (&host.attested, flags & 1) {
        (Some((token, enclave_key)), 0) => KeyRelease::seal(
            &HpkePublicKey::from_bytes(enclave_key).expect("the attested key"),
            token,
            &ContentKey::from_bytes(v.content_key),
            "micro_speech",
            2,
            &mut rng,
        )
        .expect("key release"),
        _ => s.bytes(),
    };
    host.offered = None;
    let licence = if flags & 2 != 0 {
        s.bytes()
    } else {
        let output_policy = policy(s.byte());
        let sources =
            InputSources::from_bits(s.byte() & 7).unwrap_or(InputSources::of(&[InputSource::File]));
        let expiry = i64::from(s.byte() as i8) * 100;
        let epoch = u32::from(s.byte() % 4);
        let quota = match s.byte() {
            0 => None,
            q => Some(u64::from(q) * 10),
        };
        let wrong = s.byte();
        let mut device_ueid = device;
        if wrong & 1 != 0 {
            device_ueid[5] ^= 1;
        }
        let terms = Licence {
            device_ueid,
            model_id: if wrong & 2 != 0 {
                "other"
            } else {
                "micro_speech"
            }
            .into(),
            model_version: if wrong & 4 != 0 { 3 } else { 2 },
            not_after: NOW.saturating_add_signed(expiry),
            epoch,
            quota,
            output_policy,
            input_sources: sources,
            activation: match &host.attested {
                Some((token, _)) if wrong & 8 == 0 => sha256(token),
                _ => [0; 32],
            },
            lease: (wrong & 16 != 0).then_some(Lease {
                renew_after: NOW,
                lease_until: NOW,
            }),
        };
        host.offered = Some(output_policy);
        terms.sign(&v.key).expect("licence")
    };
    HostRequest::FinishProvision {
        key_release,
        licence,
    }
}

/// `2 flags source audio`: flags bit 0 takes the sealed blob from the input (else the one of
/// the last `Sealed`), bit 1 the package; then the source bits and a length-prefixed run of
/// audio bytes (repeated to `length * 64` samples, at most [`MAX_AUDIO`]).
fn start(
    s: &mut Script<'_>,
    v: &Vendor,
    host: &Host,
    io: &mut Io,
) -> (HostRequest, Option<OutputPolicy>) {
    let flags = s.byte();
    let (sealed, known) = match (host.sealed.last(), flags & 1) {
        (Some((blob, p)), 0) => (blob.clone(), Some(*p)),
        _ => (s.bytes(), None),
    };
    let package = if flags & 2 != 0 {
        s.bytes()
    } else {
        v.package.clone()
    };
    let source = s.byte();
    let pattern = s.bytes();
    io.audio.clear();
    io.read = 0;
    if pattern.len() >= 2 {
        let n = (usize::from(s.byte()) * 64).min(MAX_AUDIO);
        io.audio = (0..n)
            .map(|i| {
                let j = (2 * i) % (pattern.len() & !1);
                i16::from_le_bytes([pattern[j], pattern[j + 1]])
            })
            .collect();
    }
    let request = HostRequest::Start {
        package,
        sealed,
        vendor_key: public_key_sec1(v.key.verifying_key()).to_vec(),
        source,
    };
    (request, known)
}

/// Checks that `sent` is what `request` may produce (`ok`: it succeeded).
fn check(request: &HostRequest, sent: &[EnclaveReply], ok: bool, known: Option<OutputPolicy>) {
    match request {
        HostRequest::BeginProvision { .. } => {
            assert!(
                matches!(sent, [EnclaveReply::Attested { .. }]) == ok && sent.len() <= 1,
                "{sent:?}"
            );
        }
        HostRequest::FinishProvision { .. } => {
            assert!(
                matches!(sent, [EnclaveReply::Sealed { .. }]) == ok && sent.len() <= 1,
                "{sent:?}"
            );
        }
        HostRequest::Start { .. } => {
            let Some((first, rest)) = sent.split_first() else {
                assert!(!ok, "a successful start sends Ready");
                return;
            };
            let EnclaveReply::Ready { output_policy, .. } = first else {
                panic!("Start's first reply is {first:?}");
            };
            assert!(
                *output_policy <= CEILING as u8,
                "policy {output_policy} above the ceiling"
            );
            if let Some(p) = known {
                assert_eq!(*output_policy, p.min(CEILING) as u8);
            }
            let (events, last) = match rest.split_last() {
                Some((EnclaveReply::Finished { .. }, events)) => (events, true),
                // A session that fails once running says so itself.
                Some((EnclaveReply::Failed { .. }, events)) => (events, false),
                _ => (rest, false),
            };
            assert_eq!(last, ok, "Finished iff the request succeeded: {rest:?}");
            for e in events {
                let EnclaveReply::Event {
                    label,
                    score,
                    scores,
                    ..
                } = e
                else {
                    panic!("{e:?} during operation");
                };
                assert!(label == "yes" || label == "no", "event for {label}");
                assert_eq!(score.is_some(), *output_policy >= 1, "{e:?}");
                assert_eq!(scores.is_some(), *output_policy == 2, "{e:?}");
            }
        }
    }
}

/// `3 time epoch inferences`: the answers of a platform told to lie (8 bytes each).
fn answers(s: &mut Script<'_>, to: &Cell<[u64; 3]>) {
    let time = NOW.wrapping_add(s.u64());
    to.set([time, s.u64(), s.u64()]);
}

fn reply_bytes(reply: &EnclaveReply) -> Vec<u8> {
    encode(reply).expect("a reply encodes")
}

fuzz_target!(|data: &[u8]| {
    let v = vendor();
    let mut s = Script(data);
    let mode = s.byte();
    let mut rng = DeterministicRng::new(1);
    let mut huk = [0u8; 32];
    rng.fill_bytes(&mut huk);
    let device_key = generate_signing_key(&mut rng);
    let device = ueid(device_key.verifying_key());
    let shared = Rc::new(Cell::new([NOW, 0, 0]));
    let mut enclave = Enclave::new(FakePlatform {
        device_key,
        huk,
        fail: mode & 0x1f,
        lie: mode & 0x20 != 0,
        answers: Rc::clone(&shared),
        epochs: BTreeMap::new(),
        inferences: BTreeMap::new(),
        rng,
    });
    let mut host = Host::default();
    let mut io = Io {
        sent: Vec::new(),
        audio: Vec::new(),
        read: 0,
        clock: 0,
    };
    for _ in 0..MAX_OPS {
        if s.is_empty() {
            break;
        }
        let (request, known) = match s.byte() % 4 {
            0 => (begin(&mut s, v), None),
            1 => (finish(&mut s, v, device, &mut host), None),
            2 if host.starts < MAX_STARTS => {
                host.starts += 1;
                start(&mut s, v, &host, &mut io)
            }
            2 => continue,
            _ => {
                answers(&mut s, &shared);
                continue;
            }
        };
        io.sent.clear();
        let ok = enclave.handle(request.clone(), &mut io).is_ok()
            && !matches!(io.sent.last(), Some(EnclaveReply::Failed { .. }));
        check(&request, &io.sent, ok, known);
        // A reply may echo what the host sent (a token carries its nonce): the content key
        // only counts as leaked when the request did not hold it already.
        let supplied = encode(&request).unwrap_or_default();
        let known_to_host = supplied.windows(32).any(|w| w == v.content_key);
        for reply in &io.sent {
            let bytes = reply_bytes(reply);
            assert!(
                known_to_host || !bytes.windows(32).any(|w| w == v.content_key),
                "the content key left the enclave"
            );
            match reply {
                EnclaveReply::Attested {
                    token,
                    enclave_public_key,
                    ..
                } => host.attested = Some((token.clone(), enclave_public_key.clone())),
                EnclaveReply::Sealed { blob, .. } => {
                    if let Some(p) = host.offered {
                        host.sealed.push((blob.clone(), p));
                    }
                }
                _ => {}
            }
        }
        io.clock += 1;
    }
});
