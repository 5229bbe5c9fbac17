//! The Python package of omg: the module `omg`, built as an abi3 wheel by maturin.
//!
//! * [`Interpreter`]: a `.tflite` model on omg's engine, used like
//!   `tflite_micro.runtime.Interpreter` (`from_file`, `from_bytes`, `set_input`, `invoke`,
//!   `get_output`, `get_input_details`, `get_output_details`, `reset`), numpy arrays in and out;
//! * [`Pipeline`]: the keyword-spotting pipeline (the bundled `micro_speech` or a manifest
//!   directory): `features`, `classify` and `stream` over int16 numpy audio or WAV files.
//! * [`Resampler`]: a streaming resampler from any rate to 16 kHz for raw PCM;
//! * [`verify_token`]: an attestation token checked against the device's public key, its claims
//!   returned.
//!
//! The work is done by omg-capi's safe core (the same handles, error messages and panic
//! catching as the C API); this crate only converts between it and Python objects. Every
//! failure is an `omg.OmgError` (a `ValueError`), a panic included; an argument of the wrong
//! type is an `omg.OmgTypeError`, both an `OmgError` and a `TypeError`. Arguments are converted
//! by this crate (`from_py_with`), and numpy's errors on what it is given are turned into
//! `OmgError`s too. See docs/python.md.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use omg::error::{Failure, catch};
use omg::interpreter::{OmgType, TensorInfo};
use pyo3::create_exception;
use pyo3::exceptions::PyTypeError;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple, PyType};

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

/// `omg.OmgTypeError`, made once: a subclass of both `OmgError` and `TypeError` (so code that
/// catches either catches it).
static TYPE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn omg_type_error(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    TYPE_ERROR
        .get_or_try_init(py, || {
            let namespace = PyDict::new(py);
            namespace.set_item("__module__", "omg")?;
            namespace.set_item(
                "__doc__",
                "An argument of the wrong type was passed to omg: an OmgError and a TypeError.",
            )?;
            let bases = (py.get_type::<OmgError>(), py.get_type::<PyTypeError>());
            let class = py
                .get_type::<PyType>()
                .call1(("OmgTypeError", bases, namespace))?;
            Ok(class.cast_into::<PyType>()?.unbind())
        })
        .map(|t| t.bind(py))
}

/// An `OmgTypeError` with `message`.
fn type_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    match omg_type_error(py) {
        Ok(t) => PyErr::from_type(t.clone(), message.into()),
        Err(e) => e,
    }
}

/// `e` if it is omg's, else an `OmgError` (an `OmgTypeError` for a `TypeError`) saying `what`
/// failed and why: errors of numpy and of Python's conversions on what the caller gave.
fn ours(py: Python<'_>, what: &str, e: PyErr) -> PyErr {
    if e.is_instance_of::<OmgError>(py) {
        e
    } else if e.is_instance_of::<PyTypeError>(py) {
        type_error(py, format!("{what}: {}", e.value(py)))
    } else {
        error(format!("{what}: {}", e.value(py)))
    }
}

/// numpy, imported (its absence an `OmgError`).
fn numpy(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("numpy")
        .map_err(|e| ours(py, "omg needs numpy, which cannot be imported", e))
}

/// The name of `value`'s type, for messages.
fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A tensor index argument: a non-negative `int` (not a `bool`).
fn index_arg(value: &Bound<'_, PyAny>) -> PyResult<usize> {
    let py = value.py();
    if value.is_instance_of::<PyBool>() {
        return Err(type_error(py, "index must be an integer, got bool"));
    }
    let i: i64 = value.extract().map_err(|_| {
        type_error(
            py,
            format!("index must be an integer, got {}", type_name(value)),
        )
    })?;
    usize::try_from(i).map_err(|_| error(format!("index must be a non-negative integer, got {i}")))
}

