//! Valid samples of what the `protocol` fuzz target reads, checked here and, with
//! `OMG_WRITE_FUZZ_SEEDS=DIR`, written to `DIR/protocol/NAME` as its seed corpus
//! (`fuzz/seeds`).

use omg_protocol::endorsement::Endorsement;
use omg_protocol::{SigningKey, key_id, public_key_sec1};

fn write(name: &str, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("OMG_WRITE_FUZZ_SEEDS") {
        let dir = std::path::Path::new(&dir).join("protocol");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// An endorsement signed by the target's fixed key ([7; 32]) behind its selector (5), so the
/// fuzzer starts from one that verifies.
#[test]
fn endorsement_seed() {
    let maker = SigningKey::from_slice(&[7u8; 32]).unwrap();
    let device = SigningKey::from_slice(&[8u8; 32]).unwrap();
    let bytes = Endorsement {
        device_public_key: public_key_sec1(device.verifying_key()),
        maker_key_id: key_id(maker.verifying_key()),
        issued_at: 1_700_000_000,
        not_after: Some(1_900_000_000),
    }
    .sign(&maker)
    .unwrap();
    Endorsement::verify(&bytes, maker.verifying_key()).unwrap();
    let mut seed = vec![5u8];
    seed.extend_from_slice(&bytes);
    write("endorsement", &seed);
}
