//! The builtin operators the engine runs, one entry each.
//!
//! As TFLite Micro's op resolver binds an operator's code, kernel and options parser in one
//! line, an entry here binds the schema code, the name, the versions the kernel implements, the
//! builtin options union type it reads and its prepare step. Dispatch, name lookups, version
//! checks and options type checks all read the same entry, so adding an operator is one entry
//! here plus its own file.

use alloc::format;
use core::ops::RangeInclusive;

use omg_kernels::elementwise::BinaryOp;

use crate::error::{Error, Result};
use crate::model::OpCode;
use crate::ops::{
    BoxedKernel, OpCtx, conv, convert, elementwise, fully_connected, pooling, reshape, signal,
    slicing, softmax,
};
use crate::schema::{self, options};

/// A prepare step: checks one operator against what its kernel supports and returns the kernel.
pub(crate) type Prepare = for<'m> fn(&OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>>;

/// One builtin operator the engine runs.
pub(crate) struct Registration {
    /// The schema's `BuiltinOperator` code.
    pub code: i32,
    /// The schema's name of the operator, used in messages.
    pub name: &'static str,
    /// The operator versions the kernel implements.
    pub versions: RangeInclusive<i32>,
    /// The `BuiltinOptions` union type (a [`schema::options`] id) the kernel reads its options
    /// as; [`options::NONE`] when it reads none, and then whatever options the model holds are
    /// ignored.
    pub options: u8,
    /// Checks the operator and returns its kernel.
    pub prepare: Prepare,
}

/// The builtin operators the engine runs.
static REGISTRY: &[Registration] = &[
    Registration {
        code: 0,
        name: "ADD",
        versions: 1..=5,
        options: options::ADD,
        prepare: |ctx| elementwise::prepare(ctx, BinaryOp::Add),
    },
    Registration {
        code: 1,
        name: "AVERAGE_POOL_2D",
        versions: 1..=3,
        options: options::POOL_2D,
        prepare: |ctx| pooling::prepare(ctx, pooling::Reduce::Average),
    },
    Registration {
        code: 2,
        name: "CONCATENATION",
        versions: 1..=4,
        options: options::CONCATENATION,
        prepare: slicing::prepare_concatenation,
    },
    Registration {
        code: 3,
        name: "CONV_2D",
        versions: 1..=5,
        options: options::CONV_2D,
        prepare: conv::prepare_conv,
    },
    Registration {
        code: 4,
        name: "DEPTHWISE_CONV_2D",
        versions: 1..=6,
        options: options::DEPTHWISE_CONV_2D,
        prepare: conv::prepare_depthwise,
    },
    Registration {
        code: 6,
        name: "DEQUANTIZE",
        versions: 1..=5,
        options: options::NONE,
        prepare: convert::prepare_dequantize,
    },
    Registration {
        code: 9,
        name: "FULLY_CONNECTED",
        versions: 1..=9,
        options: options::FULLY_CONNECTED,
        prepare: fully_connected::prepare,
    },
    Registration {
        code: 17,
        name: "MAX_POOL_2D",
        versions: 1..=3,
        options: options::POOL_2D,
        prepare: |ctx| pooling::prepare(ctx, pooling::Reduce::Max),
    },
    Registration {
        code: 18,
        name: "MUL",
        versions: 1..=6,
        options: options::MUL,
        prepare: |ctx| elementwise::prepare(ctx, BinaryOp::Mul),
    },
    Registration {
        code: 22,
        name: "RESHAPE",
        versions: 1..=1,
        options: options::NONE,
        prepare: reshape::prepare,
    },
    Registration {
        code: 25,
        name: "SOFTMAX",
        versions: 1..=3,
        options: options::SOFTMAX,
        prepare: softmax::prepare,
    },
    Registration {
        code: 41,
        name: "SUB",
        versions: 1..=3,
        options: options::SUB,
        prepare: |ctx| elementwise::prepare(ctx, BinaryOp::Sub),
    },
    Registration {
        code: 42,
        name: "DIV",
        versions: 1..=2,
        options: options::DIV,
        prepare: |ctx| elementwise::prepare(ctx, BinaryOp::Div),
    },
    Registration {
        code: 45,
        name: "STRIDED_SLICE",
        versions: 1..=8,
        options: options::STRIDED_SLICE,
        prepare: slicing::prepare_strided_slice,
    },
    Registration {
        code: 53,
        name: "CAST",
        versions: 1..=6,
        options: options::NONE,
        prepare: convert::prepare_cast,
    },
    Registration {
        code: 55,
        name: "MAXIMUM",
        versions: 1..=4,
        options: options::MAXIMUM_MINIMUM,
        prepare: |ctx| elementwise::prepare(ctx, BinaryOp::Maximum),
    },
    Registration {
        code: 57,
        name: "MINIMUM",
        versions: 1..=4,
        options: options::MAXIMUM_MINIMUM,
        prepare: |ctx| elementwise::prepare(ctx, BinaryOp::Minimum),
    },
    Registration {
        code: 114,
        name: "QUANTIZE",
        versions: 1..=3,
        options: options::NONE,
        prepare: convert::prepare_quantize,
    },
];

