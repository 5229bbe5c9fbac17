//! A global allocator whose whole heap is one protected region.

use std::alloc::{GlobalAlloc, Layout};
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};

use spinning_top::RawSpinlock;
use talc::base::Talc;
use talc::base::binning::Binning;
use talc::source::Source;
use zeroize::Zeroize;

use super::{MemoryKind, Populate, ProtectedMemoryError, Region};

/// The default size of a [`SecretHeap`]: 64 MiB. Only the pages the enclave touches become
/// resident, but the whole size is reserved (and charged to `RLIMIT_MEMLOCK` for a process
/// without `CAP_IPC_LOCK`) at once.
pub const DEFAULT_SECRET_HEAP_SIZE: usize = 64 << 20;

/// A heap of fixed size in one protected region, managed by the `talc` allocator, usable as
/// the enclave's `#[global_allocator]`:
///
/// ```no_run
/// use omg_linux::protected::{DEFAULT_SECRET_HEAP_SIZE, SecretHeap};
///
/// #[global_allocator]
/// static HEAP: SecretHeap = SecretHeap::new(DEFAULT_SECRET_HEAP_SIZE);
///
/// fn main() {
///     // The runtime may allocate before `main`; the first allocation maps the region. Calling
///     // `init` first thing tells which kind of memory it got, or why there is none.
///     match HEAP.init() {
///         Ok(kind) => eprintln!("heap in {kind}"),
///         Err(e) => {
///             eprintln!("{e}");
///             std::process::exit(1);
///         }
///     }
/// }
/// ```
///
/// The region is mapped by [`SecretHeap::init`] or, failing that, by the first allocation (so
/// allocations the Rust runtime makes before `main` already land in it). Its size is fixed:
/// when it is full, allocation fails and the process aborts as with any exhausted allocator.
/// If no protected memory can be had at all, every allocation fails; `init` reports why.
///
/// Freed blocks (and the tail cut off by a shrinking `realloc`) are zeroed before the
/// allocator reuses them, so a stale secret never reappears in a later allocation.
///
/// A spin lock guards the allocator: sound with any number of threads, meant for the
/// single-threaded enclave. As with any global allocator, a signal handler must not allocate.
pub struct SecretHeap {
    talc: talc::TalcLock<RawSpinlock, HeapSource>,
}

impl SecretHeap {
    /// A heap of `size` bytes (rounded up to whole pages), not mapped yet.
    pub const fn new(size: usize) -> Self {
        SecretHeap {
            talc: talc::TalcLock::new(HeapSource { size, region: None }),
        }
    }

    /// Maps the region if that has not happened yet, and tells which kind of memory it is.
    /// Call it first thing in `main`, before any secret exists, and warn on
    /// [`MemoryKind::Locked`].
    pub fn init(&self) -> Result<MemoryKind, ProtectedMemoryError> {
        establish(&mut self.talc.lock())
    }

    /// The kind of memory of the heap, or `None` while it is not mapped yet.
    pub fn kind(&self) -> Option<MemoryKind> {
        self.talc.lock().source.region.as_ref().map(|r| r.kind)
    }

    /// Whether `ptr` points into the heap's region (for checks that a value really lives in
    /// protected memory).
    pub fn contains(&self, ptr: *const u8) -> bool {
        self.talc
            .lock()
            .source
            .region
            .as_ref()
            .is_some_and(|r| r.contains(ptr))
    }
}

/// Maps the heap's region and hands it to the allocator, unless that was done already.
fn establish<B: Binning>(
    talc: &mut Talc<HeapSource, B>,
) -> Result<MemoryKind, ProtectedMemoryError> {
    if let Some(region) = &talc.source.region {
        return Ok(region.kind);
    }
    let region = Region::map(talc.source.size, Populate::OnFault)?;
    // SAFETY: the region is a fresh mapping that nothing else uses, and it stays mapped for as
    // long as the allocator exists (the region is never unmapped). The claim cannot fail: a
    // region is at least one page, more than talc's bookkeeping needs (asserted below at compile time).
    let _ = unsafe { talc.claim(region.ptr.as_ptr(), region.len) };
    let kind = region.kind;
    talc.source.region = Some(region);
    Ok(kind)
}

// The smallest region (one page of the smallest page size) holds talc's bookkeeping, so
// claiming any region succeeds.
const _: () = assert!(talc::min_first_heap_size::<talc::DefaultBinning>() <= 4096);

/// Where the allocator gets its one region from.
#[derive(Debug)]
struct HeapSource {
    size: usize,
    region: Option<Region>,
}

