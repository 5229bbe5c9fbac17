//! The Python package of omg: the module `omg`, built as an abi3 wheel by maturin.
//!
//! * [`Interpreter`]: a `.tflite` model on omg's engine, used like
//!   `tflite_micro.runtime.Interpreter` (`from_file`, `from_bytes`, `set_input`, `invoke`,
//!   `get_output`, `get_input_details`, `get_output_details`, `reset`), numpy arrays in and out;
//! * [`Pipeline`]: the keyword-spotting pipeline (the bundled `micro_speech` or a manifest
//!   directory): `features`, `classify` and `stream` over int16 numpy audio or WAV files.
//! * [`verify_token`]: an attestation token checked against the device's public key, its claims
//!   returned.
//!
//! The work is done by omg-capi's safe core (the same handles, error messages and panic
//! catching as the C API); this crate only converts between it and Python objects. Every
//! failure is an `omg.OmgError` (a `ValueError`), a panic included. See docs/python.md.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use omg::error::{Failure, catch};
use omg::interpreter::{OmgType, TensorInfo};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple};

create_exception!(
    omg,
    OmgError,
    PyValueError,
    "An omg call failed: a malformed or unsupported model, an input of the wrong type or shape, \
     an index out of range, an unreadable file, or (a bug) an internal panic. A ValueError, so \
     code written for tflite_micro that catches ValueError catches it too."
);

/// Runs omg's work `f`, a panic caught, a failure raised as `OmgError` with omg's message.
fn run<T>(f: impl FnOnce() -> Result<T, Failure>) -> PyResult<T> {
    catch(f).map_err(|e| OmgError::new_err(e.message))
}

/// Locks `m`. omg's work runs under [`run`] or [`catch`], which catch panics, so a lock is not
/// poisoned by one; if it were, the object would still be consistent (a failed call leaves it
/// as it was).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A `OmgError` with `message`.
fn error(message: impl Into<String>) -> PyErr {
    OmgError::new_err(message.into())
}

/// numpy's spelling of an element type: its dtype string in little-endian order (`<i2`; `|` for
/// single bytes), which also tells the byte order apart, and its name (`int16`).
fn numpy_type(t: OmgType) -> (&'static str, &'static str) {
    match t {
        OmgType::Float32 => ("<f4", "float32"),
        OmgType::Int8 => ("|i1", "int8"),
        OmgType::Uint8 => ("|u1", "uint8"),
        OmgType::Int16 => ("<i2", "int16"),
        OmgType::Uint16 => ("<u2", "uint16"),
        OmgType::Int32 => ("<i4", "int32"),
        OmgType::Uint32 => ("<u4", "uint32"),
        OmgType::Int64 => ("<i8", "int64"),
        OmgType::Uint64 => ("<u8", "uint64"),
        OmgType::Bool => ("|b1", "bool"),
    }
}

/// The numpy scalar type of `t` (`numpy.int8`, ...; `numpy.bool_` for booleans), as
/// tflite_micro gives it in a tensor's details.
fn numpy_scalar<'py>(np: &Bound<'py, PyModule>, t: OmgType) -> PyResult<Bound<'py, PyAny>> {
    let name = match numpy_type(t).1 {
        "bool" => "bool_",
        other => other,
    };
    np.getattr(name)
}

/// A shape as omg's messages print it: `[1, 1960]`.
fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// `value` as a C-contiguous numpy array, with its dtype string (`<i2`, `|i1`, ...), the
/// dtype's name and its shape.
fn as_array<'py>(
    np: &Bound<'py, PyModule>,
    value: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyAny>, String, String, Vec<usize>)> {
    let arr = np.call_method1("ascontiguousarray", (value,))?;
    let dtype = arr.getattr("dtype")?;
    let code: String = dtype.getattr("str")?.extract()?;
    let name: String = dtype.getattr("name")?.extract()?;
    let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
    Ok((arr, code, name, shape))
}

/// The bytes of a C-contiguous array.
fn array_bytes<'py>(arr: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    Ok(arr.call_method0("tobytes")?.cast_into::<PyBytes>()?)
}

/// A tensor index from Python: non-negative.
fn index(i: i64) -> PyResult<usize> {
    usize::try_from(i).map_err(|_| error(format!("index must be a non-negative integer, got {i}")))
}