/// A string argument named `what` (None: `None`).
fn text_arg(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Option<String>> {
    if value.is_none() {
        return Ok(None);
    }
    value.extract::<String>().map(Some).map_err(|_| {
        type_error(
            value.py(),
            format!("{what} must be a str, got {}", type_name(value)),
        )
    })
}

/// The `kernels` argument: `None` or a level's name.
fn kernels_arg(value: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    text_arg(value, "kernels")
}

/// The pipeline `spec` argument: a bundled name, a directory or a manifest file.
fn spec_arg(value: &Bound<'_, PyAny>) -> PyResult<String> {
    if value.hasattr("__fspath__").unwrap_or(false) {
        let path: PathBuf = path_arg(value, "spec")?;
        return Ok(path.to_string_lossy().into_owned());
    }
    text_arg(value, "spec")?.ok_or_else(|| {
        type_error(
            value.py(),
            "spec must be a str (a bundled pipeline, a directory or a manifest), got NoneType",
        )
    })
}

/// A path argument named `what`: a `str` or an `os.PathLike`.
fn path_arg(value: &Bound<'_, PyAny>, what: &str) -> PyResult<PathBuf> {
    value.extract::<PathBuf>().map_err(|_| {
        type_error(
            value.py(),
            format!(
                "{what} must be a str or os.PathLike, got {}",
                type_name(value)
            ),
        )
    })
}

fn model_path_arg(value: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    path_arg(value, "model_path")
}

fn wav_path_arg(value: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    path_arg(value, "path")
}

/// A bytes argument named `what`: `bytes`, `bytearray` or a buffer (a memoryview).
fn bytes_arg(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(b) = value.cast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    let py = value.py();
    if value.is_none() || value.is_instance_of::<PyString>() || value.extract::<i64>().is_ok() {
        return Err(type_error(
            py,
            format!("{what} must be bytes, got {}", type_name(value)),
        ));
    }
    let b = py
        .get_type::<PyBytes>()
        .call1((value,))
        .map_err(|e| ours(py, &format!("{what} must be bytes"), e))?;
    Ok(b.cast_into::<PyBytes>()?.as_bytes().to_vec())
}

fn token_arg(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    bytes_arg(value, "token")
}

fn device_key_arg(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    bytes_arg(value, "device_public_key")
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
    let py = value.py();
    let arr = np
        .call_method1("ascontiguousarray", (value,))
        .map_err(|e| ours(py, "cannot make an array of it", e))?;
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
        return Err(type_error(
            data.py(),
            "the model must be bytes (a .tflite file's content), not None or a string; \
             use Interpreter.from_file for a path",
        ));
    }
    let b = data
        .py()
        .get_type::<PyBytes>()
        .call1((data,))
        .map_err(|e| ours(data.py(), "the model must be bytes", e))?;
    Ok(b.cast_into::<PyBytes>()?.as_bytes().to_vec())
}

/// Turns a tensor's details into tflite_micro's dictionary: `dtype` (numpy scalar type),
/// `shape` (int32 array), `quantization_parameters` (`scales` float32 array, `zero_points`
/// int32 array, `quantized_dimension`); plus `name` and `index`.
fn details<'py>(py: Python<'py>, t: &TensorInfo, i: usize) -> PyResult<Bound<'py, PyDict>> {
    let np = numpy(py)?;
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
        #[pyo3(from_py_with = kernels_arg)] kernels: Option<String>,
    ) -> PyResult<Self> {
        let _ = (
            custom_op_registerers,
            arena_size,
            intrepreter_config,
            alt_decompression_memory_size,
        );
        Self::load(model_bytes(model_data)?, kernels.as_deref())
    }

    /// Loads the `.tflite` file at `model_path` (a `str` or path-like); the other arguments as
    /// for the constructor.
    #[staticmethod]
    #[pyo3(signature = (model_path, custom_op_registerers=None, arena_size=None,
        intrepreter_config=None, alt_decompression_memory_size=None, *, kernels=None))]
    fn from_file(
        #[pyo3(from_py_with = model_path_arg)] model_path: PathBuf,
        custom_op_registerers: Option<&Bound<'_, PyAny>>,
        arena_size: Option<&Bound<'_, PyAny>>,
        intrepreter_config: Option<&Bound<'_, PyAny>>,
        alt_decompression_memory_size: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = kernels_arg)] kernels: Option<String>,
    ) -> PyResult<Self> {
        let _ = (
            custom_op_registerers,
            arena_size,
            intrepreter_config,
            alt_decompression_memory_size,
        );
        run(|| omg::interpreter::Interpreter::open(&model_path, kernels.as_deref())).map(Self::wrap)
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
        #[pyo3(from_py_with = kernels_arg)] kernels: Option<String>,
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
    fn set_input(
        &self,
        py: Python<'_>,
        input_data: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = index_arg)] index: usize,
    ) -> PyResult<()> {
        let i = index;
        if input_data.is_none() {
            return Err(error("input data must not be None"));
        }
        let want = run(|| lock(&self.inner).input(i).cloned())?;
        let (code, want_name) = numpy_type(want.dtype);
        let np = numpy(py)?;
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
    fn get_output<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = index_arg)] index: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let i = index;
        let info = run(|| lock(&self.inner).output(i).cloned())?;
        let buffer = PyByteArray::new_with(py, info.bytes, |out| {
            run(|| lock(&self.inner).read_output(i, out).map(|_| ()))
        })?;
        let np = numpy(py)?;
        let flat = np.call_method1("frombuffer", (buffer, numpy_type(info.dtype).0))?;
        flat.call_method1("reshape", (PyTuple::new(py, &info.shape)?,))
    }

    /// Input `index`'s details, as tflite_micro gives them (`dtype`, `shape`,
    /// `quantization_parameters`), with its `name` and `index`.
    fn get_input_details<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = index_arg)] index: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let i = index;
        let info = run(|| lock(&self.inner).input(i).cloned())?;
        details(py, &info, i)
    }

    /// Output `index`'s details (as for `get_input_details`).
    fn get_output_details<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = index_arg)] index: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let i = index;
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
    if value.is_instance_of::<PyString>() || value.hasattr("__fspath__").unwrap_or(false) {
        let path = path_arg(value, "audio")?;
        return run(|| omg::pipeline::read_wav(&path));
    }
    int16_samples(
        py,
        value,
        "audio must be a WAV file's path or a 1-D int16 array of 16 kHz mono samples",
    )
}

