//! The dependencies are what Cargo.toml says they are: the declared
//! `rust-version` builds the locked graph, every declared crate is used,
//! the normal graph stays within its budget, and the fuzz workspace locks
//! the same versions. Each check reads `cargo metadata` or the files
//! themselves and runs in about a second, so `cargo test` (and `make test`)
//! fails on the dependency update that would break one of them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Crates in `cargo tree -e normal` (the crates compiled into, or to build,
/// the binaries), this crate not counted. README, Dependencies.
const NORMAL_GRAPH_BUDGET: usize = 60;

/// A `rust-version` as numbers, so "1.85" < "1.88.0" < "1.100".
fn parse_version(v: &str) -> Vec<u32> {
    let mut parts: Vec<u32> = v.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    parts.resize(3, 0);
    parts
}

/// The platform the tests run on, as `rustc -vV` names it: metadata is
/// filtered to it, as `cargo tree` is (another OS's crates are never built
/// here, and may not even be downloaded).
fn host() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

/// One package of the resolved graph.
struct Package {
    name: String,
    version: String,
    rust_version: Option<String>,
}

/// The locked graph for this host: packages by id, and the root's id.
struct Graph {
    packages: BTreeMap<String, Package>,
    root: String,
}

/// `cargo metadata --locked`: fails, rather than quietly updating, when
/// Cargo.toml and Cargo.lock disagree.
fn metadata() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", &host()])
        .arg("--manifest-path")
        .arg(Path::new(ROOT).join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata --locked failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8(out.stdout).expect("metadata is UTF-8");
    parse_metadata(&json)
}

/// Pulls out of the metadata JSON just what these checks read. A hand
/// parser over the known shape keeps serde out of the dev-dependencies.
fn parse_metadata(json: &str) -> Graph {
    let v = json::parse(json);
    let mut packages = BTreeMap::new();
    for p in v.get("packages").array() {
        packages.insert(
            p.get("id").str().to_owned(),
            Package {
                name: p.get("name").str().to_owned(),
                version: p.get("version").str().to_owned(),
                rust_version: p.get("rust_version").opt_str().map(str::to_owned),
            },
        );
    }
    let root = v.get("resolve").get("root").str().to_owned();
    Graph { packages, root }
}

#[test]
fn rust_version_covers_every_locked_crate() {
    let g = metadata();
    let ours = g.packages[&g.root]
        .rust_version
        .clone()
        .expect("Cargo.toml declares rust-version");
    let mut above: Vec<String> = g
        .packages
        .iter()
        .filter(|(id, _)| **id != g.root)
        .filter_map(|(_, p)| {
            let rv = p.rust_version.as_deref()?;
            (parse_version(rv) > parse_version(&ours))
                .then(|| format!("{} {} needs rustc {rv}", p.name, p.version))
        })
        .collect();
    above.sort();
    assert!(
        above.is_empty(),
        "Cargo.lock needs a newer rustc than rust-version = \"{ours}\" declares:\n  {}\n\
         Keep the lock within it (`cargo update`: the resolver falls back to \
         versions that support it) or raise rust-version and say why (README, Dependencies).",
        above.join("\n  ")
    );
}

#[test]
fn normal_graph_within_budget() {
    // cargo tree, not the metadata: its features are resolved per kind,
    // as a build resolves them, where the metadata's are unified with the
    // dev-dependencies' (which would count regex's memchr, say).
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree", "--locked", "-e", "normal", "--prefix", "none", "--format", "{p}",
        ])
        .arg("--manifest-path")
        .arg(Path::new(ROOT).join("Cargo.toml"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree --locked failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crates: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (name, version) = (words.next()?, words.next()?);
            (name != "knockd-rs").then(|| format!("{name} {version}"))
        })
        .collect();
    assert!(
        crates.len() <= NORMAL_GRAPH_BUDGET,
        "the normal dependency graph has {} crates, over the budget of {NORMAL_GRAPH_BUDGET}:\n  {}",
        crates.len(),
        crates.into_iter().collect::<Vec<_>>().join("\n  ")
    );
}

/// `[name]` table of Cargo.toml → the crate names it declares.
fn declared(section: &str) -> Vec<String> {
    let toml =
        std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).expect("read Cargo.toml");
    let header = format!("[{section}]");
    toml.lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter_map(|l| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            Some(l.split('=').next()?.trim().to_owned())
        })
        .collect()
}

/// Every `.rs` file under `dirs` (relative to the crate), comments cut off
/// at `//` so a crate only named in prose does not count as used.
fn rust_sources(dirs: &[&str]) -> String {
    fn walk(dir: &Path, out: &mut String) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).expect("read a source file");
                for line in text.lines() {
                    out.push_str(line.split("//").next().unwrap_or(""));
                    out.push('\n');
                }
            }
        }
    }
    let mut out = String::new();
    for d in dirs {
        walk(&PathBuf::from(ROOT).join(d), &mut out);
    }
    out
}

/// Whether `code` names crate `name` as a path root (`name::`, `use name`,
/// `extern crate name`), not as part of a longer identifier.
fn uses(code: &str, name: &str) -> bool {
    let ident = name.replace('-', "_");
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(&ident).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = &code[i + ident.len()..];
        !before.is_some_and(|c| is_ident(c) || c == ':')
            && (after.starts_with("::")
                || code[..i].trim_end().ends_with("use")
                || code[..i].trim_end().ends_with("extern crate"))
    })
}

fn unused(section: &str, dirs: &[&str]) -> Vec<String> {
    let code = rust_sources(dirs);
    declared(section)
        .into_iter()
        .filter(|name| !uses(&code, name))
        .collect()
}

