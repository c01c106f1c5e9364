//! The project templates `francis new` offers: the registry table ([`TEMPLATES`], one entry per
//! folder of `templates/`), their files (embedded at build time by `build.rs`), their
//! cargo-generate manifests (`cargo-generate.toml`: placeholders with prompts, defaults and
//! regexes), and rendering with Liquid and cargo-generate's case filters.

mod filters;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use regex::Regex;

pub use filters::CASE_FILTERS;

include!(concat!(env!("OUT_DIR"), "/templates.rs"));

/// The manifest file of a cargo-generate template; it is not copied into projects.
pub const MANIFEST: &str = "cargo-generate.toml";

/// One template: how `francis new` presents it and what it checks beyond its manifest.
#[derive(Debug)]
pub struct TemplateInfo {
    /// Its name for `--template`, and its folder under `templates/`.
    pub name: &'static str,
    /// One line for `francis new --list` and the template prompt.
    pub summary: &'static str,
    /// Placeholders the template uses as Rust identifiers (module and type names), each with
    /// the names it must not take besides Rust keywords (the names the template's own code
    /// uses), as one or more lists.
    pub identifiers: &'static [(&'static str, &'static [&'static [&'static str]])],
    /// What to do next, printed after the project is created (Liquid, with the template's
    /// variables and `dir`, the project folder as the user named it).
    pub next_steps: &'static str,
}

/// Every template, the default first. Adding one: a folder under `templates/` and an entry here.
pub const TEMPLATES: &[TemplateInfo] = &[
    TemplateInfo {
        name: "local-app",
        summary: "an app of the local topology: one actor type, SQLite, the HTTP control API",
        identifiers: &[("actor", &[APP_RESERVED])],
        next_steps: "  cd {{dir}}
  cargo test                 # the {{actor}} actor's tests, on a virtual clock
  francis dev                # a local cluster of two hosts, with a status view
  curl -X POST localhost:8081/invoke/{{actor}}/alice/add -H 'Content-Type: application/json' --data 5
  curl -X POST localhost:8082/peek/{{actor}}/alice/get -H 'Content-Type: application/json'

README.md has the rest: the HTTP API, alarms, configuration.",
    },
    TemplateInfo {
        name: "remote-worker",
        summary: "a worker of the remote topology: one actor type, joins a runtime (runtime.yaml), the HTTP control API",
        identifiers: &[("actor", &[APP_RESERVED, REMOTE_WORKER_RESERVED])],
        next_steps: "  cd {{dir}}
  cargo test                 # the {{actor}} actor's tests (no runtime needed), and runtime.yaml's
  francis dev --remote       # a dev runtime and two workers, with a status view
  curl -X POST localhost:8081/invoke/{{actor}}/alice/add -H 'Content-Type: application/json' --data 5
  curl -X POST localhost:8082/peek/{{actor}}/alice/get -H 'Content-Type: application/json'

Without francis dev: francis runtime --config runtime.yaml, francis ca print --config
runtime.yaml > ca.pem, then cargo run -- --ca-file ca.pem for each worker. README.md has the
rest: the HTTP API, the environment, the runtime's keys.",
    },
];

/// Names an actor cannot take in either template: the files, crates and items of the
/// template's code that an actor module or type would clash with.
const APP_RESERVED: &[&str] = &[
    "main",
    "lib",
    "std",
    "core",
    "alloc",
    "francis",
    "serde",
    "tokio",
    "axum",
    "clap",
    "anyhow",
    "thiserror",
    "tracing",
    "tracing_subscriber",
    "serialize",
    "deserialize",
    "args",
    "parser",
    "context",
    "duration",
    "path_buf",
    "socket_addr",
    "call_error",
    "test_host",
];

/// The names only the remote-worker template's code uses.
const REMOTE_WORKER_RESERVED: &[&str] = &["runtime_config", "bootstrap", "provider"];

/// The template named `name`.
pub fn find(name: &str) -> Option<&'static TemplateInfo> {
    TEMPLATES.iter().find(|t| t.name == name)
}

