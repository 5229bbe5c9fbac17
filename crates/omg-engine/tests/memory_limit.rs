//! A model that asks for more memory than the heap has gets an error, not an aborted process:
//! this test binary's heap is capped (as the enclave's is), and a tiny model declares three
//! 64 MiB activation tensors.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{ModelSpec, OpSpec, TensorSpec};
use omg_engine::{Error, Interpreter};

/// Live heap bytes this process may hold.
const CAP: usize = 96 << 20;

/// The system allocator, refusing any allocation that would take the live total over [`CAP`].
struct Capped {
    live: AtomicUsize,
}

// SAFETY: every method forwards to `System` with the same arguments; the counter only decides
// whether to forward an allocation or report failure (null), which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = layout.size();
        if self.live.fetch_add(size, Ordering::Relaxed) + size > CAP {
            self.live.fetch_sub(size, Ordering::Relaxed);
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded with the caller's layout, which meets `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.live.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static HEAP: Capped = Capped {
    live: AtomicUsize::new(0),
};

/// ADD of two int8 inputs of `shape` (three activation tensors of that size, no weights).
fn add_model(shape: &[i32]) -> Vec<u8> {
    const I8: i8 = 9;
    let mut m = ModelSpec::new();
    let add = m.opcode(0, 1);
    let a = m.tensor(TensorSpec::new(shape, I8, 0).quant(1.0, 0));
    let b = m.tensor(TensorSpec::new(shape, I8, 0).quant(1.0, 0));
    let y = m.tensor(TensorSpec::new(shape, I8, 0).quant(1.0, 0));
    m.ops.push(OpSpec::new(add, &[a, b], &[y]).options(11, &[]));
    m.inputs = vec![a, b];
    m.outputs = vec![y];
    m.build()
}

#[test]
fn a_model_bigger_than_the_heap_is_refused_with_an_error() {
    let bytes = add_model(&[1, 8192, 8192]);
    assert!(bytes.len() < 4096, "the model itself is tiny");
    match Interpreter::new(&bytes) {
        Err(e @ Error::OutOfMemory { what, bytes }) => {
            assert_eq!(what, "tensor arena");
            assert!(bytes >= 3 << 26, "{bytes}");
            assert!(e.to_string().starts_with("not enough memory"), "{e}");
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("a 192 MiB arena fit under a 96 MiB cap"),
    }
    // The same shape at a size that fits still loads (the cap is not what refused it).
    Interpreter::new(&add_model(&[1, 1024, 1024])).unwrap();
}
