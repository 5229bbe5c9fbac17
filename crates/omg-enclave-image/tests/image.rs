//! The built enclave image, run as the launcher would not run it: without its channels, and
//! with a platform channel that answers garbage. It must refuse, say why and exit, never
//! crash. (The launched image answering real requests is tested by omg-linux's launcher tests
//! and omg-cli's end-to-end tests, which run this same executable.)

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

use command_fds::{CommandFdExt, FdMapping};

const IMAGE: &str = env!("CARGO_BIN_EXE_omg-enclave");
/// The descriptors the launcher places (docs/enclave.md): host channel, platform channel.
const HOST_FD: i32 = 3;
const PLATFORM_FD: i32 = 4;

#[test]
fn started_without_the_launchers_channels_it_refuses() {
    let out = Command::new(IMAGE)
        .stdin(Stdio::null())
        .output()
        .expect("run the image");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("must be started by the omg launcher"),
        "{stderr}"
    );
}

/// Reads one frame (4-byte little-endian length, then the body) from the host channel.
fn read_frame(stream: &mut UnixStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).expect("a frame header");
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    stream.read_exact(&mut body).expect("a frame body");
    body
}

/// Runs the image with channels whose platform side answers its first request with `answer`
/// and then hangs up; returns the exit code and what arrived on the host channel.
fn with_platform_answering(answer: &[u8]) -> (Option<i32>, Vec<u8>) {
    let (mut host, host_child) = UnixStream::pair().unwrap();
    let (mut platform, platform_child) = UnixStream::pair().unwrap();
    let mut child = Command::new(IMAGE)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .fd_mappings(vec![
            FdMapping {
                parent_fd: host_child.into(),
                child_fd: HOST_FD,
            },
            FdMapping {
                parent_fd: platform_child.into(),
                child_fd: PLATFORM_FD,
            },
        ])
        .unwrap()
        .spawn()
        .expect("run the image");
    // The enclave asks the platform first (for its measurement): the request is a frame.
    let request = read_frame(&mut platform);
    assert!(!request.is_empty());
    platform.write_all(answer).unwrap();
    drop(platform);
    let reply = read_frame(&mut host);
    let status = child.wait().unwrap();
    (status.code(), reply)
}

#[test]
fn a_platform_that_answers_garbage_gets_a_failure_not_a_crash() {
    // A well-formed frame holding bytes that are not a platform reply.
    let mut frame = 7u32.to_le_bytes().to_vec();
    frame.extend_from_slice(b"\xff\x00garbg");
    let (code, reply) = with_platform_answering(&frame);
    assert_eq!(
        code,
        Some(1),
        "a refusal is an ordinary failure, not a signal"
    );
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.contains("Failed") && text.contains("platform"),
        "{text}"
    );
}

#[test]
fn a_platform_that_hangs_up_mid_frame_gets_a_failure_not_a_crash() {
    // A length prefix promising more than ever arrives.
    let (code, reply) = with_platform_answering(&64u32.to_le_bytes()[..3]);
    assert_eq!(code, Some(1));
    assert!(String::from_utf8_lossy(&reply).contains("Failed"));
    let (code, _) = with_platform_answering(&[0x40, 0, 0, 0, 1, 2]);
    assert_eq!(code, Some(1));
}

#[test]
fn an_oversized_platform_frame_is_refused_before_it_is_read() {
    // 4 GiB announced: the enclave must refuse the length, not try to allocate it.
    let (code, reply) = with_platform_answering(&u32::MAX.to_le_bytes());
    assert_eq!(code, Some(1));
    assert!(String::from_utf8_lossy(&reply).contains("Failed"));
}
