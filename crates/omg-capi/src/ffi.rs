//! The C functions and types of `omg.h`: raw pointers checked and turned into the safe core's
//! references, every call run under `catch_unwind`.
//!
//! Conventions (see docs/c-api.md):
//!
//! * Functions that can fail return an [`OmgStatus`]; `OMG_STATUS_OK` (0) is success. On
//!   failure, `omg_last_error_message()` returns what went wrong, **per thread**: it is the
//!   message of the latest failed call made on the calling thread, whatever handle it was on.
//! * Results come back through out-pointers, written only on success (the open functions set
//!   `*out` to NULL on failure).
//! * Handles are opaque. Each is freed by its `_free` function, which accepts NULL. A handle
//!   may be used from any thread but by one thread at a time; distinct handles are
//!   independent and may be used concurrently. The library keeps no global state besides the
//!   per-thread error message.
//! * No panic crosses the boundary: it is caught and reported as `OMG_STATUS_PANIC`.
//!
//! What the library cannot check: a pointer that is not NULL must point to memory of the size
//! the call is told, and a handle must come from its open function and not have been freed.

// The exported functions are safe `extern "C"` functions that dereference the pointers C passes:
// Rust's `unsafe fn` means nothing to a C caller, and the header states each pointer's contract
// (NULL is checked and reported; the rest is the caller's part, see above).
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::{CStr, c_char, c_void};
use std::path::Path;

use crate::error::{Failure, OmgStatus, guard, last_message_ptr};
use crate::interpreter::{Interpreter, OMG_MAX_RANK, OmgType, TensorInfo};
use crate::pipeline::{self, Event, Pipeline};
use crate::protected::{self, Protected, ProtectedEvent};
use crate::resample::Resampler;

/// A loaded model ready to run (opaque). Opened by `omg_interpreter_open_memory` or
/// `omg_interpreter_open_file`, freed by `omg_interpreter_free`.
pub struct OmgInterpreter {
    inner: Interpreter,
}

/// A keyword-spotting pipeline (opaque). Opened by `omg_pipeline_open`, freed by
/// `omg_pipeline_free`.
pub struct OmgPipeline {
    inner: Pipeline,
    callback: OmgEventCallback,
    user_data: *mut c_void,
}

/// What one input or output tensor is.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct OmgTensorDetails {
    /// The tensor's name (NUL-terminated, possibly empty), valid until the interpreter is freed.
    pub name: *const c_char,
    /// Element type.
    pub dtype: OmgType,
    /// Number of dimensions (0 to `OMG_MAX_RANK`).
    pub rank: usize,
    /// Dimensions; entries past `rank` are 0.
    pub shape: [usize; OMG_MAX_RANK],
    /// Size of the tensor's data in bytes: what `omg_interpreter_set_input` takes and
    /// `omg_interpreter_get_output` gives.
    pub bytes: usize,
    /// True if the tensor is quantized (`scale` and `zero_point` then apply:
    /// `real = scale * (q - zero_point)`).
    pub quantized: bool,
    /// Number of (scale, zero point) pairs: 1 for per-tensor quantization, one per channel for
    /// per-channel quantization (only the first is given here), 0 if not quantized.
    pub quantization_count: usize,
    /// The (first) scale; 0 if not quantized.
    pub scale: f32,
    /// The (first) zero point; 0 if not quantized.
    pub zero_point: i32,
}

/// A recognised keyword.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct OmgEvent {
    /// Index of the keyword in the pipeline's labels.
    pub label_index: usize,
    /// The keyword (NUL-terminated), valid until the pipeline is freed.
    pub label: *const c_char,
    /// End of the audio that triggered the event, in milliseconds since the stream started
    /// (or since the last `omg_pipeline_reset`).
    pub time_ms: u64,
    /// The keyword's averaged score, 0 to 255 (int8 score + 128).
    pub score: u8,
}

/// Called by `omg_pipeline_feed` for each keyword event, in order, on the thread that called
/// `omg_pipeline_feed`, after the audio has been processed. `event` is valid only during the
/// call. The callback may call `omg_pipeline_*` functions on the same pipeline except
/// `omg_pipeline_free`; it must not unwind (C++ exceptions, longjmp) through omg.
pub type OmgEventCallback =
    Option<unsafe extern "C" fn(event: *const OmgEvent, user_data: *mut c_void)>;

/// The library's version (NUL-terminated, static).
///
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn omg_version() -> *const c_char {
    VERSION.as_ptr()
}

/// The crate's version as a C string.
const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => c"unknown",
    };

/// The message of the latest failed call made on the calling thread (NUL-terminated; empty if
/// none failed yet). The pointer stays valid until the next failed call on this thread.
///
/// Thread-safe: each thread has its own message.
#[unsafe(no_mangle)]
pub extern "C" fn omg_last_error_message() -> *const c_char {
    last_message_ptr()
}

/// `p` as a string, or `None` if it is NULL.
fn opt_str<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller passes NULL or a NUL-terminated string (the header's contract),
    // unchanged during the call.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map(Some)
        .map_err(|_| Failure::invalid(format!("{what} is not UTF-8")))
}

/// `p` as a string; NULL is an error.
fn req_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    opt_str(p, what)?.ok_or_else(|| Failure::null(what))
}