// SAFETY: the region is process-wide memory, not tied to the thread that mapped it, and the
// allocator's lock serialises all access to this state.
unsafe impl Send for HeapSource {}

// SAFETY: `acquire` maps memory with raw syscalls and never allocates, so it cannot re-enter
// the allocator that called it.
unsafe impl Source for HeapSource {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, _layout: Layout) -> Result<(), ()> {
        if talc.source.region.is_some() {
            // The one region is full: the heap does not grow.
            return Err(());
        }
        establish(talc).map(drop).map_err(drop)
    }
}

/// Zeroes `len` bytes at `ptr` with writes the compiler cannot elide.
///
/// # Safety
/// `ptr..ptr + len` must be memory of a live allocation that the caller may write.
unsafe fn wipe(ptr: *mut u8, len: usize) {
    // SAFETY: guaranteed by the caller; `MaybeUninit` makes no claim about the current bytes.
    unsafe { std::slice::from_raw_parts_mut(ptr.cast::<MaybeUninit<u8>>(), len) }.zeroize();
}

// SAFETY: allocation, deallocation and in-place resizing are delegated to `talc` under its
// lock, with the layouts the caller guarantees; a moving `realloc` allocates the new block
// before copying and freeing the old one, as `GlobalAlloc::realloc` requires.
unsafe impl GlobalAlloc for SecretHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `GlobalAlloc::alloc` callers guarantee a non-zero size.
        unsafe { self.talc.lock().allocate(layout) }.map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees that `ptr` is a live block of `layout` from this heap,
        // which is ours to write until it is freed below.
        unsafe {
            wipe(ptr, layout.size());
            self.talc.lock().deallocate(ptr, layout);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size <= layout.size() {
            // SAFETY: the caller guarantees a live block of `layout` and a non-zero `new_size`;
            // the cut-off tail lies inside the block.
            unsafe {
                wipe(ptr.add(new_size), layout.size() - new_size);
                self.talc.lock().shrink(ptr, layout, new_size);
            }
            return ptr;
        }
        // SAFETY: a live block of `layout`, and `new_size` is larger.
        if unsafe { self.talc.lock().try_grow_in_place(ptr, layout, new_size) } {
            return ptr;
        }
        // SAFETY: the caller guarantees that `new_size` rounded up to `layout.align()` does
        // not overflow, which makes this a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_size` is larger than a size, so non-zero.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: two distinct live blocks, the old one `layout.size()` bytes long and the
            // new one longer; the old block is then freed exactly once.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_a_tiny_heap_gets_a_whole_page() {
        let heap = SecretHeap::new(0);
        assert_eq!(heap.kind(), None);
        assert_eq!(heap.init().unwrap(), MemoryKind::Secret);
        // SAFETY: valid non-zero layouts; the block is freed once.
        unsafe {
            let p = heap.alloc(Layout::new::<u64>());
            assert!(heap.contains(p));
            heap.dealloc(p, Layout::new::<u64>());
            assert!(
                heap.alloc(Layout::from_size_align(8192, 8).unwrap())
                    .is_null()
            );
        }
    }

    #[test]
    fn a_local_heap_allocates_resizes_and_frees_inside_its_region() {
        let heap = SecretHeap::new(1 << 20);
        assert_eq!(heap.init().unwrap(), MemoryKind::Secret);
        assert_eq!(
            heap.init().unwrap(),
            MemoryKind::Secret,
            "init is idempotent"
        );
        let layout = Layout::from_size_align(100, 16).unwrap();
        // SAFETY: valid layouts; every block is used within its size and freed once.
        unsafe {
            let p = heap.alloc(layout);
            assert!(!p.is_null() && heap.contains(p) && (p as usize).is_multiple_of(16));
            p.write_bytes(7, 100);
            let p = heap.realloc(p, layout, 50_000);
            assert!(heap.contains(p));
            assert!((0..100).all(|i| *p.add(i) == 7), "contents survive growth");
            let big = Layout::from_size_align(50_000, 16).unwrap();
            let p = heap.realloc(p, big, 10);
            assert!(
                (0..10).all(|i| *p.add(i) == 7),
                "contents survive shrinking"
            );
            heap.dealloc(p, Layout::from_size_align(10, 16).unwrap());
            assert!(
                heap.alloc(Layout::from_size_align(2 << 20, 8).unwrap())
                    .is_null()
            );
        }
        assert!(!heap.contains(std::ptr::null()));
    }
}
