//! Report files: Markdown tables, JSON and SVG plots side by side in one
//! directory, so a run can be read in a browser or diffed against another.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The command line this process was started with.
pub fn command_line() -> String {
    let mut v: Vec<String> = std::env::args().collect();
    if let Some(first) = v.first_mut() {
        if let Some(name) = Path::new(first.as_str()).file_name() {
            *first = name.to_string_lossy().into_owned();
        }
    }
    v.join(" ")
}

/// What the figures depend on: kernel, CPUs, and when.
pub fn host_line() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    // Online CPUs, not this thread's affinity (a pinned bench sees one).
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .map_or(0, |c| c.lines().filter(|l| l.starts_with("processor")).count());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("Linux {}, {cpus} CPUs ({model}), at Unix time {unix}", kernel.trim())
}

/// The top of a report: its title, the command line and the host.
pub fn md_header(title: &str) -> String {
    format!("# {title}\n\n- command: `{}`\n- host: {}\n", command_line(), host_line())
}

/// A number field of a JSON row (NaN when missing).
pub fn num(v: &serde_json::Value, k: &str) -> f64 {
    v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN)
}

/// A field of a JSON row as text (strings without quotes).
pub fn text(v: &serde_json::Value, k: &str) -> String {
    match v.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "null".into(),
    }
}

/// A Markdown table.
pub fn md_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| {} |", headers.join(" | "));
    let _ = writeln!(
        s,
        "|{}",
        headers.iter().enumerate().map(|(i, _)| if i == 0 { "---|" } else { "---:|" }).collect::<String>()
    );
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    }
    s
}

/// Writes `files` (name, contents) into `dir`, creating it; returns the paths.
pub fn write_all(dir: &Path, files: &[(String, String)]) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    for (name, contents) in files {
        let p = dir.join(name);
        std::fs::write(&p, contents).with_context(|| format!("writing {}", p.display()))?;
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_table_escapes_cells() {
        let t = md_table(&["a", "b"], &[vec!["x|y".into(), "1".into()]]);
        assert_eq!(t, "| a | b |\n|---|---:|\n| x\\|y | 1 |\n");
    }

    #[test]
    fn host_and_command_are_described() {
        assert!(host_line().starts_with("Linux "));
        assert!(!command_line().is_empty());
    }
}