/// The names of every template, for messages.
pub fn names() -> String {
    TEMPLATES
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A template placeholder, from `[placeholders]` of `cargo-generate.toml`.
#[derive(Debug)]
pub struct Placeholder {
    /// The variable name.
    pub name: String,
    /// The question to ask.
    pub prompt: String,
    /// The value taken when none is given.
    pub default: Option<String>,
    /// The values allowed, if it is a choice.
    pub choices: Option<Vec<String>>,
    regex: Option<Regex>,
}

impl Placeholder {
    /// Why `value` is not acceptable, if it is not.
    pub fn problem(&self, value: &str) -> Option<String> {
        if let Some(choices) = &self.choices
            && !choices.iter().any(|c| c == value)
        {
            return Some(format!("must be one of: {}", choices.join(", ")));
        }
        if let Some(regex) = &self.regex
            && !regex.is_match(value)
        {
            return Some(format!("must match {}", regex.as_str()));
        }
        None
    }
}

/// A template, ready to render.
#[derive(Debug)]
pub struct Template {
    /// Its registry entry.
    pub info: &'static TemplateInfo,
    /// Its placeholders, by name.
    pub placeholders: Vec<Placeholder>,
    files: Vec<(&'static str, &'static str)>,
}

impl Template {
    /// Load the embedded template of `info` and parse its manifest.
    pub fn load(info: &'static TemplateInfo) -> anyhow::Result<Template> {
        let files: Vec<_> = EMBEDDED
            .iter()
            .filter(|(template, _, _)| *template == info.name)
            .map(|&(_, path, contents)| (path, contents))
            .collect();
        let manifest = files
            .iter()
            .find(|(path, _)| *path == MANIFEST)
            .map(|(_, contents)| *contents)
            .with_context(|| format!("template {} has no {MANIFEST}", info.name))?;
        let placeholders = parse_placeholders(manifest)
            .with_context(|| format!("reading {MANIFEST} of template {}", info.name))?;
        Ok(Template {
            info,
            placeholders,
            files: files
                .into_iter()
                .filter(|(path, _)| *path != MANIFEST)
                .collect(),
        })
    }

    /// Render every file (its path and its contents) with `variables`. Nothing is written.
    pub fn render(&self, variables: &liquid::Object) -> anyhow::Result<Vec<(PathBuf, String)>> {
        let parser = parser()?;
        let mut out = Vec::with_capacity(self.files.len());
        for (path, contents) in &self.files {
            let rendered_path = render_one(&parser, path, variables).with_context(|| {
                format!(
                    "rendering the name of {path} in template {}",
                    self.info.name
                )
            })?;
            let relative = safe_relative_path(&rendered_path).with_context(|| {
                format!(
                    "file {path} of template {} renders to {rendered_path:?}",
                    self.info.name
                )
            })?;
            let text = render_one(&parser, contents, variables)
                .with_context(|| format!("rendering {path} of template {}", self.info.name))?;
            out.push((relative, text));
        }
        Ok(out)
    }
}

/// A Liquid parser with cargo-generate's filters.
pub fn parser() -> anyhow::Result<liquid::Parser> {
    let mut builder = liquid::ParserBuilder::with_stdlib();
    for filter in CASE_FILTERS {
        builder = builder.filter(*filter);
    }
    Ok(builder.build()?)
}

/// Render one Liquid text.
pub fn render_one(
    parser: &liquid::Parser,
    text: &str,
    variables: &liquid::Object,
) -> anyhow::Result<String> {
    Ok(parser.parse(text)?.render(variables)?)
}

/// `path` (with `/` separators) as a relative path that stays inside the project.
fn safe_relative_path(path: &str) -> anyhow::Result<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains(['\\', ':', '\0']) {
            bail!("{path:?} is not a relative path inside the project");
        }
        out.push(part);
    }
    Ok(out)
}

