//! README's command samples stay honest: the `$ omg classify …`, `$ omg listen …`,
//! `$ omg bench …` and `$ omg run …` commands of README's console blocks are run on the bundled
//! clips (from the repository's root; `omg run` on a device provisioned here) and their output
//! must be the one README shows: the same lines in the same order, exactly where the output is
//! deterministic (labels, scores, events, JSON, counts), with only the numbers free in the
//! lines that carry timings or process ids (`omg: …` lines on standard error, `omg bench`).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{OMG, TempDir};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The `$ omg SUBCOMMAND …` commands of README's console blocks, each with the lines shown
/// after it (up to the next blank line, command, comment or end of block).
fn samples(readme: &str, subcommand: &str) -> Vec<(String, Vec<String>)> {
    let prefix = format!("$ omg {subcommand} ");
    let mut samples = Vec::new();
    let mut in_console = false;
    let mut current: Option<(String, Vec<String>)> = None;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_console = line == "```console";
            samples.extend(current.take());
            continue;
        }
        if !in_console {
            continue;
        }
        if line.is_empty() || line.starts_with("$ ") || line.starts_with('#') {
            samples.extend(current.take());
        }
        if let Some(command) = line.strip_prefix(&prefix) {
            // The comment goes, as in the shell.
            let command = command.split(" #").next().unwrap().trim_end();
            current = Some((format!("{subcommand} {command}"), Vec::new()));
        } else if let Some((_, shown)) = current.as_mut()
            && !line.is_empty()
        {
            shown.push(line.to_string());
        }
    }
    samples
}

/// The command's words after the shell's work: a `DIR/*.wav` glob expands (sorted, as sh
/// does).
fn words(command: &str) -> Vec<String> {
    let mut args = Vec::new();
    for word in command.split_whitespace() {
        match word.strip_suffix("*.wav") {
            Some(dir) => {
                let mut files: Vec<String> = std::fs::read_dir(format!("{ROOT}/{dir}"))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|f| f.ends_with(".wav"))
                    .map(|f| format!("{dir}{f}"))
                    .collect();
                files.sort();
                args.extend(files);
            }
            None => args.push(word.to_string()),
        }
    }
    args
}

/// `line` with every number (digits, with a decimal part) replaced by `#`, the optimized
/// kernels' level (which the CPU decides: avx2, neon, dotprod, ...) by `LEVEL`, and runs of
/// spaces made one (numbers are padded to a width).
fn masked(line: &str) -> String {
    let line = match line.split_once("optimized (") {
        Some((before, after)) => match after.split_once(')') {
            Some((_, rest)) => format!("{before}optimized (LEVEL){rest}"),
            None => line.to_string(),
        },
        None => line.to_string(),
    };
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            while chars
                .peek()
                .is_some_and(|&d| d.is_ascii_digit() || d == '.')
            {
                chars.next();
            }
            out.push('#');
        } else {
            out.push(c);
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks `out` of `omg ARGS` against README's `shown` lines: the `omg: ` lines against
/// standard error with numbers masked, the others against standard output (exactly, or masked
/// when `timings`).
fn check(args: &[String], out: &Output, shown: &[String], timings: bool) {
    assert!(
        out.status.success(),
        "omg {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !shown.iter().any(|l| l.trim() == "..."),
        "README abridges the sample of `omg {}`: show all of it",
        args.join(" ")
    );
    let mask = |lines: Vec<&str>| -> Vec<String> { lines.into_iter().map(masked).collect() };
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    let (shown_err, shown_out): (Vec<&str>, Vec<&str>) = shown
        .iter()
        .map(String::as_str)
        .partition(|l| l.starts_with("omg: "));
    let tool_out: Vec<&str> = stdout.lines().collect();
    if timings {
        assert_eq!(
            mask(shown_out),
            mask(tool_out),
            "README's sample of `omg {}` (numbers masked)",
            args.join(" ")
        );
    } else {
        assert_eq!(
            shown_out,
            tool_out,
            "README's sample of `omg {}`",
            args.join(" ")
        );
    }
    assert_eq!(
        mask(shown_err),
        mask(stderr.lines().collect()),
        "README's sample of `omg {}` (standard error, numbers masked)",
        args.join(" ")
    );
}

/// Runs `omg ARGS` from the repository's root.
fn omg_at_root(args: &[String]) -> Output {
    Command::new(OMG)
        .current_dir(ROOT)
        .args(args)
        .output()
        .unwrap()
}

fn readme() -> String {
    std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap()
}

#[test]
fn readme_classify_samples_match_the_tool() {
    let samples = samples(&readme(), "classify");
    assert!(samples.len() >= 2, "no classify samples found in README");
    for (command, shown) in samples {
        let args = words(&command);
        check(&args, &omg_at_root(&args), &shown, false);
    }
}

#[test]
fn readme_listen_and_bench_samples_match_the_tool() {
    let readme = readme();
    let listen = samples(&readme, "listen");
    assert!(listen.len() >= 2, "no listen samples found in README");
    for (command, shown) in listen {
        let args = words(&command);
        check(&args, &omg_at_root(&args), &shown, false);
    }
    let bench = samples(&readme, "bench");
    assert!(!bench.is_empty(), "no bench sample found in README");
    for (command, shown) in bench {
        // Fewer hops than README's run (the test binary is unoptimized): the output's lines are
        // the same, only its numbers differ, and those are free here.
        let mut args = words(&command);
        args.extend(["--runs".to_owned(), "20".to_owned()]);
        check(&args, &omg_at_root(&args), &shown, true);
    }
}

#[test]
fn readme_run_samples_match_the_tool() {
    let runs = samples(&readme(), "run");
    let embedded: Vec<_> = runs
        .into_iter()
        .filter(|(command, _)| command.contains(" --dir device"))
        .collect();
    assert!(
        embedded.len() >= 2,
        "no `omg run … --dir device` samples in README"
    );
    // README's device: `micro_speech.omgpkg` provisioned in `device`, as README's provisioning
    // sample leaves it, with the policy README shows (label and score).
    let device = support::provisioned_with(
        TempDir::new("readme-run"),
        "micro_speech",
        "output_policy = \"label_and_score\"\n",
    );
    let home = device.home.to_str().unwrap();
    for (command, shown) in embedded {
        let args: Vec<String> = words(&command)
            .into_iter()
            .map(|w| match w.as_str() {
                "micro_speech.omgpkg" => device.package.to_str().unwrap().to_owned(),
                "device" => Path::new(home).join("device").to_str().unwrap().to_owned(),
                _ => w,
            })
            .collect();
        check(&args, &omg_at_root(&args), &shown, false);
    }
}

#[test]
fn numbers_are_masked_whole() {
    assert_eq!(
        masked("omg: pipeline 46.1 µs per 20 ms hop (15000 hops)"),
        "omg: pipeline # µs per # ms hop (# hops)"
    );
    assert_eq!(masked("front end     4.21 µs/hop"), "front end # µs/hop");
    assert_eq!(masked("no digits"), "no digits");
    assert_eq!(
        masked("kernels       optimized (dotprod)"),
        masked("kernels       optimized (avx2)")
    );
    assert_eq!(
        masked("kernels optimized (avx2)"),
        "kernels optimized (LEVEL)"
    );
}
