use super::*;
use crate::model::Profile;
use crate::plan::PlanIo;

#[test]
fn a_second_open_of_the_same_ledger_is_refused_while_the_first_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let first = Ledger::open(&path).unwrap();
    let second = Ledger::open(&path);
    let Err(error) = second else {
        panic!("second open succeeded")
    };
    assert!(error.downcast_ref::<LedgerLocked>().is_some());
    drop(first);
    assert!(Ledger::open(&path).is_ok());
}

#[cfg(unix)]
#[test]
fn the_ledger_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let _ledger = Ledger::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn completing_ops_updates_the_user_in_the_same_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let run = ledger.begin_run("test").unwrap();
    let profile = Profile {
        email: "a@example.com".into(),
        grants: Some(vec![Grant {
            id: "c1".into(),
            kind: "course".into(),
        }]),
        ..Profile::default()
    };
    let ops = vec![NewOp {
        key: "K".into(),
        seq: 0,
        kind: OpKind::Create,
        payload: OpPayload {
            remote_id: None,
            profile: Some(profile),
            items: vec![],
            profile_hash: 42,
            row: None,
            completions: Vec::new(),
        },
    }];
    ledger
        .write_plan(run, |tx| {
            for op in ops {
                tx.push(op)?;
            }
            tx.commit()
        })
        .unwrap();
    let pending = ledger.pending_ops().unwrap();
    ledger
        .journal(
            run,
            &[
                Entry::Sending {
                    op_id: pending[0].id,
                },
                Entry::Done {
                    op: Box::new(pending[0].clone()),
                    effect: Effect {
                        uuid: Some("u-1".into()),
                        http_status: Some(201),
                        message: None,
                        adopted: false,
                        deleted: false,
                        accepted: false,
                    },
                },
            ],
        )
        .unwrap();
    let index = ledger.index().unwrap();
    let stored = index[&fingerprint("K")];
    assert_eq!(
        (stored.has_uuid, stored.profile_hash, stored.active),
        (true, 42, true)
    );
    assert!(ledger.pending_ops().unwrap().is_empty());
    let remote = ledger
        .write_plan(run, |tx| tx.remote("K"))
        .unwrap()
        .unwrap();
    assert_eq!((remote.uuid.as_str(), remote.content.len()), ("u-1", 1));
}

fn plan_creates(ledger: &mut Ledger, keys: &[&str], commit: bool) -> i64 {
    let run = ledger.begin_run("test").unwrap();
    ledger
        .write_plan(run, |tx| {
            tx.delete_replaced()?;
            for key in keys {
                tx.push(NewOp {
                    key: (*key).into(),
                    seq: 0,
                    kind: OpKind::Create,
                    payload: OpPayload {
                        remote_id: None,
                        profile: Some(Profile::default()),
                        items: vec![],
                        profile_hash: 1,
                        row: None,
                        completions: Vec::new(),
                    },
                })?;
            }
            if commit { tx.commit() } else { Ok(()) }
        })
        .unwrap();
    run
}

fn pending_keys(ledger: &Ledger) -> Vec<String> {
    ledger
        .pending_ops()
        .unwrap()
        .into_iter()
        .map(|op| op.key)
        .collect()
}

/// Issue 11: the replaced plan's pending ops are withdrawn by id range and deleted while
/// the new plan is written. The newest ops of the old plan were pending (the ones after
/// the last done one), so a new op numbered by SQLite after them would fall below the new
/// plan's first id and never be pending.
#[test]
fn a_new_plan_replaces_the_pending_ops_of_a_partly_applied_one_and_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let first = plan_creates(&mut ledger, &["A", "B", "C", "D", "E"], true);
    let done: Vec<(Op, Effect)> = ledger.pending_ops().unwrap()[..2]
        .iter()
        .map(|op| {
            let effect = Effect {
                uuid: Some(format!("u-{}", op.key)),
                http_status: Some(201),
                message: None,
                adopted: false,
                deleted: false,
                accepted: false,
            };
            (op.clone(), effect)
        })
        .collect();
    ledger.complete_many(first, &done).unwrap();
    assert_eq!(pending_keys(&ledger), ["C", "D", "E"]);

    // Not committed: the old plan stays as it was.
    plan_creates(&mut ledger, &["X"], false);
    assert_eq!(pending_keys(&ledger), ["C", "D", "E"]);

    plan_creates(&mut ledger, &["C", "D", "E", "F"], true);
    assert_eq!(pending_keys(&ledger), ["C", "D", "E", "F"]);
    let states: Vec<(String, String)> = ledger
        .conn
        .prepare("SELECT key, state FROM ops ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let expected: Vec<(String, String)> = [
        ("A", "done"),
        ("B", "done"),
        ("C", "pending"),
        ("D", "pending"),
        ("E", "pending"),
        ("F", "pending"),
    ]
    .iter()
    .map(|(k, s)| ((*k).into(), (*s).into()))
    .collect();
    assert_eq!(states, expected, "the replaced ops are deleted");
}

