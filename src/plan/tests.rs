use super::*;
use crate::ledger::content_record;
use crate::safety::Safety;

/// An in-memory ledger for the planner.
#[derive(Default)]
struct Memory {
    remote: HashMap<String, Remote>,
    ops: Vec<NewOp>,
    memos: HashMap<String, RowMemo>,
    unaccepted: Vec<String>,
}

impl PlanIo for Memory {
    fn remote(&mut self, key: &str) -> Result<Option<Remote>> {
        Ok(self.remote.get(key).cloned())
    }
    fn unaccepted_since(&mut self, _before_ms: i64) -> Result<Vec<String>> {
        Ok(self.unaccepted.clone())
    }
    fn keys_of(&mut self, wanted: &HashSet<u64>) -> Result<Vec<String>> {
        Ok(self
            .remote
            .keys()
            .filter(|k| wanted.contains(&fingerprint(k)))
            .cloned()
            .collect())
    }
    fn push_op(&mut self, op: NewOp, _before: Option<&Remote>) -> Result<()> {
        self.ops.push(op);
        Ok(())
    }
    fn remember(&mut self, key: &str, row: RowMemo) -> Result<()> {
        self.memos.insert(key.to_owned(), row);
        Ok(())
    }
    fn retract(&mut self, keys: &[String]) -> Result<Vec<(String, OpKind)>> {
        let withdrawn = self
            .ops
            .iter()
            .filter(|o| keys.contains(&o.key))
            .map(|o| (o.key.clone(), o.kind))
            .collect();
        self.ops.retain(|o| !keys.contains(&o.key));
        Ok(withdrawn)
    }
}

fn desired(key: &str) -> DesiredUser {
    DesiredUser {
        key: key.into(),
        first_name: "A".into(),
        last_name: "B".into(),
        email: format!("{key}@example.com").to_lowercase(),
        role: "Learner",
        active: true,
        client: "c".into(),
        locations: vec!["l1".into()].into(),
        position: None,
        program_type: None,
        content: vec![Grant {
            id: "c1".into(),
            kind: "course".into(),
        }]
        .into(),
        line: 2,
    }
}

/// A ledger holding `users` exactly as they are.
fn ledger_of(users: &[DesiredUser]) -> (LedgerIndex, Memory) {
    let mut index = LedgerIndex::default();
    let mut memory = Memory::default();
    for user in users {
        let (content_hash, _) = content_record(&user.content);
        index.insert(
            fingerprint(&user.key),
            Known::new(profile_hash(user), content_hash, user.active, true, None),
        );
        memory.remote.insert(
            user.key.clone(),
            Remote {
                uuid: format!("uuid-{}", user.key),
                email: user.email.clone(),
                content: user.content.to_vec(),
                profile: String::new(),
                active: user.active,
            },
        );
    }
    (index, memory)
}

fn run(index: LedgerIndex, memory: &mut Memory, rows: Vec<Result<DesiredUser, Reject>>) -> Outcome {
    let count = rows.len() as u64;
    let mut planner = Planner::new(index, memory);
    for row in rows {
        planner.row(row, None).unwrap();
    }
    planner.finish(|_| Ok(HashMap::new()), count).unwrap()
}

fn kinds(memory: &Memory) -> Vec<(String, OpKind)> {
    let mut kinds: Vec<_> = memory.ops.iter().map(|o| (o.key.clone(), o.kind)).collect();
    kinds.sort();
    kinds
}

#[test]
fn known_keys_give_back_exactly_the_keys_whose_fingerprint_is_wanted() {
    let mut keys = KnownKeys::with_capacity(0);
    for key in ["A1", "", "B22", "Zoë", "A1x"] {
        keys.push(key);
    }
    assert_eq!(
        keys.iter().collect::<Vec<_>>(),
        ["A1", "", "B22", "Zoë", "A1x"]
    );
    let wanted: HashSet<u64> = ["Zoë", "A1", "missing"]
        .iter()
        .map(|k| fingerprint(k))
        .collect();
    assert_eq!(keys.of(&wanted), ["A1", "Zoë"]);
    assert!(KnownKeys::default().of(&wanted).is_empty());
}

#[test]
fn converged_users_need_nothing() {
    let users = vec![desired("A"), desired("B")];
    let (index, mut memory) = ledger_of(&users);
    let outcome = run(index, &mut memory, users.into_iter().map(Ok).collect());
    assert!(memory.ops.is_empty());
    assert_eq!(outcome.plan.unchanged, 2);
}

