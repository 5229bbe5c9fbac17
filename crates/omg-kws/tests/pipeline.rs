//! The whole pipeline with `micro_speech_quantized.tflite`: one decision per
//! clip against TFLM's reference scores, streaming events, and robustness.

mod common;

use common::{CLASSIFIER, KEYWORDS, PREPROCESSOR, Rng, i8s, read, shared_data, wav};
use omg_kws::{
    Event, FeatureExtractor, FrontendConfig, MicroFrontend, ModelFrontend, Pipeline,
    PipelineConfig, RecognizerConfig,
};

fn native() -> FeatureExtractor<'static> {
    FeatureExtractor::Native(MicroFrontend::new(&FrontendConfig::micro_speech()).unwrap())
}

fn pipeline<'m>(frontend: FeatureExtractor<'m>, classifier: &'m [u8]) -> Pipeline<'m> {
    Pipeline::new(frontend, classifier, &KEYWORDS, &PipelineConfig::default()).unwrap()
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn classify_clip_equals_reference_scores() {
    let classifier = read(CLASSIFIER);
    let preprocessor = read(PREPROCESSOR);
    let mut native = pipeline(native(), &classifier);
    let mut model = pipeline(
        FeatureExtractor::Model(ModelFrontend::new(&preprocessor, 320, 16000).unwrap()),
        &classifier,
    );
    for clip in ["yes", "no", "silence", "noise"] {
        let audio = wav(&format!("micro_speech/testdata/{clip}_1000ms.wav"));
        let want = i8s(&read(&format!(
            "micro_speech/reference/{clip}_1000ms_scores.bin"
        )));
        assert_eq!(
            native.classify_clip(&audio).unwrap(),
            want,
            "{clip} (native)"
        );
        assert_eq!(model.classify_clip(&audio).unwrap(), want, "{clip} (model)");
    }
}

fn argmax(s: &[i8]) -> usize {
    (0..s.len()).fold(0, |best, i| if s[i] > s[best] { i } else { best })
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn classify_clip_equals_tts_scores() {
    let classifier = read(CLASSIFIER);
    let mut p = pipeline(native(), &classifier);
    let json: serde_json::Value = serde_json::from_slice(&read("tts/tts_results.json")).unwrap();
    let configs = json["configs"].as_array().unwrap();
    let mut checked = (0, 0);
    for c in configs {
        let want: Vec<i8> = c["micro_speech_scores_int8"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap() as i8)
            .collect();
        let (word, voice, speed) = (
            c["word"].as_str().unwrap(),
            c["voice"].as_str().unwrap(),
            c["speed_wpm"].as_u64().unwrap(),
        );
        match c["placement"].as_str().unwrap() {
            "center" => {
                let audio = wav(c["file"].as_str().unwrap());
                assert_eq!(audio.len(), 16000);
                let got = p.classify_clip(&audio).unwrap();
                assert_eq!(got, want, "{word} {voice} {speed} centred");
                checked.0 += 1;
            }
            "offset100ms" => {
                // Not saved as a file: rebuild it from the centred clip (the
                // speech is `speech_samples` long, centred; move it to 100 ms).
                let centred = configs
                    .iter()
                    .find(|o| {
                        o["placement"] == "center"
                            && o["word"] == c["word"]
                            && o["voice"] == c["voice"]
                            && o["speed_wpm"] == c["speed_wpm"]
                    })
                    .unwrap();
                let audio = wav(centred["file"].as_str().unwrap());
                let n = c["speech_samples"].as_u64().unwrap() as usize;
                let start = (16000 - n) / 2;
                let mut clip = vec![0i16; 16000];
                clip[1600..1600 + n].copy_from_slice(&audio[start..start + n]);
                // The exact scores are not reproducible (the offset clips were not
                // saved and were evidently not built exactly like this), so only
                // the decision is compared.
                let got = p.classify_clip(&clip).unwrap();
                assert_eq!(
                    argmax(got),
                    argmax(&want),
                    "{word} {voice} {speed} at 100 ms"
                );
                checked.1 += 1;
            }
            other => panic!("placement {other}"),
        }
    }
    assert_eq!(checked, (24, 24));
    assert!(shared_data().join("tts").is_dir());
}

/// Expected label and start / end ms of one part of a stream.
type Span = (Option<usize>, u64, u64);

/// Expected label (2 = yes, 3 = no, None = no keyword) and audio of each part
/// of a stream: every keyword clip, silence and noise, separated by gaps.
fn stream_parts() -> Vec<(Option<usize>, Vec<i16>)> {
    let mut parts = Vec::new();
    for (clip, label) in [
        ("yes", Some(2)),
        ("silence", None),
        ("no", Some(3)),
        ("noise", None),
    ] {
        parts.push((
            label,
            wav(&format!("micro_speech/testdata/{clip}_1000ms.wav")),
        ));
    }
    let mut names: Vec<_> = std::fs::read_dir(shared_data().join("tts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".wav"))
        .collect();
    names.sort();
    // Interleave yes and no.
    let (yes, no): (Vec<_>, Vec<_>) = names.into_iter().partition(|n| n.starts_with("yes"));
    for (y, n) in yes.iter().zip(&no) {
        parts.push((Some(2), wav(&format!("tts/{y}"))));
        parts.push((Some(3), wav(&format!("tts/{n}"))));
    }
    parts
}

/// The parts joined with `gap_ms` of faint noise between them; returns the
/// audio and, per part, (label, start ms, end ms).
fn stream(gap_ms: usize, seed: u64) -> (Vec<i16>, Vec<Span>) {
    let mut rng = Rng(seed);
    let mut audio = Vec::new();
    let mut spans = Vec::new();
    let mut gap = |audio: &mut Vec<i16>| {
        for _ in 0..gap_ms * 16 {
            audio.push(rng.sample(20) as i16);
        }
    };
    gap(&mut audio);
    for (label, clip) in stream_parts() {
        let start = audio.len() as u64 / 16;
        audio.extend_from_slice(&clip);
        spans.push((label, start, audio.len() as u64 / 16));
        gap(&mut audio);
    }
    (audio, spans)
}

fn listen(p: &mut Pipeline<'_>, audio: &[i16], chunk: impl Fn(usize) -> usize) -> Vec<Event> {
    let mut events = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < audio.len() {
        let n = chunk(i).clamp(1, audio.len() - at);
        p.push_samples(&audio[at..at + n], |e| events.push(e))
            .unwrap();
        at += n;
        i += 1;
    }
    events
}

/// Per part: the events attributed to it (those from 300 ms after its start
/// to 300 ms after the next part's start).
fn attribute(events: &[Event], spans: &[Span]) -> Vec<Vec<Event>> {
    (0..spans.len())
        .map(|k| {
            let from = spans[k].1 + 300;
            let to = spans.get(k + 1).map_or(u64::MAX, |n| n.1 + 300);
            events
                .iter()
                .filter(|e| (from..to).contains(&e.time_ms))
                .copied()
                .collect()
        })
        .collect()
}

/// (correct parts, missed keywords, wrong or extra events)
fn score(events: &[Event], spans: &[Span]) -> (usize, usize, usize) {
    let mut r = (0, 0, 0);
    for (got, (label, ..)) in attribute(events, spans).iter().zip(spans) {
        let right = got.iter().filter(|e| Some(e.label_index) == *label).count();
        let wrong = got.len() - right.min(1);
        if right >= 1 && wrong == 0 || label.is_none() && got.is_empty() {
            r.0 += 1;
        }
        if label.is_some() && right == 0 {
            r.1 += 1;
        }
        r.2 += wrong;
    }
    r
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn streaming_gives_one_event_per_keyword() {
    let classifier = read(CLASSIFIER);
    let preprocessor = read(PREPROCESSOR);
    let (audio, spans) = stream(2500, 7);
    let mut p = pipeline(native(), &classifier);
    let events = listen(&mut p, &audio, |_| 4000);
    let per_part = attribute(&events, &spans);
    let (correct, missed, wrong) = score(&events, &spans);
    eprintln!("every hop: {correct} correct, {missed} missed, {wrong} wrong");
    // Each part: at most one event; none for silence and noise. The micro_speech
    // model itself misreads a couple of the TTS words in a stream (it was trained
    // on 1 s clips), so a few misses / wrong labels are tolerated.
    for (k, got) in per_part.iter().enumerate() {
        assert!(got.len() <= 1, "part {k}: {got:?}");
        if spans[k].0.is_none() {
            assert!(got.is_empty(), "part {k} (no keyword): {got:?}");
        }
    }
    assert!(
        correct >= 26 && missed <= 2 && wrong <= 1,
        "{correct} {missed} {wrong}"
    );
    // Events are in time order, carry the recognizer's average score, and
    // the first one is the 'yes' clip.
    assert!(events.windows(2).all(|w| w[0].time_ms < w[1].time_ms));
    let threshold = RecognizerConfig::default().detection_threshold;
    assert!(events.iter().all(|e| e.score > threshold));
    assert_eq!(events[0].label_index, 2);

    // Chunking does not matter: odd chunk sizes give the same events.
    p.reset();
    let odd = listen(&mut p, &audio, |i| {
        [1, 7, 319, 320, 321, 480, 1000, 4097][i % 8]
    });
    assert_eq!(odd, events);

    // The preprocessor model as front end gives the same events.
    let model_frontend = ModelFrontend::new(&preprocessor, 320, 16000).unwrap();
    let mut m = pipeline(FeatureExtractor::Model(model_frontend), &classifier);
    assert_eq!(listen(&mut m, &audio, |_| 1234), events);

    // Classifying every 3rd hop (with an averaging window that holds 3 results) still finds
    // the keywords.
    let cfg = PipelineConfig {
        classify_every_hops: 3,
        recognizer: RecognizerConfig {
            average_window_ms: 120,
            ..RecognizerConfig::default()
        },
    };
    let mut p3 = Pipeline::new(native(), &classifier, &KEYWORDS, &cfg).unwrap();
    let events3 = listen(&mut p3, &audio, |_| 4000);
    let (correct, _, wrong) = score(&events3, &spans);
    eprintln!("every 3 hops: {correct} correct, {wrong} wrong");
    assert!(
        correct >= 25 && wrong <= 2,
        "every 3 hops: {correct} correct, {wrong} wrong"
    );
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn near_silence_after_digital_silence_is_no_keyword() {
    // TFLM's silence clip (|sample| <= 7) after 1.5 s of digital zeros: the front end's noise
    // reduction and gain control amplify it, and the classifier reads a confident "yes".
    let classifier = read(CLASSIFIER);
    let mut audio = vec![0i16; 24_000];
    audio.extend(wav("micro_speech/testdata/silence_1000ms.wav"));
    audio.extend(std::iter::repeat_n(0, 24_000));
    // Its 30 ms windows have a mean |sample| of 1: a minimum level up to 1 lets the "yes"
    // through, 2 and the default keep it out.
    let default_level = RecognizerConfig::default().minimum_level;
    for (minimum_level, want) in [(0, 1), (1, 1), (2, 0), (default_level, 0)] {
        let cfg = PipelineConfig {
            recognizer: RecognizerConfig {
                minimum_level,
                ..RecognizerConfig::default()
            },
            ..PipelineConfig::default()
        };
        let mut p = Pipeline::new(native(), &classifier, &KEYWORDS, &cfg).unwrap();
        let events = listen(&mut p, &audio, |_| 4000);
        assert_eq!(
            events.len(),
            want,
            "minimum level {minimum_level}: {events:?}"
        );
        assert!(events.iter().all(|e| e.label_index == 2));
    }
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn extreme_audio_never_panics() {
    let classifier = read(CLASSIFIER);
    let preprocessor = read(PREPROCESSOR);
    let mut native_p = pipeline(native(), &classifier);
    let model_frontend = ModelFrontend::new(&preprocessor, 320, 16000).unwrap();
    let mut model_p = pipeline(FeatureExtractor::Model(model_frontend), &classifier);
    let mut rng = Rng(42);
    let mut audio: Vec<i16> = Vec::new();
    audio.extend(std::iter::repeat_n(i16::MIN, 16000 * 5));
    audio.extend(std::iter::repeat_n(0, 16000 * 5));
    audio.extend(std::iter::repeat_n(i16::MAX, 16000 * 2));
    for period in [2, 3, 16, 37, 160, 1000] {
        audio.extend((0..16000 * 2).map(|i| {
            if (i / period) % 2 == 0 {
                i16::MAX
            } else {
                i16::MIN
            }
        }));
    }
    audio.extend((0..16000 * 10).map(|_| rng.next() as i16));
    for amp in [1, 10, 100, 1000, 10000, 32767, 3, 30000] {
        audio.extend((0..16000 * 6).map(|_| rng.sample(amp) as i16));
    }
    audio.extend((0..16000 * 5).map(|i| {
        if rng.next().is_multiple_of(100) {
            i16::MIN
        } else {
            (i % 7) as i16
        }
    }));
    let hops = audio.len() / 320;
    assert!(hops > 4000, "{hops} hops");
    let mut native_events = Vec::new();
    let mut model_events = Vec::new();
    for chunk in audio.chunks(999) {
        native_p
            .push_samples(chunk, |e| native_events.push(e))
            .unwrap();
        model_p
            .push_samples(chunk, |e| model_events.push(e))
            .unwrap();
        assert_eq!(native_p.scores(), model_p.scores());
    }
    assert_eq!(native_events, model_events);
    assert!(native_events.iter().all(|e| KEYWORDS[e.label_index]));
    // Clips of any length, including empty and shorter than one window.
    for len in [0, 1, 479, 480, 16000, 50000] {
        let scores = native_p.classify_clip(&audio[..len]).unwrap().to_vec();
        assert_eq!(scores.len(), 4);
        assert_eq!(model_p.classify_clip(&audio[..len]).unwrap(), scores);
    }
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn unsuitable_models_are_errors() {
    let classifier = read(CLASSIFIER);
    let preprocessor = read(PREPROCESSOR);
    // Wrong label count.
    assert!(
        Pipeline::new(
            native(),
            &classifier,
            &[true; 3],
            &PipelineConfig::default()
        )
        .is_err()
    );
    // The classifier as a front end (int8 input) and the preprocessor as a classifier.
    assert!(ModelFrontend::new(&classifier, 320, 16000).is_err());
    assert!(
        Pipeline::new(
            native(),
            &preprocessor,
            &KEYWORDS,
            &PipelineConfig::default()
        )
        .is_err()
    );
    // Truncated model bytes.
    assert!(
        Pipeline::new(
            native(),
            &classifier[..1000],
            &KEYWORDS,
            &PipelineConfig::default()
        )
        .is_err()
    );
    let cfg = PipelineConfig {
        classify_every_hops: 0,
        ..PipelineConfig::default()
    };
    assert!(Pipeline::new(native(), &classifier, &KEYWORDS, &cfg).is_err());
    // An averaging window that cannot hold `minimum_count` results would never report anything:
    // 3 results every 3 hops of 20 ms span 120 ms.
    for (window, ok) in [(119, false), (120, true)] {
        let cfg = PipelineConfig {
            classify_every_hops: 3,
            recognizer: RecognizerConfig {
                average_window_ms: window,
                ..RecognizerConfig::default()
            },
        };
        assert_eq!(
            Pipeline::new(native(), &classifier, &KEYWORDS, &cfg).is_ok(),
            ok,
            "{window} ms"
        );
    }
}