/// `value` as a 1-D int16 array's samples; else an `OmgError` saying `want` and what it got.
fn int16_samples(py: Python<'_>, value: &Bound<'_, PyAny>, want: &str) -> PyResult<Vec<i16>> {
    let np = numpy(py)?;
    let (arr, code, name, shape) = as_array(&np, value)?;
    if code != "<i2" || shape.len() != 1 {
        return Err(error(format!("{want}, got {name} {}", shape_text(&shape))));
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
    #[pyo3(signature = (spec=String::from("micro_speech"), *, kernels=None))]
    fn new(
        #[pyo3(from_py_with = spec_arg)] spec: String,
        #[pyo3(from_py_with = kernels_arg)] kernels: Option<String>,
    ) -> PyResult<Self> {
        let inner = run(|| omg::pipeline::Pipeline::open(&spec, kernels.as_deref()))?;
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
        let np = numpy(py)?;
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
        let np = numpy(py)?;
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

/// Samples as a new 1-D int16 numpy array.
fn int16_array<'py>(py: Python<'py>, samples: &[i16]) -> PyResult<Bound<'py, PyAny>> {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    numpy(py)?.call_method1("frombuffer", (PyByteArray::new(py, &bytes), "<i2"))
}

fn rate_arg(value: &Bound<'_, PyAny>) -> PyResult<u32> {
    if value.is_instance_of::<PyBool>() {
        return Err(type_error(value.py(), "rate must be an integer, got bool"));
    }
    let rate: i64 = value.extract().map_err(|_| {
        type_error(
            value.py(),
            format!("rate must be an integer, got {}", type_name(value)),
        )
    })?;
    u32::try_from(rate).map_err(|_| {
        error(format!(
            "a sample rate of {rate} Hz is not supported (4 kHz to 384 kHz)"
        ))
    })
}

/// A streaming resampler for raw mono PCM at any rate from 4 kHz to 384 kHz to the pipelines'
/// 16 kHz: the one omg converts WAV files with, so a stream pushed in chunks of any size gives
/// the same samples as the whole buffer pushed at once, and as `read_wav` gives for a 16-bit
/// mono WAV file holding it.
#[pyclass(module = "omg")]
pub struct Resampler {
    inner: Mutex<omg::resample::Resampler>,
}

#[pymethods]
impl Resampler {
    /// A resampler from `rate` Hz to 16 kHz.
    #[new]
    fn new(#[pyo3(from_py_with = rate_arg)] rate: u32) -> PyResult<Self> {
        let inner = run(|| omg::resample::Resampler::new(rate))?;
        Ok(Self {
            inner: Mutex::new(inner),
        })
    }

    /// Takes `samples` (a 1-D int16 array at the source rate); returns the 16 kHz samples they
    /// complete (possibly none yet: the resampler has a delay), as a 1-D int16 array.
    fn push<'py>(
        &self,
        py: Python<'py>,
        samples: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let input = int16_samples(py, samples, "samples must be a 1-D int16 array")?;
        let out = py
            .detach(|| catch(|| lock(&self.inner).push(&input).map(<[i16]>::to_vec)))
            .map_err(|e| OmgError::new_err(e.message))?;
        int16_array(py, &out)
    }

    /// Ends the stream: the last 16 kHz samples (the resampler's tail), as a 1-D int16 array.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let out = run(|| lock(&self.inner).finish().map(<[i16]>::to_vec))?;
        int16_array(py, &out)
    }

    /// Starts a new stream at the same rate.
    fn reset(&self) -> PyResult<()> {
        run(|| lock(&self.inner).reset())
    }

    /// The source rate, in Hz.
    #[getter]
    fn rate(&self) -> u32 {
        lock(&self.inner).rate()
    }
}

/// Decodes a WAV file (a path; any common rate, channel count and sample format) to a 1-D int16
/// array of 16 kHz mono samples, as `omg classify` reads its clips.
#[pyfunction]
fn read_wav<'py>(
    py: Python<'py>,
    #[pyo3(from_py_with = wav_path_arg)] path: PathBuf,
) -> PyResult<Bound<'py, PyAny>> {
    let samples = run(|| omg::pipeline::read_wav(&path))?;
    int16_array(py, &samples)
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
    #[pyo3(from_py_with = token_arg)] token: Vec<u8>,
    #[pyo3(from_py_with = device_key_arg)] device_public_key: Vec<u8>,
) -> PyResult<Bound<'py, PyDict>> {
    use omg_protocol::token::Token;
    let claims = run(|| {
        let key = omg_protocol::keys::verifying_key_from_sec1(&device_public_key)
            .map_err(|e| Failure::invalid(format!("the device public key: {e}")))?;
        Token::verify(&token, &key)
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
    m.add("OmgTypeError", omg_type_error(m.py())?)?;
    m.add_class::<Interpreter>()?;
    m.add_class::<Pipeline>()?;
    m.add_class::<Resampler>()?;
    m.add_function(wrap_pyfunction!(read_wav, m)?)?;
    m.add_function(wrap_pyfunction!(verify_token, m)?)?;
    Ok(())
}
