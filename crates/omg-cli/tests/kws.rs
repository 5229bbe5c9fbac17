//! Keyword spotting end to end through the `omg` binary, against the reference data in
//! `../shared/data` (ignored in a plain `cargo test`; `.ci/run` runs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn data() -> PathBuf {
    std::env::var_os("OMG_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

fn omg(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_omg"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "omg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn i8s(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// (file, expected label, expected int8 scores) for the 4 TFLM clips and the 24 synthesized ones.
fn references() -> Vec<(PathBuf, String, Vec<i64>)> {
    let labels = ["silence", "unknown", "yes", "no"];
    let mut refs = Vec::new();
    for clip in ["yes_1000ms", "no_1000ms", "silence_1000ms", "noise_1000ms"] {
        let scores: Vec<i64> =
            std::fs::read(data().join(format!("micro_speech/reference/{clip}_scores.bin")))
                .unwrap()
                .iter()
                .map(|&b| i64::from(b as i8))
                .collect();
        let best = (0..4).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
        refs.push((
            data().join(format!("micro_speech/testdata/{clip}.wav")),
            labels[best].to_string(),
            scores,
        ));
    }
    let tts: Value =
        serde_json::from_slice(&std::fs::read(data().join("tts/tts_results.json")).unwrap())
            .unwrap();
    for c in tts["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.get("file").is_some())
    {
        refs.push((
            data().join(c["file"].as_str().unwrap()),
            c["micro_speech_pred"].as_str().unwrap().to_string(),
            i8s(&c["micro_speech_scores_int8"]),
        ));
    }
    assert_eq!(refs.len(), 28);
    refs
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn classify_gives_the_reference_labels_and_scores() {
    let refs = references();
    let mut args = vec!["classify", "micro_speech", "--json"];
    let files: Vec<String> = refs.iter().map(|r| r.0.display().to_string()).collect();
    args.extend(files.iter().map(String::as_str));
    let out = omg(&args);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), refs.len());
    for (line, (file, label, scores)) in lines.iter().zip(&refs) {
        assert_eq!(line["file"].as_str().unwrap(), file.display().to_string());
        assert_eq!(&i8s(&line["scores"]), scores, "{}", file.display());
        assert_eq!(line["label"].as_str().unwrap(), label, "{}", file.display());
    }
}

fn read_wav(path: &Path) -> Vec<i16> {
    hound::WavReader::open(path)
        .unwrap()
        .samples::<i16>()
        .map(Result::unwrap)
        .collect()
}

/// First sample of speech: where a 10 ms window's mean |x| first exceeds 300.
fn onset(samples: &[i16]) -> usize {
    samples
        .windows(160)
        .position(|w| w.iter().map(|&s| u32::from(s.unsigned_abs())).sum::<u32>() / 160 > 300)
        .unwrap_or(0)
}

/// A long stream: each of the 28 reference clips after a gap of `gap_ms`, the gaps alternately
/// digital silence and uniform noise of about +-(32768 >> noise_shift) (`None`: silence only),
/// then a final 2 s of silence. Returns the samples and each keyword's label and onset in ms.
fn stream(gap_ms: usize, noise_shift: Option<u32>) -> (Vec<i16>, Vec<(String, u64)>) {
    let mut stream: Vec<i16> = Vec::new();
    let mut expected = Vec::new();
    let mut seed = 0x1234_5678u32;
    for (k, (file, label, _)) in references().into_iter().enumerate() {
        for _ in 0..gap_ms * 16 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            stream.push(match noise_shift {
                Some(shift) if k % 2 == 1 => ((seed >> 16) as i16) >> shift,
                _ => 0,
            });
        }
        let clip = read_wav(&file);
        if label == "yes" || label == "no" {
            expected.push((label, (stream.len() + onset(&clip)) as u64 * 1000 / 16_000));
        }
        stream.extend_from_slice(&clip);
    }
    stream.extend(std::iter::repeat_n(0, 32_000));
    assert_eq!(expected.len(), 26);
    (stream, expected)
}

/// How `omg listen` did on a stream.
struct Outcome {
    /// Keywords reported exactly once within a second of their onset.
    found: usize,
    /// Event time minus onset (ms) of each of those.
    latencies: Vec<u64>,
    /// Events that match no keyword (wrong label, too late, or a second event).
    others: Vec<(String, u64)>,
}

/// Runs `omg listen --wav` on `samples` (written to `wav`) and matches the events against
/// `expected`; returns the outcome and the raw JSON output.
fn listen(samples: &[i16], expected: &[(String, u64)], wav: &Path) -> (Outcome, String) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(wav, spec).unwrap();
    samples.iter().for_each(|&s| w.write_sample(s).unwrap());
    w.finalize().unwrap();
    let out = omg(&[
        "listen",
        "micro_speech",
        "--wav",
        wav.to_str().unwrap(),
        "--json",
    ]);
    let mut others: Vec<(String, u64)> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|e| {
            (
                e["label"].as_str().unwrap().to_string(),
                e["time_ms"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut found = 0;
    let mut latencies = Vec::new();
    for (label, at) in expected {
        let hits: Vec<usize> = others
            .iter()
            .enumerate()
            .filter(|(_, (l, t))| l == label && *t >= *at && *t <= at + 1000)
            .map(|(i, _)| i)
            .collect();
        if hits.len() == 1 {
            found += 1;
            latencies.push(others.remove(hits[0]).1 - at);
        } else {
            eprintln!(
                "{label} spoken at {at} ms: {} events within a second",
                hits.len()
            );
        }
    }
    latencies.sort_unstable();
    eprintln!(
        "{}: {found} of {} keywords found exactly once (latency median {} ms, max {} ms); \
         {} other events: {others:?}",
        wav.display(),
        expected.len(),
        latencies.get(latencies.len() / 2).unwrap_or(&0),
        latencies.last().unwrap_or(&0),
        others.len()
    );
    (
        Outcome {
            found,
            latencies,
            others,
        },
        out,
    )
}

/// A temporary directory removed when the test ends.
fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The stream check of the keyword-spotting issue: 1.5 s gaps alternately of silence and low
/// noise; each spoken keyword gives exactly one event of its label within a second of its onset,
/// and there is no other event.
#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn listen_finds_the_keywords_of_a_long_stream() {
    let (samples, expected) = stream(1500, Some(8));
    let scratch = scratch_dir();
    let wav = scratch.path().join("stream.wav");
    let (outcome, out) = listen(&samples, &expected, &wav);
    assert!(
        outcome.found == 26 && outcome.others.is_empty(),
        "{}/26 found, other events: {:?}",
        outcome.found,
        outcome.others
    );
    assert!(outcome.latencies.iter().all(|&l| l <= 1000));
    // The same stream through stdin gives the same events.
    let raw: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_omg"))
        .args(["listen", "micro_speech", "--stdin", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &raw).unwrap());
    let stdin_out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(stdin_out.status.success());
    assert_eq!(String::from_utf8(stdin_out.stdout).unwrap(), out);
}

/// Other gaps. With digital silence between the clips the check holds as strictly. With 1.0 s
/// or 2.0 s gaps it does not quite: the model reads a few of the synthesized words (in the
/// context of the stream's front-end state) as "unknown" or late, so these pin the measured
/// figures as floors.
#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn listen_on_streams_with_other_gaps() {
    let scratch = scratch_dir();
    let dir = scratch.path();
    let (samples, expected) = stream(1500, None);
    let (silent, _) = listen(&samples, &expected, &dir.join("silent-gaps.wav"));
    assert!(
        silent.found == 26 && silent.others.is_empty(),
        "silent gaps: {}/26 found, other events: {:?}",
        silent.found,
        silent.others
    );
    for (gap_ms, min_found, max_others) in [(1000, 25, 1), (2000, 24, 1)] {
        let (samples, expected) = stream(gap_ms, Some(8));
        let (o, _) = listen(&samples, &expected, &dir.join(format!("gaps-{gap_ms}.wav")));
        assert!(
            o.found >= min_found && o.others.len() <= max_others,
            "{gap_ms} ms gaps: {}/26 found, other events: {:?}",
            o.found,
            o.others
        );
    }
}
