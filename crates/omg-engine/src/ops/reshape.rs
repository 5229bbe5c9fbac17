//! RESHAPE: the same elements under a new shape (a copy between two arena tensors).

use alloc::boxed::Box;

use crate::error::Result;
use crate::exec::{Memory, Slot};
use crate::ops::{BoxedKernel, Kernel, OpCtx};

struct Reshape {
    input: Slot,
    output: Slot,
}

pub(crate) fn prepare<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    ctx.expect_arity(1, 2, 1)?;
    let (input, output) = (ctx.input(0)?, ctx.output(0)?);
    if input.dtype != output.dtype {
        return Err(ctx.err("input and output types differ"));
    }
    if input.elements() != output.elements() {
        return Err(ctx.err(alloc::format!(
            "input shape {:?} and output shape {:?} have different element counts",
            input.shape,
            output.shape
        )));
    }
    Ok(Box::new(Reshape {
        input: ctx.input_slot(0)?,
        output: ctx.output_slot(0)?,
    }))
}

impl Kernel for Reshape {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.output))?;
        let src = io.input(&self.input)?;
        io.out::<u8>()?.copy_from_slice(src);
        Ok(())
    }
}
