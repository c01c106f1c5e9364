//! Terminal helpers: whether to colour and prompt, styles, the terminal width, and prompts.

use std::io::{BufRead, IsTerminal, Write};

use anstyle::{AnsiColor, Style};

/// Whether standard output should get colours and redrawn views: it is a terminal, and
/// `NO_COLOR` is not set.
pub fn stdout_is_rich() -> bool {
    std::io::stdout().is_terminal() && !no_color()
}

/// Whether standard error should get colours.
pub fn stderr_is_rich() -> bool {
    std::io::stderr().is_terminal() && !no_color()
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Whether standard input is a terminal someone can answer prompts on.
pub fn can_prompt() -> bool {
    std::io::stdin().is_terminal()
}

/// The width of the terminal on standard output (80 if it cannot be told).
pub fn width() -> usize {
    rustix::termios::tcgetwinsize(std::io::stdout())
        .ok()
        .map(|size| usize::from(size.ws_col))
        .filter(|&cols| cols >= 20)
        .unwrap_or(80)
}

/// `text` in `style` when `rich`, else plain.
pub fn paint(rich: bool, style: Style, text: &str) -> String {
    if rich {
        format!("{style}{text}{style:#}")
    } else {
        text.to_owned()
    }
}

/// Bold.
pub const BOLD: Style = Style::new().bold();
/// Dimmed, for secondary text.
pub const DIM: Style = Style::new().dimmed();
/// Errors.
pub const RED: Style = Style::new()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)))
    .bold();
/// Success.
pub const GREEN: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green)));

/// Ask on standard error, read one line from standard input; empty answers take `default`.
/// Fails (exit code 130) if standard input is closed.
pub fn prompt(question: &str, default: Option<&str>) -> anyhow::Result<String> {
    let mut stderr = std::io::stderr();
    match default {
        Some(default) if !default.is_empty() => write!(stderr, "{question} [{default}] ")?,
        _ => write!(stderr, "{question} ")?,
    }
    stderr.flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        writeln!(stderr)?;
        return Err(crate::exit::Failure::new(
            crate::exit::Code::Interrupted,
            "no answer: standard input was closed",
        )
        .fix("answer the question, or pass every value on the command line with --yes")
        .into());
    }
    let answer = line.trim();
    Ok(if answer.is_empty() {
        default.unwrap_or_default().to_owned()
    } else {
        answer.to_owned()
    })
}

/// A duration for people: `850ms`, `2.5s`, `42s`, `5m12s`, `3h05m`, `2d04h`.
pub fn duration_text(d: std::time::Duration) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let s = ms / 1000;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..10_000 => format!("{}.{}s", s, (ms % 1000) / 100),
        10_000..60_000 => format!("{s}s"),
        60_000..3_600_000 => format!("{}m{:02}s", s / 60, s % 60),
        3_600_000..86_400_000 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}