/// `len` elements at `p` as a slice; NULL is allowed only with `len` 0.
fn slice<'a, T>(p: *const T, len: usize, what: &str) -> Result<&'a [T], Failure> {
    check_region(p, len, what)?;
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: `p` is non-NULL and aligned (checked), the caller guarantees `len` readable
    // elements there (the header's contract), and the region's size fits `isize` (checked).
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// `len` elements at `p` as a mutable slice; NULL is allowed only with `len` 0.
fn slice_mut<'a, T>(p: *mut T, len: usize, what: &str) -> Result<&'a mut [T], Failure> {
    check_region(p, len, what)?;
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: as in `slice`, and the caller guarantees the memory is writable and not
    // accessed by anything else during the call.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

fn check_region<T>(p: *const T, len: usize, what: &str) -> Result<(), Failure> {
    if p.is_null() {
        return if len == 0 {
            Ok(())
        } else {
            Err(Failure::null(what))
        };
    }
    if !p.is_aligned() {
        return Err(Failure::invalid(format!(
            "{what} is not aligned for its element type"
        )));
    }
    if len
        .checked_mul(size_of::<T>())
        .is_none_or(|b| b > isize::MAX as usize)
    {
        return Err(Failure::invalid(format!(
            "{what}: length {len} is too large"
        )));
    }
    Ok(())
}

/// Writes `value` to the out-pointer `out`.
fn put<T>(out: *mut T, value: T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: `out` is non-NULL and the caller guarantees it points to writable memory for a
    // `T` (the header's contract); `write` does not read or drop the old value.
    unsafe { out.write(value) };
    Ok(())
}

/// Nulls the out-pointer `out` if there is one (before an open function runs).
fn clear<T>(out: *mut *mut T) {
    if !out.is_null() {
        // SAFETY: as in `put`.
        unsafe { out.write(std::ptr::null_mut()) };
    }
}

fn interp<'a>(h: *const OmgInterpreter) -> Result<&'a Interpreter, Failure> {
    // SAFETY: the caller passes NULL or a live handle from `omg_interpreter_open_*` (the
    // header's contract), used by no other thread during the call.
    unsafe { h.as_ref() }
        .map(|h| &h.inner)
        .ok_or_else(|| Failure::null("interpreter"))
}

fn interp_mut<'a>(h: *mut OmgInterpreter) -> Result<&'a mut Interpreter, Failure> {
    // SAFETY: as in `interp`; one thread at a time means no other reference exists.
    unsafe { h.as_mut() }
        .map(|h| &mut h.inner)
        .ok_or_else(|| Failure::null("interpreter"))
}

fn pipe<'a>(h: *mut OmgPipeline) -> Result<&'a mut OmgPipeline, Failure> {
    // SAFETY: the caller passes NULL or a live handle from `omg_pipeline_open` (the header's
    // contract), used by no other thread during the call.
    unsafe { h.as_mut() }.ok_or_else(|| Failure::null("pipeline"))
}

fn open_interpreter(
    out: *mut *mut OmgInterpreter,
    load: impl FnOnce() -> Result<Interpreter, Failure>,
) -> OmgStatus {
    clear(out);
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let handle = Box::new(OmgInterpreter { inner: load()? });
        put(out, Box::into_raw(handle), "out")
    })
}

/// Loads a `.tflite` model from `size` bytes at `data` (copied: the buffer may be freed once
/// this returns) and prepares it to run on the kernels named `kernels`: NULL or `"auto"` (the
/// optimized kernels at the fastest level this CPU supports), `"reference"` (TFLM's reference
/// loops), or a level: `"portable"`, `"avx2"`, `"avxvnni"`, `"avx512vnni"` (x86-64), `"neon"`,
/// `"dotprod"` (aarch64). All compute the same bytes.
///
/// The whole model is validated here; truncated or hostile bytes give
/// `OMG_STATUS_INVALID_MODEL` (or `OMG_STATUS_UNSUPPORTED`), never a crash. On success `*out`
/// is the new handle, to be freed with `omg_interpreter_free`; on failure it is NULL.
///
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn omg_interpreter_open_memory(
    data: *const u8,
    size: usize,
    kernels: *const c_char,
    out: *mut *mut OmgInterpreter,
) -> OmgStatus {
    open_interpreter(out, || {
        if data.is_null() {
            return Err(Failure::null("data"));
        }
        let bytes = slice(data, size, "data")?.to_vec();
        Interpreter::new(bytes, opt_str(kernels, "kernels")?)
    })
}

/// Like `omg_interpreter_open_memory`, reading the model from the file at `path` (at most
/// 64 MiB). A missing or unreadable file gives `OMG_STATUS_IO`.
///
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn omg_interpreter_open_file(
    path: *const c_char,
    kernels: *const c_char,
    out: *mut *mut OmgInterpreter,
) -> OmgStatus {
    open_interpreter(out, || {
        let path = req_str(path, "path")?;
        Interpreter::open(Path::new(path), opt_str(kernels, "kernels")?)
    })
}

/// The static C name of a kernel level as the engine names it.
fn kernels_name(level: &str) -> Result<*const c_char, Failure> {
    let name = match level {
        "reference" => c"reference",
        "portable" => c"portable",
        "avx2" => c"avx2",
        "avxvnni" => c"avxvnni",
        "avx512vnni" => c"avx512vnni",
        "neon" => c"neon",
        "dotprod" => c"dotprod",
        other => return Err(Failure::invalid(format!("unknown kernel level {other}"))),
    };
    Ok(name.as_ptr())
}

/// Drops the boxed handle `handle` (NULL is ignored); a panic while dropping is not let out.
///
/// # Safety
/// A non-NULL `handle` must come from `Box::into_raw` and not have been freed.
unsafe fn free_handle<T>(handle: *mut T) {
    if handle.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the caller's contract: `handle` is a live `Box::into_raw` pointer.
        drop(unsafe { Box::from_raw(handle) });
    }));
}

/// Frees an interpreter and everything it owns (tensor names included). NULL is ignored.
///
/// Not thread-safe for this handle: no other call may use it meanwhile or afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn omg_interpreter_free(interpreter: *mut OmgInterpreter) {
    // SAFETY: a non-NULL handle comes from `Box::into_raw` in `open_interpreter` and is freed
    // once (the header's contract).
    unsafe { free_handle(interpreter) }
}

