//! Generates the TA's header (UUID, flags, stack and heap sizes) and links it against the TA
//! dev kit named by TA_DEV_KIT_DIR.

use optee_utee_build::{Error, TaConfig};

/// The TA's heap: the largest model of the reference data (about 0.5 MB) is copied in, and the
/// interpreter adds its arena and packed weights.
const HEAP_BYTES: u32 = 4 << 20;
/// The TA's stack.
const STACK_BYTES: u32 = 64 << 10;

fn main() -> Result<(), Error> {
    let config = TaConfig::new_default_with_cargo_env(include_str!("uuid.txt").trim())?
        .ta_data_size(HEAP_BYTES)
        .ta_stack_size(STACK_BYTES);
    optee_utee_build::build(config)
}
