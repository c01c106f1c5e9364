//! Checks of the guide in `book/` that `mdbook build` does not make: every chapter is listed
//! in `SUMMARY.md` and exists; every relative link and image points at a file of the book, and
//! every `#fragment` at a heading that exists; every `{{#include}}` names a file that exists
//! and, if it names an anchor, a file with that anchor; every Rust snippet is included from a
//! compiled file rather than pasted; and a shell block that is not included is one command.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Component, Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the repository")
        .to_path_buf()
}

fn book_src() -> PathBuf {
    repo_root().join("book").join("src")
}

/// `a/b/../c` -> `a/c`, without touching the filesystem.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// One line of a Markdown file, with whether it is inside a fenced code block.
struct Line<'a> {
    number: usize,
    text: &'a str,
    in_code: bool,
}

/// A fenced code block: its info string and its lines.
struct Fence {
    info: String,
    start: usize,
    lines: Vec<String>,
}

fn lines(text: &str) -> (Vec<Line<'_>>, Vec<Fence>) {
    let mut out = Vec::new();
    let mut fences = Vec::new();
    let mut open: Option<(String, Fence)> = None;
    for (i, text) in text.lines().enumerate() {
        let trimmed = text.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (&mut open, marker) {
            (None, Some(marker)) => {
                let ticks: String = trimmed
                    .chars()
                    .take_while(|c| marker.starts_with(*c))
                    .collect();
                let info = trimmed[ticks.len()..].trim().to_owned();
                open = Some((
                    ticks,
                    Fence {
                        info,
                        start: i + 1,
                        lines: Vec::new(),
                    },
                ));
                out.push(Line {
                    number: i + 1,
                    text,
                    in_code: true,
                });
            }
            (Some((ticks, _)), Some(_)) if trimmed.trim_end() == ticks.as_str() => {
                if let Some((_, fence)) = open.take() {
                    fences.push(fence);
                }
                out.push(Line {
                    number: i + 1,
                    text,
                    in_code: true,
                });
            }
            (Some((_, fence)), _) => {
                fence.lines.push(text.to_owned());
                out.push(Line {
                    number: i + 1,
                    text,
                    in_code: true,
                });
            }
            (None, None) => out.push(Line {
                number: i + 1,
                text,
                in_code: false,
            }),
        }
    }
    (out, fences)
}

/// The heading IDs mdBook gives a file's headings (lowercase; letters, digits, `-` and `_`
/// kept, spaces become `-`, the rest dropped; repeats get `-1`, `-2`, ...).
fn heading_ids(text: &str) -> BTreeSet<String> {
    let (lines, _) = lines(text);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut ids = BTreeSet::new();
    for line in lines.iter().filter(|l| !l.in_code) {
        let Some(title) = line.text.strip_prefix('#') else {
            continue;
        };
        let title = title.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let visible = link_texts(title.trim());
        let id: String = visible
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        let count = seen.entry(id.clone()).or_insert(0);
        ids.insert(if *count == 0 {
            id.clone()
        } else {
            format!("{id}-{count}")
        });
        *count += 1;
    }
    ids
}

/// Markdown `[text](target)` reduced to `text`.
fn link_texts(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("](") {
        let Some(close) = rest[open..].find(')') else {
            break;
        };
        out.push_str(&rest[..open].replace('[', ""));
        rest = &rest[open + close + 1..];
    }
    out.push_str(&rest.replace('[', ""));
    out
}

/// The targets of the inline links and images of one line.
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find("](") {
        let after = &rest[open + 2..];
        let Some(close) = after.find(')') else { break };
        let target = after[..close].split_whitespace().next().unwrap_or("");
        targets.push(target.to_owned());
        rest = &after[close..];
    }
    let mut rest = line;
    while let Some(at) = rest.find("src=\"") {
        let after = &rest[at + 5..];
        let Some(close) = after.find('"') else { break };
        targets.push(after[..close].to_owned());
        rest = &after[close..];
    }
    targets
}

