//! The enclave's command layer (`omg_enclave::commands::Commands::command`), what the OP-TEE
//! TA runs on the bytes and buffer sizes the normal world hands it: commands 9 to 12 and
//! unknown ones, in any order, on raw bytes, on well-framed CBOR bodies from the input and on
//! the honest requests of a vendor, with output buffers from nothing to 1 MiB.
//!
//! Input: byte 0 is the mode: bit 0 provisions honestly first (begin, key release and licence
//! from the target's vendor, finish) so that starts and audio reach a running operation, bit 1
//! puts a quota of 60 inferences in the licence. Then operations, at most [`MAX_OPS`], each an
//! operation byte, its parameters (see [`op`]) and a capacity byte (0, 4, 64, 4096 or 1 MiB of
//! output). Missing bytes read as zeros.
//!
//! Checks: the output of a command fits its buffer and is whole reply frames; a reply never
//! holds the content key (unless the command's input did); `ShortBuffer` keeps the replies for
//! `CMD_DRAIN`, which returns them; the error codes are the documented ones (an unknown
//! command, input to a command that takes none, odd or oversized audio are
//! `BadParameters`; bytes that are not one whole request frame are `BadFormat`); closing ends
//! any operation.
#![no_main]
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use omg_enclave::commands::{
    CMD_AUDIO, CMD_DRAIN, CMD_FINISH, CMD_REQUEST, CommandError, Commands, MAX_AUDIO_BYTES,
    MAX_REQUEST_BYTES, split_replies,
};
use omg_enclave::ledger::Ledger;
use omg_enclave::messages::{EnclaveReply, HostRequest, encode};
use omg_enclave::platform::{Counter, ModelScope, Reservation, sign_enclave_token};
use omg_enclave::{Platform, PlatformError};
use omg_protocol::key_release::{HpkePublicKey, KeyRelease};
use omg_protocol::licence::{InputSource, InputSources, Licence, OutputPolicy};
use omg_protocol::package::{Package, PackageHeader};
use omg_protocol::rand_core::{CryptoRng, Rng};
use omg_protocol::sealed::SealingKey;
use omg_protocol::{ContentKey, SigningKey, generate_signing_key, public_key_sec1, sha256, ueid};
use omg_testkit::DeterministicRng;

const NOW: u64 = 1_800_000_000;
const MODEL: &[u8] =
    include_bytes!("../../assets/pipelines/micro_speech/micro_speech_quantized.tflite");
/// Commands per input.
const MAX_OPS: usize = 12;
/// Bytes of audio one command takes from the input at most (then repeated).
const MAX_AUDIO_PATTERN: usize = 255;

/// The vendor: its key, content key and package (micro_speech, label and score), made once.
struct Vendor {
    key: SigningKey,
    content_key: [u8; 32],
    package: Vec<u8>,
}