/// Model bytes from `bytes`, `bytearray` or anything `bytes()` accepts (a memoryview, a numpy
/// uint8 array).
fn model_bytes(data: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = data.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(b) = data.cast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    if data.is_none() || data.is_instance_of::<PyString>() {
        return Err(error(
            "the model must be bytes (a .tflite file's content), not None or a string; \
             use Interpreter.from_file for a path",
        ));
    }
    let b = data
        .py()
        .get_type::<PyBytes>()
        .call1((data,))
        .map_err(|e| error(format!("the model must be bytes: {e}")))?;
    Ok(b.cast_into::<PyBytes>()?.as_bytes().to_vec())
}

/// Turns a tensor's details into tflite_micro's dictionary: `dtype` (numpy scalar type),
/// `shape` (int32 array), `quantization_parameters` (`scales` float32 array, `zero_points`
/// int32 array, `quantized_dimension`); plus `name` and `index`.
fn details<'py>(py: Python<'py>, t: &TensorInfo, i: usize) -> PyResult<Bound<'py, PyDict>> {
    let np = py.import("numpy")?;
    let d = PyDict::new(py);
    d.set_item("dtype", numpy_scalar(&np, t.dtype)?)?;
    d.set_item(
        "shape",
        np.call_method1("array", (t.shape.clone(), "int32"))?,
    )?;
    let q = PyDict::new(py);
    q.set_item(
        "scales",
        np.call_method1("array", (t.scales.clone(), "float32"))?,
    )?;
    q.set_item(
        "zero_points",
        np.call_method1("array", (t.zero_points.clone(), "int32"))?,
    )?;
    q.set_item("quantized_dimension", t.quantized_dimension)?;
    d.set_item("quantization_parameters", q)?;
    d.set_item("name", t.name.to_string_lossy().into_owned())?;
    d.set_item("index", i)?;
    Ok(d)
}

/// A `.tflite` model run by omg's engine (bit-exact with TensorFlow Lite Micro), used like
/// `tflite_micro.runtime.Interpreter`.
///
/// Any thread may use an object; calls on one object run one at a time (a lock), and `invoke`
/// releases the GIL while the model runs, so threads with interpreters of their own run in
/// parallel.
#[pyclass(module = "omg")]
pub struct Interpreter {
    inner: Mutex<omg::interpreter::Interpreter>,
}

impl Interpreter {
    fn wrap(inner: omg::interpreter::Interpreter) -> Self {
        Self {
            inner: Mutex::new(inner),
        }
    }

    fn load(bytes: Vec<u8>, kernels: Option<&str>) -> PyResult<Self> {
        run(|| omg::interpreter::Interpreter::new(bytes, kernels)).map(Self::wrap)
    }
}

