//! The launcher with misbehaving enclave builds: this test binary is also the "enclave image"
//! (started by the launcher, it sees its channels on descriptors 3 and 4 and a role on the
//! audio descriptor 5). After hardening, a build that opens a file, creates a socket or runs a
//! program is killed by the sandbox, and the host's error says so; a crash or a clean exit is
//! reported as what it is.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;

use omg_enclave::messages::{EnclaveReply, HostRequest, PlatformReply, PlatformRequest};
use omg_linux::DeviceIdentity;
use omg_linux::channel::{recv, send};
use omg_linux::enclave_entry::{AUDIO_FD, HOST_FD, PLATFORM_FD};
use omg_linux::launcher::{EnclaveFailure, EnclaveImage, IMAGE_NAME, launch};
use omg_linux::sandbox::{SandboxOptions, harden};

use common::Test;

fn main() -> ExitCode {
    if std::env::args().next().as_deref() == Some(IMAGE_NAME) {
        misbehave();
    }
    common::main(TESTS, |role| panic!("no child roles here: {role}"))
}

const TESTS: &[Test] = &[
    (
        "an_enclave_that_opens_a_file_is_killed_and_reported",
        || assert_killed("open"),
    ),
    (
        "an_enclave_that_creates_a_socket_is_killed_and_reported",
        || assert_killed("socket"),
    ),
    (
        "an_enclave_that_runs_a_program_is_killed_and_reported",
        || assert_killed("exec"),
    ),
    (
        "a_panicking_enclave_is_not_reported_as_a_sandbox_kill",
        || {
            let how = ending("panic");
            assert!(how.contains("exited with status 101"), "{how}");
        },
    ),
    ("a_well_behaved_enclave_answers", || {
        let how = ending("answer");
        assert_eq!(how, "answered");
    }),
];

/// Plays the enclave: platform handshake, hardening, then the role read from descriptor 5.
fn misbehave() -> ! {
    // SAFETY: the launcher placed these descriptors for this process alone; they are adopted
    // once, here, before anything else could own them.
    let (mut host, mut platform, mut role_fd) = unsafe {
        (
            File::from(OwnedFd::from_raw_fd(HOST_FD)),
            File::from(OwnedFd::from_raw_fd(PLATFORM_FD)),
            File::from(OwnedFd::from_raw_fd(AUDIO_FD)),
        )
    };
    send(&mut platform, &PlatformRequest::Measurement).unwrap();
    let _: Option<PlatformReply> = recv(&mut platform).unwrap();
    let options = SandboxOptions {
        keep_fds: vec![2, HOST_FD, PLATFORM_FD, AUDIO_FD],
        ..SandboxOptions::default()
    };
    // SAFETY: single-threaded, and the only descriptors owned are the three adopted above.
    unsafe { harden(&options) }.unwrap();
    let mut role = [0u8; 16];
    let n = role_fd.read(&mut role).unwrap();
    match &role[..n] {
        b"open" => drop(std::fs::File::open("/etc/hostname")),
        b"socket" => drop(std::net::UdpSocket::bind("127.0.0.1:0")),
        b"exec" => drop(std::process::Command::new("/bin/true").status()),
        b"panic" => panic!("the enclave panics"),
        _ => {}
    }
    let _ = send(
        &mut host,
        &EnclaveReply::Failed {
            reason: "answered".into(),
        },
    );
    let _ = host.flush();
    std::process::exit(0)
}

/// Launches this binary as an enclave playing `role`; returns the host's error.
fn ending(role: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let identity = DeviceIdentity::create(dir.path(), false).unwrap();
    let image = EnclaveImage::load(&std::env::current_exe().unwrap()).unwrap();
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    File::from(writer).write_all(role.as_bytes()).unwrap();
    let mut enclave = launch(&image, identity, Some(reader)).unwrap();
    let _ = enclave.send(&HostRequest::FinishProvision {
        key_release: vec![],
        licence: vec![],
    });
    match enclave.reply() {
        Err(EnclaveFailure::Exited(how) | EnclaveFailure::Failed(how)) => how,
        other => panic!("{other:?}"),
    }
}

fn assert_killed(role: &str) {
    let how = ending(role);
    assert!(
        how.contains("killed by its sandbox") && how.contains("SIGSYS"),
        "{role}: {how}"
    );
}
