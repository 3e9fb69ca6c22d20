//! Figures and paths as a person reads them: rates rounded to what they can tell apart,
//! paths without `./` and `dir/..` noise, and text from the roster made safe for a terminal.
//!
//! Owns only presentation. It must never change what is used: a cleaned path is for printing,
//! the files are opened through the path as configured (cleaning is lexical, and `dir/..`
//! is not `.` when `dir` is a symbolic link).

use std::path::{Component, Path, PathBuf};

/// A rate per second with as many decimals as it deserves: `645/s`, `49.4/s`, `0.25/s`.
pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        return "0/s".to_owned();
    }
    if per_sec >= 100.0 {
        format!("{per_sec:.0}/s")
    } else if per_sec >= 1.0 {
        format!("{per_sec:.1}/s")
    } else {
        format!("{per_sec:.2}/s")
    }
}

/// A value rounded to `decimals` places, for figures in JSON reports (a rate of
/// 49.41234567 req/s says nothing more than 49.41).
pub fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    let rounded = (value * scale).round() / scale;
    if rounded.is_finite() { rounded } else { 0.0 }
}

/// `path` lexically cleaned, as Go's `filepath.Clean` does: `.` components dropped, `name/..`
/// folded, `..` kept where it leads out of a relative path and dropped after the root.
/// Symbolic links are not resolved (nothing is read from the disk).
pub fn clean_path(path: &Path) -> PathBuf {
    let mut parts: Vec<Component<'_>> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match parts.last() {
                Some(Component::Normal(_)) => {
                    parts.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => parts.push(component),
            },
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return PathBuf::from(".");
    }
    parts.iter().collect()
}

/// [`clean_path`] for printing.
pub fn path(path: &Path) -> String {
    clean_path(path).display().to_string()
}

/// Roster text for a terminal line: control characters (which could move the cursor or
/// recolour the screen) are shown escaped, the rest as it is.
pub fn text(raw: &str) -> String {
    if !raw.chars().any(char::is_control) {
        return raw.to_owned();
    }
    raw.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `println!` that a closed standard output does not stop (`rostersync run | head`): the run
/// goes on and ends as it would, with its reports written; only lines nobody reads are lost.
/// `println!` panicked there, in the middle of a night.
#[macro_export]
macro_rules! say {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Whether `error` comes from writing to a reader that went away (`| head`).
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<csv::Error>()
                .is_some_and(|e| matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe))
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_rounded_to_what_matters() {
        assert_eq!(rate(644.9137), "645/s");
        assert_eq!(rate(49.4123), "49.4/s");
        assert_eq!(rate(0.2549), "0.25/s");
        assert_eq!(rate(f64::NAN), "0/s");
        assert_eq!(round(49.41234567, 2), 49.41);
        assert_eq!(round(f64::INFINITY, 2), 0.0);
    }

    #[test]
    fn paths_are_cleaned_lexically() {
        for (raw, clean) in [
            ("./../roster.csv", "../roster.csv"),
            ("./state/runs/run-000001", "state/runs/run-000001"),
            ("a/./b/../c.csv", "a/c.csv"),
            ("../../x", "../../x"),
            ("/srv/rs/../rs/./db", "/srv/rs/db"),
            ("/..", "/"),
            ("./", "."),
            ("a/..", "."),
        ] {
            assert_eq!(path(Path::new(raw)), clean, "{raw}");
        }
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(text("Zoë Ó Briain"), "Zoë Ó Briain");
        assert_eq!(text("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
    }
}
