//! Embeds the project templates (`templates/` at the repository root) in the `francis` binary,
//! so `francis new` needs neither the network nor a checkout. It writes `$OUT_DIR/templates.rs`:
//! one `include_str!` per template file, and asks cargo to rebuild when any of them changes
//! (a directory given to `rerun-if-changed` is scanned as a whole, so added files count too).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let root = manifest_dir.join("../templates");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    let mut templates: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot read the templates folder {}: {e}", root.display()))
        .map(|entry| entry.expect("template entry").path())
        .filter(|path| path.is_dir())
        .collect();
    templates.sort();
    for template in templates {
        let name = template
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 template name")
            .to_owned();
        collect(&template, &template, &name, &mut files);
    }
    let mut out = String::from(
        "/// Every file of every template: (template, path inside it with `/` separators, contents).\n\
         pub static EMBEDDED: &[(&str, &str, &str)] = &[\n",
    );
    for (template, relative, absolute) in files {
        writeln!(
            out,
            "    ({template:?}, {relative:?}, include_str!({absolute:?})),"
        )
        .expect("write to a String");
    }
    out.push_str("];\n");
    let target = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("templates.rs");
    std::fs::write(&target, out)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
}

/// Add the files under `dir` (skipping build output and VCS folders), sorted by path.
fn collect(base: &Path, dir: &Path, template: &str, files: &mut Vec<(String, String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("template entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if !matches!(file_name, "target" | ".git") {
                collect(base, &path, template, files);
            }
            continue;
        }
        let relative = path
            .strip_prefix(base)
            .expect("inside the template")
            .components()
            .map(|c| c.as_os_str().to_str().expect("UTF-8 template path"))
            .collect::<Vec<_>>()
            .join("/");
        let absolute = path
            .canonicalize()
            .expect("template file path")
            .to_str()
            .expect("UTF-8 path")
            .to_owned();
        files.push((template.to_owned(), relative, absolute));
    }
}
