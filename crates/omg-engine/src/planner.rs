//! Arena planning: one buffer for every non-constant tensor, placed greedily by lifetime.
//!
//! Like TFLM's greedy memory planner: each tensor lives from the operator that writes it (or from
//! the start, for subgraph inputs) to the last operator that reads it (or to the end, for subgraph
//! outputs). Tensors are placed largest first, each at the lowest aligned offset that does not
//! overlap a placed tensor whose lifetime intersects its own.

use alloc::vec;
use alloc::vec::Vec;

use crate::model::Model;

/// Alignment of every tensor in the arena, in bytes.
pub const ALIGN: usize = 16;

/// Where each tensor lives in the arena.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Byte offset of each tensor (`None` for constants and unused tensors).
    pub offsets: Vec<Option<usize>>,
    /// Total arena size in bytes.
    pub size: usize,
}

struct Buffer {
    tensor: usize,
    size: usize,
    first: usize,
    last: usize,
}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Plans the arena for `model` (whose graph has already been validated).
pub fn plan(model: &Model<'_>) -> Plan {
    let n = model.tensors.len();
    let end = model.operators.len();
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    for &i in &model.inputs {
        first[i] = 0;
    }
    for (k, op) in model.operators.iter().enumerate() {
        for &i in op.inputs.iter().flatten() {
            last[i] = last[i].max(k);
        }
        for &o in &op.outputs {
            first[o] = first[o].min(k);
            last[o] = last[o].max(k);
        }
    }
    for &o in &model.outputs {
        last[o] = end;
    }
    let mut buffers: Vec<Buffer> = (0..n)
        .filter(|&i| first[i] != usize::MAX && !model.tensors[i].is_constant())
        .map(|i| Buffer {
            tensor: i,
            size: align(model.tensors[i].bytes()),
            first: first[i],
            last: last[i].max(first[i]),
        })
        .collect();
    // Largest first; ties in the order the tensors were first needed, for a deterministic plan.
    buffers.sort_by(|a, b| {
        b.size
            .cmp(&a.size)
            .then(a.first.cmp(&b.first))
            .then(a.tensor.cmp(&b.tensor))
    });

    let mut offsets = vec![None; n];
    let mut placed: Vec<(usize, usize, usize, usize)> = Vec::with_capacity(buffers.len()); // (offset, size, first, last)
    let mut size = 0;
    for b in &buffers {
        let mut live: Vec<(usize, usize)> = placed
            .iter()
            .filter(|p| p.2 <= b.last && b.first <= p.3 && p.1 > 0)
            .map(|p| (p.0, p.0.saturating_add(p.1)))
            .collect();
        live.sort_unstable();
        let mut offset = 0usize;
        for (start, stop) in live {
            if offset.saturating_add(b.size) <= start {
                break;
            }
            offset = offset.max(stop);
        }
        placed.push((offset, b.size, b.first, b.last));
        offsets[b.tensor] = Some(offset);
        size = size.max(offset.saturating_add(b.size));
    }
    Plan { offsets, size }
}