/// The kernels the model runs on: `"reference"` or the level's name (`"avx2"`, ...; `"auto"`
/// is resolved when the model loads). `*name` is static.
///
/// Thread-safe for concurrent reads of the same handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_interpreter_kernels(
    interpreter: *const OmgInterpreter,
    name: *mut *const c_char,
) -> OmgStatus {
    guard(|| put(name, kernels_name(interp(interpreter)?.kernels())?, "name"))
}

/// The number of model inputs, in `*count`.
///
/// Thread-safe for concurrent reads of the same handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_interpreter_input_count(
    interpreter: *const OmgInterpreter,
    count: *mut usize,
) -> OmgStatus {
    guard(|| put(count, interp(interpreter)?.inputs().len(), "count"))
}

/// The number of model outputs, in `*count`.
///
/// Thread-safe for concurrent reads of the same handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_interpreter_output_count(
    interpreter: *const OmgInterpreter,
    count: *mut usize,
) -> OmgStatus {
    guard(|| put(count, interp(interpreter)?.outputs().len(), "count"))
}

fn details(t: &TensorInfo) -> Result<OmgTensorDetails, Failure> {
    let mut shape = [0usize; OMG_MAX_RANK];
    if t.shape.len() > OMG_MAX_RANK {
        return Err(Failure::invalid(
            "the tensor has more than OMG_MAX_RANK dimensions",
        ));
    }
    shape[..t.shape.len()].copy_from_slice(&t.shape);
    let (count, scale, zero_point) = t.quant.unwrap_or((0, 0.0, 0));
    Ok(OmgTensorDetails {
        name: t.name.as_ptr(),
        dtype: t.dtype,
        rank: t.shape.len(),
        shape,
        bytes: t.bytes,
        quantized: t.quant.is_some(),
        quantization_count: count,
        scale,
        zero_point,
    })
}

/// Describes input `index` (0-based) in `*details`. An index past the last input gives
/// `OMG_STATUS_INVALID_ARGUMENT`.
///
/// Thread-safe for concurrent reads of the same handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_interpreter_input_details(
    interpreter: *const OmgInterpreter,
    index: usize,
    details: *mut OmgTensorDetails,
) -> OmgStatus {
    guard(|| {
        let d = self::details(interp(interpreter)?.input(index)?)?;
        put(details, d, "details")
    })
}

/// Describes output `index` (0-based) in `*details`. An index past the last output gives
/// `OMG_STATUS_INVALID_ARGUMENT`.
///
/// Thread-safe for concurrent reads of the same handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_interpreter_output_details(
    interpreter: *const OmgInterpreter,
    index: usize,
    details: *mut OmgTensorDetails,
) -> OmgStatus {
    guard(|| {
        let d = self::details(interp(interpreter)?.output(index)?)?;
        put(details, d, "details")
    })
}

/// Copies `size` bytes at `data` into input `index`: raw little-endian values, exactly the
/// input's byte size (`OmgTensorDetails.bytes`), else `OMG_STATUS_INVALID_ARGUMENT`.
/// Set every input before each `omg_interpreter_invoke`: as in TensorFlow Lite Micro, running
/// the model may reuse an input's memory for intermediate tensors.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_interpreter_set_input(
    interpreter: *mut OmgInterpreter,
    index: usize,
    data: *const c_void,
    size: usize,
) -> OmgStatus {
    guard(|| {
        let i = interp_mut(interpreter)?;
        if data.is_null() {
            return Err(Failure::null("data"));
        }
        i.set_input(index, slice(data.cast::<u8>(), size, "data")?)
    })
}

/// Runs the model once on the current inputs.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_interpreter_invoke(interpreter: *mut OmgInterpreter) -> OmgStatus {
    guard(|| interp_mut(interpreter)?.invoke())
}

/// Copies output `index` (raw little-endian values, `OmgTensorDetails.bytes` bytes) into the
/// `size` bytes at `buffer`; a smaller buffer gives `OMG_STATUS_INVALID_ARGUMENT` (bytes past
/// the output's size are left untouched). Before the first `omg_interpreter_invoke` its content
/// is unspecified.
///
/// Thread-safe for concurrent reads of the same handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_interpreter_get_output(
    interpreter: *const OmgInterpreter,
    index: usize,
    buffer: *mut c_void,
    size: usize,
) -> OmgStatus {
    guard(|| {
        let i = interp(interpreter)?;
        if buffer.is_null() {
            return Err(Failure::null("buffer"));
        }
        i.read_output(index, slice_mut(buffer.cast::<u8>(), size, "buffer")?)
            .map(|_| ())
    })
}

/// Clears the state that stateful operators keep between invocations (e.g. a streaming
/// model's variables), as if the model had just been loaded.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_interpreter_reset(interpreter: *mut OmgInterpreter) -> OmgStatus {
    guard(|| {
        interp_mut(interpreter)?.reset();
        Ok(())
    })
}

/// Opens a keyword-spotting pipeline: `spec` names a bundled pipeline (`"micro_speech"`,
/// TensorFlow Lite Micro's yes/no spotter, built into the library), a directory holding a
/// `pipeline.toml` manifest, or a manifest file, as the `omg` command takes them. Its models
/// run on the kernels named `kernels` (as in `omg_interpreter_open_memory`; NULL is `"auto"`).
///
/// Events are queued for `omg_pipeline_poll` until a callback is set with
/// `omg_pipeline_set_callback`. On success `*out` is the new handle, to be freed with
/// `omg_pipeline_free`; on failure it is NULL (`OMG_STATUS_IO` for an unreadable file,
/// `OMG_STATUS_PIPELINE` for an invalid manifest or models that do not match it).
///
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn omg_pipeline_open(
    spec: *const c_char,
    kernels: *const c_char,
    out: *mut *mut OmgPipeline,
) -> OmgStatus {
    clear(out);
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let spec = req_str(spec, "spec")?;
        let inner = Pipeline::open(spec, opt_str(kernels, "kernels")?)?;
        let handle = Box::new(OmgPipeline {
            inner,
            callback: None,
            user_data: std::ptr::null_mut(),
        });
        put(out, Box::into_raw(handle), "out")
    })
}

