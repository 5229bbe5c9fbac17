//! README's command samples stay honest: every `$ omg classify …` command of README's console
//! blocks (deterministic, offline, on the bundled clips) is run from the repository's root and
//! its output must be exactly the one README shows.

mod support;

use std::process::Command;

use support::OMG;

/// The `$ omg classify …` commands of README's console blocks, each with the lines shown
/// after it (up to the next blank line, command or end of block).
fn classify_samples(readme: &str) -> Vec<(String, String)> {
    let mut samples = Vec::new();
    let mut in_console = false;
    let mut current: Option<(String, String)> = None;
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
        if let Some(command) = line.strip_prefix("$ omg classify ") {
            current = Some((command.to_string(), String::new()));
        } else if let Some((_, shown)) = current.as_mut()
            && !line.is_empty()
        {
            shown.push_str(line);
            shown.push('\n');
        }
    }
    samples
}

#[test]
fn readme_classify_samples_match_the_tool() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let samples = classify_samples(&readme);
    assert!(samples.len() >= 2, "no classify samples found in README");
    for (command, shown) in samples {
        // The shell's work: the comment goes, the glob expands (sorted, as sh does).
        let command = command.split(" #").next().unwrap();
        let mut args = vec!["classify".to_string()];
        for word in command.split_whitespace() {
            match word.strip_suffix("*.wav") {
                Some(dir) => {
                    let mut files: Vec<String> = std::fs::read_dir(format!("{root}/{dir}"))
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
        let out = Command::new(OMG)
            .current_dir(root)
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "omg {args:?}: {out:?}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            shown,
            "README's sample of `omg {}`",
            args.join(" ")
        );
    }
}