#[pymethods]
impl Interpreter {
    /// Loads a model from its bytes. `custom_op_registerers`, `arena_size`,
    /// `intrepreter_config` and `alt_decompression_memory_size` are tflite_micro's and are
    /// accepted and ignored (omg has TFLM's Signal operators built in and plans its arena
    /// itself). `kernels`: `auto` (default: the best level the CPU has), `reference`, or a level
    /// (`portable`, `avx2`, ...).
    #[new]
    #[pyo3(signature = (model_data, custom_op_registerers=None, arena_size=None,
        intrepreter_config=None, alt_decompression_memory_size=None, *, kernels=None))]
    fn new(
        model_data: &Bound<'_, PyAny>,
        custom_op_registerers: Option<&Bound<'_, PyAny>>,
        arena_size: Option<&Bound<'_, PyAny>>,
        intrepreter_config: Option<&Bound<'_, PyAny>>,
        alt_decompression_memory_size: Option<&Bound<'_, PyAny>>,
        kernels: Option<&str>,
    ) -> PyResult<Self> {
        let _ = (
            custom_op_registerers,
            arena_size,
            intrepreter_config,
            alt_decompression_memory_size,
        );
        Self::load(model_bytes(model_data)?, kernels)
    }

    /// Loads the `.tflite` file at `model_path` (a `str` or path-like); the other arguments as
    /// for the constructor.
    #[staticmethod]
    #[pyo3(signature = (model_path, custom_op_registerers=None, arena_size=None,
        intrepreter_config=None, alt_decompression_memory_size=None, *, kernels=None))]
    fn from_file(
        model_path: PathBuf,
        custom_op_registerers: Option<&Bound<'_, PyAny>>,
        arena_size: Option<&Bound<'_, PyAny>>,
        intrepreter_config: Option<&Bound<'_, PyAny>>,
        alt_decompression_memory_size: Option<&Bound<'_, PyAny>>,
        kernels: Option<&str>,
    ) -> PyResult<Self> {
        let _ = (
            custom_op_registerers,
            arena_size,
            intrepreter_config,
            alt_decompression_memory_size,
        );
        run(|| omg::interpreter::Interpreter::open(&model_path, kernels)).map(Self::wrap)
    }

    /// Loads a model from its bytes (`bytes`, `bytearray`, a memoryview); the other arguments
    /// as for the constructor.
    #[staticmethod]
    #[pyo3(signature = (model_data, custom_op_registerers=None, arena_size=None,
        intrepreter_config=None, alt_decompression_memory_size=None, *, kernels=None))]
    fn from_bytes(
        model_data: &Bound<'_, PyAny>,
        custom_op_registerers: Option<&Bound<'_, PyAny>>,
        arena_size: Option<&Bound<'_, PyAny>>,
        intrepreter_config: Option<&Bound<'_, PyAny>>,
        alt_decompression_memory_size: Option<&Bound<'_, PyAny>>,
        kernels: Option<&str>,
    ) -> PyResult<Self> {
        Self::new(
            model_data,
            custom_op_registerers,
            arena_size,
            intrepreter_config,
            alt_decompression_memory_size,
            kernels,
        )
    }

    /// Copies `input_data` (a numpy array of exactly the input's dtype and shape) into input
    /// `index`. Inputs are read by the next `invoke()`; set them before each one.
    fn set_input(&self, py: Python<'_>, input_data: &Bound<'_, PyAny>, index: i64) -> PyResult<()> {
        let i = self::index(index)?;
        if input_data.is_none() {
            return Err(error("input data must not be None"));
        }
        let want = run(|| lock(&self.inner).input(i).cloned())?;
        let (code, want_name) = numpy_type(want.dtype);
        let np = py.import("numpy")?;
        let (arr, got_code, got_name, got_shape) = as_array(&np, input_data)?;
        // `=` and `<` are the same order on a little-endian machine; numpy writes `<` for
        // native multi-byte types, `|` for single bytes.
        if got_code != code || got_shape != want.shape {
            let order = if got_name == want_name && got_code != code {
                " (big-endian)"
            } else {
                ""
            };
            return Err(error(format!(
                "input {i} is {want_name} {}, got {got_name}{order} {}",
                shape_text(&want.shape),
                shape_text(&got_shape),
            )));
        }
        let bytes = array_bytes(&arr)?;
        run(|| lock(&self.inner).set_input(i, bytes.as_bytes()))
    }

    /// Runs the model once on the inputs set (the GIL released meanwhile).
    fn invoke(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| catch(|| lock(&self.inner).invoke()))
            .map_err(|e| OmgError::new_err(e.message))
    }

    /// Output `index` of the latest `invoke()`, as a new numpy array of its dtype and shape.
    fn get_output<'py>(&self, py: Python<'py>, index: i64) -> PyResult<Bound<'py, PyAny>> {
        let i = self::index(index)?;
        let info = run(|| lock(&self.inner).output(i).cloned())?;
        let buffer = PyByteArray::new_with(py, info.bytes, |out| {
            run(|| lock(&self.inner).read_output(i, out).map(|_| ()))
        })?;
        let np = py.import("numpy")?;
        let flat = np.call_method1("frombuffer", (buffer, numpy_type(info.dtype).0))?;
        flat.call_method1("reshape", (PyTuple::new(py, &info.shape)?,))
    }

    /// Input `index`'s details, as tflite_micro gives them (`dtype`, `shape`,
    /// `quantization_parameters`), with its `name` and `index`.
    fn get_input_details<'py>(&self, py: Python<'py>, index: i64) -> PyResult<Bound<'py, PyDict>> {
        let i = self::index(index)?;
        let info = run(|| lock(&self.inner).input(i).cloned())?;
        details(py, &info, i)
    }

    /// Output `index`'s details (as for `get_input_details`).
    fn get_output_details<'py>(&self, py: Python<'py>, index: i64) -> PyResult<Bound<'py, PyDict>> {
        let i = self::index(index)?;
        let info = run(|| lock(&self.inner).output(i).cloned())?;
        details(py, &info, i)
    }

    /// Clears the state that stateful operators (the audio preprocessor's noise estimates,
    /// resource variables) keep between invocations.
    fn reset(&self) -> PyResult<()> {
        run(|| {
            lock(&self.inner).reset();
            Ok(())
        })
    }

    /// Number of inputs.
    #[getter]
    fn input_count(&self) -> usize {
        lock(&self.inner).inputs().len()
    }

    /// Number of outputs.
    #[getter]
    fn output_count(&self) -> usize {
        lock(&self.inner).outputs().len()
    }

    /// The kernel level the model runs on: `reference` or a level name (`avx2`, ...).
    #[getter]
    fn kernels(&self) -> &'static str {
        lock(&self.inner).kernels()
    }
}

