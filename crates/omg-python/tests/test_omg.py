"""Tests of the omg Python package, run on the installed wheel by tools/test-python.sh.

omg.Interpreter against the tflite_micro wheel (the oracle) on the nine reference models of
$OMG_SHARED_DATA: the same details, byte-equal outputs on random and reference inputs, the same
state carried between invocations and cleared by reset(); errors as omg.OmgError with omg's
messages; hostile model bytes and inputs raise, never crash. omg.Pipeline: TFLM's features and
scores for the micro_speech clips, keyword events from a stream.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from tflite_micro import runtime as tflm

import omg

REPO = Path(__file__).resolve().parents[3]
SHARED = Path(os.environ.get("OMG_SHARED_DATA", REPO.parent / "shared" / "data"))
if not (SHARED / "micro_speech").is_dir():
    raise RuntimeError(f"the reference data is missing at {SHARED} (set OMG_SHARED_DATA)")

MODELS = sorted((SHARED / "micro_speech" / "models").glob("*.tflite")) + sorted(
    (SHARED / "mlperf_tiny" / "models").glob("*.tflite")
)
CLIPS = REPO / "assets" / "clips"
TESTDATA = SHARED / "micro_speech" / "testdata"
REFERENCE = SHARED / "micro_speech" / "reference"


def test_nine_models():
    assert len(MODELS) == 9, [m.name for m in MODELS]


def load_pair(path: Path):
    data = path.read_bytes()
    return omg.Interpreter.from_bytes(data), tflm.Interpreter.from_bytes(
        data, arena_size=max(10 * len(data), 1 << 20)
    )


def count(interp, what: str) -> int:
    """Number of inputs or outputs of a tflite_micro interpreter (it has no count)."""
    n = 0
    while True:
        try:
            getattr(interp, f"get_{what}_details")(n)
        except Exception:
            return n
        n += 1


def random_input(rng: np.random.Generator, details: dict) -> np.ndarray:
    dtype = np.dtype(details["dtype"])
    shape = tuple(int(d) for d in details["shape"])
    if dtype.kind == "f":
        return rng.uniform(-10.0, 10.0, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def run_both(ours, theirs, inputs: list[np.ndarray]) -> None:
    """Sets the same inputs, invokes both and checks every output byte."""
    for i, x in enumerate(inputs):
        ours.set_input(x, i)
        theirs.set_input(x, i)
    ours.invoke()
    theirs.invoke()
    for o in range(ours.output_count):
        got, want = ours.get_output(o), theirs.get_output(o)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes(), f"output {o} differs"


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_details_match_tflm(path):
    ours, theirs = load_pair(path)
    assert ours.input_count == count(theirs, "input")
    assert ours.output_count == count(theirs, "output")
    for what, n in (("input", ours.input_count), ("output", ours.output_count)):
        for i in range(n):
            got = getattr(ours, f"get_{what}_details")(i)
            want = getattr(theirs, f"get_{what}_details")(i)
            assert got["dtype"] is want["dtype"]
            assert got["shape"].dtype == want["shape"].dtype
            assert np.array_equal(got["shape"], want["shape"])
            gq, wq = got["quantization_parameters"], want["quantization_parameters"]
            assert gq["scales"].dtype == wq["scales"].dtype
            assert gq["scales"].tobytes() == wq["scales"].tobytes()
            assert np.array_equal(gq["zero_points"], wq["zero_points"])
            assert gq["quantized_dimension"] == wq["quantized_dimension"]
            assert got["index"] == i and isinstance(got["name"], str)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_random_inputs_byte_equal_with_tflm(path):
    """Ten random input sets per model (fixed seed), invoked in a row after one reset: the
    preprocessors' state carries from one to the next in both."""
    ours, theirs = load_pair(path)
    rng = np.random.default_rng(20261207)
    specs = [ours.get_input_details(i) for i in range(ours.input_count)]
    for _ in range(10):
        run_both(ours, theirs, [random_input(rng, s) for s in specs])


