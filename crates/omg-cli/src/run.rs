//! `omg run`: initialization and operation, offline, in the enclave process. The enclave
//! unseals the model's key and licence, checks them, decrypts the pipeline into protected
//! memory and turns the audio it reads from its own descriptor into keyword events filtered by
//! the output policy; this process only sees the events.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use omg_enclave::messages::{EnclaveReply, HostRequest};
use omg_protocol::licence::InputSource;
use omg_protocol::package::{MAX_PACKAGE_LEN, Package};
use omg_protocol::sealed::MAX_SEALED_LEN;

use crate::audio;
use crate::device::{device_dir, read_public_key, sealed_path};
use crate::files::read_limited;
use crate::stream::{EventLine, EventPrinter, Source};

/// Finds the vendor key a package was provisioned with (among the provisioned models) and
/// returns it with the verified header.
fn provisioned_vendor_key(
    dir: &Path,
    package: &[u8],
) -> Result<(
    omg_protocol::VerifyingKey,
    omg_protocol::package::PackageHeader,
)> {
    let models = dir.join("models");
    let entries = std::fs::read_dir(&models).with_context(|| {
        format!(
            "no provisioned model in {} (run `omg provision` first)",
            dir.display()
        )
    })?;
    for entry in entries.flatten() {
        let path = entry.path().join("vendor.pub");
        let Ok(key) = read_public_key(&path) else {
            continue;
        };
        if let Ok(verified) = Package::open_signed(package, &key) {
            return Ok((key, verified.header().clone()));
        }
    }
    anyhow::bail!(
        "this package was not provisioned on this device (or its signature is wrong); run `omg provision` first"
    )
}

/// The audio descriptor for the enclave: standard input itself, or a pipe fed by a thread
/// with the decoded WAV file or the microphone's samples (raw s16le 16 kHz mono).
fn audio_fd(source: &Source) -> Result<(OwnedFd, Option<JoinHandle<Result<()>>>)> {
    if let Source::Stdin = source {
        let fd = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot pass standard input on")?;
        return Ok((fd, None));
    }
    let (reader, writer) = rustix::pipe::pipe().context("cannot make the audio pipe")?;
    let clip = match source {
        Source::Wav(path) => Some(audio::read_wav(path)?.samples),
        _ => None,
    };
    let feeder = std::thread::spawn(move || -> Result<()> {
        let mut out = std::fs::File::from(writer);
        let mut write = |block: &[i16]| -> Result<()> {
            let bytes: Vec<u8> = block.iter().flat_map(|s| s.to_le_bytes()).collect();
            // The enclave closing its end (it stopped) ends the feeding quietly.
            match out.write_all(&bytes) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.context("cannot feed the enclave"),
            }
        };
        match clip {
            Some(samples) => samples.chunks(1600).try_for_each(&mut write),
            None => crate::stream::mic(&mut write),
        }
    });
    Ok((reader, Some(feeder)))
}

/// The peak resident set (VmHWM, KiB) of a process.
fn peak_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn source_bits(source: &Source) -> u8 {
    match source.input_source() {
        InputSource::Mic => 1,
        InputSource::File => 2,
        InputSource::Stdin => 4,
    }
}

/// `omg run PACKAGE SOURCE`: the enclave unseals, checks and decrypts the model, reads the
/// audio descriptor and sends back keyword events.
pub fn run(package_path: &Path, source: Source, dir: Option<PathBuf>, json: bool) -> Result<()> {
    let started = Instant::now();
    let dir = device_dir(dir)?;
    let package = read_limited(package_path, MAX_PACKAGE_LEN as u64)?;
    let (vendor_key, header) = provisioned_vendor_key(&dir, &package)?;
    let sealed_file = sealed_path(&dir, &header.model_id, header.version);
    let sealed = read_limited(&sealed_file, MAX_SEALED_LEN as u64).with_context(|| {
        format!(
            "{} version {} is not provisioned here",
            header.model_id, header.version
        )
    })?;
    let (audio, feeder) = audio_fd(&source)?;
    let mut enclave = crate::enclave::start(&dir, Some(audio))?;
    enclave.send(&HostRequest::Start {
        package,
        sealed,
        vendor_key: omg_protocol::public_key_sec1(&vendor_key).to_vec(),
        source: source_bits(&source),
    })?;
    let EnclaveReply::Ready {
        model_id,
        version,
        output_policy,
        not_after,
        memory,
    } = enclave.reply().context("the enclave refused to start")?
    else {
        bail!("the enclave answered out of turn");
    };
    if !json {
        eprintln!(
            "omg: {model_id} version {version} ready in the enclave (pid {}) in {:.1} ms; \
             licence until {not_after}, output {}, memory {memory}",
            enclave.pid(),
            started.elapsed().as_secs_f64() * 1e3,
            ["label only", "label and score", "all scores"]
                .get(usize::from(output_policy))
                .unwrap_or(&"?"),
        );
    }
    let mut printer = EventPrinter::new(json);
    let (samples, busy_us) = loop {
        match enclave.reply().context("the enclave stopped")? {
            EnclaveReply::Event {
                label,
                time_ms,
                score,
                scores,
            } => printer.event(&EventLine {
                label: &label,
                time_ms,
                score,
                scores: scores.as_deref(),
            })?,
            EnclaveReply::Finished {
                samples, busy_us, ..
            } => {
                if !json && let Some(kb) = peak_kb(enclave.pid()) {
                    eprintln!(
                        "omg: enclave peak resident memory {:.1} MB",
                        kb as f64 / 1024.0
                    );
                }
                break (samples, busy_us);
            }
            _ => bail!("the enclave answered out of turn"),
        }
    };
    enclave.shutdown()?;
    if let Some(f) = feeder {
        f.join()
            .map_err(|_| anyhow::anyhow!("the audio feeder panicked"))??;
    }
    printer.summary(samples, Some(Duration::from_micros(busy_us)));
    Ok(())
}