/// Audio from Python: a WAV file's path (any common rate and channel count, converted to 16 kHz
/// mono as `omg classify` reads it), or a 1-D int16 numpy array of 16 kHz mono samples.
fn audio(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Vec<i16>> {
    if value.is_instance_of::<PyString>() || value.hasattr("__fspath__")? {
        let path: PathBuf = value.extract()?;
        return run(|| omg::pipeline::read_wav(&path));
    }
    let np = py.import("numpy")?;
    let (arr, code, name, shape) = as_array(&np, value)?;
    if code != "<i2" || shape.len() != 1 {
        return Err(error(format!(
            "audio must be a WAV file's path or a 1-D int16 array of 16 kHz mono samples, \
             got {name} {}",
            shape_text(&shape)
        )));
    }
    Ok(array_bytes(&arr)?
        .as_bytes()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect())
}

/// A keyword-spotting pipeline: the bundled `micro_speech` (default) or a directory holding a
/// `pipeline.toml` manifest (as `omg classify` and `omg listen` take them).
///
/// Like an [`Interpreter`], an object may be used from any thread, one call at a time, and
/// releases the GIL while it computes.
#[pyclass(module = "omg")]
pub struct Pipeline {
    inner: Mutex<omg::pipeline::Pipeline>,
    labels: Vec<String>,
    kernels: &'static str,
    sample_rate: u32,
}

#[pymethods]
impl Pipeline {
    /// Opens `spec` (`micro_speech`, a manifest directory or file) on `kernels` (`auto`
    /// when not given).
    #[new]
    #[pyo3(signature = (spec="micro_speech", *, kernels=None))]
    fn new(spec: &str, kernels: Option<&str>) -> PyResult<Self> {
        let inner = run(|| omg::pipeline::Pipeline::open(spec, kernels))?;
        Ok(Self {
            labels: inner
                .labels()
                .iter()
                .map(|l| l.to_string_lossy().into_owned())
                .collect(),
            kernels: inner.kernels(),
            sample_rate: inner.sample_rate(),
            inner: Mutex::new(inner),
        })
    }

    /// The classifier's labels, in score order.
    #[getter]
    fn labels(&self) -> Vec<String> {
        self.labels.clone()
    }

    /// The sample rate the pipeline takes, in Hz.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The kernel level the models run on.
    #[getter]
    fn kernels(&self) -> &'static str {
        self.kernels
    }

    /// A clip's features as `omg features` writes them: an int8 array `[frames, channels]`,
    /// frame i from samples `[hop * i, hop * i + window)` while a whole window fits. Resets
    /// the stream.
    fn features<'py>(
        &self,
        py: Python<'py>,
        audio: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let samples = self::audio(py, audio)?;
        let (data, channels) = py
            .detach(|| catch(|| lock(&self.inner).features(&samples)))
            .map_err(|e| OmgError::new_err(e.message))?;
        let frames = data.len() / channels.max(1);
        let bytes: Vec<u8> = data.iter().map(|&v| v as u8).collect();
        let np = py.import("numpy")?;
        np.call_method1("frombuffer", (PyByteArray::new(py, &bytes), "|i1"))?
            .call_method1("reshape", ((frames, channels),))
    }

    /// One decision for a clip, as `omg classify` makes it (its first frames, zero-padded):
    /// `(label, scores)`, the label with the highest score (the first of equal ones) and the
    /// int8 scores in label order. Resets the stream.
    fn classify<'py>(
        &self,
        py: Python<'py>,
        audio: &Bound<'py, PyAny>,
    ) -> PyResult<(String, Bound<'py, PyAny>)> {
        let samples = self::audio(py, audio)?;
        let mut scores = vec![0i8; self.labels.len()];
        py.detach(|| catch(|| lock(&self.inner).classify_clip(&samples, &mut scores)))
            .map_err(|e| OmgError::new_err(e.message))?;
        let best = scores
            .iter()
            .enumerate()
            .fold(0, |b, (i, &s)| if s > scores[b] { i } else { b });
        let label = self.labels[best].clone();
        let bytes: Vec<u8> = scores.iter().map(|&v| v as u8).collect();
        let np = py.import("numpy")?;
        let array = np.call_method1("frombuffer", (PyByteArray::new(py, &bytes), "|i1"))?;
        Ok((label, array))
    }

    /// Streams audio through the pipeline, as `omg listen` does, and returns the keyword events
    /// it completes: a list of dicts with `label`, `label_index`, `time_ms` (end of the audio
    /// that triggered it, since the stream started or was reset) and `score` (0 to 255). The
    /// stream goes on across calls: feed a recording in chunks of any size.
    fn stream<'py>(
        &self,
        py: Python<'py>,
        audio: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let samples = self::audio(py, audio)?;
        let events = py
            .detach(|| catch(|| lock(&self.inner).feed(&samples)))
            .map_err(|e| OmgError::new_err(e.message))?;
        let list = PyList::empty(py);
        for e in events {
            let d = PyDict::new(py);
            let label = self.labels.get(e.label_index).cloned().unwrap_or_default();
            d.set_item("label", label)?;
            d.set_item("label_index", e.label_index)?;
            d.set_item("time_ms", e.time_ms)?;
            d.set_item("score", e.score)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Clears the stream (audio, features, scores, recognizer).
    fn reset(&self) -> PyResult<()> {
        run(|| {
            lock(&self.inner).reset();
            Ok(())
        })
    }
}