def reference_cases():
    """(model, input file, elements per invoke, expected output file or None)."""
    ms = SHARED / "micro_speech"
    mt = SHARED / "mlperf_tiny"
    cases = [
        (ms / "models/micro_speech_quantized.tflite", ms / "reference/micro_speech_random_input.bin",
         ms / "reference/micro_speech_random_output_tflm.bin"),
        (mt / "models/ad01_int8.tflite", mt / "reference/ad01_real_inputs_q.bin",
         mt / "reference/ad01_real_outputs_tflm.bin"),
    ]
    for clip in ("yes", "no", "silence", "noise"):
        cases.append((ms / "models/micro_speech_quantized.tflite",
                      ms / f"reference/{clip}_1000ms_features.bin",
                      ms / f"reference/{clip}_1000ms_scores.bin"))
    for name in ("kws_ref_model", "vww_96_int8", "pretrainedResnet_quant",
                 "pretrainedResnet_large_int8", "str_ww_ref_model", "ad01_int8"):
        cases.append((mt / f"models/{name}.tflite", mt / f"reference/{name}_random_input.bin",
                      mt / f"reference/{name}_random_output_tflm.bin"))
    for clip in ("yes_1000ms", "no_1000ms", "noise_1000ms", "silence_1000ms",
                 "marvin_617de221_0"):
        cases.append((mt / "models/kws_ref_model.tflite", mt / f"reference/kws_mfcc_{clip}.bin",
                      None))
    return cases


@pytest.mark.parametrize("model,inputs,expected", reference_cases(),
                         ids=lambda v: v.stem if isinstance(v, Path) else "live")
def test_reference_inputs(model, inputs, expected):
    """The reference inputs of the shared data: the stored TFLM outputs and the live ones."""
    ours, theirs = load_pair(model)
    spec = ours.get_input_details(0)
    shape = tuple(int(d) for d in spec["shape"])
    data = np.fromfile(inputs, dtype=spec["dtype"]).reshape((-1, *shape))
    outputs = []
    for x in data:
        run_both(ours, theirs, [x])
        outputs.append(ours.get_output(0).tobytes())
    if expected is not None:
        assert b"".join(outputs) == expected.read_bytes()


def wav_frames(path: Path) -> np.ndarray:
    samples = omg.read_wav(path)
    n = (len(samples) - 480) // 320 + 1
    return np.stack([samples[320 * i:320 * i + 480] for i in range(n)]).reshape(n, 1, 480)


@pytest.mark.parametrize("name", ["audio_preprocessor_int8", "audio_preprocessor_float"])
def test_preprocessor_state_and_reset(name):
    """A clip's 49 frames, twice without reset (the state carries over, so the second pass
    differs from the first) and once after reset (equal to the first), each invoke compared
    with tflite_micro doing the same."""
    ours, theirs = load_pair(SHARED / f"micro_speech/models/{name}.tflite")
    frames = wav_frames(TESTDATA / "yes_1000ms.wav")

    def one_pass():
        out = []
        for f in frames:
            run_both(ours, theirs, [f])
            out.append(ours.get_output(0).tobytes())
        return out

    first = one_pass()
    second = one_pass()
    assert first != second, "the preprocessor kept no state between invocations"
    ours.reset()
    theirs.reset()
    assert one_pass() == first
    if name == "audio_preprocessor_int8":
        assert b"".join(first) == (REFERENCE / "yes_1000ms_features.bin").read_bytes()


def test_get_output_is_a_copy():
    ours = omg.Interpreter.from_file(SHARED / "micro_speech/models/micro_speech_quantized.tflite")
    ours.set_input(np.zeros((1, 1960), np.int8), 0)
    ours.invoke()
    a = ours.get_output(0)
    a[...] = 7
    assert not np.array_equal(ours.get_output(0), a)
    assert a.flags.writeable


