//! `francis new`: create a project from an embedded template. Values come from the command
//! line, else from prompts when standard input is a terminal, else from the template's
//! defaults; the project's folder must not exist yet (nothing is ever overwritten).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use heck::{ToKebabCase, ToSnakeCase};

use crate::exit::{Code, Failure, usage};
use crate::templates::{self, Template, TemplateInfo};
use crate::term;

/// Arguments of `francis new`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES, after_help = EXAMPLES)]
pub struct NewArgs {
    /// The project's name: the folder created in the current directory, and the crate's name
    /// (lowercase letters, digits, '-' and '_', starting with a letter).
    pub name: Option<String>,
    /// The template to start from: local-app (the local topology: hosts sharing a SQLite
    /// file) or remote-worker (the remote topology: workers that join a runtime); `--list`
    /// describes them [default: local-app].
    #[arg(long, short)]
    pub template: Option<String>,
    /// The name of the actor type the template creates, in snake_case (e.g. counter,
    /// shopping_cart) [default: the template's, counter].
    #[arg(long)]
    pub actor: Option<String>,
    /// Set any placeholder of the template, as cargo-generate's --define does (repeatable).
    #[arg(long = "define", short = 'd', value_name = "NAME=VALUE")]
    pub defines: Vec<String>,
    /// Depend on the francis crate in this folder [default: the checkout this CLI was built
    /// from, if it still exists, else crates.io].
    #[arg(long, value_name = "PATH", conflicts_with = "francis_version")]
    pub francis_path: Option<PathBuf>,
    /// Depend on this version requirement of francis from crates.io (e.g. "0.1").
    #[arg(long, value_name = "VERSION")]
    pub francis_version: Option<String>,
    /// Never prompt: take the defaults for anything not given (for scripts and CI). Without a
    /// terminal on standard input, francis new never prompts anyway.
    #[arg(long, short = 'y', visible_alias = "no-interactive")]
    pub yes: bool,
    /// List the templates and exit.
    #[arg(long, exclusive = true)]
    pub list: bool,
}

const EXAMPLES: &str = "\
Examples:
  francis new myapp                                  # asks for what is missing, on a terminal
  francis new myapp --actor shopping_cart --yes      # no questions: for scripts and CI
  francis new myworker --template remote-worker      # workers that join a runtime
  francis new myapp --francis-version 0.1            # depend on francis from crates.io
  francis new myapp --francis-path ../francis/francis
  francis new --list";

/// Where the generated project gets the francis crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrancisSource {
    /// A path dependency on this folder.
    Path(PathBuf),
    /// A crates.io version requirement.
    Version(String),
}

impl FrancisSource {
    /// The source for the options given: `--francis-path`, `--francis-version`, else the
    /// checkout this binary was built from if it still exists, else this binary's version.
    pub fn choose(path: Option<&Path>, version: Option<&str>) -> anyhow::Result<FrancisSource> {
        if let Some(path) = path {
            let manifest = path.join("Cargo.toml");
            let names_francis = std::fs::read_to_string(&manifest)
                .ok()
                .and_then(|text| text.parse::<toml::Table>().ok())
                .and_then(|t| {
                    t.get("package")?
                        .get("name")?
                        .as_str()
                        .map(|n| n == "francis")
                })
                .unwrap_or(false);
            if !names_francis {
                return Err(usage(format!(
                    "--francis-path {}: there is no francis crate there (no Cargo.toml naming package \"francis\")",
                    path.display()
                ))
                .fix("point it at the francis/ folder of a francis checkout, or use --francis-version")
                .into());
            }
            let path = path
                .canonicalize()
                .with_context(|| format!("resolving {}", path.display()))?;
            return Ok(FrancisSource::Path(path));
        }
        if let Some(version) = version {
            let valid = !version.trim().is_empty()
                && version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " .,*^~=<>-+".contains(c));
            if !valid {
                return Err(usage(format!(
                    "--francis-version {version:?} is not a version requirement"
                ))
                .fix("give one like 0.1 or \"^0.1.2\"")
                .into());
            }
            return Ok(FrancisSource::Version(version.trim().to_owned()));
        }
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../francis");
        if checkout.join("Cargo.toml").is_file()
            && let Ok(path) = checkout.canonicalize()
        {
            return Ok(FrancisSource::Path(path));
        }
        Ok(FrancisSource::Version(env!("CARGO_PKG_VERSION").to_owned()))
    }

    /// How the choice reads in messages.
    pub fn describe(&self) -> String {
        match self {
            FrancisSource::Path(path) => format!("the francis crate at {}", path.display()),
            FrancisSource::Version(version) => format!("francis {version} from crates.io"),
        }
    }
}