/// Frees a pipeline, its queued events and its labels. NULL is ignored. Must not be called
/// from the pipeline's own event callback.
///
/// Not thread-safe for this handle: no other call may use it meanwhile or afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn omg_pipeline_free(pipeline: *mut OmgPipeline) {
    // SAFETY: a non-NULL handle comes from `Box::into_raw` in `omg_pipeline_open` and is freed
    // once (the header's contract).
    unsafe { free_handle(pipeline) }
}

/// The kernels the pipeline's models run on (as `omg_interpreter_kernels`). `*name` is static.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_pipeline_kernels(
    pipeline: *mut OmgPipeline,
    name: *mut *const c_char,
) -> OmgStatus {
    guard(|| put(name, kernels_name(pipe(pipeline)?.inner.kernels())?, "name"))
}

/// The sample rate the pipeline takes, in Hz (16000), in `*rate`.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_pipeline_sample_rate(
    pipeline: *mut OmgPipeline,
    rate: *mut u32,
) -> OmgStatus {
    guard(|| put(rate, pipe(pipeline)?.inner.sample_rate(), "rate"))
}

/// The number of labels (classifier scores), in `*count`.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_pipeline_label_count(
    pipeline: *mut OmgPipeline,
    count: *mut usize,
) -> OmgStatus {
    guard(|| put(count, pipe(pipeline)?.inner.labels().len(), "count"))
}

/// Label `index` (0-based, in score order) in `*label`, NUL-terminated and valid until the
/// pipeline is freed. An index past the last label gives `OMG_STATUS_INVALID_ARGUMENT`.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_pipeline_label(
    pipeline: *mut OmgPipeline,
    index: usize,
    label: *mut *const c_char,
) -> OmgStatus {
    guard(|| {
        let labels = pipe(pipeline)?.inner.labels();
        let l = labels.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "label index {index} is out of range: the pipeline has {} labels",
                labels.len()
            ))
        })?;
        put(label, l.as_ptr(), "label")
    })
}

/// Sets the function called for each keyword event (see `OmgEventCallback`), with `user_data`
/// passed through untouched. NULL `callback` goes back to queueing events for
/// `omg_pipeline_poll`. Events already queued stay queued.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_pipeline_set_callback(
    pipeline: *mut OmgPipeline,
    callback: OmgEventCallback,
    user_data: *mut c_void,
) -> OmgStatus {
    guard(|| {
        let p = pipe(pipeline)?;
        p.callback = callback;
        p.user_data = user_data;
        Ok(())
    })
}

fn event(p: &Pipeline, e: Event) -> OmgEvent {
    OmgEvent {
        label_index: e.label_index,
        label: p
            .labels()
            .get(e.label_index)
            .map_or(std::ptr::null(), |l| l.as_ptr()),
        time_ms: e.time_ms,
        score: e.score,
    }
}

/// Streams `count` samples at `samples` (signed 16-bit, mono, at the pipeline's sample rate)
/// through the pipeline: any chunk size, in order, as they arrive. Each keyword the audio
/// completes goes to the callback, or to the queue `omg_pipeline_poll` reads (up to
/// `OMG_MAX_QUEUED_EVENTS`; past that the oldest are dropped). NULL `samples` is accepted only
/// with `count` 0. For other rates or channel counts, decode with `omg_wav_decode` or resample
/// first.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_pipeline_feed(
    pipeline: *mut OmgPipeline,
    samples: *const i16,
    count: usize,
) -> OmgStatus {
    let mut deliver: Vec<OmgEvent> = Vec::new();
    let mut callback = None;
    let mut user_data = std::ptr::null_mut();
    let status = guard(|| {
        let p = pipe(pipeline)?;
        let events = p.inner.feed(slice(samples, count, "samples")?)?;
        match p.callback {
            Some(cb) => {
                deliver = events.into_iter().map(|e| event(&p.inner, e)).collect();
                callback = Some(cb);
                user_data = p.user_data;
            }
            None => p.inner.enqueue(events),
        }
        Ok(())
    });
    // No reference into the handle is alive here: the callback may call back into omg.
    if let Some(cb) = callback {
        for e in &deliver {
            // SAFETY: `cb` is the caller's callback with its contract (see `OmgEventCallback`);
            // `e` outlives the call, its label points into the pipeline, which the callback
            // must not free.
            unsafe { cb(e, user_data) };
        }
    }
    status
}

/// Takes the oldest queued event: `*has_event` is true and `*event` filled if there was one,
/// else `*has_event` is false and `*event` untouched.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_pipeline_poll(
    pipeline: *mut OmgPipeline,
    event: *mut OmgEvent,
    has_event: *mut bool,
) -> OmgStatus {
    guard(|| {
        let p = pipe(pipeline)?;
        if event.is_null() {
            return Err(Failure::null("event"));
        }
        if has_event.is_null() {
            return Err(Failure::null("has_event"));
        }
        match p.inner.poll() {
            Some(e) => {
                put(event, self::event(&p.inner, e), "event")?;
                put(has_event, true, "has_event")
            }
            None => put(has_event, false, "has_event"),
        }
    })
}

/// Events dropped because the poll queue was full, since the pipeline was opened, in
/// `*count`.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_pipeline_dropped_events(
    pipeline: *mut OmgPipeline,
    count: *mut u64,
) -> OmgStatus {
    guard(|| put(count, pipe(pipeline)?.inner.dropped(), "count"))
}