def test_constructor_and_tflm_arguments():
    data = (SHARED / "micro_speech/models/micro_speech_quantized.tflite").read_bytes()
    for interp in (
        omg.Interpreter(data, [], None),
        omg.Interpreter.from_bytes(bytearray(data), custom_op_registerers=[], arena_size=1 << 20),
        omg.Interpreter.from_bytes(memoryview(data)),
        omg.Interpreter.from_file(str(SHARED / "micro_speech/models/micro_speech_quantized.tflite"),
                                  arena_size=4096, kernels="reference"),
    ):
        assert interp.input_count == 1 and interp.output_count == 1
    assert omg.Interpreter.from_bytes(data, kernels="reference").kernels == "reference"
    # auto: an optimized level (the fastest this CPU has), never the reference loops.
    assert omg.Interpreter.from_bytes(data).kernels in (
        "portable", "avx2", "avxvnni", "avx512vnni", "neon", "dotprod")


@pytest.mark.parametrize("kernels", ["reference", "portable", "auto"])
def test_every_kernel_level_matches_tflm(kernels):
    path = SHARED / "mlperf_tiny/models/pretrainedResnet_quant.tflite"
    ours = omg.Interpreter.from_file(path, kernels=kernels)
    theirs = tflm.Interpreter.from_file(str(path))
    rng = np.random.default_rng(7)
    for _ in range(3):
        run_both(ours, theirs, [random_input(rng, ours.get_input_details(0))])


# --- errors -------------------------------------------------------------------------------

MICRO = SHARED / "micro_speech/models/micro_speech_quantized.tflite"


def raises(message: str):
    return pytest.raises(omg.OmgError, match=message)


def test_errors_are_omg_errors_with_messages():
    assert issubclass(omg.OmgError, ValueError)
    interp = omg.Interpreter.from_file(MICRO)
    with raises(r"^input 0 is int8 \[1, 1960\], got int8 \[1, 1959\]$"):
        interp.set_input(np.zeros((1, 1959), np.int8), 0)
    with raises(r"^input 0 is int8 \[1, 1960\], got int16 \[1, 1960\]$"):
        interp.set_input(np.zeros((1, 1960), np.int16), 0)
    with raises(r"^input 0 is int8 \[1, 1960\], got float64 \[1960\]$"):
        interp.set_input([0.5] * 1960, 0)
    with raises(r"^input 0 is int8 \[1, 1960\], got int8 \[1960\]$"):
        interp.set_input(np.zeros(1960, np.int8), 0)
    with raises(r"^input data must not be None$"):
        interp.set_input(None, 0)
    with raises(r"^input index 1 is out of range: the model has 1 input\(s\)$"):
        interp.set_input(np.zeros((1, 1960), np.int8), 1)
    # PyO3 notes which argument was being converted ("while processing 'index'").
    with raises(r"(?m)^index must be a non-negative integer, got -1$"):
        interp.set_input(np.zeros((1, 1960), np.int8), -1)
    with raises(r"^output index 4 is out of range: the model has 1 output\(s\)$"):
        interp.get_output(4)
    with raises(r"(?m)^index must be a non-negative integer, got -2$"):
        interp.get_output_details(-2)
    with raises(r"^input index 9 is out of range"):
        interp.get_input_details(9)
    with raises(r"^malformed model file: missing the TFL3 file identifier; not a TFLite model$"):
        omg.Interpreter.from_bytes(b"not a model at all")
    with raises(r"^the model must be bytes"):
        omg.Interpreter.from_bytes("micro_speech_quantized.tflite")
    with raises(r"^cannot read /nonexistent/model.tflite: No such file or directory"):
        omg.Interpreter.from_file("/nonexistent/model.tflite")
    with raises(r"^\"fastest\" is not one of auto, reference, "):
        omg.Interpreter.from_file(MICRO, kernels="fastest")
    # A byte-order mismatch is named.
    pre = omg.Interpreter.from_file(SHARED / "micro_speech/models/audio_preprocessor_int8.tflite")
    with raises(r"^input 0 is int16 \[1, 480\], got int16 \(big-endian\) \[1, 480\]$"):
        pre.set_input(np.zeros((1, 480), ">i2"), 0)
    # Non-contiguous arrays are accepted (copied).
    pre.set_input(np.zeros((1, 960), np.int16)[:, ::2], 0)
    pre.invoke()


