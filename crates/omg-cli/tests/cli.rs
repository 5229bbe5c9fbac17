//! The `omg` binary end to end on a small model from the fuzzing seeds (made by the engine's tests).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn omg() -> Command {
    Command::new(env!("CARGO_BIN_EXE_omg"))
}

/// FULLY_CONNECTED int8 [1,2] x [[1,2],[3,4]] + [0,1] (see crates/omg-engine/tests/ops.rs).
fn fc_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/model/fully_connected.tflite")
}

/// A path in `scratch`, a temporary directory the test holds (removed when it ends).
fn tmp(scratch: &tempfile::TempDir, name: &str) -> PathBuf {
    scratch.path().join(name)
}

/// Runs `omg infer MODEL [EXTRA...] --input INPUT --output OUTPUT`.
fn infer(model: &Path, extra: &[&str], input: &Path, output: &Path) -> Output {
    omg()
        .arg("infer")
        .arg(model)
        .args(extra)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .output()
        .unwrap()
}

#[test]
fn infer_writes_the_output_tensor() {
    let scratch = tempfile::tempdir().unwrap();
    let (input, output) = (tmp(&scratch, "in.bin"), tmp(&scratch, "out.bin"));
    std::fs::write(&input, [1u8, 1]).unwrap();
    let r = infer(&fc_model(), &[], &input, &output);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read(&output).unwrap(), [3, 8]);
}

#[test]
fn infer_sequence_concatenates_outputs() {
    let scratch = tempfile::tempdir().unwrap();
    let (input, output) = (tmp(&scratch, "seq-in.bin"), tmp(&scratch, "seq-out.bin"));
    std::fs::write(&input, [1u8, 1, 2, 0]).unwrap();
    let r = infer(&fc_model(), &["--sequence"], &input, &output);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read(&output).unwrap(), [3, 8, 2, 7]);
}

#[test]
fn every_kernel_set_gives_the_same_bytes() {
    let scratch = tempfile::tempdir().unwrap();
    let input = tmp(&scratch, "k-in.bin");
    std::fs::write(&input, [1u8, 1]).unwrap();
    let mut sets = vec!["auto", "reference"];
    for isa in omg_engine::Isa::supported() {
        sets.push(isa.name());
    }
    for set in sets {
        let output = tmp(&scratch, &format!("k-out-{set}.bin"));
        let r = infer(&fc_model(), &["--kernels", set], &input, &output);
        assert!(
            r.status.success(),
            "{set}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert_eq!(std::fs::read(&output).unwrap(), [3, 8], "{set}");
    }
    // A level this CPU cannot run is refused when the model loads, naming the level.
    for isa in omg_engine::Isa::ALL
        .into_iter()
        .filter(|i| !i.is_supported())
    {
        let output = tmp(&scratch, &format!("k-out-{}.bin", isa.name()));
        let r = infer(&fc_model(), &["--kernels", isa.name()], &input, &output);
        assert_eq!(r.status.code(), Some(1), "{}", isa.name());
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            err.contains(&format!("cannot run the {} kernels", isa.name())),
            "{err}"
        );
        assert!(!output.exists());
    }
    let r = infer(
        &fc_model(),
        &["--kernels", "sse9"],
        &input,
        &tmp(&scratch, "k-out-sse9.bin"),
    );
    assert_eq!(r.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("auto, reference, portable, avx2, avxvnni, avx512vnni, neon, dotprod"),
        "{err}"
    );
}

#[test]
fn wrong_input_size_is_a_clear_error_and_writes_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let (input, output) = (tmp(&scratch, "bad-in.bin"), tmp(&scratch, "bad-out.bin"));
    std::fs::write(&input, [1u8, 2, 3]).unwrap();
    let r = infer(&fc_model(), &[], &input, &output);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("holds 3 bytes") && err.contains("2 bytes"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one-line reason: {err}");
    assert!(!output.exists());
}

#[test]
fn a_corrupt_model_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let (model, input, output) = (
        tmp(&scratch, "corrupt.tflite"),
        tmp(&scratch, "c-in.bin"),
        tmp(&scratch, "c-out.bin"),
    );
    let mut bytes = std::fs::read(fc_model()).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&model, bytes).unwrap();
    std::fs::write(&input, [0u8, 0]).unwrap();
    let r = infer(&model, &[], &input, &output);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("cannot load"));
}

