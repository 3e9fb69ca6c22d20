use std::collections::BTreeMap;

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

/// Plans creates of A to E and records the first two done, as a run stopped after them
/// leaves the ledger.
fn plan_a_to_e_and_create_a_and_b(ledger: &mut Ledger) {
    let first = plan_creates(ledger, &["A", "B", "C", "D", "E"], true);
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
    plan_a_to_e_and_create_a_and_b(&mut ledger);
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

/// A plan as the keeping tests write it: each user's ops, in plan order, an op being its
/// kind and a number standing for its payload.
type Groups = Vec<(String, Vec<(OpKind, i64)>)>;

fn write_groups(ledger: &mut Ledger, command: &str, groups: &Groups, commit: bool) -> i64 {
    let run = ledger.begin_run(command).unwrap();
    ledger
        .write_plan(run, |tx| {
            for (key, ops) in groups {
                for (kind, variant) in ops {
                    tx.push(NewOp {
                        key: key.clone(),
                        seq: kind.seq(),
                        kind: *kind,
                        payload: OpPayload {
                            profile_hash: *variant,
                            ..OpPayload::of_account(&format!("u-{key}"))
                        },
                    })?;
                }
            }
            if commit { tx.commit() } else { Ok(()) }
        })
        .unwrap();
    run
}

/// The pending ops by user: (id, kind, payload number) in plan order.
fn pending_by_user(ledger: &Ledger) -> BTreeMap<String, Vec<(i64, OpKind, i64)>> {
    let mut users: BTreeMap<String, Vec<(i64, OpKind, i64)>> = BTreeMap::new();
    for op in ledger.pending_ops().unwrap() {
        users
            .entry(op.key)
            .or_default()
            .push((op.id, op.kind, op.payload.profile_hash));
    }
    users
}

/// Checks that the ledger's pending ops are exactly `groups`' (a user's ops in their order,
/// before any later op of theirs), and nothing else.
fn assert_pending_are(ledger: &Ledger, groups: &Groups) {
    let mut wanted: BTreeMap<String, Vec<(OpKind, i64)>> = BTreeMap::new();
    for (key, ops) in groups {
        wanted.entry(key.clone()).or_default().extend(ops);
    }
    let pending = pending_by_user(ledger);
    let seen: BTreeMap<String, Vec<(OpKind, i64)>> = pending
        .iter()
        .map(|(key, ops)| (key.clone(), ops.iter().map(|o| (o.1, o.2)).collect()))
        .collect();
    assert_eq!(seen, wanted);
    let total: i64 = ledger
        .conn
        .query_row("SELECT count(*) FROM ops", [], |r| r.get(0))
        .unwrap();
    let planned: usize = groups.iter().map(|(_, ops)| ops.len()).sum();
    assert_eq!(
        total as usize, planned,
        "no op of the replaced plan is left"
    );
}

/// A small deterministic generator (xorshift), so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn some_plan(users: usize, rng: &mut Rng) -> Groups {
    let kinds = [
        OpKind::Create,
        OpKind::Update,
        OpKind::Enroll,
        OpKind::Remove,
    ];
    let mut groups: Groups = (0..users)
        .map(|i| {
            let n = 1 + rng.below(3) as usize;
            let ops = (0..n)
                .map(|j| (kinds[(j + i) % kinds.len()], rng.below(1000) as i64))
                .collect();
            (format!("K{i:06}"), ops)
        })
        .collect();
    // Deactivations and reminders come last, as the planner pushes them; some reminders are
    // for users with ops above.
    for i in 0..users / 50 {
        groups.push((format!("L{i:06}"), vec![(OpKind::Deactivate, 0)]));
        groups.push((format!("K{:06}", i * 7), vec![(OpKind::Remind, 0)]));
    }
    groups
}

/// The same plan with rows edited, removed, added and moved, a few here and there and a block
/// of each.
fn edited(plan: &Groups, rng: &mut Rng) -> Groups {
    let mut plan = plan.clone();
    for _ in 0..plan.len() / 20 {
        let i = rng.below(plan.len() as u64) as usize;
        match rng.below(4) {
            0 => plan[i].1[0].1 += 1,
            1 => {
                plan.remove(i);
            }
            2 => plan.insert(
                i,
                (
                    format!("N{}", rng.below(1 << 40)),
                    vec![(OpKind::Create, 1)],
                ),
            ),
            _ => {
                let group = plan.remove(i);
                let to = (i + rng.below(3000) as usize).min(plan.len());
                plan.insert(to, group);
            }
        }
    }
    let at = rng.below(plan.len() as u64 / 2) as usize;
    plan.drain(at..at + 1500);
    let at = rng.below(plan.len() as u64) as usize;
    for j in 0..1200 {
        plan.insert(at, (format!("B{j}"), vec![(OpKind::Create, 2)]));
    }
    plan
}

