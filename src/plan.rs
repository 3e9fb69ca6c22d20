//! The plan: what must change on the platform so that it matches the roster.
//!
//! Owns the diff of desired users against the ledger's last confirmed state, the fingerprints
//! that make a no-change night cheap, and the deactivation safety threshold. Pure: it reads
//! no file and writes nothing; the caller stores the ops. It must never plan a change for a
//! key whose row was rejected, nor deactivate one.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::config::Threshold;
use crate::ingest::roster::{DesiredUser, Roster};
use crate::ledger::{LedgerUser, NewOp, OpKind, OpPayload};
use crate::targets::praesidium::model::{
    Attributes, ContentRef, Context, Principal, STATUS_ACTIVE, STATUS_INACTIVE, System, User,
};

/// The plan refused by the safety threshold (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to deactivate {planned} users: the limit is {limit} ({active} active in the ledger, \
     safety.max_deactivations); if this is intended, run again with --allow-deactivations {planned}"
)]
pub struct ThresholdExceeded {
    pub planned: usize,
    pub limit: u64,
    pub active: usize,
}

/// The ops of one plan and what they amount to.
#[derive(Debug, Default)]
pub struct Plan {
    pub ops: Vec<NewOp>,
    pub counts: BTreeMap<OpKind, usize>,
    /// Active users with a platform UUID in the ledger before this plan.
    pub active_before: usize,
    /// Roster users that need nothing.
    pub unchanged: usize,
    /// New keys whose row says inactive: nobody to create.
    pub skipped_inactive: usize,
    /// Ledger users absent from the roster but kept because a rejected row names them.
    pub protected: usize,
}

impl Plan {
    pub fn deactivations(&self) -> usize {
        self.counts.get(&OpKind::Deactivate).copied().unwrap_or(0)
    }

    fn push(&mut self, key: &str, kind: OpKind, payload: OpPayload) {
        let seq = match kind {
            OpKind::Create => 0,
            OpKind::Update => 1,
            OpKind::Enroll => 2,
            OpKind::Remove => 3,
            OpKind::ReEnroll => 4,
            OpKind::Deactivate => 5,
        };
        *self.counts.entry(kind).or_default() += 1;
        self.ops.push(NewOp {
            key: key.to_owned(),
            seq,
            kind,
            payload,
        });
    }

    /// Refuses a plan that deactivates more than the threshold allows, unless the operator
    /// named at least that many with `--allow-deactivations`.
    pub fn check_threshold(
        &self,
        threshold: Threshold,
        allow: Option<u64>,
    ) -> Result<(), ThresholdExceeded> {
        let planned = self.deactivations();
        let limit = threshold.limit(self.active_before as u64);
        if planned as u64 <= limit || allow.is_some_and(|n| planned as u64 <= n) {
            Ok(())
        } else {
            Err(ThresholdExceeded {
                planned,
                limit,
                active: self.active_before,
            })
        }
    }
}

/// 64-bit FNV-1a: a fingerprint that, unlike `DefaultHasher`, is the same in every build, so a
/// new rostersync does not see every user as changed.
fn fnv1a(parts: &[&str]) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0x1f)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash as i64
}

/// Fingerprint of everything an update sends except status (handled on its own).
pub fn profile_hash(user: &DesiredUser) -> i64 {
    let locations = user.locations.join(";");
    fnv1a(&[
        &user.key,
        &user.first_name,
        &user.last_name,
        &user.email,
        &user.role,
        &user.client,
        &locations,
        user.position.as_deref().unwrap_or(""),
        user.program_type.as_deref().unwrap_or(""),
    ])
}

/// Fingerprint of a sorted content list.
pub fn content_hash(items: &[ContentRef]) -> i64 {
    let parts: Vec<&str> = items
        .iter()
        .flat_map(|c| [c.uuid.as_str(), c.kind.as_str()])
        .collect();
    fnv1a(&parts)
}

/// The user object the API receives for a desired user.
pub fn user_object(user: &DesiredUser, active: bool, content: Option<Vec<ContentRef>>) -> User {
    User {
        uuid: None,
        principal: Principal {
            first_name: Some(user.first_name.clone()),
            last_name: Some(user.last_name.clone()),
            email: Some(user.email.clone()),
            client_external_id: Some(user.key.clone()),
        },
        system: System {
            status: Some(
                if active {
                    STATUS_ACTIVE
                } else {
                    STATUS_INACTIVE
                }
                .to_owned(),
            ),
            role: Some(user.role.clone()),
        },
        person: serde_json::Map::new(),
        context: Context {
            client: Some(user.client.clone()),
            locations: user.locations.clone(),
            content,
        },
        attributes: Attributes {
            position: user.position.clone(),
            program_type: user.program_type.clone(),
        },
    }
}