/// Decodes a WAV file (a path; any common rate, channel count and sample format) to a 1-D int16
/// array of 16 kHz mono samples, as `omg classify` reads its clips.
#[pyfunction]
fn read_wav<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let samples = run(|| omg::pipeline::read_wav(&path))?;
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let np = py.import("numpy")?;
    np.call_method1("frombuffer", (PyByteArray::new(py, &bytes), "<i2"))
}

/// Verifies an omg attestation token (the COSE_Sign1 bytes `omg attest` writes) against the
/// device's public key (65 bytes, SEC1 uncompressed P-256, the `device_pub.sec1` of
/// `omg provision`) and returns its claims: `nonce`, `ueid`, `profile`, `client_id`,
/// `security_lifecycle`, `implementation_id`, `software_components` (a list of dicts with
/// `measurement_value` and `signer_id`, and `measurement_type`, `version` and
/// `measurement_description` or None) and `enclave_key_hash`, byte strings as `bytes`. Raises
/// `OmgError` if the key is malformed or the token does not verify; comparing the nonce and the
/// measurements with the expected ones is the caller's (as `omg verify-token --nonce
/// --measurement` does).
#[pyfunction]
fn verify_token<'py>(
    py: Python<'py>,
    token: &[u8],
    device_public_key: &[u8],
) -> PyResult<Bound<'py, PyDict>> {
    use omg_protocol::token::Token;
    let claims = run(|| {
        let key = omg_protocol::keys::verifying_key_from_sec1(device_public_key)
            .map_err(|e| Failure::invalid(format!("the device public key: {e}")))?;
        Token::verify(token, &key)
            .map_err(|e| Failure::invalid(format!("the token does not verify: {e}")))
    })?;
    let d = PyDict::new(py);
    d.set_item("nonce", PyBytes::new(py, &claims.nonce))?;
    d.set_item("ueid", PyBytes::new(py, &claims.instance_id))?;
    d.set_item("profile", &claims.profile)?;
    d.set_item("client_id", claims.client_id)?;
    d.set_item("security_lifecycle", claims.security_lifecycle.0)?;
    d.set_item(
        "implementation_id",
        PyBytes::new(py, &claims.implementation_id),
    )?;
    let components = PyList::empty(py);
    for c in &claims.software_components {
        let cd = PyDict::new(py);
        cd.set_item("measurement_value", PyBytes::new(py, &c.measurement_value))?;
        cd.set_item("signer_id", PyBytes::new(py, &c.signer_id))?;
        cd.set_item("measurement_type", c.measurement_type.as_deref())?;
        cd.set_item("version", c.version.as_deref())?;
        cd.set_item("measurement_description", c.measurement_desc.as_deref())?;
        components.append(cd)?;
    }
    d.set_item("software_components", components)?;
    d.set_item(
        "enclave_key_hash",
        PyBytes::new(py, &claims.enclave_key_hash),
    )?;
    Ok(d)
}

/// The `omg` Python module.
#[pymodule]
#[pyo3(name = "omg")]
fn omg_python(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("OmgError", m.py().get_type::<OmgError>())?;
    m.add_class::<Interpreter>()?;
    m.add_class::<Pipeline>()?;
    m.add_function(wrap_pyfunction!(read_wav, m)?)?;
    m.add_function(wrap_pyfunction!(verify_token, m)?)?;
    Ok(())
}