#[test]
fn one_change_of_every_kind_gives_exactly_one_op_each() {
    let base: Vec<DesiredUser> = ["NEW", "CHG", "ADD", "DEL", "OFF", "BACK", "GONE"]
        .iter()
        .map(|k| desired(k))
        .collect();
    let known: Vec<DesiredUser> = base.iter().filter(|u| u.key != "NEW").cloned().collect();
    let (mut index, mut memory) = ledger_of(&known);
    index.get_mut(&fingerprint("BACK")).unwrap().active = false;
    let mut now = base.clone();
    now.retain(|u| u.key != "GONE");
    for user in &mut now {
        match user.key.as_str() {
            "CHG" => user.last_name = "Changed".into(),
            "ADD" => {
                let mut content = user.content.to_vec();
                content.push(Grant {
                    id: "c2".into(),
                    kind: "course".into(),
                });
                user.content = content.into();
            }
            "DEL" => user.content = Vec::new().into(),
            "OFF" => user.active = false,
            _ => {}
        }
    }
    let outcome = run(index, &mut memory, now.into_iter().map(Ok).collect());
    let mut expected = vec![
        ("NEW".to_owned(), OpKind::Create),
        ("CHG".to_owned(), OpKind::Update),
        ("ADD".to_owned(), OpKind::Enroll),
        ("DEL".to_owned(), OpKind::Remove),
        ("OFF".to_owned(), OpKind::Deactivate),
        ("BACK".to_owned(), OpKind::Update),
        ("GONE".to_owned(), OpKind::Deactivate),
    ];
    expected.sort();
    assert_eq!(kinds(&memory), expected);
    assert_eq!(outcome.plan.total(), 7);
    let enroll = memory
        .ops
        .iter()
        .find(|o| o.kind == OpKind::Enroll)
        .unwrap();
    assert_eq!(
        enroll.payload.items,
        vec![Grant {
            id: "c2".into(),
            kind: "course".into()
        }]
    );
    let back = memory.ops.iter().find(|o| o.key == "BACK").unwrap();
    assert!(back.payload.profile.as_ref().unwrap().active);
    assert_eq!(back.payload.remote_id.as_deref(), Some("uuid-BACK"));
}

#[test]
fn rejected_rows_protect_their_users_from_deactivation() {
    let users = [desired("A"), desired("B"), desired("C")];
    let (index, mut memory) = ledger_of(&users);
    let reject = |line: u64, key: Option<&str>, email: Option<&str>| Reject {
        line,
        column: "email".into(),
        reason: "bad".into(),
        original: String::new(),
        key: key.map(Into::into),
        email: email.map(Into::into),
    };
    let rows = vec![
        Ok(desired("A")),
        Err(reject(3, Some("B"), None)),
        Err(reject(4, None, Some("c@example.com"))),
    ];
    let outcome = run(index, &mut memory, rows);
    assert!(memory.ops.is_empty(), "{:?}", kinds(&memory));
    assert_eq!(outcome.plan.protected, 2);
}

/// A roster of `n` people for the sample catalog; `last_name` names person `i`.
fn roster_text(n: usize, last_name: impl Fn(usize) -> String) -> String {
    let mut text = crate::ingest::roster::COLUMNS.join(",") + "\n";
    for i in 0..n {
        text += &format!(
            "E{i:03},Ana,{},ana{i}@example.com,,,,Lakeside Camp,,,SAFE-201\n",
            last_name(i)
        );
    }
    text
}

/// Plans `text` against `index`/`memory`, reading the first `ahead` rows ahead.
fn plan_text(
    text: &str,
    index: LedgerIndex,
    memory: &mut Memory,
    ahead: usize,
) -> (Outcome, usize) {
    let catalog = crate::samples::catalog();
    let defaults = crate::config::Defaults {
        client: "Northwind Camps".into(),
        role: "Learner".into(),
    };
    let columns = HashMap::new();
    let mut reader = RosterReader::new(
        "roster.csv",
        std::io::Cursor::new(text.as_bytes().to_vec()),
        &catalog,
        &defaults,
        &columns,
    )
    .unwrap();
    let read = std::cell::Cell::new(0);
    let early = EarlyRows::read(&mut reader, || {
        read.set(read.get() + 1);
        read.get() <= ahead
    })
    .unwrap();
    let early_rows = early.len();
    let mut planner = Planner::new(index, memory);
    planner.read_roster(&mut reader, early).unwrap();
    let rows = reader.rows();
    (
        planner.finish(|_| Ok(HashMap::new()), rows).unwrap(),
        early_rows,
    )
}