/// Classifies a whole clip of `count` samples (16 kHz mono s16) as `omg classify` does: one
/// decision over its first second (zero-padded if shorter), the int8 score of each label
/// written to `scores`, which holds exactly `scores_count` values, one per label (else
/// `OMG_STATUS_INVALID_ARGUMENT`). The streaming state is reset before and after, so
/// interleaving this with `omg_pipeline_feed` restarts the stream.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_pipeline_classify_clip(
    pipeline: *mut OmgPipeline,
    samples: *const i16,
    count: usize,
    scores: *mut i8,
    scores_count: usize,
) -> OmgStatus {
    guard(|| {
        let p = pipe(pipeline)?;
        if samples.is_null() {
            return Err(Failure::null("samples"));
        }
        if scores.is_null() {
            return Err(Failure::null("scores"));
        }
        p.inner.classify_clip(
            slice(samples, count, "samples")?,
            slice_mut(scores, scores_count, "scores")?,
        )
    })
}

/// Clears the stream (buffered audio, features, scores, recognizer, the time origin) and the
/// event queue; the callback stays set.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_pipeline_reset(pipeline: *mut OmgPipeline) -> OmgStatus {
    guard(|| {
        pipe(pipeline)?.inner.reset();
        Ok(())
    })
}

fn give_samples(
    result: Result<Vec<i16>, Failure>,
    samples: *mut *mut i16,
    count: *mut usize,
) -> Result<(), Failure> {
    let s = result?.into_boxed_slice();
    let n = s.len();
    put(count, n, "count")?;
    // The boxed slice is reclaimed by `omg_samples_free` from this pointer and `n`.
    put(samples, Box::into_raw(s).cast::<i16>(), "samples")
}

fn check_sample_out(samples: *mut *mut i16, count: *mut usize) -> Result<(), Failure> {
    if samples.is_null() {
        return Err(Failure::null("samples"));
    }
    if count.is_null() {
        return Err(Failure::null("count"));
    }
    Ok(())
}

/// Decodes `size` bytes of a WAV file at `data` (PCM 8/16/24/32-bit or float, 1 to 32
/// channels, 4 kHz to 384 kHz) to 16 kHz mono signed 16-bit samples, as the `omg` command
/// reads clips: a 16 kHz mono 16-bit file untouched, anything else downmixed and resampled
/// (band-limited). On success `*samples` holds `*count` samples, to be freed with
/// `omg_samples_free`. Bytes that are not a WAV give `OMG_STATUS_PIPELINE`.
///
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn omg_wav_decode(
    data: *const u8,
    size: usize,
    samples: *mut *mut i16,
    count: *mut usize,
) -> OmgStatus {
    guard(|| {
        check_sample_out(samples, count)?;
        if data.is_null() {
            return Err(Failure::null("data"));
        }
        give_samples(
            pipeline::decode_wav(slice(data, size, "data")?),
            samples,
            count,
        )
    })
}

/// Like `omg_wav_decode`, reading the WAV file at `path` (`OMG_STATUS_IO` if it cannot be
/// read).
///
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn omg_wav_read_file(
    path: *const c_char,
    samples: *mut *mut i16,
    count: *mut usize,
) -> OmgStatus {
    guard(|| {
        check_sample_out(samples, count)?;
        let path = req_str(path, "path")?;
        give_samples(pipeline::read_wav(Path::new(path)), samples, count)
    })
}

/// Frees samples returned by `omg_wav_decode` or `omg_wav_read_file`; `count` must be the
/// count returned with them. NULL is ignored.
///
/// Thread-safe (for distinct sample buffers).
#[unsafe(no_mangle)]
pub extern "C" fn omg_samples_free(samples: *mut i16, count: usize) {
    if samples.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let slice = std::ptr::slice_from_raw_parts_mut(samples, count);
        // SAFETY: `samples` and `count` come from `give_samples`' `Box<[i16]>` (the header's
        // contract), freed once.
        drop(unsafe { Box::from_raw(slice) });
    }));
}

/// A session running a provisioned model package in an enclave (opaque), the protected path's
/// app side. Opened by `omg_protected_open_service` or `omg_protected_open_embedded`, freed by
/// `omg_protected_free`.
pub struct OmgProtected {
    inner: Protected,
    callback: OmgProtectedEventCallback,
    user_data: *mut c_void,
}

/// A keyword recognised by the enclave. The enclave sends labels, not indices, and a score
/// only when the licence's output policy allows it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct OmgProtectedEvent {
    /// The keyword (NUL-terminated), valid until the session is freed.
    pub label: *const c_char,
    /// End of the audio that triggered the event, in milliseconds since the session started.
    pub time_ms: u64,
    /// True if the output policy reveals the score (`score` is then set).
    pub has_score: bool,
    /// The keyword's averaged score, 0 to 255; 0 when `has_score` is false.
    pub score: u8,
}

/// Called for each event of a protected session, in order, on the thread that called
/// `omg_protected_feed` or `omg_protected_finish`. `event` is valid only during the call. The
/// callback may call `omg_protected_*` functions on the same session except
/// `omg_protected_free`; it must not unwind (C++ exceptions, longjmp) through omg.
pub type OmgProtectedEventCallback =
    Option<unsafe extern "C" fn(event: *const OmgProtectedEvent, user_data: *mut c_void)>;

/// What the enclave answered when the session started.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct OmgProtectedInfo {
    /// The package's model id (NUL-terminated), valid until the session is freed.
    pub model_id: *const c_char,
    /// The package's model version.
    pub version: u32,
    /// The licence's output policy: 0 label only, 1 label and score, 2 all scores.
    pub output_policy: u8,
    /// The licence's end, in seconds since the Unix epoch.
    pub not_after: u64,
    /// True if the licence has a lease (`renew_after` and `lease_until` are then set).
    pub has_lease: bool,
    /// When the lease asks for an online renewal (seconds since the Unix epoch); 0 without one.
    pub renew_after: u64,
    /// The lease's last second (seconds since the Unix epoch); 0 without one.
    pub lease_until: u64,
}

/// How a protected session ended.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct OmgProtectedSummary {
    /// Samples the enclave read.
    pub samples: u64,
    /// Classifications it made.
    pub classifications: u64,
}