#[test]
fn bench_json_has_the_documented_fields() {
    let r = omg()
        .arg("bench")
        .arg(fc_model())
        .args(["--json", "--runs", "50"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    for key in ["median_us", "p99_us", "arena_bytes", "model_bytes", "runs"] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["runs"], 50);
    assert!(v["arena_bytes"].as_u64().unwrap() >= 4);
    assert_two_decimals(&v, &["median_us", "p99_us", "mean_us", "min_us", "load_us"]);
}

/// `--warmup N` runs exactly N untimed invokes (reported), `--warmup 0` none; `--runs 0` and a
/// pipeline with `--warmup` are refused with the reason.
#[test]
fn bench_warmup_is_exact_and_reported() {
    for (warmup, runs) in [("3", "5"), ("0", "1")] {
        let r = omg()
            .arg("bench")
            .arg(fc_model())
            .args(["--json", "--warmup", warmup, "--runs", runs])
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        assert_eq!(v["warmup_runs"].to_string(), warmup, "{v}");
        assert_eq!(v["runs"].to_string(), runs, "{v}");
    }
    let r = omg()
        .arg("bench")
        .arg(fc_model())
        .args(["--runs", "0"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--runs must be at least 1"));
    let r = omg()
        .args(["bench", "micro_speech", "--warmup", "2"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("--warmup applies to a .tflite model"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

/// Each of `keys` in `v` is a number printed with at most two decimals.
fn assert_two_decimals(v: &serde_json::Value, keys: &[&str]) {
    for key in keys {
        let text = v[key].to_string();
        assert!(v[key].is_number(), "{key}: {v}");
        let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 2, "{key} = {text} in {v}");
    }
}

/// The bundled clips (`assets/clips`).
fn clip(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../assets/clips/{name}"))
}

/// `omg bench PIPELINE --json` with the kernel flags `flags`.
fn bench_pipeline(flags: &[&str]) -> serde_json::Value {
    let r = omg()
        .args(["bench", "micro_speech", "--json", "--runs", "100"])
        .args(flags)
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "{flags:?}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    serde_json::from_slice(&r.stdout).unwrap()
}

/// `--kernels` and `--reference` reach a pipeline's models: the report names the set that ran,
/// and every set computes the same scores on the same audio.
#[test]
fn bench_pipeline_runs_the_chosen_kernels() {
    let reference = bench_pipeline(&["--reference"]);
    assert_eq!(reference["kernels"], "reference", "{reference}");
    assert_two_decimals(
        &reference,
        &["frontend_us", "classifier_us", "recognizer_us", "total_us"],
    );
    let scores = &reference["scores"];
    assert_eq!(scores.as_array().map(Vec::len), Some(4), "{reference}");
    for (flags, name) in [
        (&["--kernels", "reference"][..], "reference".to_string()),
        (
            &["--kernels", "portable"][..],
            "optimized (portable)".into(),
        ),
        (
            &[][..],
            format!("optimized ({})", omg_engine::Isa::detect().name()),
        ),
    ] {
        let v = bench_pipeline(flags);
        assert_eq!(v["kernels"], name.as_str(), "{flags:?}: {v}");
        assert_eq!(&v["scores"], scores, "{flags:?}: {v}");
    }
}

/// Writes a 16 kHz mono WAV holding `samples`.
fn write_wav(path: &Path, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    samples.iter().for_each(|&s| w.write_sample(s).unwrap());
    w.finalize().unwrap();
}

/// A missing file, an empty WAV and a file that is not a WAV among good clips: each is
/// reported on stderr, the good clips are still classified (text and JSON), and the exit
/// status is a failure.
#[test]
fn classify_reports_bad_clips_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (missing, empty, text) = (
        dir.path().join("missing.wav"),
        dir.path().join("empty.wav"),
        dir.path().join("notes.wav"),
    );
    write_wav(&empty, &[]);
    std::fs::write(&text, "not audio").unwrap();
    let (yes, no) = (clip("yes_en-us.wav"), clip("no_en-us.wav"));
    let files = [&yes, &missing, &empty, &no, &text];
    for json in [false, true] {
        let r = omg()
            .args(["classify", "micro_speech"])
            .args(files)
            .args(json.then_some("--json"))
            .output()
            .unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr),
        );
        assert_eq!(r.status.code(), Some(1), "json {json}: {out} / {err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "the two good clips: {out}");
        for (line, (file, label)) in lines.iter().zip([(&yes, "yes"), (&no, "no")]) {
            if json {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["file"], file.display().to_string());
                assert_eq!(v["label"], label);
            } else {
                assert!(
                    line.starts_with(&format!("{}: {label} ", file.display())),
                    "{line}"
                );
            }
        }
        let err_lines: Vec<&str> = err.lines().collect();
        assert_eq!(err_lines.len(), 4, "three bad clips and a total: {err}");
        assert!(err_lines[0].contains("missing.wav"), "{err}");
        assert!(
            err_lines[1].contains("empty.wav") && err_lines[1].contains("no audio samples"),
            "{err}"
        );
        assert!(err_lines[2].contains("notes.wav"), "{err}");
        assert!(err_lines[3].contains("3 of 5"), "{err}");
    }
}

/// Runs `omg ARGS` with its standard output a pipe whose reader is already gone (as in
/// `omg … | head -1` once head has exited) and `TMPDIR` set to `tmpdir`.
fn with_stdout_closed(args: &[&str], tmpdir: &Path) -> Output {
    let mut child = omg()
        .args(args)
        .env("TMPDIR", tmpdir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

/// `omg demo | head -1`: no panic, exit 0, and its temporary directory (vendor.key, huk,
/// attestation.key) is gone.
#[test]
fn demo_into_a_closed_pipe_ends_quietly_and_removes_its_keys() {
    let tmpdir = tempfile::tempdir().unwrap();
    let out = with_stdout_closed(&["demo"], tmpdir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
    let left: Vec<_> = std::fs::read_dir(tmpdir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// `omg classify … | head -1` and `omg listen … | head -1`: exit 0 and nothing on stderr
/// (not "Broken pipe (os error 32)" and exit 1).
#[test]
fn classify_and_listen_into_a_closed_pipe_end_quietly() {
    let tmpdir = tempfile::tempdir().unwrap();
    let yes = clip("yes_en-us.wav");
    let yes = yes.to_str().unwrap();
    for args in [
        &["classify", "micro_speech", yes, yes, yes][..],
        &["listen", "micro_speech", "--wav", yes][..],
    ] {
        let out = with_stdout_closed(args, tmpdir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?}: {err}", out.status);
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

/// Ctrl-C (SIGINT) and SIGTERM during `omg demo`: it ends with 128 + the signal's number and its
/// temporary directory (vendor.key, huk, attestation.key) is gone.
#[test]
fn an_interrupted_demo_removes_its_keys() {
    use std::io::BufRead;
    for (signal, status) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let tmpdir = tempfile::tempdir().unwrap();
        let mut child = omg()
            .arg("demo")
            .env("TMPDIR", tmpdir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        // Once the device has its identity, its keys are on disk.
        assert!(lines.any(|l| l.unwrap().starts_with("== 3.")));
        assert!(std::fs::read_dir(tmpdir.path()).unwrap().next().is_some());
        let pid = i32::try_from(child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let exit = child.wait().unwrap();
        assert_eq!(exit.code(), Some(status), "{exit:?}");
        let left: Vec<_> = std::fs::read_dir(tmpdir.path()).unwrap().collect();
        assert!(
            left.is_empty(),
            "left behind after signal {signal}: {left:?}"
        );
    }
}

/// A user (not root: uid 64531 when the tests run as root) under `ulimit -l 64` runs
/// `omg demo`: one line saying what to raise and to what, before any enclave starts — not
/// "memory allocation … failed" and "killed by signal 6".
#[test]
fn a_small_locked_memory_limit_is_refused_in_one_line() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    const UID: u32 = 64531;
    let tmpdir = tempfile::tempdir().unwrap();
    let mut command = Command::new("sh");
    command
        .args(["-c", "ulimit -l 64 && exec \"$0\" demo"])
        .arg(env!("CARGO_BIN_EXE_omg"))
        .env("TMPDIR", tmpdir.path());
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::fs::set_permissions(tmpdir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        command.uid(UID).gid(UID).env("HOME", tmpdir.path());
    }
    let out = command.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("RLIMIT_MEMLOCK) is 64 KiB: raise it to at least 8192 KiB"),
        "{err}"
    );
    assert!(!err.contains("signal"), "{err}");
}

/// `omg listen --wav` on a 44.1 kHz stereo file says it converted it, as `classify` does.
#[test]
fn listen_says_when_it_converted_the_audio() {
    let scratch = tempfile::tempdir().unwrap();
    let wav = tmp(&scratch, "stereo.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    (0..2 * 44_100).for_each(|_| w.write_sample(0i16).unwrap());
    w.finalize().unwrap();
    let out = omg()
        .args(["listen", "micro_speech", "--wav"])
        .arg(&wav)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("converted from 44100 Hz, 2 ch to 16 kHz mono"),
        "{err}"
    );
}

/// `omg --help` says what omg is, lists the commands in workflow order (the demo, the vendor,
/// the device, provisioning, running) and gives an example.
#[test]
fn help_says_what_omg_is_in_workflow_order_with_an_example() {
    let out = omg().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("sandboxed enclave process"), "{help}");
    assert!(help.contains("Example: omg demo"), "{help}");
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let position = |c: &str| commands.iter().position(|x| *x == c).unwrap();
    assert_eq!(commands[0], "demo", "{help}");
    assert!(position("vendor") < position("device"), "{help}");
    assert!(position("device") < position("provision"), "{help}");
    assert!(position("provision") < position("run"), "{help}");
    assert!(position("run") < position("infer"), "{help}");
}

/// `--mic` is offered by `omg run` and `omg listen` (their options, usage line and the error
/// naming the missing audio source) only where it is built; elsewhere it is refused with that
/// reason.
#[test]
fn mic_is_offered_only_where_built() {
    for command in ["run", "listen"] {
        let out = omg().args([command, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        let listed = |flag: &str| help.lines().any(|l| l.trim_start().starts_with(flag));
        assert!(listed("--wav"), "{help}");
        assert_eq!(listed("--mic"), cfg!(feature = "mic"), "{help}");
        let usage = help.lines().find(|l| l.starts_with("Usage:")).unwrap();
        assert!(usage.contains("--stdin"), "{usage}");
        assert_eq!(usage.contains("--mic"), cfg!(feature = "mic"), "{usage}");
        // No source: the usage error lists the sources there are.
        let out = omg().args([command, "micro_speech"]).output().unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{e}");
        assert!(e.contains("--stdin"), "{e}");
        assert_eq!(e.contains("--mic"), cfg!(feature = "mic"), "{e}");
        if !cfg!(feature = "mic") {
            let out = omg()
                .args([command, "micro_speech", "--mic"])
                .output()
                .unwrap();
            let e = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{e}");
            assert!(e.contains("without microphone support"), "{e}");
        }
    }
}

/// `--backend optee` on a machine without OP-TEE says so, before any file is read, for each
/// command that takes it; an unknown backend is refused by the parser.
#[test]
fn the_optee_backend_without_a_tee_is_a_clear_error() {
    if Path::new("/dev/tee0").exists() {
        eprintln!("skipped: this machine has /dev/tee0");
        return;
    }
    let server = ["--server", "http://127.0.0.1:9", "--vendor-key", "none.pub"];
    for args in [
        &[
            "run",
            "none.omgpkg",
            "--wav",
            "none.wav",
            "--backend",
            "optee",
        ][..],
        &[
            &["provision", "none.omgpkg"],
            &server[..],
            &["--backend", "optee"],
        ]
        .concat(),
        &[
            &["renew", "none.omgpkg"],
            &server[..],
            &["--backend", "optee"],
        ]
        .concat(),
        &["device", "info", "--backend", "optee"][..],
    ] {
        let r = omg().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{args:?}");
        assert!(
            stderr.contains("this machine has no OP-TEE (/dev/tee0 does not exist")
                && stderr.contains("use --backend linux"),
            "{args:?}: {stderr}"
        );
    }
    let r = omg()
        .args([
            "run",
            "none.omgpkg",
            "--wav",
            "none.wav",
            "--backend",
            "sgx",
        ])
        .output()
        .unwrap();
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("invalid value 'sgx'"));
}