/// The ledger after every op of `memory` was acknowledged (creates only).
fn provisioned(memory: &Memory) -> (LedgerIndex, Memory) {
    let mut index = LedgerIndex::default();
    let mut ledger = Memory::default();
    for op in &memory.ops {
        assert_eq!(op.kind, OpKind::Create);
        let user = op.payload.profile.as_ref().unwrap();
        let content = user.grants.clone().unwrap();
        let row = op.payload.row;
        assert!(row.is_some(), "a create carries its row memo");
        index.insert(
            fingerprint(&op.key),
            Known::new(
                op.payload.profile_hash,
                content_hash(&content),
                true,
                true,
                row,
            ),
        );
        ledger.remote.insert(
            op.key.clone(),
            Remote {
                uuid: format!("uuid-{}", op.key),
                email: user.email.clone(),
                content,
                profile: String::new(),
                active: true,
            },
        );
    }
    (index, ledger)
}

#[test]
fn remembered_rows_are_settled_and_changed_ones_diffed_however_many_were_read_ahead() {
    let first = roster_text(10_000, |_| "Smith".into());
    let (outcome, _) = plan_text(&first, LedgerIndex::default(), &mut Memory::default(), 0);
    assert_eq!(outcome.plan.counts.get(&OpKind::Create), Some(&10_000));
    let mut created = Memory::default();
    plan_text(&first, LedgerIndex::default(), &mut created, 0);

    let changed = |i: usize| i == 3 || i == 4_500 || i == 9_000;
    let second = roster_text(10_000, |i| {
        if changed(i) { "Jones" } else { "Smith" }.into()
    });
    // Nothing read ahead, everything, and part of it (the rewind lands on a mark before
    // the first changed row, and the stream goes on after the last row read ahead).
    for ahead in [0, 10_000, 6_000] {
        let (index, mut ledger) = provisioned(&created);
        let (outcome, early) = plan_text(&second, index, &mut ledger, ahead);
        assert_eq!(early, ahead, "rows read ahead");
        assert_eq!(
            kinds(&ledger),
            vec![
                ("E003".to_owned(), OpKind::Update),
                ("E4500".to_owned(), OpKind::Update),
                ("E9000".to_owned(), OpKind::Update),
            ],
            "ahead {ahead}"
        );
        assert_eq!(outcome.plan.unchanged, 9_997, "ahead {ahead}");
        assert_eq!((outcome.rows, outcome.valid), (10_000, 10_000));
        // Only the changed rows' memos are written again.
        let mut remembered: Vec<&String> = ledger.memos.keys().collect();
        remembered.sort();
        assert_eq!(remembered, ["E003", "E4500", "E9000"], "ahead {ahead}");
    }
}

#[test]
fn a_remembered_row_the_platform_does_not_hold_yet_is_planned_again() {
    let text = roster_text(3, |_| "Smith".into());
    let mut created = Memory::default();
    plan_text(&text, LedgerIndex::default(), &mut created, 0);
    // The roster asked for "Jones" last night (remembered) but that update failed: the
    // platform still holds "Smith".
    let wanted = roster_text(3, |i| if i == 1 { "Jones" } else { "Smith" }.into());
    let (index, mut ledger) = provisioned(&created);
    plan_text(&wanted, index, &mut ledger, 0);
    let asked = ledger.memos["E001"];
    let (mut index, mut ledger) = provisioned(&created);
    let known = index.get_mut(&fingerprint("E001")).unwrap();
    *known = Known::new(
        known.profile_hash,
        known.content_hash,
        true,
        true,
        Some(asked),
    );
    assert_eq!(
        known.settled_digest, 0,
        "a memo the platform does not match"
    );
    plan_text(&wanted, index, &mut ledger, 3);
    assert_eq!(kinds(&ledger), vec![("E001".to_owned(), OpKind::Update)]);
}

