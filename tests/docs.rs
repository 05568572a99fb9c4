//! The documents are checked against the tree: every file or folder that
//! README.md, ARCHITECTURE.md or a page under doc/ names by its path in
//! the repository (`src/...`, `tests/...`, `doc/...`, ...) exists, so a
//! rename or a removal that leaves a document pointing at nothing fails
//! `cargo test`. And the README keeps the shape operators and SPEC.md rely
//! on: the two commands first, the differences section, its line budget.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The folders a document may name a path under. A path is taken from
/// where one of these starts a word up to the first character that cannot
/// be part of a path.
const PREFIXES: &[&str] = &[
    "src/",
    "tests/",
    "benches/",
    "bench/",
    "examples/",
    "scripts/",
    "doc/",
    "fuzz/",
    "debian/",
];

/// Paths named on purpose that are not in a checkout: what the bench and
/// the fuzzer write.
const GENERATED: &[&str] = &["bench/out/", "fuzz/artifacts/", "fuzz/target/"];

/// The documents checked.
fn documents() -> Vec<String> {
    let mut docs = vec!["README.md".to_string(), "ARCHITECTURE.md".to_string()];
    let mut pages: Vec<String> = fs::read_dir(Path::new(ROOT).join("doc"))
        .expect("doc/ exists")
        .map(|e| e.expect("doc/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| format!("doc/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    pages.sort();
    docs.extend(pages);
    docs
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '*')
}

/// Every repository path named in `text`, with its line number.
fn paths_in(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (i, _) in line.char_indices() {
            let rest = &line[i..];
            if !PREFIXES.iter().any(|p| rest.starts_with(p)) {
                continue;
            }
            // A word start: not inside another path or word (`/usr/src/`).
            let before = line[..i].chars().next_back();
            if before.is_some_and(|c| is_path_char(c) || c == '~' || c == '$') {
                continue;
            }
            let end = rest.find(|c: char| !is_path_char(c)).unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches(['.', ',']);
            found.push((n + 1, path.to_string()));
        }
    }
    found
}

/// `path` exists; a glob (`tests/service/*.txt`) or a placeholder in
/// capitals (`fuzz/corpus/TARGET`) names its folder.
fn exists(path: &str) -> bool {
    let root = Path::new(ROOT);
    let placeholder = path
        .split('/')
        .position(|s| s.len() > 1 && s.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
    if let Some(at) = placeholder {
        let dir: Vec<&str> = path.split('/').take(at).collect();
        return root.join(dir.join("/")).is_dir();
    }
    match path.find('*') {
        Some(star) => {
            let dir = &path[..path[..star].rfind('/').map_or(0, |s| s + 1)];
            root.join(dir).is_dir()
        }
        None => root.join(path).exists(),
    }
}

#[test]
fn every_path_the_documents_name_exists() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text =
            fs::read_to_string(Path::new(ROOT).join(&doc)).unwrap_or_else(|e| panic!("{doc}: {e}"));
        for (line, path) in paths_in(&text) {
            if GENERATED.iter().any(|g| path.starts_with(g)) {
                continue;
            }
            checked += 1;
            if !exists(&path) {
                missing.push(format!("{doc}:{line}: {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "paths named in the documents that are not in the tree:\n{}",
        missing.join("\n")
    );
    // ARCHITECTURE.md alone names well over a hundred.
    assert!(
        checked > 100,
        "only {checked} paths found: the scanner is broken"
    );
}

#[test]
fn the_scanner_finds_paths_and_only_paths() {
    let text = "see `src/core/engine/open.rs`, tests/service/*.txt and /usr/src/linux.\n\
                a (doc/log-lines.md) link; $HOME/src/x and ~/src/y are not ours";
    let found: Vec<String> = paths_in(text).into_iter().map(|(_, p)| p).collect();
    assert_eq!(
        found,
        [
            "src/core/engine/open.rs",
            "tests/service/*.txt",
            "doc/log-lines.md"
        ]
    );
    assert!(exists("tests/service/*.txt"));
    assert!(exists("fuzz/corpus/TARGET"));
    assert!(!exists("src/core/no_such_module.rs"));
    assert!(!exists("src/nowhere/*.rs"));
}

/// The README's headings, in order.
fn readme_headings() -> Vec<String> {
    let text = fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md");
    let mut in_code = false;
    let mut headings = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with("## ") {
            headings.push(line[3..].to_string());
        }
    }
    headings
}

#[test]
fn the_readme_starts_with_the_two_commands_and_keeps_its_budget() {
    let text = fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md");
    let headings = readme_headings();
    assert_eq!(
        headings.first().map(String::as_str),
        Some("The two commands")
    );
    let two = text.split("## The two commands").nth(1).expect("section");
    let two = two.split("\n## ").next().unwrap();
    assert!(
        two.contains("make run") && two.contains("make test"),
        "{two}"
    );
    // SPEC.md section 8: each difference is listed under this title.
    assert!(
        headings.iter().any(|h| h == "Differences from knockd 0.8"),
        "{headings:?}"
    );
    let lines = text.lines().count();
    assert!(
        lines <= 350,
        "README.md has {lines} lines; the budget is 350"
    );
}

/// The knockd.conf examples of the README (fenced blocks with a door that
/// has a command), each as its own file; the nft example is left out, as
/// its sets exist only where its ruleset was loaded (`tests/nft.rs`).
fn readme_configs() -> Vec<String> {
    let text = fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md");
    let mut blocks = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("```") {
            match block.take() {
                Some(b) => blocks.push(b),
                None => block = Some(String::new()),
            }
        } else if let Some(b) = block.as_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    blocks
        .into_iter()
        .filter(|b| b.contains("Start_Command") && b.trim_start().starts_with('['))
        .filter(|b| !b.contains("Nft_Set"))
        .collect()
}

/// A config copied from the README is one `knockd --check` accepts: the
/// files it names under /etc/knockd/ are made in a private directory
/// first (a secret, a one-time file), as an operator would.
#[test]
fn the_readme_configs_pass_check() {
    let configs = readme_configs();
    assert!(configs.len() >= 2, "{configs:?}");
    for conf in configs {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        fs::create_dir(&etc).unwrap();
        for word in conf.split_whitespace() {
            let Some(name) = word.strip_prefix("/etc/knockd/") else {
                continue;
            };
            let content = if name.ends_with(".key") {
                "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n"
            } else {
                "1111,2222,3333\n4444,5555,6666\n"
            };
            fs::write(etc.join(name), content).unwrap();
            fs::set_permissions(etc.join(name), fs::Permissions::from_mode(0o600)).unwrap();
        }
        let text = conf.replace("/etc/knockd/", &format!("{}/", etc.display()));
        let path = dir.path().join("knockd.conf");
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_knockd"))
            .args(["--check".as_ref(), "-c".as_ref(), path.as_os_str()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "README config fails knockd --check:\n{conf}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
