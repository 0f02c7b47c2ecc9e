//! Atomic file output: every file gsmile writes appears whole or not at all; and names and
//! text from users, bundles or workers made safe to use as file names or to print.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}. Fix: check that the folder exists and is writable")]
pub struct OutputError {
    /// The file that was being written.
    pub path: PathBuf,
    /// What the operating system said.
    #[source]
    pub source: std::io::Error,
}

/// Writes a file through a temporary sibling and a rename, so readers never see half a file.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), OutputError> {
    write_atomic_as(path, true, fill)
}

/// [`write_atomic`], which with `replace = false` fails (`ErrorKind::AlreadyExists`)
/// instead of replacing a file that is at `path` when the new one is complete.
pub fn write_atomic_as(
    path: &Path,
    replace: bool,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), OutputError> {
    let err = |source| OutputError { path: path.to_path_buf(), source };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".gsmile-");
    // Files get the mode any program's files get (0o666 less the umask), not tempfile's 0o600.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir).map_err(err)?;
    fill(tmp.as_file_mut()).map_err(err)?;
    tmp.as_file_mut().flush().map_err(err)?;
    if replace {
        tmp.persist(path).map_err(|e| err(e.error))?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| err(e.error))?;
    }
    Ok(())
}

/// Writes bytes atomically (see [`write_atomic`]).
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    write_atomic(path, |f| f.write_all(bytes))
}

/// A folder name made from a name a user or a bundle gave (a bundle's `name`, a word):
/// letters, digits, `-`, `_` and `.` kept, anything else (separators included) replaced by
/// `_`, no leading dot (so never `.` or `..`), at most 80 bytes, and `fallback` when
/// nothing is left. Joined to a folder, it never leaves that folder.
pub fn safe_name(name: &str, fallback: &str) -> String {
    let mut out: String =
        name.chars().map(|c| if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    while out.starts_with('.') {
        out.remove(0);
    }
    while out.len() > 80 {
        out.pop();
    }
    if out.is_empty() { fallback.to_string() } else { out }
}

/// `text` with every control character (escape sequences, newlines, bells, ...) written as
/// a Rust escape such as `\u{1b}`, so text a user typed cannot drive the terminal.
pub fn escape_control(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The file gsmile writes into every output folder it makes, naming the command and
/// version; `--force` replaces only folders that carry it.
pub const OWNER_MARKER: &str = ".gsmile-output";

/// Writes the ownership marker into `dir`, an output folder of `command`.
pub fn write_owner_marker(dir: &Path, command: &str) -> Result<(), OutputError> {
    let text =
        format!("{{\"written_by\": \"gsmile {command}\", \"gsmile_version\": \"{}\"}}\n", env!("CARGO_PKG_VERSION"));
    write_bytes_atomic(&dir.join(OWNER_MARKER), text.as_bytes())
}

/// Why an output path may not be (re)placed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The path exists and `--force` was not given.
    #[error("{} already exists. Fix: pass --force to replace it or choose another --out", path.display())]
    Exists {
        /// The output path.
        path: PathBuf,
    },
    /// The path holds something gsmile did not write.
    #[error(
        "{} was not written by gsmile (it has no {OWNER_MARKER} marker), so gsmile will not write into it or replace it, even with --force; it holds {listing}. Fix: choose another --out, or move it away yourself",
        path.display()
    )]
    NotOwned {
        /// The output path.
        path: PathBuf,
        /// What is there, for the message.
        listing: String,
    },
}

/// Checks that `out` may become an output folder: it does not exist, or `force` is set and it
/// is an empty folder or one gsmile wrote (it carries [`OWNER_MARKER`]). A plain file or a
/// user's folder is never replaced.
pub fn check_replaceable(out: &Path, force: bool) -> Result<(), TargetError> {
    let Ok(meta) = std::fs::symlink_metadata(out) else { return Ok(()) };
    if !force {
        return Err(TargetError::Exists { path: out.to_path_buf() });
    }
    if meta.is_dir() && out.join(OWNER_MARKER).is_file() {
        return Ok(());
    }
    let mut names: Vec<String> = match std::fs::read_dir(out) {
        Ok(entries) if meta.is_dir() => {
            entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
        }
        _ => Vec::new(),
    };
    if meta.is_dir() && names.is_empty() {
        return Ok(());
    }
    names.sort();
    let listing = if !meta.is_dir() {
        "a file, not a folder".to_string()
    } else {
        let shown: Vec<String> = names.iter().take(5).map(|n| format!("{n:?}")).collect();
        let more = names.len().saturating_sub(5);
        format!("{}{}", shown.join(", "), if more > 0 { format!(" and {more} more") } else { String::new() })
    };
    Err(TargetError::NotOwned { path: out.to_path_buf(), listing })
}

/// Renames `from` to `to` unless `to` exists, atomically where the system can
/// (`renameat2(RENAME_NOREPLACE)` on Linux; elsewhere a check just before the rename): a
/// folder that appears at `to` while gsmile works is never replaced. Fails with
/// `ErrorKind::AlreadyExists` then.
pub fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::EXIST) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} appeared meanwhile", to.display()),
                ));
            }
            // File systems without renameat2 flags fall back to the portable check.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} appeared meanwhile", to.display()),
        ));
    }
    std::fs::rename(from, to)
}

