//! Issue 9, item 5 ("reports are world-readable"): under a umask of 022 everything a run
//! writes under the ledger's folder is the owner's alone (folders 0700, files 0600), and a
//! ledger left open by an older rostersync is tightened, with a warning naming the file.
#![cfg(unix)]

use crate::util;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use util::{RunOutput, Workdir, row, sim};

/// Runs the real binary as [`Workdir::command`] builds it, but under `umask 022` (the usual
/// default, which lets std's plain create calls make 0644 files and 0755 folders).
async fn run_with_umask_022(work: &Workdir, args: &[&str]) -> RunOutput {
    let inner = work.command(args);
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg("umask 022; exec \"$@\"")
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    util::run_command(command).await
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// Every folder and file under `root` (root included) with its mode.
fn modes_under(root: &Path) -> Vec<(std::path::PathBuf, bool, u32)> {
    let mut found = vec![(root.to_path_buf(), true, mode(root))];
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            found.extend(modes_under(&path));
        } else {
            found.push((path.clone(), false, mode(&path)));
        }
    }
    found
}

fn roster(work: &Workdir) {
    work.write_roster(
        "roster.csv",
        &[
            row(
                "FM-1",
                "Ana",
                "Silva",
                "ana@example.com",
                "Lakeside Camp",
                "",
            ),
            // A reject, so rejects.csv holds a raw row too.
            row("FM-2", "Bo", "", "bo@example.com", "Lakeside Camp", ""),
        ],
    );
}

fn assert_private(root: &Path) {
    let modes = modes_under(root);
    let open: Vec<_> = modes
        .iter()
        .filter(|(_, is_dir, mode)| *mode != if *is_dir { 0o700 } else { 0o600 })
        .map(|(path, _, mode)| format!("{} {mode:04o}", path.display()))
        .collect();
    assert!(open.is_empty(), "not private: {open:#?}");
    assert!(
        modes
            .iter()
            .any(|(p, _, _)| p.ends_with("rejects.csv") || p.ends_with("summary.json")),
        "the reports were written: {modes:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_everything_a_run_writes_is_private_under_umask_022() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    roster(&work);
    let first = run_with_umask_022(&work, &["run"]).await;
    assert_eq!(first.code, 2, "one reject: {}", first.stderr);
    // plan and a dry run write run folders too.
    let plan = run_with_umask_022(&work, &["plan"]).await;
    assert_eq!(plan.code, 2, "{}", plan.stderr);
    assert_private(&work.path("state"));
    assert!(work.path("state/runs/run-000002/summary.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_a_ledger_left_open_is_tightened_with_a_warning() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    roster(&work);
    assert_eq!(run_with_umask_022(&work, &["run"]).await.code, 2);

    // As an older rostersync (or a copy with cp) leaves them: the ledger, the journal files
    // SQLite keeps beside it after a crash, the lock and runs/ open to everyone.
    let state = work.path("state");
    let open = [
        "rostersync.db",
        "rostersync.db-wal",
        "rostersync.db-shm",
        "rostersync.db.lock",
    ];
    for name in open {
        let path = state.join(name);
        if !path.exists() {
            // An empty -wal / -shm is what a crash right after opening leaves; SQLite accepts it.
            std::fs::write(&path, b"").unwrap();
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(state.join("runs"), std::fs::Permissions::from_mode(0o755)).unwrap();

    let again = run_with_umask_022(&work, &["run"]).await;
    assert_eq!(again.code, 2, "{}", again.stderr);
    for name in open {
        let path = state.join(name);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{name}");
        }
        assert!(
            again
                .stderr
                .lines()
                .any(|l| l.contains(&format!("{name} was open"))
                    && l.contains("0644")
                    && l.contains("0600")
                    && l.contains("WARN")),
            "a warning names {name}, 0644 and 0600:\n{}",
            again.stderr
        );
    }
    assert_eq!(mode(&state.join("runs")), 0o700);
    assert_private(&state);
}
