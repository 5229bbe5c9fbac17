//! `omg infer`: run a model on raw tensor files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use omg_engine::{Interpreter, KernelSet};

use crate::files::{MAX_MODEL_BYTES, read_limited, write_atomic};

/// Largest input file accepted.
const MAX_INPUT_BYTES: u64 = 256 << 20;

pub fn run(
    model: &Path,
    inputs: &[PathBuf],
    outputs: &[PathBuf],
    sequence: bool,
    kernels: KernelSet,
) -> Result<()> {
    let bytes = read_limited(model, MAX_MODEL_BYTES)?;
    let mut interp = Interpreter::with_kernels(&bytes, kernels)
        .with_context(|| format!("cannot load {}", model.display()))?;
    if inputs.len() != interp.input_count() {
        bail!(
            "the model has {} inputs, {} --input files given",
            interp.input_count(),
            inputs.len()
        );
    }
    if outputs.len() != interp.output_count() {
        bail!(
            "the model has {} outputs, {} --output files given",
            interp.output_count(),
            outputs.len()
        );
    }
    let mut data = Vec::with_capacity(inputs.len());
    let mut frames = None;
    for (i, path) in inputs.iter().enumerate() {
        let d = read_limited(path, MAX_INPUT_BYTES)?;
        let t = interp.input_tensor(i)?;
        let size = t.bytes();
        let describe = || format!("input {i} ({} {:?}, {size} bytes)", t.dtype.name(), t.shape);
        let k = if sequence {
            if size == 0 || d.len() % size != 0 || d.is_empty() {
                bail!(
                    "{} holds {} bytes, not a whole number of {}",
                    path.display(),
                    d.len(),
                    describe()
                );
            }
            d.len() / size
        } else {
            if d.len() != size {
                bail!(
                    "{} holds {} bytes; {} must match exactly",
                    path.display(),
                    d.len(),
                    describe()
                );
            }
            1
        };
        match frames {
            None => frames = Some(k),
            Some(f) if f != k => {
                bail!("input files hold different numbers of frames ({f} and {k})")
            }
            _ => {}
        }
        data.push(d);
    }
    let frames = frames.unwrap_or(1);
    let mut out: Vec<Vec<u8>> = vec![Vec::new(); outputs.len()];
    interp.reset();
    for f in 0..frames {
        for (i, d) in data.iter().enumerate() {
            let size = interp.input_tensor(i)?.bytes();
            interp.set_input(i, &d[f * size..(f + 1) * size])?;
        }
        interp
            .invoke()
            .with_context(|| format!("invoke {f} failed"))?;
        for (i, o) in out.iter_mut().enumerate() {
            o.extend_from_slice(interp.output(i)?);
        }
    }
    for (path, o) in outputs.iter().zip(&out) {
        write_atomic(path, o)?;
    }
    Ok(())
}
