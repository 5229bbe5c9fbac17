//! Protected memory, attacked for real. This whole test binary runs on a [`SecretHeap`] as its
//! global allocator, as the enclave does. A hardened child holds secrets in a [`ProtectedBuf`]
//! and on that heap, next to a marker in ordinary memory, and the parent (root in CI) tries to
//! read all three with `/proc/PID/mem`, `process_vm_readv` and `ptrace`.

mod common;

use std::alloc::{GlobalAlloc, Layout};
use std::process::{ExitCode, exit};

use omg_linux::protected::{DEFAULT_SECRET_HEAP_SIZE, MemoryKind, ProtectedBuf, SecretHeap};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

use common::{Running, Test, child, describe, harden_child, hex, outcome, parse_hex, stdio};

#[global_allocator]
static HEAP: SecretHeap = SecretHeap::new(DEFAULT_SECRET_HEAP_SIZE);

fn main() -> ExitCode {
    common::main(TESTS, play)
}

const TESTS: &[Test] = &[
    (
        "this_binary_allocates_only_on_the_secret_heap",
        allocates_on_the_secret_heap,
    ),
    (
        "the_secret_heap_survives_many_threads",
        survives_many_threads,
    ),
    (
        "root_cannot_read_the_secrets_of_a_hardened_process",
        root_cannot_read_secrets,
    ),
    (
        "without_memfd_secret_memory_is_locked_instead",
        fallback_is_locked_memory,
    ),
];

const PLAIN_MARKER: &[u8; 32] = b"PLAIN-MARKER-in-ordinary-memory!";
const BUF_MARKER: &[u8; 32] = b"SECRET-in-a-ProtectedBuf-0123456";
const HEAP_MARKER: &[u8; 32] = b"SECRET-on-the-secret-heap-ABCDEF";

fn play(role: &str) {
    match role {
        "holder" => hold_secrets(),
        "fallback" => without_memfd_secret(),
        other => panic!("unknown role {other:?}"),
    }
}

// ---- The heap itself ----

fn allocates_on_the_secret_heap() {
    assert_eq!(HEAP.init().unwrap(), MemoryKind::Secret);
    assert_eq!(HEAP.kind(), Some(MemoryKind::Secret));
    let boxed = Box::new(7u64);
    let text = String::from("the runtime's allocations land here too");
    let from_thread = std::thread::spawn(|| vec![1u8; 100_000]).join().unwrap();
    for ptr in [
        &*boxed as *const u64 as *const u8,
        text.as_ptr(),
        from_thread.as_ptr(),
    ] {
        assert!(HEAP.contains(ptr), "{ptr:?} is outside the secret heap");
    }
    let on_stack = 0u8;
    assert!(!HEAP.contains(&on_stack));
    // Not even this process can read its own heap through /proc: the kernel cannot see it.
    let own = common::read_proc_mem(std::process::id(), text.as_ptr() as usize, 8);
    assert_eq!(outcome(own), "EIO");
    // A full heap says so to a fallible allocation (the engine's arena, for one) instead of
    // aborting the process, and serves small allocations again afterwards.
    let mut too_big: Vec<u8> = Vec::new();
    assert!(too_big.try_reserve_exact(DEFAULT_SECRET_HEAP_SIZE).is_err());
    let model_error = omg_engine::memory::filled(DEFAULT_SECRET_HEAP_SIZE, 0u8, "tensor arena");
    assert!(matches!(
        model_error,
        Err(omg_engine::Error::OutOfMemory { .. })
    ));
    assert_eq!(vec![3u8; 1000].len(), 1000);
}