def test_every_error_is_an_omg_error():
    """Wrong argument types are omg.OmgTypeError (an OmgError and a TypeError) naming the
    argument and the type given; what numpy cannot make an array of is an OmgError too."""
    assert issubclass(omg.OmgTypeError, omg.OmgError)
    assert issubclass(omg.OmgTypeError, TypeError)
    interp = omg.Interpreter.from_file(MICRO)
    x = np.zeros((1, 1960), np.int8)
    p = omg.Pipeline()
    for call, message in (
        (lambda: interp.set_input(x, "0"), r"^index must be an integer, got str$"),
        (lambda: interp.set_input(x, True), r"^index must be an integer, got bool$"),
        (lambda: interp.get_output(1.5), r"^index must be an integer, got float$"),
        (lambda: interp.get_input_details(None), r"^index must be an integer, got NoneType$"),
        (lambda: interp.get_output_details([0]), r"^index must be an integer, got list$"),
        (lambda: omg.Interpreter.from_file(42), r"^model_path must be a str or os.PathLike, got int$"),
        (lambda: omg.Interpreter.from_file(MICRO, kernels=3), r"^kernels must be a str, got int$"),
        (lambda: omg.Interpreter(None), r"^the model must be bytes"),
        (lambda: omg.Interpreter.from_bytes(object()), r"^the model must be bytes: "),
        (lambda: omg.Pipeline(5), r"^spec must be a str, got int$"),
        (lambda: omg.Pipeline(None), r"^spec must be a str"),
        (lambda: omg.Pipeline(kernels=b"avx2"), r"^kernels must be a str, got bytes$"),
        (lambda: omg.read_wav(3.0), r"^path must be a str or os.PathLike, got float$"),
        (lambda: omg.verify_token("abc", b"k"), r"^token must be bytes, got str$"),
        (lambda: omg.verify_token(b"abc", None), r"^device_public_key must be bytes, got NoneType$"),
        (lambda: omg.Resampler("44100"), r"^rate must be an integer, got str$"),
    ):
        # `(?m)`: PyO3 adds a note on a line of its own ("while processing 'index'").
        with pytest.raises(omg.OmgTypeError, match="(?m)" + message):
            call()
    for call, message in (
        (lambda: interp.set_input([[1, 2], [3]], 0), r"^cannot make an array of it: "),
        (lambda: p.stream([[1, 2], [3]]), r"^cannot make an array of it: "),
        (lambda: p.classify(object()), r"^audio must be a WAV file's path or a 1-D int16 array"),
        (lambda: omg.Resampler(-1), r"^a sample rate of -1 Hz is not supported"),
        (lambda: omg.Resampler(1000), r"^a sample rate of 1000 Hz is not supported"),
        (lambda: omg.Resampler(44100).push(np.zeros(3, np.float32)),
         r"^samples must be a 1-D int16 array, got float32 \[3\]$"),
    ):
        with raises("(?m)" + message):
            call()
    # The failed calls changed nothing.
    interp.set_input(x, 0)
    interp.invoke()