/// Diffs the roster against the ledger.
pub fn diff(roster: &Roster, ledger: &HashMap<String, LedgerUser>) -> Plan {
    let mut plan = Plan {
        active_before: ledger
            .values()
            .filter(|u| u.uuid.is_some() && u.active)
            .count(),
        ..Plan::default()
    };
    for user in &roster.users {
        diff_one(&mut plan, user, ledger.get(&user.key));
    }
    let present: HashSet<&str> = roster.users.iter().map(|u| u.key.as_str()).collect();
    let protected_keys = roster.protected_keys();
    let protected_emails = roster.protected_emails();
    let mut absent: Vec<(&String, &LedgerUser)> = ledger
        .iter()
        .filter(|(key, user)| user.active && user.uuid.is_some() && !present.contains(key.as_str()))
        .collect();
    absent.sort_by(|a, b| a.0.cmp(b.0));
    for (key, user) in absent {
        if protected_keys.contains(key.as_str()) || protected_emails.contains(user.email.as_str()) {
            plan.protected += 1;
            continue;
        }
        plan.push(
            key,
            OpKind::Deactivate,
            OpPayload {
                uuid: user.uuid.clone(),
                user: None,
                items: vec![],
                profile_hash: 0,
            },
        );
    }
    plan
}

fn diff_one(plan: &mut Plan, user: &DesiredUser, known: Option<&LedgerUser>) {
    let Some((known, uuid)) = known.and_then(|k| k.uuid.clone().map(|uuid| (k, uuid))) else {
        if user.active {
            let payload = OpPayload {
                uuid: None,
                user: Some(user_object(user, true, Some(user.content.clone()))),
                items: vec![],
                profile_hash: profile_hash(user),
            };
            plan.push(&user.key, OpKind::Create, payload);
        } else {
            plan.skipped_inactive += 1;
        }
        return;
    };
    let before = plan.ops.len();
    if !user.active {
        if known.active {
            plan.push(
                &user.key,
                OpKind::Deactivate,
                OpPayload {
                    uuid: Some(uuid),
                    user: None,
                    items: vec![],
                    profile_hash: 0,
                },
            );
        }
    } else {
        let hash = profile_hash(user);
        if hash != known.profile_hash || !known.active {
            let payload = OpPayload {
                uuid: Some(uuid.clone()),
                user: Some(user_object(user, true, None)),
                items: vec![],
                profile_hash: hash,
            };
            plan.push(&user.key, OpKind::Update, payload);
        }
        if content_hash(&user.content) != known.content_hash {
            let enrolled = known.content();
            let added: Vec<ContentRef> = user
                .content
                .iter()
                .filter(|c| !enrolled.iter().any(|e| e.uuid == c.uuid))
                .cloned()
                .collect();
            let removed: Vec<ContentRef> = enrolled
                .iter()
                .filter(|e| !user.content.iter().any(|c| c.uuid == e.uuid))
                .cloned()
                .collect();
            for (kind, items) in [(OpKind::Enroll, added), (OpKind::Remove, removed)] {
                if !items.is_empty() {
                    plan.push(
                        &user.key,
                        kind,
                        OpPayload {
                            uuid: Some(uuid.clone()),
                            user: None,
                            items,
                            profile_hash: 0,
                        },
                    );
                }
            }
        }
    }
    if plan.ops.len() == before {
        plan.unchanged += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::roster::Reject;
    use crate::ledger::content_record;

    fn desired(key: &str) -> DesiredUser {
        DesiredUser {
            key: key.into(),
            first_name: "A".into(),
            last_name: "B".into(),
            email: format!("{key}@example.com").to_lowercase(),
            role: "Learner".into(),
            active: true,
            client: "c".into(),
            locations: vec!["l1".into()],
            position: None,
            program_type: None,
            content: vec![ContentRef {
                uuid: "c1".into(),
                kind: "course".into(),
            }],
            line: 2,
        }
    }

    fn known(user: &DesiredUser) -> LedgerUser {
        let (content_hash, content_json) = content_record(&user.content);
        LedgerUser {
            uuid: Some(format!("uuid-{}", user.key)),
            email: user.email.clone(),
            profile_hash: profile_hash(user),
            active: user.active,
            content_hash,
            content_json,
        }
    }

    fn roster(users: Vec<DesiredUser>) -> Roster {
        Roster {
            rows: users.len() as u64,
            users,
            rejects: vec![],
        }
    }

    fn kinds(plan: &Plan) -> Vec<(String, OpKind)> {
        plan.ops.iter().map(|o| (o.key.clone(), o.kind)).collect()
    }

    #[test]
    fn converged_users_need_nothing() {
        let users = vec![desired("A"), desired("B")];
        let ledger = users.iter().map(|u| (u.key.clone(), known(u))).collect();
        let plan = diff(&roster(users), &ledger);
        assert!(plan.ops.is_empty());
        assert_eq!(plan.unchanged, 2);
    }

    #[test]
    fn one_change_of_every_kind_gives_exactly_one_op_each() {
        let base: Vec<DesiredUser> = ["NEW", "CHG", "ADD", "DEL", "OFF", "BACK", "GONE"]
            .iter()
            .map(|k| desired(k))
            .collect();
        let mut ledger: HashMap<String, LedgerUser> = base
            .iter()
            .filter(|u| u.key != "NEW")
            .map(|u| (u.key.clone(), known(u)))
            .collect();
        ledger.get_mut("BACK").unwrap().active = false;
        let mut now = base.clone();
        now.retain(|u| u.key != "GONE");
        for user in &mut now {
            match user.key.as_str() {
                "CHG" => user.last_name = "Changed".into(),
                "ADD" => user.content.push(ContentRef {
                    uuid: "c2".into(),
                    kind: "course".into(),
                }),
                "DEL" => user.content.clear(),
                "OFF" => user.active = false,
                _ => {}
            }
        }
        let plan = diff(&roster(now), &ledger);
        let mut got = kinds(&plan);
        got.sort();
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
        assert_eq!(got, expected);
        let enroll = plan.ops.iter().find(|o| o.kind == OpKind::Enroll).unwrap();
        assert_eq!(
            enroll.payload.items,
            vec![ContentRef {
                uuid: "c2".into(),
                kind: "course".into()
            }]
        );
        let back = plan.ops.iter().find(|o| o.key == "BACK").unwrap();
        assert_eq!(
            back.payload.user.as_ref().unwrap().system.status.as_deref(),
            Some("active")
        );
    }

    #[test]
    fn rejected_rows_protect_their_users_from_deactivation() {
        let users = [desired("A"), desired("B"), desired("C")];
        let ledger = users.iter().map(|u| (u.key.clone(), known(u))).collect();
        let reject = |key: Option<&str>, email: Option<&str>| Reject {
            line: 3,
            column: "email".into(),
            reason: "bad".into(),
            original: String::new(),
            key: key.map(Into::into),
            email: email.map(Into::into),
        };
        let mut now = roster(vec![desired("A")]);
        now.rejects = vec![reject(Some("B"), None), reject(None, Some("c@example.com"))];
        let plan = diff(&now, &ledger);
        assert!(plan.ops.is_empty(), "{:?}", kinds(&plan));
        assert_eq!(plan.protected, 2);
    }

    #[test]
    fn the_threshold_refuses_unless_allowed() {
        let users: Vec<DesiredUser> = (0..10).map(|i| desired(&format!("U{i}"))).collect();
        let ledger = users.iter().map(|u| (u.key.clone(), known(u))).collect();
        let plan = diff(&roster(users[..5].to_vec()), &ledger);
        assert_eq!(plan.deactivations(), 5);
        let refused = plan
            .check_threshold(Threshold::Percent(10.0), None)
            .unwrap_err();
        assert_eq!((refused.planned, refused.limit), (5, 1));
        assert!(
            plan.check_threshold(Threshold::Percent(10.0), Some(4))
                .is_err()
        );
        assert!(
            plan.check_threshold(Threshold::Percent(10.0), Some(5))
                .is_ok()
        );
        assert!(plan.check_threshold(Threshold::Count(5), None).is_ok());
    }

    #[test]
    fn fingerprints_are_stable_across_builds() {
        // FNV-1a 64 of "a\x1fb\x1f", computed independently. If this changes, every ledger
        // in the field sees every user as changed and the next night updates everyone.
        assert_eq!(fnv1a(&["a", "b"]) as u64, 0xe8bc_b182_3051_3c4a);
        assert_ne!(fnv1a(&["ab", ""]), fnv1a(&["a", "b"]));
    }
}