fn survives_many_threads() {
    let workers: Vec<_> = (0..4u64)
        .map(|seed| {
            std::thread::spawn(move || {
                let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let mut next = move || {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state
                };
                let mut live: Vec<Vec<u8>> = Vec::new();
                for round in 0..5_000u64 {
                    let tag = (round % 251) as u8;
                    match next() % 4 {
                        // At most 200 live blocks of up to 8 kB: under 7 MB over four threads.
                        0 | 1 if live.len() < 200 => {
                            live.push(vec![tag; (next() % 2000) as usize + 1])
                        }
                        0..=2 if !live.is_empty() => {
                            let i = (next() as usize) % live.len();
                            let v = live.swap_remove(i);
                            let first = v[0];
                            assert!(v.iter().all(|&b| b == first), "a block was corrupted");
                        }
                        _ if !live.is_empty() => {
                            let i = (next() as usize) % live.len();
                            let first = live[i][0];
                            let len = (next() % 8000) as usize + 1;
                            live[i].resize(len, first);
                            assert!(live[i].iter().all(|&b| b == first), "realloc lost data");
                        }
                        _ => {}
                    }
                }
                live.len()
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a worker thread failed");
    }
}

// ---- Attacks on a hardened child ----

/// Hardens itself, then holds a secret in a ProtectedBuf, one on the secret heap and a marker
/// on its stack (ordinary memory), and prints where they are.
fn hold_secrets() {
    let heap_kind = HEAP.init().expect("secret heap");
    let report = harden_child(stdio());
    let mut buf = ProtectedBuf::new(4096).expect("a ProtectedBuf");
    buf[..32].copy_from_slice(BUF_MARKER);
    let on_heap = HEAP_MARKER.to_vec();
    let plain = *PLAIN_MARKER;
    let plain = std::hint::black_box(&plain);
    println!("report={report}");
    println!("buf_kind={:?}", buf.kind());
    println!("heap_kind={heap_kind:?}");
    println!("heap_holds_it={}", HEAP.contains(on_heap.as_ptr()));
    println!("plain={}", hex(plain.as_ptr() as usize));
    println!("buf={}", hex(buf.as_ptr() as usize));
    println!("heap={}", hex(on_heap.as_ptr() as usize));
    println!("ready");
    common::wait_for_parent();
    let intact = &buf[..32] == BUF_MARKER && on_heap == HEAP_MARKER && plain == PLAIN_MARKER;
    println!("intact={intact}");
    exit(0)
}

fn root_cannot_read_secrets() {
    let mut holder = Running::start(child("holder"));
    let fields = holder.fields();
    let pid = holder.pid();
    assert_eq!(
        fields.get("buf_kind").map(String::as_str),
        Some("Secret"),
        "{fields:?}"
    );
    assert_eq!(fields["heap_kind"], "Secret");
    assert_eq!(fields["heap_holds_it"], "true");
    let [plain, buf, heap] = ["plain", "buf", "heap"].map(|k| parse_hex(fields.get(k)));

    // The control: ordinary memory of the hardened (non-dumpable) child is readable by root
    // both ways. That is the limit of the Linux backend, and why secrets are not kept there.
    assert_eq!(common::read_proc_mem(pid, plain, 32).unwrap(), PLAIN_MARKER);
    assert_eq!(common::read_vm(pid, plain, 32).unwrap(), PLAIN_MARKER);
    // Secret memory is not, whichever way.
    for (what, addr) in [("ProtectedBuf", buf), ("secret heap", heap)] {
        let mem = common::read_proc_mem(pid, addr, 32);
        assert_eq!(outcome(mem), "EIO", "/proc/PID/mem of the {what}");
        let vm = common::read_vm(pid, addr, 32);
        assert_eq!(outcome(vm), "EFAULT", "process_vm_readv of the {what}");
    }
    // ptrace: root (CAP_SYS_PTRACE) may attach to a non-dumpable process unless a security
    // module forbids it; even attached, it cannot peek at secret memory.
    let (seized, peeks) = common::ptrace_peek(pid, &[plain, buf, heap]);
    if seized == "ok" {
        let word = u64::from_le_bytes(PLAIN_MARKER[..8].try_into().unwrap());
        assert_eq!(peeks[0], Ok(word), "PTRACE_PEEKDATA of ordinary memory");
        assert_eq!(
            peeks[1],
            Err(libc::EIO),
            "PTRACE_PEEKDATA of the ProtectedBuf"
        );
        assert_eq!(
            peeks[2],
            Err(libc::EIO),
            "PTRACE_PEEKDATA of the secret heap"
        );
    }
    eprintln!(
        "    PTRACE_SEIZE by root: {seized}; secrets unreadable by /proc/PID/mem, process_vm_readv and PTRACE_PEEKDATA"
    );
    let rest = {
        holder.release();
        holder.rest()
    };
    let status = holder.wait();
    assert!(status.success(), "{}", describe(status));
    assert!(rest.contains("intact=true"), "{rest}");
}

// ---- The fallback ----

/// Makes memfd_secret fail with ENOSYS, as on a kernel without it, then uses a ProtectedBuf
/// and a fresh SecretHeap, and reads them back through /proc/self/mem.
fn without_memfd_secret() {
    static LOCAL: SecretHeap = SecretHeap::new(1 << 20);
    let filter = SeccompFilter::new(
        [(libc::SYS_memfd_secret, vec![])].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        // The filter checks the architecture: a filter for another one kills the process.
        TargetArch::try_from(std::env::consts::ARCH).unwrap(),
    )
    .unwrap();
    let program: BpfProgram = filter.try_into().unwrap();
    seccompiler::apply_filter(&program).unwrap();

    let mut buf = ProtectedBuf::new(4096).unwrap();
    buf[..32].copy_from_slice(BUF_MARKER);
    println!("buf_kind={:?}", buf.kind());
    let own = |addr: usize, len: usize| common::read_proc_mem(std::process::id(), addr, len);
    let readable = own(buf.as_ptr() as usize, 32).is_ok_and(|m| m == BUF_MARKER);
    println!("buf_readable={readable}");
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let locked_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap();
    println!("locked_kb={locked_kb}");

    println!("heap_kind={:?}", LOCAL.init().unwrap());
    let layout = Layout::from_size_align(256, 8).unwrap();
    // SAFETY: a valid layout; the block is written within its size and freed once.
    let block = unsafe { LOCAL.alloc(layout) };
    assert!(!block.is_null());
    // SAFETY: as above.
    unsafe { block.write_bytes(0xA5, 256) };
    let before = own(block as usize, 256).unwrap();
    // SAFETY: as above.
    unsafe { LOCAL.dealloc(block, layout) };
    // Reading the freed block through the kernel is outside the program's memory model.
    let after = own(block as usize, 256).unwrap();
    let count = |bytes: &[u8]| bytes.iter().filter(|&&b| b == 0xA5).count();
    println!("marker_bytes_before_free={}", count(&before));
    println!("marker_bytes_after_free={}", count(&after));
    exit(0)
}

fn fallback_is_locked_memory() {
    let (status, out) = common::run(child("fallback"));
    assert!(status.success(), "{}: {out}", describe(status));
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} missing: {out}"))
            .to_owned()
    };
    assert_eq!(field("buf_kind"), "Locked");
    assert_eq!(field("heap_kind"), "Locked");
    assert!(field("locked_kb").parse::<u64>().unwrap() >= 4, "{out}");
    // The fallback's weakness, stated by the test: a ptrace-capable reader sees it.
    assert_eq!(field("buf_readable"), "true");
    assert_eq!(field("marker_bytes_before_free"), "256");
    // Freed blocks are zeroed; talc keeps a few words of bookkeeping in a free block, which
    // cannot amount to a run of the marker.
    let after: usize = field("marker_bytes_after_free").parse().unwrap();
    assert!(after < 8, "{after} marker bytes survived the free");
}