/// The `{{#include ...}}` / `{{#rustdoc_include ...}}` arguments of one line.
fn includes(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("{{#") {
        let after = &rest[at + 3..];
        let Some(close) = after.find("}}") else { break };
        let directive = after[..close].trim();
        for name in ["include ", "rustdoc_include "] {
            if let Some(arg) = directive.strip_prefix(name) {
                found.push(arg.trim().to_owned());
            }
        }
        rest = &after[close + 2..];
    }
    found
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

/// Every problem found in one Markdown file of the book.
fn check_file(path: &Path, chapters: &BTreeSet<PathBuf>, problems: &mut Vec<String>) {
    let src = book_src();
    let text = fs::read_to_string(path).unwrap_or_default();
    let dir = path.parent().unwrap_or(&src).to_path_buf();
    let shown = path
        .strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string();
    let (all, fences) = lines(&text);

    for line in &all {
        for arg in includes(line.text) {
            let (file, selector) = match arg.split_once(':') {
                Some((file, selector)) => (file, Some(selector)),
                None => (arg.as_str(), None),
            };
            let target = normalize(&dir.join(file));
            let Ok(content) = fs::read_to_string(&target) else {
                problems.push(format!(
                    "{shown}:{}: include of a missing file {file}",
                    line.number
                ));
                continue;
            };
            let anchor = selector
                .filter(|s| !s.is_empty() && !s.chars().all(|c| c.is_ascii_digit() || c == ':'));
            if let Some(anchor) = anchor {
                let has = |marker: &str| {
                    content.lines().any(|l| {
                        l.split_once(marker)
                            .is_some_and(|(_, name)| name.trim() == anchor)
                    })
                };
                if !has("ANCHOR:") || !has("ANCHOR_END:") {
                    problems.push(format!(
                        "{shown}:{}: {file} has no anchor {anchor:?} (ANCHOR: and ANCHOR_END: lines)",
                        line.number
                    ));
                }
            }
        }
        if line.in_code {
            continue;
        }
        for target in link_targets(line.text) {
            if target.is_empty() || is_external(&target) {
                continue;
            }
            let (file, fragment) = match target.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (target.as_str(), None),
            };
            let resolved = if file.is_empty() {
                path.to_path_buf()
            } else {
                normalize(&dir.join(file))
            };
            if !resolved.starts_with(&src) {
                problems.push(format!(
                    "{shown}:{}: link {target} leaves book/src (it would break in the rendered book)",
                    line.number
                ));
                continue;
            }
            if !resolved.is_file() {
                problems.push(format!("{shown}:{}: broken link {target}", line.number));
                continue;
            }
            if resolved.extension().is_some_and(|e| e == "md") && !chapters.contains(&resolved) {
                problems.push(format!(
                    "{shown}:{}: link {target} points at a page missing from SUMMARY.md",
                    line.number
                ));
            }
            if let Some(fragment) = fragment {
                let ids = heading_ids(&fs::read_to_string(&resolved).unwrap_or_default());
                if !ids.contains(fragment) {
                    problems.push(format!(
                        "{shown}:{}: link {target}: no heading with ID {fragment:?} (IDs there: {ids:?})",
                        line.number
                    ));
                }
            }
        }
    }

    for fence in &fences {
        let language = fence.info.split(',').next().unwrap_or("").trim();
        let body: Vec<&str> = fence
            .lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        let included =
            |l: &&str| l.starts_with("{{#include ") || l.starts_with("{{#rustdoc_include ");
        if language.starts_with("rust") && !body.iter().all(included) {
            problems.push(format!(
                "{shown}:{}: a Rust block that is not an {{{{#include}}}} of a compiled file",
                fence.start
            ));
        }
        if matches!(language, "sh" | "bash" | "console" | "shell")
            && !body.iter().all(included)
            && body.len() > 1
        {
            problems.push(format!(
                "{shown}:{}: a shell session of several lines that is not included from a script a test runs",
                fence.start
            ));
        }
    }
}

#[test]
fn the_book_has_no_broken_links_includes_or_pasted_snippets() {
    let src = book_src();
    let summary_path = src.join("SUMMARY.md");
    let summary = fs::read_to_string(&summary_path).expect("book/src/SUMMARY.md exists");
    let mut problems = Vec::new();

    let mut chapters = BTreeSet::new();
    for line in summary.lines() {
        for target in link_targets(line) {
            if target.is_empty() {
                continue; // a draft chapter
            }
            let chapter = normalize(&src.join(&target));
            if !chapter.is_file() {
                problems.push(format!("SUMMARY.md lists a missing chapter {target}"));
            }
            chapters.insert(chapter);
        }
    }

    let mut pages = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("book/src is readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    for page in &pages {
        if *page != summary_path && !chapters.contains(page) {
            problems.push(format!(
                "{} is not listed in SUMMARY.md, so it is never rendered",
                page.display()
            ));
        }
        check_file(page, &chapters, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "problems in the book:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_readme_links_to_the_guide() {
    let readme = fs::read_to_string(repo_root().join("README.md")).expect("README.md exists");
    let targets: Vec<String> = readme.lines().flat_map(link_targets).collect();
    let first_page = "book/src/introduction.md";
    assert!(
        targets.iter().any(|t| t == first_page),
        "README.md links to {first_page}: {targets:?}"
    );
    for target in targets.iter().filter(|t| !is_external(t)) {
        let file = target.split('#').next().unwrap_or("");
        assert!(
            file.is_empty() || repo_root().join(file).exists(),
            "README.md links to a missing {target}"
        );
    }
    assert!(
        readme.contains("mdbook serve book --open"),
        "README.md says how to open the guide locally"
    );
}

/// The checker itself catches what it is meant to catch.
#[test]
fn the_checker_catches_broken_links_and_anchors() {
    let ids = heading_ids(
        "# Writing actors\n\n## The `ActorRef` type\n\n```\n# not a heading\n```\n## Errors, typed!\n## Errors, typed!\n",
    );
    let expected: BTreeSet<String> = [
        "writing-actors",
        "the-actorref-type",
        "errors-typed",
        "errors-typed-1",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(ids, expected);
    assert_eq!(
        link_targets("see [a](a.md#x) and ![pic](img/b.svg \"title\")"),
        vec!["a.md#x", "img/b.svg"]
    );
    assert_eq!(
        includes("{{#include ../../x.rs:host}} {{#rustdoc_include y.rs}}"),
        vec!["../../x.rs:host", "y.rs"]
    );
    assert_eq!(
        link_texts("See [the host](host.md) now"),
        "See the host now"
    );
}
