//! Private files and folders: what rostersync writes about people (the ledger, its journal
//! files and every run report) is readable by its owner only, whatever the umask.
//!
//! Owns the modes: folders rostersync creates are 0700 and files 0600 from the moment they
//! exist (created with that mode, never chmod'ed afterwards, so there is no window in which
//! another account can open them). A ledger file or a `runs/` folder found open to group or
//! others is tightened, with a warning naming it. Must never loosen a mode, never change a
//! folder it did not create (other than `runs/`, which is ours), and never write a report
//! through a symbolic link planted where the report goes.

use std::fs::{File, OpenOptions};
use std::path::Path;

use anyhow::{Context, Result};

/// Group and other permission bits: any of them set makes a file "too open".
#[cfg(unix)]
const OPEN_BITS: u32 = 0o077;

/// Creates `dir` and its missing parents with mode 0700. Folders that already exist keep
/// their mode: a ledger's parent may be a shared folder the operator chose.
pub fn create_private_dir_all(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create folder {}", dir.display()))
}

/// Makes sure `dir`, a folder rostersync owns (`runs/`, a run folder), exists with mode 0700:
/// created so, or tightened (with a warning) when an older rostersync left it open.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    create_private_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)
            .with_context(|| format!("cannot read the permissions of {}", dir.display()))?
            .permissions()
            .mode();
        if mode & OPEN_BITS != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(
                || {
                    format!(
                        "{} is open to other accounts (mode {:04o}) and cannot be tightened to 0700",
                        dir.display(),
                        mode & 0o7777
                    )
                },
            )?;
            warn_tightened(dir, mode, 0o700);
        }
    }
    Ok(())
}

/// Opens `path` to read and write, creating it 0600 if missing; an existing file open to
/// group or others is tightened to 0600 through the open handle (so a file swapped in
/// between the check and the change cannot be the one changed).
pub fn open_private(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .with_context(|| format!("cannot read the permissions of {}", path.display()))?
            .permissions()
            .mode();
        if mode & OPEN_BITS != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .with_context(|| tighten_failed(path, mode))?;
            warn_tightened(path, mode, 0o600);
        }
    }
    Ok(file)
}

/// Tightens `path` to 0600 if it exists, is a regular file and is open to group or others;
/// never creates it. For the files SQLite makes beside the ledger (-wal, -shm): a crash or an
/// older rostersync may have left them with the mode of a once-open ledger.
pub fn tighten_existing(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = match std::fs::symlink_metadata(path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            other => other,
        };
        let metadata = metadata
            .with_context(|| format!("cannot read the permissions of {}", path.display()))?;
        // Not a file SQLite made (a symlink, a fifo): not ours to change, and SQLite will
        // say what is wrong with it.
        if !metadata.file_type().is_file() {
            return Ok(());
        }
        let mode = metadata.permissions().mode();
        if mode & OPEN_BITS != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| tighten_failed(path, mode))?;
            warn_tightened(path, mode, 0o600);
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Makes an open file readable and writable by this user only (0600), whatever the umask
/// gave it: for copies that hold personal data. Best effort: a failure leaves the mode.
pub fn restrict_file(file: &File) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
    }
    #[cfg(not(unix))]
    let _ = file;
}

/// Creates the report file `path` 0600, replacing what was there. Removing first and then
/// creating with `create_new` (O_CREAT|O_EXCL) means a symbolic link planted at `path` is
/// removed, never followed, and a file that appears in between makes the write fail rather
/// than land somewhere else.
pub fn create_private_new(path: &Path) -> Result<File> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(error).with_context(|| {
                format!("cannot replace {} (left by an earlier run)", path.display())
            });
        }
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

#[cfg(unix)]
fn tighten_failed(path: &Path, mode: u32) -> String {
    format!(
        "{} is readable by other accounts (mode {:04o}) and cannot be tightened to 0600; \
         run `chmod 600` on it as its owner",
        path.display(),
        mode & 0o7777
    )
}

#[cfg(unix)]
fn warn_tightened(path: &Path, old: u32, new: u32) {
    tracing::warn!(
        "{} was open to other accounts (mode {:04o}); tightened to {:04o}",
        path.display(),
        old & 0o7777,
        new
    );
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn open_files_are_tightened_and_private_ones_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open.db");
        std::fs::write(&open, "x").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(open_private(&open).unwrap());
        assert_eq!(mode(&open), 0o600);

        let owner_only = dir.path().join("ro.db");
        std::fs::write(&owner_only, "x").unwrap();
        std::fs::set_permissions(&owner_only, std::fs::Permissions::from_mode(0o400)).unwrap();
        tighten_existing(&owner_only).unwrap();
        assert_eq!(mode(&owner_only), 0o400, "never loosened");

        tighten_existing(&dir.path().join("missing-wal")).unwrap();
        assert!(!dir.path().join("missing-wal").exists(), "never created");
    }

    #[test]
    fn a_symlink_where_a_report_goes_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere.txt");
        std::fs::write(&target, "keep").unwrap();
        let report = dir.path().join("summary.json");
        std::os::unix::fs::symlink(&target, &report).unwrap();
        drop(create_private_new(&report).unwrap());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(&report).unwrap().is_file());
        assert_eq!(mode(&report), 0o600);
    }
}