/// Schema names of builtin operators the engine does not run, so that a model using one is
/// refused by name.
static NOT_RUN: &[(i32, &str)] = &[
    (14, "LOGISTIC"),
    (19, "RELU"),
    (28, "TANH"),
    (schema::CUSTOM, "CUSTOM"),
    (34, "PAD"),
    (40, "MEAN"),
];

/// The entry of builtin operator `code`, if the engine runs it.
pub(crate) fn lookup(code: i32) -> Option<&'static Registration> {
    REGISTRY.iter().find(|r| r.code == code)
}

/// The entry of an operator, if it is a builtin operator the engine runs.
pub(crate) fn registration(code: OpCode<'_>) -> Option<&'static Registration> {
    match code {
        OpCode::Builtin(c) => lookup(c),
        OpCode::Custom(_) => None,
    }
}

/// The schema name of builtin operator `code`, if the engine knows it.
pub(crate) fn builtin_name(code: i32) -> Option<&'static str> {
    lookup(code).map(|r| r.name).or_else(|| {
        NOT_RUN
            .iter()
            .find(|&&(c, _)| c == code)
            .map(|&(_, name)| name)
    })
}

/// Prepares one operator: the entry of a builtin operator (after checking its version), or the
/// Signal custom operator of that name.
pub(crate) fn prepare<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    let unsupported =
        || Error::Unsupported(format!("operator {} ({})", ctx.index, ctx.op.code.name()));
    match ctx.op.code {
        OpCode::Builtin(code) => {
            let entry = lookup(code).ok_or_else(unsupported)?;
            if !entry.versions.contains(&ctx.op.version) {
                return Err(Error::Unsupported(format!(
                    "operator {} ({}) version {} (versions {} to {} are supported)",
                    ctx.index,
                    entry.name,
                    ctx.op.version,
                    entry.versions.start(),
                    entry.versions.end()
                )));
            }
            (entry.prepare)(ctx)
        }
        OpCode::Custom(name) => signal::prepare(ctx, name).unwrap_or_else(|| Err(unsupported())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_are_unique() {
        let all: alloc::vec::Vec<(i32, &str)> = REGISTRY
            .iter()
            .map(|r| (r.code, r.name))
            .chain(NOT_RUN.iter().copied())
            .collect();
        for (i, (code, name)) in all.iter().enumerate() {
            for (other_code, other_name) in &all[i + 1..] {
                assert_ne!(code, other_code, "code {code} is listed twice");
                assert_ne!(name, other_name, "{name} is listed twice");
            }
        }
    }

    #[test]
    fn versions_start_at_one() {
        // TFLite numbers operator versions from 1; an entry starting elsewhere, or an empty
        // range, is a typo.
        for r in REGISTRY {
            assert_eq!(*r.versions.start(), 1, "{}", r.name);
            assert!(r.versions.end() >= r.versions.start(), "{}", r.name);
        }
    }

    #[test]
    fn names_come_from_the_entries() {
        assert_eq!(builtin_name(3), Some("CONV_2D"));
        assert_eq!(builtin_name(40), Some("MEAN"));
        assert_eq!(builtin_name(7), None);
        assert_eq!(
            registration(OpCode::Builtin(55)).map(|r| r.options),
            Some(39)
        );
        assert!(registration(OpCode::Custom("SignalWindow")).is_none());
    }
}
