//! The planner's index kept beside the ledger (`<ledger>-index`, issue 11): a night's plan
//! reads it instead of every user in the ledger, but only while it is certainly the
//! ledger's; a stale, damaged or foreign one is never used.

use crate::util;

use util::*;

fn people() -> Vec<Vec<String>> {
    (1..=4).map(person).collect()
}

/// Runs `plan --json` with the ledger's debug log; returns the plan's ops by kind and
/// whether the index came from the index file.
async fn plan(work: &Workdir) -> (serde_json::Value, bool, String) {
    let (summary, stderr) = work.plan_with_ledger_log().await;
    let from_file = stderr.contains("ledger index read from its index file");
    (summary["plan"]["ops"].clone(), from_file, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_uses_the_index_file_only_while_it_is_the_ledgers() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    work.write_roster("roster.csv", &people());
    let first = work.run(&["run"]).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let index = work.path("state/rostersync.db-index");
    assert!(index.exists(), "apply keeps the index for the next plan");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&index).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the index file is private");
    }

    // Nothing changed: the index comes from the file, and nothing is planned.
    let (ops, from_file, stderr) = plan(&work).await;
    assert!(from_file, "{stderr}");
    let planned: u64 = ops
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(planned, 0, "{ops} {stderr}");

    // The ledger changed behind rostersync's back (the sqlite3 shell, an older binary): the
    // file no longer matches, so it is not used, and the change is seen.
    let conn = rusqlite::Connection::open(work.path("state/rostersync.db")).unwrap();
    conn.execute("UPDATE users SET active = 0 WHERE key = 'E0002'", [])
        .unwrap();
    drop(conn);
    let (ops, from_file, stderr) = plan(&work).await;
    assert!(!from_file, "a stale index file was used: {stderr}");
    assert_eq!(ops["update"], 1, "E0002 is reactivated: {ops} {stderr}");

    // That plan kept a fresh file (with its row memos): the next plan reads it again and
    // plans the same.
    let (again, from_file, stderr) = plan(&work).await;
    assert!(from_file, "{stderr}");
    assert_eq!(again, ops, "{stderr}");

    // A damaged file is said, and not used.
    let mut bytes = std::fs::read(&index).unwrap();
    let last = bytes.len() - 12;
    bytes[last] ^= 0x01;
    std::fs::write(&index, &bytes).unwrap();
    let (again, from_file, stderr) = plan(&work).await;
    assert!(!from_file, "{stderr}");
    assert!(stderr.contains("is damaged"), "{stderr}");
    assert_eq!(again, ops, "{stderr}");

    // The index file of another ledger (a copy of this one's state put in place of a
    // fresh ledger) is not taken for this one's.
    let kept = std::fs::read(&index).unwrap();
    for suffix in ["", "-wal", "-shm", "-index"] {
        let _ = std::fs::remove_file(work.path(&format!("state/rostersync.db{suffix}")));
    }
    std::fs::write(&index, &kept).unwrap();
    let (fresh, from_file, stderr) = plan(&work).await;
    assert!(!from_file, "{stderr}");
    assert_eq!(fresh["create"], 4, "{fresh} {stderr}");
}