#[test]
fn a_key_found_twice_withdraws_its_ops_and_rejects_every_row() {
    let (index, mut memory) = ledger_of(&[]);
    let mut second = desired("D");
    second.line = 5;
    let mut planner = Planner::new(index, &mut memory);
    for row in [desired("D"), desired("E"), second] {
        planner.row(Ok(row), None).unwrap();
    }
    let outcome = planner
        .finish(
            |lines| {
                assert_eq!(lines.len(), 2, "both rows of D are read again");
                Ok(lines
                    .iter()
                    .map(|&l| {
                        (
                            l,
                            (
                                format!("row {l}"),
                                "D".to_owned(),
                                "d@example.com".to_owned(),
                            ),
                        )
                    })
                    .collect())
            },
            3,
        )
        .unwrap();
    assert_eq!(kinds(&memory), vec![("E".to_owned(), OpKind::Create)]);
    assert_eq!(outcome.plan.counts.get(&OpKind::Create), Some(&1));
    assert_eq!(outcome.rejects.len(), 2);
    assert_eq!(outcome.valid, 1);
}

#[test]
fn a_known_key_found_twice_is_refused_and_left_alone() {
    let (index, mut memory) = ledger_of(&[desired("K"), desired("L")]);
    let mut changed = desired("K");
    changed.last_name = "Changed".into();
    let mut again = desired("K");
    again.line = 7;
    let mut planner = Planner::new(index, &mut memory);
    for row in [changed, desired("L"), again] {
        planner.row(Ok(row), None).unwrap();
    }
    let outcome = planner
        .finish(
            |lines| {
                let mut sorted: Vec<u64> = lines.iter().copied().collect();
                sorted.sort_unstable();
                assert_eq!(sorted, vec![2, 7], "both rows of K are read again");
                Ok(lines
                    .iter()
                    .map(|&l| {
                        (
                            l,
                            (
                                format!("row {l}"),
                                "K".to_owned(),
                                "k@example.com".to_owned(),
                            ),
                        )
                    })
                    .collect())
            },
            3,
        )
        .unwrap();
    assert!(
        memory.ops.is_empty(),
        "the update of K is withdrawn: {:?}",
        kinds(&memory)
    );
    assert_eq!(outcome.rejects.len(), 2);
    assert_eq!(
        outcome.plan.deactivations(),
        0,
        "K is not deactivated either"
    );
}

#[test]
fn the_threshold_refuses_unless_allowed() {
    use crate::safety::Threshold;
    let users: Vec<DesiredUser> = (0..10).map(|i| desired(&format!("U{i}"))).collect();
    let (index, mut memory) = ledger_of(&users);
    let outcome = run(
        index,
        &mut memory,
        users[..5].iter().cloned().map(Ok).collect(),
    );
    let plan = outcome.plan;
    assert_eq!(plan.deactivations(), 5);
    let strict = Safety {
        max_deactivations: Threshold::Percent(10.0),
        max_deactivations_floor: 0,
        ..Safety::default()
    };
    let refused = plan
        .check_threshold(
            &strict,
            &Allowances {
                deactivations: None,
                updates: None,
                reenrollments: None,
            },
        )
        .unwrap_err();
    assert_eq!(
        refused.breaches,
        vec![Breach {
            kind: OpKind::Deactivate,
            planned: 5,
            limit: 1,
            setting: strict.deactivations_shown(),
        }]
    );
    assert!(
        refused
            .to_string()
            .ends_with("run again with --allow-deactivations 5"),
        "{refused}"
    );
    assert!(
        plan.check_threshold(
            &strict,
            &Allowances {
                deactivations: Some(4),
                updates: None,
                reenrollments: None
            }
        )
        .is_err()
    );
    assert!(
        plan.check_threshold(
            &strict,
            &Allowances {
                deactivations: Some(5),
                updates: None,
                reenrollments: None
            }
        )
        .is_ok()
    );
    let counted = Safety {
        max_deactivations: Threshold::Count(5),
        ..Safety::default()
    };
    assert!(
        plan.check_threshold(
            &counted,
            &Allowances {
                deactivations: None,
                updates: None,
                reenrollments: None
            }
        )
        .is_ok()
    );
    // Half of the 10 leave: the default floor (3) never lets half go.
    assert!(
        plan.check_threshold(
            &Safety::default(),
            &Allowances {
                deactivations: None,
                updates: None,
                reenrollments: None
            }
        )
        .is_err()
    );
}