/// Issue 11: planning again a plan nobody applied keeps the users' ops it makes again where
/// they are (a re-plan of a million ops inserted and deleted a million identical ones).
#[test]
fn a_plan_made_again_keeps_the_ops_it_makes_again_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let first = some_plan(6000, &mut rng);
    write_groups(&mut ledger, "plan", &first, true);
    assert_pending_are(&ledger, &first);
    let ids_before = pending_by_user(&ledger);

    // The same plan again: every op kept, with its id.
    write_groups(&mut ledger, "plan", &first, true);
    assert_pending_are(&ledger, &first);
    assert_eq!(
        pending_by_user(&ledger),
        ids_before,
        "every op kept as it was"
    );

    // Edited: exactly the new plan's ops, a user's ops in order and before their later ops.
    let second = edited(&first, &mut rng);
    write_groups(&mut ledger, "plan", &second, true);
    assert_pending_are(&ledger, &second);
    let after = pending_by_user(&ledger);
    for (key, ops) in &after {
        assert!(
            ops.windows(2).all(|w| w[0].0 < w[1].0),
            "{key}'s ops are out of their order: {ops:?}"
        );
    }
    let kept = after
        .iter()
        .filter(|(key, ops)| ids_before.get(*key) == Some(ops))
        .count();
    // Users whose ops are the same in both plans: all but the few moved far are kept.
    let same = |plan: &Groups| -> BTreeMap<String, Vec<(OpKind, i64)>> {
        let mut users: BTreeMap<String, Vec<(OpKind, i64)>> = BTreeMap::new();
        for (key, ops) in plan {
            users.entry(key.clone()).or_default().extend(ops);
        }
        users
    };
    let (old, new) = (same(&first), same(&second));
    let unchanged = new
        .iter()
        .filter(|(k, ops)| old.get(*k) == Some(ops))
        .count();
    assert!(
        kept * 100 > unchanged * 95,
        "{kept} of {unchanged} users kept"
    );

    // Not committed: the plan stays as it was; then a third plan, and the first again.
    write_groups(&mut ledger, "plan", &first, false);
    assert_eq!(pending_by_user(&ledger), after);
    let third = edited(&second, &mut rng);
    write_groups(&mut ledger, "plan", &third, true);
    assert_pending_are(&ledger, &third);
    write_groups(&mut ledger, "plan", &first, true);
    assert_pending_are(&ledger, &first);
}

/// Once anything but a plan ran after the pending plan (an apply may have sent its ops),
/// nothing is kept from it: the new plan's ops are all written after it.
#[test]
fn nothing_is_kept_from_a_plan_an_apply_may_have_touched() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let plan: Groups = (0..10)
        .map(|i| (format!("K{i}"), vec![(OpKind::Create, i)]))
        .collect();
    write_groups(&mut ledger, "plan", &plan, true);
    let first = pending_by_user(&ledger);
    ledger.begin_run("apply").unwrap();
    write_groups(&mut ledger, "plan", &plan, true);
    assert_pending_are(&ledger, &plan);
    let highest_before = first.values().flatten().map(|o| o.0).max().unwrap();
    assert!(
        pending_by_user(&ledger)
            .values()
            .flatten()
            .all(|o| o.0 > highest_before),
        "ops were kept from a plan an apply followed"
    );
    // A `run` plans and applies at once: the plan it stored is not kept from either.
    write_groups(&mut ledger, "run", &plan, true);
    let of_run = pending_by_user(&ledger);
    write_groups(&mut ledger, "plan", &plan, true);
    assert!(
        pending_by_user(&ledger)
            .iter()
            .all(|(key, ops)| ops[0].0 > of_run[key][0].0)
    );
}

/// An op an apply attempted and left pending is never kept, whatever ran since.
#[test]
fn an_op_once_attempted_is_written_again_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let plan: Groups = (0..4)
        .map(|i| (format!("K{i}"), vec![(OpKind::Create, i)]))
        .collect();
    write_groups(&mut ledger, "plan", &plan, true);
    let before = pending_by_user(&ledger);
    ledger
        .conn
        .execute("UPDATE ops SET attempts = 1 WHERE key = 'K2'", [])
        .unwrap();
    write_groups(&mut ledger, "plan", &plan, true);
    assert_pending_are(&ledger, &plan);
    let after = pending_by_user(&ledger);
    assert_eq!(after["K1"], before["K1"]);
    assert_ne!(after["K2"], before["K2"]);
}

/// A plan made again from another roster altogether: after a long run of users the old plan
/// does not have, nothing more is looked for, and the new plan's ops are exactly its own.
#[test]
fn a_plan_of_another_roster_altogether_replaces_the_old_one_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    let users = |prefix: &str, n: usize| -> Groups {
        (0..n)
            .map(|i| (format!("{prefix}{i:06}"), vec![(OpKind::Create, i as i64)]))
            .collect()
    };
    write_groups(&mut ledger, "plan", &users("OLD", 1000), true);
    // Some users at the end are the old plan's: past the point of giving up, they are
    // written again too.
    let mut second = users("NEW", 140_000);
    second.extend(users("OLD", 10));
    write_groups(&mut ledger, "plan", &second, true);
    assert_pending_are(&ledger, &second);
}

/// A plan's ops are never numbered below the last plan's first id: there they would not be
/// pending, and would never be sent. (Ops 3–5 of a run left pending, replaced by a plan of
/// nothing, left the highest id at 2; the next plan numbered its ops from 3 again.)
#[test]
fn a_plan_after_a_plan_of_nothing_is_pending_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
    plan_a_to_e_and_create_a_and_b(&mut ledger);
    plan_creates(&mut ledger, &[], true);
    assert!(pending_keys(&ledger).is_empty());
    plan_creates(&mut ledger, &["X", "Y", "Z"], true);
    assert_eq!(pending_keys(&ledger), ["X", "Y", "Z"]);
    // The same through plans that keep: a plan, the same plan of nothing, then another.
    let plan: Groups = vec![("K".into(), vec![(OpKind::Create, 1)])];
    write_groups(&mut ledger, "plan", &plan, true);
    write_groups(&mut ledger, "plan", &Vec::new(), true);
    assert!(pending_keys(&ledger).is_empty());
    write_groups(&mut ledger, "plan", &plan, true);
    assert_eq!(pending_keys(&ledger), ["K"]);
}