/// The `[placeholders]` of a cargo-generate manifest. Supported: `type = "string"` with
/// `prompt`, `default`, `regex` and `choices`.
fn parse_placeholders(manifest: &str) -> anyhow::Result<Vec<Placeholder>> {
    let table: toml::Table = manifest.parse()?;
    let Some(placeholders) = table.get("placeholders") else {
        return Ok(Vec::new());
    };
    let placeholders: BTreeMap<String, toml::Table> = placeholders.clone().try_into()?;
    let mut out = Vec::new();
    for (name, entry) in placeholders {
        let text = |key: &str| -> anyhow::Result<Option<String>> {
            match entry.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => bail!("placeholder {name}: {key} must be a string, not {other}"),
            }
        };
        let kind = text("type")?.unwrap_or_else(|| "string".to_owned());
        if kind != "string" {
            bail!("placeholder {name}: type {kind:?} is not supported (only \"string\")");
        }
        let regex = text("regex")?
            .map(|r| Regex::new(&r).with_context(|| format!("placeholder {name}: bad regex")))
            .transpose()?;
        let choices = match entry.get("choices") {
            None => None,
            Some(toml::Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .with_context(|| format!("placeholder {name}: choices must be strings"))?,
            ),
            Some(other) => bail!("placeholder {name}: choices must be an array, not {other}"),
        };
        out.push(Placeholder {
            prompt: text("prompt")?.unwrap_or_else(|| format!("{name}?")),
            default: text("default")?,
            choices,
            regex,
            name,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_folder_has_a_registry_entry_and_a_manifest() {
        let mut folders: Vec<&str> = EMBEDDED.iter().map(|(t, _, _)| *t).collect();
        folders.dedup();
        let listed: Vec<&str> = TEMPLATES.iter().map(|t| t.name).collect();
        assert_eq!(
            folders.len(),
            listed.len(),
            "folders {folders:?}, registry {listed:?}"
        );
        for name in folders {
            let info =
                find(name).unwrap_or_else(|| panic!("templates/{name} has no TEMPLATES entry"));
            let template = Template::load(info).unwrap();
            assert!(!template.files.is_empty());
            for (placeholder, _) in info.identifiers {
                assert!(
                    template.placeholders.iter().any(|p| p.name == *placeholder),
                    "{name}: identifier {placeholder} is not a placeholder"
                );
            }
        }
    }

    #[test]
    fn placeholders_are_read_from_the_manifest() {
        let placeholders = parse_placeholders(
            r#"
[placeholders]
actor = { type = "string", prompt = "Actor?", default = "counter", regex = "^[a-z]+$" }
kind = { type = "string", prompt = "Kind?", choices = ["a", "b"], default = "a" }
"#,
        )
        .unwrap();
        assert_eq!(placeholders.len(), 2);
        let actor = &placeholders[0];
        assert_eq!(
            (actor.name.as_str(), actor.prompt.as_str()),
            ("actor", "Actor?")
        );
        assert_eq!(actor.default.as_deref(), Some("counter"));
        assert_eq!(actor.problem("counter"), None);
        assert!(actor.problem("Counter").unwrap().contains("must match"));
        assert!(
            placeholders[1]
                .problem("c")
                .unwrap()
                .contains("one of: a, b")
        );
        let e = parse_placeholders("[placeholders]\nx = { type = \"bool\" }").unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
    }

    #[test]
    fn rendered_paths_stay_inside_the_project() {
        assert_eq!(
            safe_relative_path("src/counter.rs").unwrap(),
            PathBuf::from("src/counter.rs")
        );
        for bad in ["../x", "/etc/x", "src//x", "a/./b", ""] {
            assert!(safe_relative_path(bad).is_err(), "{bad}");
        }
    }
}
