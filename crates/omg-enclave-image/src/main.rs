//! The omg enclave image for the Linux backend: started only by the omg launcher, which
//! measures these exact bytes. Its whole heap lives in protected (`memfd_secret`) memory, it
//! hardens itself before it accepts any secret, and it talks only over the descriptors the
//! launcher handed it. See `omg_linux::enclave_entry` and `omg_linux::sandbox`.
//!
//! It is a package of its own so that it links only what the enclave needs: the launcher's
//! measurement, and so the vendor's policy, covers exactly this dependency set.
#![forbid(unsafe_code)]

use omg_linux::enclave_entry::ENCLAVE_HEAP_SIZE;
use omg_linux::protected::{ProtectedBuf, SecretHeap};

#[global_allocator]
static HEAP: SecretHeap = SecretHeap::new(ENCLAVE_HEAP_SIZE);

fn main() -> std::process::ExitCode {
    omg_linux::enclave_entry::main(
        || HEAP.init().map_err(|e| e.to_string()),
        |len| ProtectedBuf::new(len).map_err(|e| std::io::Error::other(e.to_string())),
    )
}