/// Run `francis new`.
pub fn run(args: NewArgs) -> anyhow::Result<()> {
    if args.list {
        for t in templates::TEMPLATES {
            println!("{:<14} {}", t.name, t.summary);
        }
        return Ok(());
    }
    let interactive = !args.yes && term::can_prompt();
    let name = match args.name.clone() {
        Some(name) => name,
        None if interactive => ask_valid("Project name?", None, |v| {
            project_name_problem(v).map(|p| p.0)
        })?,
        None => {
            return Err(usage("no project name given")
                .fix("name the project: francis new <NAME>")
                .into());
        }
    };
    if let Some((problem, fix)) = project_name_problem(&name) {
        return Err(usage(format!("project name {name:?} {problem}"))
            .fix(fix)
            .into());
    }
    let dest = std::env::current_dir()
        .context("reading the current directory")?
        .join(&name);
    refuse_existing(&dest)?;

    let info = choose_template(args.template.as_deref(), interactive)?;
    let template = Template::load(info)?;
    let source = FrancisSource::choose(
        args.francis_path.as_deref(),
        args.francis_version.as_deref(),
    )?;
    let mut given = parse_defines(&args.defines)?;
    if let Some(actor) = &args.actor {
        given.insert("actor".to_owned(), actor.clone());
    }
    let variables = variables(&template, &name, &source, given, interactive)?;
    let files = template.render(&variables)?;
    write_project(&dest, &files)?;

    let rich = term::stdout_is_rich();
    println!(
        "{} {name} from the {} template ({} files), with {}.",
        term::paint(rich, term::GREEN, "Created"),
        info.name,
        files.len(),
        source.describe()
    );
    if let Some(workspace) = enclosing_workspace(&dest) {
        println!(
            "{} {} is a cargo workspace: add {name:?} to its members (cargo will not build a package inside a workspace that does not list it), or create the project elsewhere.",
            term::paint(rich, term::BOLD, "Note:"),
            workspace.display()
        );
    }
    let mut step_vars = variables.clone();
    step_vars.insert("dir".into(), liquid::model::Value::scalar(name.clone()));
    let steps = templates::render_one(&templates::parser()?, info.next_steps, &step_vars)?;
    println!(
        "\n{}\n{steps}",
        term::paint(rich, term::BOLD, "Next steps:")
    );
    Ok(())
}

/// The manifest of a cargo workspace above `dest`, if there is one.
fn enclosing_workspace(dest: &Path) -> Option<PathBuf> {
    dest.ancestors()
        .skip(1)
        .map(|dir| dir.join("Cargo.toml"))
        .find(|manifest| {
            std::fs::read_to_string(manifest)
                .ok()
                .and_then(|text| text.parse::<toml::Table>().ok())
                .is_some_and(|table| table.contains_key("workspace"))
        })
}

fn refuse_existing(dest: &Path) -> anyhow::Result<()> {
    if dest.symlink_metadata().is_ok() {
        return Err(Failure::new(Code::Exists, format!("{} already exists", dest.display()))
            .fix("pick another project name, or remove it first (francis new never overwrites anything)")
            .into());
    }
    Ok(())
}

