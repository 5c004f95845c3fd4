//! Dependencies point one way (docs/architecture.md, "Layers"): every `crate::<module>` a source
//! file of `src/` names must be in its own layer or a layer below. A new module must be given a
//! layer here, so the table cannot fall behind the code.

use std::collections::BTreeSet;
use std::path::Path;

/// The layers, bottom to top.
const LAYERS: &[&[&str]] = &[
    &["error", "schema", "metrics", "cli", "tls"],
    &["config"],
    &["upstream", "framing"],
    &["providers"],
    &["snapshot", "api", "auth", "browser", "limits", "routing", "audit"],
    &["server", "reload"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The top-level module a source file belongs to (`src/providers/openai.rs` → `providers`).
fn module_of(path: &Path, src: &Path) -> Option<String> {
    let rel = path.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

/// Every `crate::<name>` a file names outside comments.
fn used_modules(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                used.insert(name);
            }
        }
    }
    used
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let Some(module) = module_of(file, &src) else { continue };
        if module == "main" || module == "lib" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            violations.push(format!("{module} (src/{module}) has no layer in tests/it/layers.rs"));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in used_modules(&text) {
            match layer_of(&used) {
                Some(l) if l > own => violations.push(format!(
                    "{} uses crate::{used} (layer {l}), above its own layer {own}",
                    file.strip_prefix(&src).unwrap().display()
                )),
                Some(_) => {}
                None => violations.push(format!("crate::{used} (used by {}) has no layer", file.display())),
            }
        }
    }
    assert!(violations.is_empty(), "layering violations:\n{}", violations.join("\n"));
}

#[test]
fn the_check_sees_a_violation() {
    let uses = used_modules("use crate::server::State; // crate::ignored\nlet x = crate::providers::build;");
    assert_eq!(uses.into_iter().collect::<Vec<_>>(), ["providers", "server"]);
    assert!(layer_of("server") > layer_of("config"));
}