#[test]
fn updates_over_max_updates_are_refused_unless_allowed() {
    use crate::safety::Threshold;
    let users: Vec<DesiredUser> = (0..20).map(|i| desired(&format!("U{i}"))).collect();
    let (index, mut memory) = ledger_of(&users);
    let shifted: Vec<_> = users
        .iter()
        .map(|u| {
            let mut u = u.clone();
            u.first_name = std::mem::take(&mut u.last_name);
            u
        })
        .map(Ok)
        .collect();
    let plan = run(index, &mut memory, shifted).plan;
    assert_eq!(plan.updates(), 20);
    let refused = plan
        .check_threshold(
            &Safety::default(),
            &Allowances {
                deactivations: None,
                updates: None,
                reenrollments: None,
            },
        )
        .unwrap_err();
    assert_eq!(
        (refused.breaches[0].kind, refused.breaches[0].limit),
        (OpKind::Update, 15)
    );
    assert!(refused.to_string().contains("--allow-updates 20"));
    assert!(
        plan.check_threshold(
            &Safety::default(),
            &Allowances {
                deactivations: None,
                updates: Some(20),
                reenrollments: None
            }
        )
        .is_ok()
    );
    let off = Safety {
        max_updates: None,
        ..Safety::default()
    };
    assert!(
        plan.check_threshold(
            &off,
            &Allowances {
                deactivations: None,
                updates: None,
                reenrollments: None
            }
        )
        .is_ok()
    );
    let counted = Safety {
        max_updates: Some(Threshold::Count(19)),
        ..Safety::default()
    };
    assert!(
        plan.check_threshold(
            &counted,
            &Allowances {
                deactivations: None,
                updates: None,
                reenrollments: None
            }
        )
        .is_err()
    );
}

/// Issue 13: a re-enrollment is planned only for a valid, active row that still assigns the
/// item the platform holds; with the learner's other ops, after them; never for a row
/// rejected that night, a learner who left, or an item removed tonight.
#[test]
fn a_due_recertification_is_planned_only_where_the_row_still_assigns_the_item() {
    let course = Grant {
        id: "c1".into(),
        kind: "course".into(),
    };
    let other = Grant {
        id: "c2".into(),
        kind: "course".into(),
    };
    let keys = ["SAME", "MOVED", "DROPPED", "LEFT", "REJECTED", "GONE"];
    let users: Vec<DesiredUser> = keys.iter().map(|k| desired(k)).collect();
    let (index, mut memory) = ledger_of(&users);
    let due: Vec<recertify::Due> = keys
        .iter()
        .map(|k| recertify::Due {
            key: (*k).into(),
            items: vec![(course.clone(), 1_700_000_000_000)],
        })
        .collect();
    let mut moved = desired("MOVED");
    moved.last_name = "Renamed".into();
    moved.content = vec![course.clone(), other.clone()].into();
    let mut dropped = desired("DROPPED");
    dropped.content = vec![other].into();
    let mut left = desired("LEFT");
    left.active = false;
    let rows = vec![
        Ok(desired("SAME")),
        Ok(moved),
        Ok(dropped),
        Ok(left),
        Err(Reject {
            line: 6,
            column: "email".into(),
            reason: "bad".into(),
            original: "REJECTED,...".into(),
            key: Some("REJECTED".into()),
            email: None,
        }),
    ];
    let count = rows.len() as u64;
    let mut planner = Planner::new(index, &mut memory).recertify(due);
    for row in rows {
        planner.row(row, None).unwrap();
    }
    let outcome = planner.finish(|_| Ok(HashMap::new()), count).unwrap();
    assert_eq!(outcome.plan.reenrollments(), 2);
    let planned: Vec<(&str, OpKind)> = memory
        .ops
        .iter()
        .map(|o| (o.key.as_str(), o.kind))
        .collect();
    assert_eq!(
        planned,
        [
            ("SAME", OpKind::ReEnroll),
            ("MOVED", OpKind::Update),
            ("MOVED", OpKind::Enroll),
            ("MOVED", OpKind::ReEnroll),
            ("DROPPED", OpKind::Enroll),
            ("DROPPED", OpKind::Remove),
            ("LEFT", OpKind::Deactivate),
            ("GONE", OpKind::Deactivate),
        ]
    );
    let reenroll = memory.ops.iter().find(|o| o.key == "SAME").unwrap();
    assert_eq!(reenroll.payload.items, [course]);
    assert_eq!(reenroll.payload.completions, [1_700_000_000_000]);
    assert_eq!(reenroll.payload.remote_id.as_deref(), Some("uuid-SAME"));
}