fn choose_template(name: Option<&str>, interactive: bool) -> anyhow::Result<&'static TemplateInfo> {
    if let Some(name) = name {
        return templates::find(name).ok_or_else(|| {
            usage(format!("there is no template {name:?}"))
                .fix(format!(
                    "pick one of: {} (francis new --list)",
                    templates::names()
                ))
                .into()
        });
    }
    let default = &templates::TEMPLATES[0];
    if !interactive || templates::TEMPLATES.len() == 1 {
        return Ok(default);
    }
    eprintln!("Templates:");
    for t in templates::TEMPLATES {
        eprintln!("  {:<14} {}", t.name, t.summary);
    }
    let chosen = ask_valid("Template?", Some(default.name), |v| {
        templates::find(v)
            .is_none()
            .then(|| format!("is not one of: {}", templates::names()))
    })?;
    Ok(templates::find(&chosen).unwrap_or(default))
}

fn parse_defines(defines: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for define in defines {
        let Some((name, value)) = define.split_once('=') else {
            return Err(usage(format!("--define {define:?} is not NAME=VALUE"))
                .fix("write it as --define actor=counter")
                .into());
        };
        out.insert(name.trim().to_owned(), value.to_owned());
    }
    Ok(out)
}

/// The Liquid variables: cargo-generate's built-ins, then each placeholder's value.
fn variables(
    template: &Template,
    name: &str,
    source: &FrancisSource,
    mut given: BTreeMap<String, String>,
    interactive: bool,
) -> anyhow::Result<liquid::Object> {
    let mut vars = liquid::Object::new();
    let mut set = |key: &str, value: String| {
        vars.insert(key.to_owned().into(), liquid::model::Value::scalar(value));
    };
    set("project-name", name.to_owned());
    set("crate_name", name.replace('-', "_"));
    set("crate_type", "bin".to_owned());
    set(
        "os-arch",
        format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
    );
    set("authors", String::new());
    set("is_init", String::new());

    // The francis dependency is francis new's to decide (--francis-path / --francis-version).
    for key in ["francis_path", "francis_version"] {
        if given.contains_key(key) {
            return Err(usage(format!("--define {key} is set by francis new"))
                .fix("use --francis-path PATH or --francis-version VERSION")
                .into());
        }
    }
    let (path, version) = match source {
        FrancisSource::Path(path) => (
            toml_escape(&path.display().to_string()),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
        FrancisSource::Version(version) => (String::new(), toml_escape(version)),
    };
    let mut provided = BTreeMap::from([("francis_path", path), ("francis_version", version)]);

    if let Some(unknown) = given
        .keys()
        .find(|k| !template.placeholders.iter().any(|p| &p.name == *k))
    {
        let known: Vec<&str> = template
            .placeholders
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        return Err(usage(format!(
            "template {} has no placeholder {unknown:?}",
            template.info.name
        ))
        .fix(format!("its placeholders are: {}", known.join(", ")))
        .into());
    }
    for placeholder in &template.placeholders {
        let check = |value: &str| placeholder_problem(template.info, placeholder, value);
        let value = if let Some(value) = given.remove(&placeholder.name) {
            if let Some(problem) = check(&value) {
                return Err(usage(format!("{} {value:?} {problem}", placeholder.name))
                    .fix(fix_for(&placeholder.name))
                    .into());
            }
            value
        } else if let Some(value) = provided.remove(placeholder.name.as_str()) {
            value
        } else if interactive {
            ask_valid(&placeholder.prompt, placeholder.default.as_deref(), check)?
        } else if let Some(default) = &placeholder.default {
            default.clone()
        } else {
            return Err(usage(format!(
                "no value for {} (there is no terminal to ask on)",
                placeholder.name
            ))
            .fix(format!("pass --define {}=VALUE", placeholder.name))
            .into());
        };
        set(&placeholder.name, value);
    }
    Ok(vars)
}

fn fix_for(placeholder: &str) -> String {
    if placeholder == "actor" {
        "give a snake_case name that is not a Rust keyword, e.g. --actor counter or --actor shopping_cart".to_owned()
    } else {
        format!("give another value with --define {placeholder}=VALUE")
    }
}

/// Why `value` cannot be the placeholder's value, if it cannot.
fn placeholder_problem(
    info: &TemplateInfo,
    placeholder: &templates::Placeholder,
    value: &str,
) -> Option<String> {
    if let Some(problem) = placeholder.problem(value) {
        let hint = value.to_snake_case();
        return Some(
            if placeholder.name == "actor" && placeholder.problem(&hint).is_none() {
                format!("is not snake_case (try {hint:?})")
            } else {
                problem
            },
        );
    }
    let reserved = info
        .identifiers
        .iter()
        .find(|(name, _)| *name == placeholder.name)
        .map(|(_, reserved)| *reserved)?;
    if RUST_KEYWORDS.contains(&value) {
        return Some("is a Rust keyword".to_owned());
    }
    reserved
        .iter()
        .any(|list| list.contains(&value))
        .then(|| "clashes with a name the template's code uses".to_owned())
}

/// Why `name` cannot be a project name, and how to fix it, if it cannot.
pub fn project_name_problem(name: &str) -> Option<(String, String)> {
    let suggestion = || {
        let kebab = name.to_kebab_case();
        if !kebab.is_empty() && kebab != name && project_name_problem(&kebab).is_none() {
            format!("try {kebab:?}")
        } else {
            "use lowercase letters, digits, '-' and '_', starting with a letter".to_owned()
        }
    };
    if name.is_empty() {
        return Some(("is empty".into(), suggestion()));
    }
    if name.len() > 64 {
        return Some((
            "is longer than 64 characters".into(),
            "pick a shorter name".into(),
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some(("must start with a lowercase letter".into(), suggestion()));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Some((
            format!(
                "contains {bad:?}; a crate name has only lowercase letters, digits, '-' and '_'"
            ),
            suggestion(),
        ));
    }
    let crate_name = name.replace('-', "_");
    if RUST_KEYWORDS.contains(&crate_name.as_str())
        || RESERVED_CRATE_NAMES.contains(&crate_name.as_str())
    {
        return Some((
            "is reserved (a Rust keyword, a standard crate, or a crate the project depends on)"
                .into(),
            format!("pick another name, e.g. \"my-{name}\""),
        ));
    }
    let stem = crate_name.trim_end_matches(|c: char| c.is_ascii_digit());
    if ["con", "prn", "aux", "nul"].contains(&crate_name.as_str())
        || (["com", "lpt"].contains(&stem) && stem.len() < crate_name.len())
    {
        return Some((
            "is a reserved file name on Windows".into(),
            format!("pick another name, e.g. \"my-{name}\""),
        ));
    }
    None
}

/// Ask until the answer passes `problem`.
fn ask_valid(
    question: &str,
    default: Option<&str>,
    problem: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<String> {
    loop {
        let answer = term::prompt(question, default)?;
        match problem(&answer) {
            None => return Ok(answer),
            Some(problem) => eprintln!("  {answer:?} {problem}; try again (Ctrl-C to give up)"),
        }
    }
}

fn write_project(dest: &Path, files: &[(PathBuf, String)]) -> anyhow::Result<()> {
    match std::fs::create_dir(dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return refuse_existing(dest),
        Err(e) => {
            return Err(Failure::new(
                Code::Failed,
                format!("cannot create {}: {e}", dest.display()),
            )
            .fix("check that the current directory is writable")
            .into());
        }
    }
    let written = files.iter().try_for_each(|(relative, text)| {
        let path = dest.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    });
    if let Err(e) = written {
        // The folder is ours (create_dir succeeded above): leave nothing half-made behind.
        let _ = std::fs::remove_dir_all(dest);
        return Err(e);
    }
    Ok(())
}

/// `text` as the inside of a TOML basic string.
fn toml_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Strict and reserved Rust keywords (2024 edition).
const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
    "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro", "override",
    "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// Crate names a project cannot take: the standard crates, and the crates templates depend on.
const RESERVED_CRATE_NAMES: &[&str] = &[
    "std",
    "core",
    "alloc",
    "proc_macro",
    "test",
    "francis",
    "francis_macros",
    "tokio",
    "serde",
    "axum",
    "clap",
    "anyhow",
    "thiserror",
    "tracing",
    "tracing_subscriber",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_are_crate_names() {
        for good in ["myapp", "my-app", "my_app", "app2", "a"] {
            assert_eq!(project_name_problem(good), None, "{good}");
        }
        let (problem, fix) = project_name_problem("MyApp").unwrap();
        assert!(problem.contains("lowercase"), "{problem}");
        assert_eq!(fix, "try \"my-app\"");
        assert!(project_name_problem("my app").unwrap().0.contains("' '"));
        assert!(project_name_problem("2app").is_some());
        assert!(project_name_problem("").is_some());
        assert!(
            project_name_problem("francis")
                .unwrap()
                .0
                .contains("reserved")
        );
        assert!(project_name_problem("match").is_some());
        assert!(project_name_problem("com1").unwrap().0.contains("Windows"));
        assert_eq!(project_name_problem("common"), None);
    }

    #[test]
    fn actor_names_must_be_snake_case_identifiers() {
        let info = templates::find("local-app").unwrap();
        let template = Template::load(info).unwrap();
        let actor = template
            .placeholders
            .iter()
            .find(|p| p.name == "actor")
            .unwrap();
        let problem = |v: &str| placeholder_problem(info, actor, v);
        assert_eq!(problem("counter"), None);
        assert_eq!(problem("shopping_cart"), None);
        assert_eq!(
            problem("ShoppingCart").unwrap(),
            "is not snake_case (try \"shopping_cart\")"
        );
        assert_eq!(
            problem("shopping-cart").unwrap(),
            "is not snake_case (try \"shopping_cart\")"
        );
        assert_eq!(problem("a__b").unwrap(), "is not snake_case (try \"a_b\")");
        assert!(problem("2d").unwrap().contains("must match"));
        assert_eq!(problem("match").unwrap(), "is a Rust keyword");
        assert!(problem("main").unwrap().contains("clashes"));
        assert_eq!(problem("provider"), None, "a name only remote-worker uses");

        let remote = templates::find("remote-worker").unwrap();
        let template = Template::load(remote).unwrap();
        let actor = template
            .placeholders
            .iter()
            .find(|p| p.name == "actor")
            .unwrap();
        for name in ["main", "provider"] {
            let problem = placeholder_problem(remote, actor, name).unwrap();
            assert!(problem.contains("clashes"), "{name}: {problem}");
        }
        assert_eq!(placeholder_problem(remote, actor, "counter"), None);
    }

    #[test]
    fn the_default_francis_is_this_checkout() {
        let source = FrancisSource::choose(None, None).unwrap();
        let FrancisSource::Path(path) = &source else {
            panic!("{source:?}")
        };
        assert!(path.join("src/lib.rs").is_file(), "{}", path.display());
        assert_eq!(
            FrancisSource::choose(None, Some("0.1")).unwrap(),
            FrancisSource::Version("0.1".into())
        );
        assert!(FrancisSource::choose(None, Some("lots")).is_ok());
        assert!(FrancisSource::choose(None, Some("\"; evil")).is_err());
        let e = FrancisSource::choose(Some(Path::new("/")), None).unwrap_err();
        assert!(e.to_string().contains("no francis crate"), "{e}");
    }
}
