//! Where a command writes: whether two paths name one file, and a folder proven writable.

use std::path::Path;

/// Whether `a` and `b` name the same existing file (through links and `..` alike).
pub fn same_file(a: &Path, b: &Path) -> bool {
    matches!(
        (std::fs::canonicalize(a), std::fs::canonicalize(b)),
        (Ok(x), Ok(y)) if x == y
    )
}

/// Creates `dir` if needed and proves it writable by creating and removing a file in it.
pub fn writable_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".hejob-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(probe)
}

/// The folder a file at `path` goes into (`.` for a bare name).
pub fn folder(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}
