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

/// The stream check: each spoken keyword should give exactly one event of its label within a
/// second of its onset, and nothing else. micro_speech does not get there on this stream yet
/// (see the README's limits), so this test pins the measured figures as a floor: at least 24 of
/// the 26 keywords found, at most 3 events that match no keyword.
#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn listen_finds_the_keywords_of_a_long_stream() {
    // 28 clips, each after a 1.5 s gap of silence or low noise, then a final gap.
    let mut stream: Vec<i16> = Vec::new();
    let mut expected = Vec::new();
    let mut seed = 0x1234_5678u32;
    for (k, (file, label, _)) in references().into_iter().enumerate() {
        for _ in 0..24_000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            stream.push(if k % 2 == 0 {
                0
            } else {
                ((seed >> 16) as i16) >> 8
            });
        }
        let clip = read_wav(&file);
        if label == "yes" || label == "no" {
            expected.push((label, (stream.len() + onset(&clip)) as u64 * 1000 / 16_000));
        }
        stream.extend_from_slice(&clip);
    }
    stream.extend(std::iter::repeat_n(0, 32_000));
    let dir = std::env::temp_dir().join(format!("omg-listen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("stream.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    stream.iter().for_each(|&s| w.write_sample(s).unwrap());
    w.finalize().unwrap();

    let out = omg(&[
        "listen",
        "micro_speech",
        "--wav",
        wav.to_str().unwrap(),
        "--json",
    ]);
    let events: Vec<(String, u64)> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|e| {
            (
                e["label"].as_str().unwrap().to_string(),
                e["time_ms"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut unmatched = events.clone();
    let mut found = 0;
    for (label, at) in &expected {
        let hits: Vec<usize> = unmatched
            .iter()
            .enumerate()
            .filter(|(_, (l, t))| l == label && *t >= *at && *t <= at + 1000)
            .map(|(i, _)| i)
            .collect();
        if hits.len() == 1 {
            found += 1;
            unmatched.remove(hits[0]);
        } else {
            eprintln!(
                "{label} spoken at {at} ms: {} events within a second",
                hits.len()
            );
        }
    }
    eprintln!(
        "{found} of {} keywords found exactly once; {} other events: {unmatched:?}",
        expected.len(),
        unmatched.len()
    );
    assert_eq!(expected.len(), 26);
    assert!(
        found >= 24 && unmatched.len() <= 3,
        "stream accuracy fell: {found}/26 found, {} spurious; events: {events:?}",
        unmatched.len()
    );
    // The same stream through stdin gives the same events.
    let raw: Vec<u8> = stream.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_omg"))
        .args(["listen", "micro_speech", "--stdin", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &raw).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        omg(&[
            "listen",
            "micro_speech",
            "--wav",
            wav.to_str().unwrap(),
            "--json"
        ])
    );
}