/// What `omg_device_provision` stored.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct OmgProvisioned {
    /// The model version provisioned.
    pub version: u32,
    /// The licence's end, in seconds since the Unix epoch.
    pub not_after: u64,
    /// True if the licence has a lease (`renew_after` and `lease_until` are then set).
    pub has_lease: bool,
    /// When the lease asks for an online renewal; 0 without one.
    pub renew_after: u64,
    /// The lease's last second; 0 without one.
    pub lease_until: u64,
    /// The measurement (SHA-256) of the enclave image that was attested and sealed the model.
    pub measurement: [u8; 32],
}

fn prot<'a>(h: *mut OmgProtected) -> Result<&'a mut OmgProtected, Failure> {
    // SAFETY: the caller passes NULL or a live handle from `omg_protected_open_*` (the
    // header's contract), used by no other thread during the call.
    unsafe { h.as_mut() }.ok_or_else(|| Failure::null("session"))
}

/// `size` bytes of a package at `data`, copied.
fn package_bytes(data: *const u8, size: usize) -> Result<Vec<u8>, Failure> {
    if data.is_null() {
        return Err(Failure::null("package"));
    }
    if size == 0 {
        return Err(Failure::invalid("the package holds no bytes"));
    }
    Ok(slice(data, size, "package")?.to_vec())
}

fn open_protected(
    out: *mut *mut OmgProtected,
    open: impl FnOnce() -> Result<Protected, Failure>,
) -> OmgStatus {
    clear(out);
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let handle = Box::new(OmgProtected {
            inner: open()?,
            callback: None,
            user_data: std::ptr::null_mut(),
        });
        put(out, Box::into_raw(handle), "out")
    })
}

/// Runs the model package of `package_size` bytes at `package` (copied) through the platform
/// service listening on the Unix socket `socket` (the service deployment, `omg platform
/// serve`): the service, which alone reads the device's keys, checks that the package is
/// provisioned on its device and launches the enclave. The audio is a stream this session
/// sends with `omg_protected_feed` (the licence's `stdin` source); the service ends a session
/// whose audio stays silent longer than its idle timeout (`--idle-timeout`, 30 s by default).
///
/// Returns once the enclave is ready (see `omg_protected_info`). A refusal gives
/// `OMG_STATUS_REFUSED` with the service's reason (a package not provisioned on the device,
/// another device's sealed blob, a licence that ended or does not allow a stream, the service
/// busy); a socket nobody listens on gives `OMG_STATUS_IO`. On success `*out` is the new
/// handle, to be freed with `omg_protected_free`; on failure it is NULL.
///
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn omg_protected_open_service(
    socket: *const c_char,
    package: *const u8,
    package_size: usize,
    out: *mut *mut OmgProtected,
) -> OmgStatus {
    open_protected(out, || {
        let socket = req_str(socket, "socket")?;
        let package = package_bytes(package, package_size)?;
        Protected::through_service(Path::new(socket), package)
    })
}

/// Runs the model package of `package_size` bytes at `package` (copied) in the embedded
/// launcher: this process starts the Linux enclave process itself, as `omg run` does, for the
/// device directory `device_dir` (which it must be able to read: its identity and sealed
/// blobs). `enclave_image` is the path of the enclave image (`omg-enclave`); NULL takes
/// `$OMG_ENCLAVE_IMAGE`, else `omg-enclave` beside the running executable. The package must
/// have been provisioned for this device (`omg provision`, or `omg_device_provision`).
///
/// Returns once the enclave is ready, or fails as `omg_protected_open_service` does
/// (`OMG_STATUS_REFUSED` with the enclave's reason, `OMG_STATUS_IO` for an image or device
/// directory that cannot be read). On success `*out` is the new handle, to be freed with
/// `omg_protected_free`; on failure it is NULL.
///
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn omg_protected_open_embedded(
    device_dir: *const c_char,
    enclave_image: *const c_char,
    package: *const u8,
    package_size: usize,
    out: *mut *mut OmgProtected,
) -> OmgStatus {
    open_protected(out, || {
        let dir = req_str(device_dir, "device_dir")?;
        let image = opt_str(enclave_image, "enclave_image")?;
        let package = package_bytes(package, package_size)?;
        Protected::embedded(Path::new(dir), image.map(Path::new), package)
    })
}

/// Ends and frees a session: its audio is closed (the enclave finishes what it holds, its
/// events are discarded), the enclave stops, its labels and queued events are freed. NULL is
/// ignored. Must not be called from the session's own event callback.
///
/// Not thread-safe for this handle: no other call may use it meanwhile or afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn omg_protected_free(session: *mut OmgProtected) {
    // SAFETY: a non-NULL handle comes from `Box::into_raw` in `open_protected` and is freed
    // once (the header's contract).
    unsafe { free_handle(session) }
}

/// What the enclave answered when the session started, in `*info`.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_protected_info(
    session: *mut OmgProtected,
    info: *mut OmgProtectedInfo,
) -> OmgStatus {
    guard(|| {
        let r = prot(session)?.inner.ready();
        put(
            info,
            OmgProtectedInfo {
                model_id: r.model_id.as_ptr(),
                version: r.version,
                output_policy: r.output_policy,
                not_after: r.not_after,
                has_lease: r.lease_until.is_some(),
                renew_after: r.renew_after.unwrap_or(0),
                lease_until: r.lease_until.unwrap_or(0),
            },
            "info",
        )
    })
}

/// Sets the function called for each event of the session (see `OmgProtectedEventCallback`),
/// with `user_data` passed through untouched. NULL `callback` goes back to queueing events
/// for `omg_protected_poll`. Events already queued stay queued.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_protected_set_callback(
    session: *mut OmgProtected,
    callback: OmgProtectedEventCallback,
    user_data: *mut c_void,
) -> OmgStatus {
    guard(|| {
        let s = prot(session)?;
        s.callback = callback;
        s.user_data = user_data;
        Ok(())
    })
}

