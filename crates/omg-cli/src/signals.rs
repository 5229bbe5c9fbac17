//! Termination signals for commands that must clean up before they end: `omg demo` removes
//! its temporary keys, `omg platform serve` its socket.

use anyhow::{Context, Result};

/// Runs `cleanup` and ends the process (status 128 + the signal's number: 130 for Ctrl-C, 143
/// for SIGTERM, 129 for SIGHUP) on SIGINT, SIGTERM or SIGHUP.
///
/// Call it before any other thread starts: the signals are blocked in the calling thread, so
/// in every thread started after it, and one thread waits for them (an enclave process gets the
/// default mask back when it is started).
pub fn on_termination(cleanup: impl FnOnce() + Send + 'static) -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(signal);
    }
    signals
        .thread_block()
        .context("cannot block the termination signals")?;
    std::thread::Builder::new()
        .name("omg-signals".into())
        .spawn(move || {
            if let Ok(signal) = signals.wait() {
                cleanup();
                std::process::exit(128 + signal as i32);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}