def test_resampler_chunks_equal_the_whole_buffer_and_read_wav(tmp_path):
    import wave

    n = 44100 + 4099
    pcm = ((np.arange(n) * 7919 % 4001) * 13 - 26000).astype(np.int16)
    r = omg.Resampler(44100)
    assert r.rate == 44100
    whole = np.concatenate([r.push(pcm), r.finish()])
    assert whole.dtype == np.int16 and len(whole) == -(-n * 16000 // 44100)
    with raises(r"finished"):
        r.push(pcm[:1])
    for sizes in ((1, 2, 3), (1023, 1, 4097), (7, 333, 5001)):
        r.reset()
        parts, at, k = [], 0, 0
        while at < n:
            size = sizes[k % len(sizes)]
            parts.append(r.push(pcm[at:at + size]))
            at, k = at + size, k + 1
        parts.append(r.finish())
        assert np.array_equal(np.concatenate(parts), whole), sizes
    path = tmp_path / "44k.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(pcm.astype("<i2").tobytes())
    assert np.array_equal(omg.read_wav(path), whole)
    same = omg.Resampler(16000)
    assert np.array_equal(np.concatenate([same.push(pcm[:5000]), same.finish()]), pcm[:5000])


def test_the_failed_call_changes_nothing():
    interp = omg.Interpreter.from_file(MICRO)
    x = np.fromfile(REFERENCE / "yes_1000ms_features.bin", np.int8).reshape(1, 1960)
    interp.set_input(x, 0)
    with pytest.raises(omg.OmgError):
        interp.set_input(np.zeros((1, 5), np.int8), 0)
    interp.invoke()
    assert interp.get_output(0).tobytes() == (REFERENCE / "yes_1000ms_scores.bin").read_bytes()


def test_threads():
    """An object made on one thread runs on others; four threads, each with its interpreter
    and pipeline, give the single-threaded results."""
    path = SHARED / "mlperf_tiny/models/kws_ref_model.tflite"
    x = np.fromfile(SHARED / "mlperf_tiny/reference/kws_ref_model_random_input.bin",
                    np.int8).reshape(1, 49, 10, 1)
    want = (SHARED / "mlperf_tiny/reference/kws_ref_model_random_output_tflm.bin").read_bytes()
    shared = omg.Interpreter.from_file(path)
    results, errors = [], []

    def work(interp):
        try:
            p = omg.Pipeline()
            for _ in range(20):
                interp.set_input(x, 0)
                interp.invoke()
                results.append(interp.get_output(0).tobytes())
            results.append(p.classify(TESTDATA / "no_1000ms.wav")[1].tobytes())
        except BaseException as e:  # noqa: BLE001 - any failure is reported
            errors.append(e)

    threads = [threading.Thread(target=work, args=(shared,))] + [
        threading.Thread(target=work, args=(omg.Interpreter.from_file(path),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    scores = (REFERENCE / "no_1000ms_scores.bin").read_bytes()
    assert sorted(set(results)) == sorted({want, scores}) and len(results) == 4 * 21


# --- hostile bytes ----------------------------------------------------------------------------


def exercise(data: bytes) -> None:
    """Loads `data`; if it loads, runs it on zero inputs. Only omg.OmgError may come out."""
    try:
        interp = omg.Interpreter.from_bytes(data)
    except omg.OmgError as e:
        assert str(e), "an error without a message"
        return
    try:
        for i in range(interp.input_count):
            d = interp.get_input_details(i)
            interp.set_input(np.zeros(tuple(int(v) for v in d["shape"]), d["dtype"]), i)
        interp.invoke()
        for o in range(interp.output_count):
            interp.get_output(o)
    except omg.OmgError as e:
        assert str(e)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_truncated_models_raise(path):
    data = path.read_bytes()
    cuts = sorted({0, 1, 4, 7, 8, 16, 64, 256, len(data) // 3, len(data) // 2, len(data) - 1}
                  | set(np.random.default_rng(1).integers(0, len(data), 40).tolist()))
    for n in cuts:
        exercise(data[:n])


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_corrupted_models_never_crash(path):
    """300 mutants per model (fixed seed): single bytes, 32-bit words set to extreme values,
    runs of random bytes. They may load and run (a changed weight) or raise, never crash."""
    data = path.read_bytes()
    rng = np.random.default_rng(int.from_bytes(path.stem.encode()[:4], "little"))
    for k in range(300):
        mutant = bytearray(data)
        at = int(rng.integers(0, len(data)))
        if k % 3 == 0:
            mutant[at] = int(rng.integers(0, 256))
        elif k % 3 == 1:
            at -= at % 4
            mutant[at:at + 4] = [(0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 0)[k % 4].to_bytes(4, "little")
                                 [j] for j in range(4)][: len(mutant) - at]
        else:
            n = int(rng.integers(1, 64))
            mutant[at:at + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()[: len(mutant) - at]
        exercise(bytes(mutant))


def test_random_bytes_raise():
    rng = np.random.default_rng(3)
    for n in (0, 1, 8, 100, 5000):
        for _ in range(20):
            data = bytearray(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
            if n >= 8 and rng.integers(0, 2):
                data[4:8] = b"TFL3"
            with pytest.raises(omg.OmgError):
                omg.Interpreter.from_bytes(bytes(data))


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_hostile_inputs_raise(path):
    interp = omg.Interpreter.from_file(path)
    d = interp.get_input_details(0)
    shape = tuple(int(v) for v in d["shape"])
    for bad in (
        np.zeros(shape, np.float64),
        np.zeros(shape, np.bool_),
        np.zeros((*shape, 1), d["dtype"]),
        np.zeros((0,), d["dtype"]),
        np.zeros(shape[:-1] + (shape[-1] + 1,), d["dtype"]),
        "a string",
        object(),
        [[1, 2], [3]],
        {"a": 1},
    ):
        with pytest.raises(omg.OmgError):
            interp.set_input(bad, 0)
    interp.invoke()


# --- the keyword pipeline ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline():
    return omg.Pipeline()


def test_pipeline_properties(pipeline):
    assert pipeline.labels == ["silence", "unknown", "yes", "no"]
    assert pipeline.sample_rate == 16000
    assert omg.Pipeline("micro_speech", kernels="reference").kernels == "reference"


@pytest.mark.parametrize("clip", ["yes", "no", "silence", "noise"])
def test_features_and_scores_match_tflm(pipeline, clip):
    wav = TESTDATA / f"{clip}_1000ms.wav"
    features = pipeline.features(wav)
    assert features.dtype == np.int8 and features.shape == (49, 40)
    assert features.tobytes() == (REFERENCE / f"{clip}_1000ms_features.bin").read_bytes()
    label, scores = pipeline.classify(wav)
    assert scores.dtype == np.int8
    assert scores.tobytes() == (REFERENCE / f"{clip}_1000ms_scores.bin").read_bytes()
    assert label == {"noise": "silence"}.get(clip, clip)
    # The same from the samples as an array.
    samples = omg.read_wav(wav)
    assert pipeline.features(samples).tobytes() == features.tobytes()
    assert pipeline.classify(samples)[1].tobytes() == scores.tobytes()


def test_features_of_30ms(pipeline):
    for clip in ("yes", "no"):
        f = pipeline.features(TESTDATA / f"{clip}_30ms.wav")
        assert f.tobytes() == (REFERENCE / f"{clip}_30ms_feature.bin").read_bytes()
    assert pipeline.features(np.zeros(479, np.int16)).shape == (0, 40)


def test_classify_the_repository_clips(pipeline):
    for clip, want in (("yes_en-us", "yes"), ("no_en-gb", "no"), ("silence", "silence")):
        assert pipeline.classify(CLIPS / f"{clip}.wav")[0] == want


def test_stream_events_in_any_chunks():
    p = omg.Pipeline()
    yes = omg.read_wav(CLIPS / "yes_en-us.wav")
    no = omg.read_wav(CLIPS / "no_en-gb.wav")
    gap = np.zeros(16000, np.int16)
    audio = np.concatenate([gap, yes, gap, no, gap])
    whole = p.stream(audio)
    assert [e["label"] for e in whole] == ["yes", "no"], whole
    for e in whole:
        assert set(e) == {"label", "label_index", "time_ms", "score"}
        assert p.labels[e["label_index"]] == e["label"] and 0 <= e["score"] <= 255
    p.reset()
    rng = np.random.default_rng(5)
    chunked, at = [], 0
    while at < len(audio):
        n = int(rng.integers(1, 3000))
        chunked += p.stream(audio[at:at + n])
        at += n
    assert chunked == whole
    # Without a reset the stream goes on: the times continue from the end.
    later = p.stream(audio)
    assert [e["label"] for e in later] == ["yes", "no"]
    assert later[0]["time_ms"] > whole[-1]["time_ms"]


def test_pipeline_errors(pipeline):
    with raises(r"^audio must be a WAV file's path or a 1-D int16 array of 16 kHz mono "
                r"samples, got float32 \[100\]$"):
        pipeline.classify(np.zeros(100, np.float32))
    with raises(r"int16 \[2, 100\]$"):
        pipeline.stream(np.zeros((2, 100), np.int16))
    with raises(r"^the clip holds no samples$"):
        pipeline.classify(np.zeros(0, np.int16))
    with raises(r"^cannot read /nonexistent.wav: No such file or directory"):
        pipeline.features("/nonexistent.wav")
    with raises(r"^no pipeline nope: not a bundled pipeline"):
        omg.Pipeline("nope")
    with pytest.raises(omg.OmgError):
        pipeline.classify(MICRO)  # a file that is not a WAV
    with raises(r"^\"fastest\" is not one of auto, reference, "):
        omg.Pipeline(kernels="fastest")


# --- attestation tokens -----------------------------------------------------------------------

TOKEN = os.environ.get("OMG_TOKEN_SAMPLE")


@pytest.fixture(scope="module")
def token_sample():
    """The token, device key and claims omg-protocol's writer made (tools/test-python.sh runs
    it: `cargo test -p omg-protocol --test token_interop -- --ignored write_token_sample`)."""
    if not TOKEN:
        raise RuntimeError("set OMG_TOKEN_SAMPLE to the directory of a token sample")
    d = Path(TOKEN)
    claims = dict(line.split("=", 1) for line in (d / "claims.txt").read_text().split())
    return (d / "token.cbor").read_bytes(), (d / "device_pub.sec1").read_bytes(), claims


def test_verify_token(token_sample):
    token, key, want = token_sample
    claims = omg.verify_token(token, key)
    assert claims["nonce"].hex() == want["nonce(10)"]
    assert claims["ueid"].hex() == want["ueid(256)"]
    assert claims["profile"] == want["profile(265)"]
    assert claims["client_id"] == int(want["client_id(2394)"])
    assert claims["security_lifecycle"] == int(want["lifecycle(2395)"])
    assert claims["implementation_id"].hex() == want["implementation_id(2396)"]
    component = claims["software_components"][0]
    assert component["measurement_value"].hex() == want["measurement(2399[0][2])"]
    assert component["signer_id"].hex() == want["signer_id(2399[0][5])"]
    assert claims["enclave_key_hash"].hex() == want["enclave_key_hash(-65537)"]


def test_verify_token_refuses(token_sample):
    token, key, _ = token_sample
    for at in range(0, len(token), max(1, len(token) // 40)):
        forged = bytearray(token)
        forged[at] ^= 0x01
        with raises(r"^the token does not verify: "):
            omg.verify_token(bytes(forged), key)
    for cut in (0, 1, len(token) // 2, len(token) - 1):
        with raises(r"^the token does not verify: "):
            omg.verify_token(token[:cut], key)
    other = bytearray(key)
    other[-1] ^= 0x01  # most likely not on the curve; either way not the signer
    with pytest.raises(omg.OmgError):
        omg.verify_token(token, bytes(other))
    with raises(r"^the device public key: .*65-byte SEC1 uncompressed P-256 point"):
        omg.verify_token(token, key[:64])
    with pytest.raises(TypeError):
        omg.verify_token("not bytes", key)