#[test]
fn every_dependency_is_used() {
    let deps = declared("dependencies");
    assert!(
        deps.len() > 5,
        "Cargo.toml [dependencies] not found: {deps:?}"
    );
    let unused = unused("dependencies", &["src"]);
    assert!(
        unused.is_empty(),
        "[dependencies] that no code in src/ names: {unused:?}; remove them from Cargo.toml"
    );
}

#[test]
fn every_dev_dependency_is_used() {
    let unused = unused("dev-dependencies", &["src", "tests", "benches", "examples"]);
    assert!(
        unused.is_empty(),
        "[dev-dependencies] that no test, bench or example names: {unused:?}; remove them from Cargo.toml"
    );
}

#[test]
fn the_unused_check_can_fail() {
    let code = "use foo_bar::X;\nlet y = baz::f();\n// qux::g()\nlet q = notqux::h();";
    assert!(uses(code, "foo-bar"));
    assert!(uses(code, "baz"));
    assert!(!uses(&rust_like(code), "qux"));
    assert!(!uses(code, "hashbrown"));
    fn rust_like(s: &str) -> String {
        s.lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `name version` pairs of a Cargo.lock.
fn locked(path: &Path) -> BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut out = BTreeSet::new();
    let mut name = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("name = ") {
            name = Some(v.trim_matches('"').to_owned());
        } else if let Some(v) = line.strip_prefix("version = ") {
            if let Some(n) = name.take() {
                out.insert((n, v.trim_matches('"').to_owned()));
            }
        }
    }
    out
}

#[test]
fn fuzz_lock_matches_the_main_lock() {
    let main = locked(&Path::new(ROOT).join("Cargo.lock"));
    let fuzz = locked(&Path::new(ROOT).join("fuzz/Cargo.lock"));
    let main_names: BTreeSet<&String> = main.iter().map(|(n, _)| n).collect();
    let differ: Vec<String> = fuzz
        .iter()
        .filter(|(n, _)| main_names.contains(n) && n != "knockd-rs")
        .filter(|p| !main.contains(*p))
        .map(|(n, v)| {
            let ours: Vec<&str> = main
                .iter()
                .filter(|(m, _)| m == n)
                .map(|(_, v)| v.as_str())
                .collect();
            format!("{n} {v} (Cargo.lock: {})", ours.join(", "))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "fuzz/Cargo.lock locks other versions than Cargo.lock:\n  {}\n\
         Refresh it: cp Cargo.lock fuzz/Cargo.lock && (cd fuzz && cargo +nightly metadata --format-version 1 >/dev/null)",
        differ.join("\n  ")
    );
}

/// Just enough JSON for `cargo metadata`: objects, arrays, strings (with
/// escapes), and the scalars skipped over as text.
mod json {
    pub enum Value {
        Obj(Vec<(String, Value)>),
        Arr(Vec<Value>),
        Str(String),
        Other,
    }

    impl Value {
        pub fn get(&self, key: &str) -> &Value {
            match self {
                Value::Obj(fields) => fields
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v)
                    .unwrap_or_else(|| panic!("metadata has no field {key:?}")),
                _ => panic!("metadata: {key:?} looked up in a non-object"),
            }
        }
        pub fn array(&self) -> &[Value] {
            match self {
                Value::Arr(a) => a,
                _ => &[],
            }
        }
        pub fn str(&self) -> &str {
            self.opt_str().expect("metadata: a string expected")
        }
        pub fn opt_str(&self) -> Option<&str> {
            match self {
                Value::Str(s) => Some(s),
                _ => None,
            }
        }
    }

    pub fn parse(text: &str) -> Value {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        p.value()
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }
        fn eat(&mut self, c: u8) {
            self.ws();
            assert_eq!(self.s[self.i], c, "metadata JSON at byte {}", self.i);
            self.i += 1;
        }
        fn value(&mut self) -> Value {
            self.ws();
            match self.s[self.i] {
                b'{' => {
                    self.i += 1;
                    let mut fields = Vec::new();
                    self.ws();
                    if self.s[self.i] == b'}' {
                        self.i += 1;
                        return Value::Obj(fields);
                    }
                    loop {
                        self.ws();
                        let k = self.string();
                        self.eat(b':');
                        fields.push((k, self.value()));
                        self.ws();
                        self.i += 1;
                        if self.s[self.i - 1] == b'}' {
                            return Value::Obj(fields);
                        }
                    }
                }
                b'[' => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.s[self.i] == b']' {
                        self.i += 1;
                        return Value::Arr(items);
                    }
                    loop {
                        items.push(self.value());
                        self.ws();
                        self.i += 1;
                        if self.s[self.i - 1] == b']' {
                            return Value::Arr(items);
                        }
                    }
                }
                b'"' => Value::Str(self.string()),
                _ => {
                    while self.i < self.s.len() && !b",}]".contains(&self.s[self.i]) {
                        self.i += 1;
                    }
                    Value::Other
                }
            }
        }
        fn string(&mut self) -> String {
            self.eat(b'"');
            let mut out = Vec::new();
            while self.s[self.i] != b'"' {
                if self.s[self.i] == b'\\' {
                    self.i += 1;
                    match self.s[self.i] {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = std::str::from_utf8(&self.s[self.i + 1..self.i + 5])
                                .unwrap_or("003f");
                            let c = char::from_u32(u32::from_str_radix(hex, 16).unwrap_or(0x3f))
                                .unwrap_or('?');
                            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                            self.i += 4;
                        }
                        c => out.push(c),
                    }
                } else {
                    out.push(self.s[self.i]);
                }
                self.i += 1;
            }
            self.i += 1;
            String::from_utf8_lossy(&out).into_owned()
        }
    }
}