/// Plans one op and records it done with `effect`.
fn settle_one(ledger: &mut Ledger, kind: OpKind, payload: OpPayload, effect: Effect) {
    let run = ledger.begin_run("test").unwrap();
    ledger
        .write_plan(run, |tx| {
            tx.delete_replaced()?;
            tx.push(NewOp {
                key: "K".into(),
                seq: kind.seq(),
                kind,
                payload,
            })?;
            tx.commit()
        })
        .unwrap();
    let op = ledger.pending_ops().unwrap().remove(0);
    ledger.complete_many(run, &[(op, effect)]).unwrap();
}

/// Issue 12: a person deleted and invited again has a new invitation, pending until they
/// accept it: what the ledger knew of the old one (accepted, last sent) must not stop
/// the new one from being sent again.
#[test]
fn an_account_created_again_forgets_the_old_invitation() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let create = || OpPayload {
        remote_id: None,
        profile: Some(Profile {
            email: "k@example.com".into(),
            ..Profile::default()
        }),
        items: vec![],
        profile_hash: 1,
        row: None,
        completions: Vec::new(),
    };
    let effect = |accepted: bool, deleted: bool| Effect {
        uuid: Some("k@example.com".into()),
        http_status: Some(200),
        message: None,
        adopted: false,
        deleted,
        accepted,
    };
    let invitation = |ledger: &Ledger| -> (bool, Option<i64>) {
        ledger
            .conn
            .query_row(
                "SELECT accepted, last_remind_at FROM users WHERE key = 'K'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    settle_one(&mut ledger, OpKind::Create, create(), effect(false, false));
    let account = OpPayload::of_account("k@example.com");
    settle_one(
        &mut ledger,
        OpKind::Remind,
        account.clone(),
        effect(true, false),
    );
    assert!(invitation(&ledger).0);
    settle_one(
        &mut ledger,
        OpKind::Deactivate,
        account,
        effect(false, true),
    );
    settle_one(&mut ledger, OpKind::Create, create(), effect(false, false));
    assert_eq!(invitation(&ledger), (false, None));
}

/// Issue 12: an account deleted on the platform by hand, found missing by a later op
/// (a group change, a reminder), is forgotten like one the tool deleted, so that the next
/// plan invites the person again instead of failing that op every night.
#[test]
fn an_account_found_missing_by_any_op_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let create = OpPayload {
        remote_id: None,
        profile: Some(Profile {
            email: "k@example.com".into(),
            ..Profile::default()
        }),
        items: vec![],
        profile_hash: 1,
        row: None,
        completions: Vec::new(),
    };
    let effect = |deleted: bool| Effect {
        uuid: Some("k@example.com".into()),
        http_status: Some(200),
        message: None,
        adopted: false,
        deleted,
        accepted: false,
    };
    settle_one(&mut ledger, OpKind::Create, create, effect(false));
    let enroll = OpPayload {
        items: vec![Grant {
            id: "Viewer".into(),
            kind: "group".into(),
        }],
        ..OpPayload::of_account("k@example.com")
    };
    settle_one(&mut ledger, OpKind::Enroll, enroll, effect(true));
    let known = ledger.index().unwrap()[&fingerprint("K")];
    assert!(!known.has_uuid && !known.active, "{known:?}");
}

#[test]
fn pending_ops_of_a_version_1_ledger_survive_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../../migrations/001_initial.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO runs (id, command, started_at) VALUES (1, 'run', 'then'), (2, 'run', 'later')",
            [],
        )
        .unwrap();
        // One op done by run 1, then run 2's plan left two pending (JSON payloads).
        conn.execute_batch(
            r#"INSERT INTO ops (run_id, key, seq, kind, payload, state, updated_at) VALUES
               (1, 'A', 0, 'create', '{"profile_hash":1}', 'done', 0),
               (2, 'B', 1, 'update', '{"uuid":"u-b","profile_hash":2}', 'pending', 0),
               (2, 'C', 5, 'deactivate', '{"uuid":"u-c"}', 'pending', 0);"#,
        )
        .unwrap();
    }
    let ledger = Ledger::open(&path).unwrap();
    let pending = ledger.pending_ops().unwrap();
    let seen: Vec<_> = pending
        .iter()
        .map(|op| (op.key.as_str(), op.kind, op.payload.remote_id.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("B", OpKind::Update, Some("u-b")),
            ("C", OpKind::Deactivate, Some("u-c"))
        ]
    );
}
