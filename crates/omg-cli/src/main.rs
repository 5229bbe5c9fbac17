//! `omg`: the Offline Model Guard command-line tool.
#![forbid(unsafe_code)]

mod args;
mod bench;
#[cfg(feature = "vendor")]
mod demo;
mod infer;
mod keyargs;
mod kws;
mod maker;
#[cfg(feature = "vendor")]
mod package;
mod platform;
mod signals;
#[cfg(feature = "vendor")]
mod vendor;

use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;
use omg_cli::{
    audio, backend, bundle, clock, device, enclave, files, identity, manifest, run, stream,
};

/// The command line, or exits with clap's usage error; `--mic` in a build without microphone
/// support (where the flag does not exist) gets that reason instead of "unexpected argument".
fn parse() -> Cli {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    Cli::try_parse().unwrap_or_else(|e| {
        let mic = e.kind() == ErrorKind::UnknownArgument
            && matches!(e.get(ContextKind::InvalidArg),
                Some(ContextValue::String(arg)) if arg == "--mic");
        if let (true, Err(why)) = (mic, stream::mic_supported()) {
            eprintln!("omg: {why:#}");
            std::process::exit(2);
        }
        e.exit()
    })
}

/// True when standard output is a pipe (or socket) whose reader has gone, as after
/// `omg … | head -1`.
fn stdout_is_broken() -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
    poll(&mut fds, Some(&Timespec::default())).is_ok() && fds[0].revents().contains(PollFlags::ERR)
}

/// True when `e` comes from writing to a standard output whose reader has gone.
fn is_broken_stdout(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) && stdout_is_broken()
}

/// Runs `omg`. A reader that stops reading its output early (`omg demo | head -1`) ends it
/// quietly with exit status 0, whether the write failed as an error or as a panic of
/// `println!` (whose unwinding still removes temporary files, e.g. `omg demo`'s keys).
fn main() -> ExitCode {
    let cli = parse();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !stdout_is_broken() {
            default_hook(info);
        }
    }));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cli.command.run())) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) if is_broken_stdout(&e) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("omg: {e:#}");
            ExitCode::FAILURE
        }
        Err(_) if stdout_is_broken() => ExitCode::SUCCESS,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