fn protected_event(p: &Protected, e: &ProtectedEvent) -> OmgProtectedEvent {
    OmgProtectedEvent {
        label: p.label(e.label).map_or(c"".as_ptr(), |l| l.as_ptr()),
        time_ms: e.time_ms,
        has_score: e.score.is_some(),
        score: e.score.unwrap_or(0),
    }
}

/// Runs `f` on the session, then hands the events it returns to the callback (outside any
/// borrow of the handle: the callback may call back into omg) or to the poll queue.
fn with_events(
    session: *mut OmgProtected,
    f: impl FnOnce(&mut Protected) -> (Vec<ProtectedEvent>, Result<(), Failure>),
) -> OmgStatus {
    let mut deliver: Vec<OmgProtectedEvent> = Vec::new();
    let mut callback = None;
    let mut user_data = std::ptr::null_mut();
    let status = guard(|| {
        let s = prot(session)?;
        // Events that arrived before a failure are delivered too.
        let (events, result) = f(&mut s.inner);
        match s.callback {
            Some(cb) => {
                deliver = events
                    .iter()
                    .map(|e| protected_event(&s.inner, e))
                    .collect();
                callback = Some(cb);
                user_data = s.user_data;
            }
            None => s.inner.enqueue(events),
        }
        result
    });
    if let Some(cb) = callback {
        for e in &deliver {
            // SAFETY: `cb` is the caller's callback with its contract (see
            // `OmgProtectedEventCallback`); `e` outlives the call, its label points into the
            // session, which the callback must not free.
            unsafe { cb(e, user_data) };
        }
    }
    status
}

/// Sends `count` samples at `samples` (signed 16-bit, mono, 16 kHz) to the enclave: any chunk
/// size, in order, as they arrive. Events that arrived meanwhile go to the callback or the
/// poll queue (up to `OMG_MAX_QUEUED_PROTECTED_EVENTS`; past that the oldest are dropped); the
/// enclave works while the app does other things, so an event may come with a later call (or
/// `omg_protected_finish`). Blocks while the enclave is behind. NULL `samples` is accepted
/// only with `count` 0 (which just collects events). For other rates, resample first
/// (`omg_resampler_*`).
///
/// A session the enclave or service ended gives `OMG_STATUS_REFUSED` with its reason; after
/// `omg_protected_finish`, `OMG_STATUS_INVALID_ARGUMENT`.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_protected_feed(
    session: *mut OmgProtected,
    samples: *const i16,
    count: usize,
) -> OmgStatus {
    with_events(session, |p| match slice(samples, count, "samples") {
        Ok(samples) => p.feed(samples),
        Err(f) => (Vec::new(), Err(f)),
    })
}

/// Ends the audio and waits for the enclave to process all of it: its last events go to the
/// callback or the poll queue, and `*summary` (which may be NULL) says how much audio it read.
/// The session then accepts no more audio; its queued events can still be polled. Calling it
/// again gives the same summary.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_protected_finish(
    session: *mut OmgProtected,
    summary: *mut OmgProtectedSummary,
) -> OmgStatus {
    let mut done = None;
    let status = with_events(session, |p| {
        let (events, result) = p.finish();
        (events, result.map(|s| done = Some(s)))
    });
    if let (OmgStatus::Ok, Some(s), false) = (status, done, summary.is_null()) {
        let value = OmgProtectedSummary {
            samples: s.samples,
            classifications: s.classifications,
        };
        return guard(|| put(summary, value, "summary"));
    }
    status
}

/// Takes the oldest queued event: `*has_event` is true and `*event` filled if there was one,
/// else `*has_event` is false and `*event` untouched. It only looks at the queue: events the
/// enclave sent since the last `omg_protected_feed` are collected by the next one (or by a
/// feed of 0 samples).
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_protected_poll(
    session: *mut OmgProtected,
    event: *mut OmgProtectedEvent,
    has_event: *mut bool,
) -> OmgStatus {
    guard(|| {
        let s = prot(session)?;
        if event.is_null() {
            return Err(Failure::null("event"));
        }
        if has_event.is_null() {
            return Err(Failure::null("has_event"));
        }
        match s.inner.poll() {
            Some(e) => {
                put(event, protected_event(&s.inner, &e), "event")?;
                put(has_event, true, "has_event")
            }
            None => put(has_event, false, "has_event"),
        }
    })
}

/// Events dropped because the poll queue was full, in `*count`.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_protected_dropped_events(
    session: *mut OmgProtected,
    count: *mut u64,
) -> OmgStatus {
    guard(|| put(count, prot(session)?.inner.dropped(), "count"))
}

/// Provisions a model package for the device in `device_dir`, as `omg provision --backend
/// linux` does, for platform integrators: gets a challenge from the vendor service at
/// `server` (an `http://` or `https://` URL; `ca_cert`, a PEM file of the certificate to
/// trust, or NULL for the system's roots), has a fresh enclave attest itself with the device
/// key, sends the token for activation, lets the enclave check the released key and licence,
/// and stores the sealed blob in the device directory. `package` (`package_size` bytes) is
/// the model package, `vendor_key` (`vendor_key_size` bytes) the vendor's public key, SEC1
/// (the `vendor.pub` file). The enclave image is found as `omg` finds it
/// (`$OMG_ENCLAVE_IMAGE`, else `omg-enclave` beside the executable). Nothing is stored
/// unless everything checked out.
///
/// On success `*out` (which may be NULL) says what was stored. A vendor service that refuses
/// (an unknown device, a measurement its policy does not list) gives `OMG_STATUS_REFUSED`
/// with its reason; an unreachable service or unreadable directory `OMG_STATUS_IO`.
///
/// Thread-safe (for distinct device directories).
#[unsafe(no_mangle)]
pub extern "C" fn omg_device_provision(
    device_dir: *const c_char,
    package: *const u8,
    package_size: usize,
    vendor_key: *const u8,
    vendor_key_size: usize,
    server: *const c_char,
    ca_cert: *const c_char,
    out: *mut OmgProvisioned,
) -> OmgStatus {
    guard(|| {
        let dir = req_str(device_dir, "device_dir")?;
        let package = package_bytes(package, package_size)?;
        if vendor_key.is_null() {
            return Err(Failure::null("vendor_key"));
        }
        let key = slice(vendor_key, vendor_key_size, "vendor_key")?;
        let server = req_str(server, "server")?;
        let ca_cert = opt_str(ca_cert, "ca_cert")?;
        let p = protected::provision(Path::new(dir), package, key, server, ca_cert.map(Path::new))?;
        if out.is_null() {
            return Ok(());
        }
        put(
            out,
            OmgProvisioned {
                version: p.version,
                not_after: p.not_after,
                has_lease: p.lease_until.is_some(),
                renew_after: p.renew_after.unwrap_or(0),
                lease_until: p.lease_until.unwrap_or(0),
                measurement: p.measurement,
            },
            "out",
        )
    })
}