fn vendor() -> &'static Vendor {
    static VENDOR: OnceLock<Vendor> = OnceLock::new();
    VENDOR.get_or_init(|| {
        let mut rng = DeterministicRng::new(98);
        let key = generate_signing_key(&mut rng);
        let content_key = sha256(b"omg fuzz commands content key");
        let bundle = omg_testkit::micro_speech_bundle(MODEL, None, OutputPolicy::LabelAndScore)
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
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(std::array::from_fn(|_| self.byte()))
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

/// An honest in-memory platform (the TA's `OpteePlatform` stands behind the same trait).
struct FakePlatform {
    device_key: SigningKey,
    huk: [u8; 32],
    epochs: BTreeMap<[u8; 32], u64>,
    inferences: BTreeMap<[u8; 32], Ledger<()>>,
    rng: DeterministicRng,
}

impl Platform for FakePlatform {
    fn measurement(&self) -> [u8; 32] {
        [0x42; 32]
    }
    fn device_ueid(&self) -> [u8; 33] {
        ueid(self.device_key.verifying_key())
    }
    fn attest(&mut self, nonce: &[u8], hash: [u8; 32]) -> Result<Vec<u8>, PlatformError> {
        sign_enclave_token(&self.device_key, [7; 32], [0x42; 32], [8; 32], nonce, hash)
    }
    fn sealing_key(&mut self, scope: ModelScope<'_>) -> Result<SealingKey, PlatformError> {
        SealingKey::derive(&self.huk, &[0x42; 32], &scope.vendor, scope.model_id)
            .map_err(|e| PlatformError::new("sealing key", e.to_string()))
    }
    fn rng(&mut self) -> &mut dyn CryptoRng {
        &mut self.rng
    }
    fn now(&mut self) -> Result<u64, PlatformError> {
        Ok(NOW)
    }
    fn counter(&mut self, scope: ModelScope<'_>, counter: Counter) -> Result<u64, PlatformError> {
        let key = scope.digest();
        Ok(match counter {
            Counter::Epoch => self.epochs.get(&key).copied().unwrap_or(0),
            Counter::Inferences => self.inferences.get(&key).map_or(0, Ledger::committed),
        })
    }
    fn raise_epoch(&mut self, scope: ModelScope<'_>, value: u64) -> Result<u64, PlatformError> {
        let c = self.epochs.entry(scope.digest()).or_insert(0);
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
            .entry(scope.digest())
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
            .entry(scope.digest())
            .or_default()
            .settle(reservation, used);
        Ok(())
    }
}

type TaCommands = Commands<FakePlatform, Vec<u8>>;

fn protected(len: usize) -> Result<Vec<u8>, PlatformError> {
    Ok(vec![0; len])
}

fn clock() -> u64 {
    0
}

/// Runs a command and checks what comes out; returns its replies.
fn command(
    commands: &mut TaCommands,
    id: u32,
    input: &[u8],
    capacity: usize,
) -> Result<Vec<EnclaveReply>, CommandError> {
    let result = commands.command(id, input, capacity);
    let input_holds_key = input.windows(32).any(|w| w == vendor().content_key);
    let out = match result {
        Ok(out) => {
            assert!(out.len() <= capacity, "{} bytes for {capacity}", out.len());
            out
        }
        Err(CommandError::ShortBuffer) => {
            // The replies wait for the drain, which returns them whole.
            let out = commands
                .command(CMD_DRAIN, &[], usize::MAX)
                .expect("the drain returns what a short buffer kept");
            assert!(!out.is_empty(), "a short buffer with nothing kept");
            out
        }
        Err(e) => return Err(e),
    };
    assert!(
        input_holds_key || !out.windows(32).any(|w| w == vendor().content_key),
        "the content key left the enclave"
    );
    Ok(split_replies(&out).expect("a command's output is whole reply frames"))
}

/// Provisions honestly; returns the sealed blob.
fn provision(commands: &mut TaCommands, device: [u8; 33], quota: Option<u64>) -> Vec<u8> {
    let v = vendor();
    let vendor_key = public_key_sec1(v.key.verifying_key()).to_vec();
    let begin = encode(&HostRequest::BeginProvision {
        package: v.package.clone(),
        vendor_key,
        nonce: vec![5; 32],
    })
    .expect("begin");
    let [
        EnclaveReply::Attested {
            token,
            enclave_public_key,
            ..
        },
    ] = &command(commands, CMD_REQUEST, &begin, 1 << 20).expect("begin provisioning")[..]
    else {
        panic!("no Attested reply to an honest begin");
    };
    let mut rng = DeterministicRng::new(7);
    let key_release = KeyRelease::seal(
        &HpkePublicKey::from_bytes(enclave_public_key).expect("the attested key"),
        token,
        &ContentKey::from_bytes(v.content_key),
        "micro_speech",
        2,
        &mut rng,
    )
    .expect("key release");
    let licence = Licence {
        device_ueid: device,
        model_id: "micro_speech".into(),
        model_version: 2,
        not_after: NOW + 1000,
        epoch: 0,
        quota,
        output_policy: OutputPolicy::LabelAndScore,
        input_sources: InputSources::of(&[InputSource::File]),
        activation: sha256(token),
        lease: None,
    }
    .sign(&v.key)
    .expect("licence");
    let finish = encode(&HostRequest::FinishProvision {
        key_release,
        licence,
    })
    .expect("finish");
    let [EnclaveReply::Sealed { blob, .. }] =
        &command(commands, CMD_REQUEST, &finish, 1 << 20).expect("finish provisioning")[..]
    else {
        panic!("no Sealed reply to an honest finish");
    };
    blob.clone()
}

/// Operation `byte % 7` with its parameters: the command id and its input.
/// 0: a request of raw bytes; 1: a request frame whose CBOR body comes from the input;
/// 2: an honest `Start` (the sealed blob of the provisioning, or one from the input);
/// 3: audio, a length byte (in 8-byte steps up to 32 KiB and beyond) and a pattern repeated,
/// an odd byte dropped or kept by a flag; 4: finish, with input when a flag says so; 5: drain,
/// likewise; 6: a command id from the input.
fn op(s: &mut Script<'_>, sealed: &Option<Vec<u8>>) -> (u32, Vec<u8>) {
    match s.byte() % 7 {
        0 => (CMD_REQUEST, s.bytes()),
        1 => {
            let body = s.bytes();
            let mut frame = u32::try_from(body.len())
                .expect("short")
                .to_le_bytes()
                .to_vec();
            frame.extend(body);
            (CMD_REQUEST, frame)
        }
        2 => {
            let flags = s.byte();
            let sealed = match sealed {
                Some(blob) if flags & 1 == 0 => blob.clone(),
                _ => s.bytes(),
            };
            let v = vendor();
            let start = HostRequest::Start {
                package: v.package.clone(),
                sealed,
                vendor_key: public_key_sec1(v.key.verifying_key()).to_vec(),
                source: if flags & 2 == 0 {
                    InputSource::File.bit()
                } else {
                    s.byte()
                },
            };
            (CMD_REQUEST, encode(&start).expect("start"))
        }
        3 => {
            let len = usize::from(s.byte()) * 8 * 17;
            let odd = s.byte() & 1;
            let pattern: Vec<u8> = s.bytes().into_iter().take(MAX_AUDIO_PATTERN).collect();
            let audio = if pattern.is_empty() {
                vec![0; len]
            } else {
                pattern.iter().copied().cycle().take(len).collect()
            };
            let mut audio = audio;
            if odd == 1 {
                audio.push(1);
            }
            (CMD_AUDIO, audio)
        }
        4 | 5 => {
            let id = if s.byte() & 1 == 0 {
                CMD_FINISH
            } else {
                CMD_DRAIN
            };
            let input = if s.byte() & 1 == 0 {
                Vec::new()
            } else {
                s.bytes()
            };
            (id, input)
        }
        _ => (s.u32(), s.bytes()),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut s = Script(data);
    let mode = s.byte();
    let mut rng = DeterministicRng::new(1);
    let mut huk = [0u8; 32];
    rng.fill_bytes(&mut huk);
    let device_key = generate_signing_key(&mut rng);
    let device = ueid(device_key.verifying_key());
    let mut commands = TaCommands::new(
        FakePlatform {
            device_key,
            huk,
            epochs: BTreeMap::new(),
            inferences: BTreeMap::new(),
            rng,
        },
        "heap",
        protected,
        clock,
    );
    let sealed =
        (mode & 1 != 0).then(|| provision(&mut commands, device, (mode & 2 != 0).then_some(60)));
    for _ in 0..MAX_OPS {
        if s.is_empty() {
            break;
        }
        let (id, input) = op(&mut s, &sealed);
        let capacity = [0, 4, 64, 4096, 1 << 20][usize::from(s.byte() % 5)];
        let result = command(&mut commands, id, &input, capacity);
        let bad_parameters = match id {
            CMD_REQUEST => input.len() > MAX_REQUEST_BYTES,
            CMD_AUDIO => input.len() > MAX_AUDIO_BYTES || input.len() % 2 == 1,
            CMD_FINISH | CMD_DRAIN => !input.is_empty(),
            _ => true,
        };
        if bad_parameters {
            assert_eq!(result.err(), Some(CommandError::BadParameters));
            continue;
        }
        match result {
            Ok(replies) => {
                for reply in &replies {
                    if let EnclaveReply::Event { label, .. } = reply {
                        assert!(label == "yes" || label == "no", "event for {label}");
                    }
                }
            }
            Err(CommandError::BadFormat) => {
                assert_eq!(id, CMD_REQUEST, "BadFormat for command {id}");
            }
            Err(e) => panic!("command {id} on {} bytes: {e}", input.len()),
        }
    }
    let _ = commands.close();
    assert!(!commands.operating(), "an operation outlived the session");
});