/// A hidden working folder next to `out` (`.NAME.KIND-PID-XXXXXX`), for output that appears
/// at `out` only by a final rename. The PID in its name lets a later run tell the folder of
/// a killed run from one in use ([`remove_stale_work_dirs`]). Deleted when dropped.
pub fn work_dir(parent: &Path, name: &str, kind: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(&format!(".{name}.{kind}-{}-", std::process::id())).tempdir_in(parent)
}

/// Removes the [`work_dir`]s of `kind` for `name` under `parent` left by runs that were
/// killed (their process is gone), returning how many were removed. A folder whose
/// process may still run, or whose name gsmile did not make, is left alone; on systems
/// where gsmile cannot tell whether a process runs, nothing is removed.
pub fn remove_stale_work_dirs(parent: &Path, name: &str, kind: &str) -> usize {
    let prefix = format!(".{name}.{kind}-");
    let Ok(entries) = std::fs::read_dir(parent) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        let Some((pid, suffix)) = rest.split_once('-') else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if suffix.is_empty() || pid == std::process::id() || !process_is_gone(pid) {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether no process `pid` runs (known on Linux from `/proc`; elsewhere assumed running).
fn process_is_gone(pid: u32) -> bool {
    if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
        !Path::new(&format!("/proc/{pid}")).exists()
    } else {
        false
    }
}

/// `f64` fields that may be NaN: written as JSON `null`, read back as NaN.
pub mod nan {
    use serde::{Deserialize, Deserializer, Serializer};

    /// NaN and infinities become `null`.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() { s.serialize_f64(*v) } else { s.serialize_none() }
    }

    /// `null` becomes NaN.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }

    /// The same for vectors.
    pub mod vec {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        /// NaN and infinities become `null`.
        pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
            v.iter().map(|x| x.is_finite().then_some(*x)).collect::<Vec<_>>().serialize(s)
        }

        /// `null` becomes NaN.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
            Ok(Vec::<Option<f64>>::deserialize(d)?.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_fill_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let res = write_atomic(&path, |_| Err(std::io::Error::other("boom")));
        assert!(res.is_err());
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "temp file left behind");
    }

    #[test]
    fn writes_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_bytes_atomic(&path, b"hello").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
    }

    #[test]
    fn force_replaces_only_gsmile_folders_and_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join("mine");
        std::fs::create_dir(&mine).unwrap();
        write_owner_marker(&mine, "explain").unwrap();
        assert!(check_replaceable(&mine, true).is_ok());
        assert!(matches!(check_replaceable(&mine, false), Err(TargetError::Exists { .. })));
        let thesis = dir.path().join("thesis");
        std::fs::create_dir(&thesis).unwrap();
        std::fs::write(thesis.join("chapter1.tex"), "x").unwrap();
        let err = check_replaceable(&thesis, true).unwrap_err().to_string();
        assert!(err.contains("not written by gsmile") && err.contains("chapter1.tex"), "{err}");
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "x").unwrap();
        assert!(check_replaceable(&file, true).unwrap_err().to_string().contains("a file, not a folder"));
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(check_replaceable(&empty, true).is_ok());
        assert!(check_replaceable(&dir.path().join("absent"), false).is_ok());
    }

    #[test]
    fn rename_never_replaces_what_appeared_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("keep"), "user data").unwrap();
        let err = rename_no_replace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(b.join("keep")).unwrap(), "user data");
        let c = dir.path().join("c");
        rename_no_replace(&a, &c).unwrap();
        assert!(c.is_dir() && !a.exists());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn only_work_folders_of_killed_runs_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mine = work_dir(dir.path(), "out", "partial").unwrap();
        // No process has a PID this large on Linux (pid_max is at most 2^22).
        let dead = [".out.partial-4000000000-abc123", ".out.old-4000000000-x"];
        let kept = [".out.partial-junk", ".other.partial-4000000000-abc", ".out.partial-4000000000-", "out"];
        for name in dead.iter().chain(&kept) {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("f"), b"x").unwrap();
        }
        assert_eq!(remove_stale_work_dirs(dir.path(), "out", "partial"), 1);
        assert_eq!(remove_stale_work_dirs(dir.path(), "out", "old"), 1);
        for name in dead {
            assert!(!dir.path().join(name).exists(), "{name}");
        }
        for name in kept {
            assert!(dir.path().join(name).join("f").exists(), "{name}");
        }
        assert!(mine.path().is_dir(), "a running process's folder stays");
    }

    #[test]
    fn safe_names_never_leave_their_folder() {
        assert_eq!(safe_name("tiny-editor", "x"), "tiny-editor");
        assert_eq!(safe_name("../../etc", "x"), "_.._etc");
        assert_eq!(safe_name("/abs/path", "x"), "_abs_path");
        assert_eq!(safe_name("..", "editor"), "editor");
        assert_eq!(safe_name("", "editor"), "editor");
        assert_eq!(safe_name(&"w".repeat(300), "x").len(), 80);
        for name in ["../../x", "/tmp/y", "a/../../b", "..", "."] {
            let joined = Path::new("/out").join(safe_name(name, "e"));
            assert_eq!(joined.parent(), Some(Path::new("/out")), "{name}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn written_files_get_the_umask_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours.txt");
        let plain = dir.path().join("plain.txt");
        write_bytes_atomic(&ours, b"x").unwrap();
        std::fs::write(&plain, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ours), mode(&plain));
    }

    #[test]
    fn missing_folder_is_named() {
        let path = Path::new("/nonexistent-gsmile-dir/out.png");
        let err = write_bytes_atomic(path, b"x").unwrap_err();
        assert!(err.to_string().contains("/nonexistent-gsmile-dir/out.png"));
    }
}