/// A streaming resampler from any rate to 16 kHz (opaque), for PCM that does not come from a
/// WAV file. Opened by `omg_resampler_open`, freed by `omg_resampler_free`.
pub struct OmgResampler {
    inner: Resampler,
}

fn resampler<'a>(h: *mut OmgResampler) -> Result<&'a mut Resampler, Failure> {
    // SAFETY: the caller passes NULL or a live handle from `omg_resampler_open` (the header's
    // contract), used by no other thread during the call.
    unsafe { h.as_mut() }
        .map(|h| &mut h.inner)
        .ok_or_else(|| Failure::null("resampler"))
}

/// Hands out `samples` through the out-pointers `out` and `count`.
fn give_view(samples: &[i16], out: *mut *const i16, count: *mut usize) -> Result<(), Failure> {
    put(count, samples.len(), "count")?;
    put(out, samples.as_ptr(), "out")
}

/// Opens a resampler from `rate` Hz (4000 to 384000) to 16 kHz for signed 16-bit mono PCM: the
/// band-limited resampler `omg_wav_decode` converts WAV files with, streaming. Samples pushed
/// in chunks of any size give the same output, sample for sample, as the whole buffer pushed
/// at once; the output of a whole stream is what `omg_wav_decode` gives for a 16-bit mono WAV
/// file holding it. At 16000 Hz samples pass through unchanged. A rate out of range gives
/// `OMG_STATUS_INVALID_ARGUMENT`. On success `*out` is the new handle, to be freed with
/// `omg_resampler_free`; on failure it is NULL.
///
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn omg_resampler_open(rate: u32, out: *mut *mut OmgResampler) -> OmgStatus {
    clear(out);
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let handle = Box::new(OmgResampler {
            inner: Resampler::new(rate)?,
        });
        put(out, Box::into_raw(handle), "out")
    })
}

/// Frees a resampler and its output buffer. NULL is ignored.
///
/// Not thread-safe for this handle: no other call may use it meanwhile or afterwards.
#[unsafe(no_mangle)]
pub extern "C" fn omg_resampler_free(resampler: *mut OmgResampler) {
    // SAFETY: a non-NULL handle comes from `Box::into_raw` in `omg_resampler_open` and is freed
    // once (the header's contract).
    unsafe { free_handle(resampler) }
}

/// Pushes `count` samples at `samples` (at the resampler's rate): `*out` points to the
/// `*out_count` 16 kHz samples they complete (possibly none: the resampler works in blocks and
/// has a delay), owned by the resampler and valid until its next call. NULL `samples` is
/// accepted only with `count` 0. After `omg_resampler_finish`, `OMG_STATUS_INVALID_ARGUMENT`
/// until `omg_resampler_reset`.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_resampler_push(
    resampler: *mut OmgResampler,
    samples: *const i16,
    count: usize,
    out: *mut *const i16,
    out_count: *mut usize,
) -> OmgStatus {
    guard(|| {
        let r = self::resampler(resampler)?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        if out_count.is_null() {
            return Err(Failure::null("out_count"));
        }
        give_view(r.push(slice(samples, count, "samples")?)?, out, out_count)
    })
}

/// Ends the stream: `*out` points to the `*out_count` last 16 kHz samples (the resampler's
/// tail; the stream's output then holds `ceil(input samples * 16000 / rate)` samples), valid
/// until the resampler's next call. Calling it again gives no more samples.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_resampler_finish(
    resampler: *mut OmgResampler,
    out: *mut *const i16,
    out_count: *mut usize,
) -> OmgStatus {
    guard(|| {
        let r = self::resampler(resampler)?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        if out_count.is_null() {
            return Err(Failure::null("out_count"));
        }
        give_view(r.finish()?, out, out_count)
    })
}

/// Starts a new stream at the same rate (the pending samples are dropped).
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_resampler_reset(resampler: *mut OmgResampler) -> OmgStatus {
    guard(|| self::resampler(resampler)?.reset())
}

/// The rate the resampler takes, in Hz, in `*rate`.
///
/// Not thread-safe for this handle.
#[unsafe(no_mangle)]
pub extern "C" fn omg_resampler_rate(resampler: *mut OmgResampler, rate: *mut u32) -> OmgStatus {
    guard(|| put(rate, self::resampler(resampler)?.rate(), "rate"))
}

#[cfg(test)]
mod tests {
    use super::kernels_name;

    #[test]
    fn every_kernel_level_has_a_c_name() {
        let names = ["reference"]
            .into_iter()
            .chain(omg_engine::Isa::ALL.map(omg_engine::Isa::name));
        for name in names {
            let c = kernels_name(name).unwrap_or_else(|_| panic!("no C name for {name}"));
            // SAFETY: `kernels_name` returns a pointer to a static NUL-terminated string.
            let c = unsafe { std::ffi::CStr::from_ptr(c) };
            assert_eq!(c.to_str(), Ok(name));
        }
        assert!(kernels_name("sse9").is_err());
    }
}
