//! `omg demo`: the whole story on the bundled defaults, phase by phase, with timings. A vendor
//! makes a key and a package, a device makes its identity, the vendor enrols that identity
//! (the service gives no key to an unknown device), an embedded vendor service on
//! loopback provisions the device through the enclave, then the service stops and the device
//! runs the bundled clips offline in the enclave.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use omg_vendor::{Service, Store};

use crate::stream::Source;

/// The demo clips, compiled in: (file name, what was said).
const CLIPS: &[(&str, &str, &[u8])] = &[
    (
        "yes_en-us.wav",
        "yes",
        include_bytes!("../../../assets/clips/yes_en-us.wav"),
    ),
    (
        "no_en-us.wav",
        "no",
        include_bytes!("../../../assets/clips/no_en-us.wav"),
    ),
    (
        "yes_en-gb.wav",
        "yes",
        include_bytes!("../../../assets/clips/yes_en-gb.wav"),
    ),
    (
        "no_en-gb.wav",
        "no",
        include_bytes!("../../../assets/clips/no_en-gb.wav"),
    ),
    (
        "unknown_house.wav",
        "house (not a keyword)",
        include_bytes!("../../../assets/clips/unknown_house.wav"),
    ),
    (
        "silence.wav",
        "silence",
        include_bytes!("../../../assets/clips/silence.wav"),
    ),
];

fn phase(n: usize, title: &str) {
    println!("\n== {n}. {title}");
}

fn done(t: Instant) {
    println!("   ({:.0} ms)", t.elapsed().as_secs_f64() * 1e3);
}

/// The embedded vendor service: a runtime serving on a loopback port until dropped.
struct EmbeddedService {
    runtime: tokio::runtime::Runtime,
    url: String,
}

impl EmbeddedService {
    fn start(db: &Path, key_dir: &Path) -> Result<Self> {
        let key = crate::vendor::load_vendor_key(key_dir)?;
        let store = Store::connect(db.as_os_str())
            .with_context(|| format!("cannot open {}", db.display()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("cannot listen on loopback")?;
        let url = format!("http://{}", listener.local_addr()?);
        runtime.spawn(omg_vendor::http::serve(listener, Service::new(store, key)));
        Ok(Self { runtime, url })
    }

    fn stop(self) {
        self.runtime.shutdown_background();
    }
}

/// A temporary directory removed when dropped: on success, on error and while unwinding from a
/// panic (e.g. printing to a closed pipe), so the demo's keys never outlive it.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the demo in `dir` (a fresh temporary directory if `None`, removed afterwards: on
/// success, on error, on a panic and on SIGINT, SIGTERM or SIGHUP).
pub fn run(dir: Option<PathBuf>) -> Result<()> {
    let started = Instant::now();
    let keep = dir.is_some();
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("omg-demo-{}", std::process::id())),
    };
    anyhow::ensure!(
        !dir.join("device").exists() && !dir.join("vendor").exists(),
        "{} already holds a demo; choose another --dir",
        dir.display()
    );
    omg_linux::fs::create_private_dir(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let temporary = if keep {
        None
    } else {
        let removed = dir.clone();
        crate::signals::on_termination(move || {
            let _ = std::fs::remove_dir_all(&removed);
        })?;
        Some(Removed(dir.clone()))
    };
    story(&dir)?;
    drop(temporary);
    println!(
        "\nomg demo finished in {:.2} s{}",
        started.elapsed().as_secs_f64(),
        if keep {
            format!("; files kept in {}", dir.display())
        } else {
            String::new()
        }
    );
    Ok(())
}

fn story(dir: &Path) -> Result<()> {
    let vendor = dir.join("vendor");
    let device = dir.join("device");
    let db = dir.join("vendor.sqlite");
    let package = dir.join("micro_speech.omgpkg");

    println!("omg demo: a vendor's keyword model meets a user's voice on this device, offline.");
    println!("The model is decrypted only inside the enclave; the audio goes only into it.");

    phase(1, "Vendor: signing key");
    let t = Instant::now();
    crate::identity::vendor_keygen(Some(vendor.clone()), false, false)?;
    done(t);

    phase(
        2,
        "Device: platform identity (attestation key, hardware-unique key)",
    );
    let t = Instant::now();
    crate::device::init(Some(device.clone()), false, false)?;
    done(t);

    phase(
        3,
        "Vendor: package micro_speech for enclaves measured as above",
    );
    let t = Instant::now();
    let measurement = crate::identity::hex(&crate::device::enclave_measurement()?);
    let policy = dir.join("policy.toml");
    let not_after = crate::clock::unix_now() + 365 * 24 * 3600;
    std::fs::write(
        &policy,
        format!(
            "allowed_measurements = [\"{measurement}\"]\nmax_devices = 10\n\
             not_after = {not_after}\noutput_policy = \"label_and_score\"\n\
             input_sources = [\"file\", \"stdin\", \"mic\"]\n"
        ),
    )?;
    crate::package::run(
        &crate::package::Options {
            pipeline: "micro_speech",
            policy: &policy,
            key_dir: &vendor,
            db: db.to_str().context("the demo directory is not UTF-8")?,
            model_id: None,
            version: 1,
            output: &package,
        },
        false,
    )?;
    done(t);

    phase(
        4,
        "Vendor: enrol the device's attestation key (unknown devices get no key)",
    );
    let t = Instant::now();
    let device_pub = device.join(omg_linux::identity::ATTESTATION_PUB);
    crate::vendor::enroll(
        &db,
        &[device_pub
            .to_str()
            .context("the demo directory is not UTF-8")?
            .to_owned()],
        false,
    )?;
    done(t);

    phase(
        5,
        "Preparation (online, once): attestation, key release, sealing",
    );
    let t = Instant::now();
    let service = EmbeddedService::start(&db, &vendor)?;
    println!("   vendor service on {}", service.url);
    let provisioned = crate::device::provision(
        &package,
        &service.url,
        &vendor.join("vendor.pub"),
        Some(device.clone()),
        None,
        crate::backend::Backend::Linux,
        false,
    );
    service.stop();
    provisioned?;
    println!("   vendor service stopped: the device is offline from here");
    done(t);

    phase(
        6,
        "Initialization and operation (offline, every start): the bundled clips",
    );
    for (name, said, bytes) in CLIPS {
        let clip = dir.join(name);
        std::fs::write(&clip, bytes)?;
        println!("-- {name} (said: {said})");
        let t = Instant::now();
        crate::run::run(
            &package,
            Source::Wav(clip),
            Some(device.clone()),
            None,
            crate::backend::Backend::Linux,
            false,
        )?;
        done(t);
    }
    Ok(())
}
