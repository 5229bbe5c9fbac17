//! Model loading, validation, planning, prepare and invoke on arbitrary bytes.
//!
//! Loading must reject anything invalid with an error; whatever it accepts must run without a
//! panic, twice (state carried), and again after a reset.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Larger arenas are only loaded, not run, to keep executions fast.
const MAX_RUN_ARENA: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(mut interp) = omg_engine::Interpreter::new(data) else {
        return;
    };
    if interp.arena_bytes() > MAX_RUN_ARENA {
        return;
    }
    for k in 0..interp.input_count() {
        if let Ok(buf) = interp.input_mut(k) {
            for (j, b) in buf.iter_mut().enumerate() {
                *b = data[j % data.len()] ^ (j as u8);
            }
        }
    }
    let _ = interp.invoke();
    let _ = interp.invoke();
    interp.reset();
    let _ = interp.invoke();
    for k in 0..interp.output_count() {
        let _ = interp.output(k);
    }
});
