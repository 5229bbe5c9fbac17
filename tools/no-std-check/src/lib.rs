//! A `no_std` consumer of the trusted core, exported to C.
#![no_std]

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A bump allocator over a static region: enough for this check, never frees.
struct Bump {
    heap: UnsafeCell<[u8; 4 << 20]>,
    next: AtomicUsize,
}

// SAFETY: allocation hands out disjoint ranges via an atomic cursor.
unsafe impl Sync for Bump {}

// SAFETY: every returned pointer is inside `heap`, aligned as requested, and never handed out twice.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.heap.get() as usize;
        let mut cur = self.next.load(Ordering::Relaxed);
        loop {
            let start = (base + cur).next_multiple_of(layout.align()) - base;
            let end = start + layout.size();
            if end > 4 << 20 {
                return core::ptr::null_mut();
            }
            match self.next.compare_exchange(cur, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return (base + start) as *mut u8,
                Err(c) => cur = c,
            }
        }
    }
    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOC: Bump = Bump { heap: UnsafeCell::new([0; 4 << 20]), next: AtomicUsize::new(0) };

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// Runs the native micro_speech front end on one window of silence; returns 0 on success.
#[unsafe(no_mangle)]
pub extern "C" fn omg_check_frontend() -> i32 {
    let Ok(mut fe) = omg_kws::MicroFrontend::new(&omg_kws::FrontendConfig::default()) else { return -1 };
    let mut out = [0i8; 40];
    match fe.process(&[0i16; 480], &mut out) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// Rejects a malformed attestation token; returns 0 when the parser refuses it.
#[unsafe(no_mangle)]
pub extern "C" fn omg_check_protocol() -> i32 {
    let key = omg_protocol::keys::verifying_key_from_sec1(&[4u8; 65]);
    match key {
        Ok(k) => i32::from(omg_protocol::token::Token::verify(&[0xd2, 0x84], &k).is_ok()),
        Err(_) => 0,
    }
}

/// Decodes a well-formed host request frame and refuses a malformed one; returns 0 when both
/// go as they should.
#[unsafe(no_mangle)]
pub extern "C" fn omg_check_enclave() -> i32 {
    use omg_enclave::messages::{HostRequest, decode, encode};
    let request = HostRequest::FinishProvision { key_release: alloc::vec![1; 8], licence: alloc::vec![2; 8] };
    let Ok(frame) = encode(&request) else { return -1 };
    let good = matches!(decode::<HostRequest>(&frame[4..]), Ok(r) if r == request);
    let bad = decode::<HostRequest>(&[0xff, 0x00]).is_err();
    if good && bad { 0 } else { -1 }
}

/// Loads a model and invokes it once on zeroed inputs; returns the arena size, or -1 on error.
///
/// # Safety
/// `data` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn omg_check_model(data: *const u8, len: usize) -> i64 {
    // SAFETY: the caller guarantees `data` points to `len` readable bytes.
    let bytes = unsafe { core::slice::from_raw_parts(data, len) };
    match omg_engine::Interpreter::new(bytes) {
        Ok(mut i) => match i.invoke() {
            Ok(()) => i.arena_bytes() as i64,
            Err(_) => -1,
        },
        Err(_) => -1,
    }
}
