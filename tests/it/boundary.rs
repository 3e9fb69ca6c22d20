//! The boundary between the engine and the targets (issue 12): nothing outside
//! `src/targets/` names a target's module, and so none of its types, URLs or JSON shapes.
//! The engine chooses a target only through `targets::Kind` and `targets::Settings`.

use std::path::{Path, PathBuf};

/// Path segments that name a target's own module.
const TARGET_MODULES: &[&str] = &["praesidium::", "prancer::"];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The code of a line, without a `//` comment (`//!` and `///` included).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

#[test]
fn no_module_outside_targets_names_a_target() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let targets = src.join("targets");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut crossings = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&targets)) {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = code(line);
            if TARGET_MODULES.iter().any(|m| code.contains(m)) {
                crossings.push(format!(
                    "{}:{}: {}",
                    file.strip_prefix(&src).unwrap().display(),
                    i + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        crossings.is_empty(),
        "modules outside src/targets/ name a target (go through targets::Kind / targets::Settings):\n{}",
        crossings.join("\n")
    );
}

#[test]
fn the_check_sees_a_crossing() {
    // The check itself must be able to fail.
    assert!(
        TARGET_MODULES
            .iter()
            .any(|m| code("use crate::targets::praesidium::model::User;").contains(m))
    );
    assert!(
        !TARGET_MODULES
            .iter()
            .any(|m| code("// see targets::praesidium::model").contains(m))
    );
}
