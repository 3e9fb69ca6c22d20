//! `plan.csv`: who a plan affects and how, written in the run's folder by every plan, dry run,
//! refused plan and run, before anything is sent.
//!
//! One row per op: `external_id, op, first_name, last_name, email, changes`. The name and
//! email columns say who (as the op will leave them; for a deactivation, removal or
//! enrolment, as the ledger last confirmed them), so that an operator can filter on the op
//! and find a person; `changes` says what, field by field, `before → after`, where the before
//! value is the ledger's last confirmed state (what rostersync last sent and the platform
//! acknowledged). A value the ledger does not hold is written `(not recorded)`, never guessed.
//! UUIDs are shown as the catalog names them (client and location names, content SKUs).
//!
//! Owns the file's format and the handful of lines printed from it. Every cell goes through
//! [`crate::report::guard`] as in the other reports; the file is created 0600, never through
//! a symlink ([`crate::fsmode::create_private_new`]). It must never hold more than a handful
//! of ops in memory: the plan is streamed into the file while it is made
//! ([`write_while`]), each op as the plan transaction stores it; only a plan that withdrew
//! ops it had stored (a key found on two rows) is read back from the transaction, so that
//! the file never lists an op the plan does not hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use anyhow::{Context, Result, anyhow};
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::ingest::catalog::Catalog;
use crate::ledger::{Before, OpKind, PlanTx, PlannedOp, PushedOp};
use crate::model::{Grant, Profile};
use crate::report::guarded;

/// Ops of each kind kept to be printed (and put in `plan --json`).
pub const FIRST_PER_KIND: usize = 5;

/// Shown where the ledger holds no value for a field.
pub const NOT_RECORDED: &str = "(not recorded)";

const HEADER: [&str; 6] = [
    "external_id",
    "op",
    "first_name",
    "last_name",
    "email",
    "changes",
];

/// One row of plan.csv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanLine {
    pub external_id: String,
    pub op: &'static str,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub changes: String,
}

impl PlanLine {
    /// The line as printed under the plan (roster text made safe for a terminal).
    pub fn shown(&self) -> String {
        let name = format!("{} {}", self.first_name, self.last_name);
        crate::human::text(&format!(
            "{:<10} {:<10} {} <{}>  {}",
            self.op,
            self.external_id,
            name.trim(),
            self.email,
            self.changes
        ))
    }
}

/// What was written: where, and the first few ops of each kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanFile {
    pub path: PathBuf,
    /// Ops written, by kind.
    pub written: BTreeMap<&'static str, u64>,
    /// The first [`FIRST_PER_KIND`] of each kind, in plan order.
    pub first: BTreeMap<&'static str, Vec<PlanLine>>,
}

/// The catalog's names by exact UUID, looked up once per op field: the catalog's own lookups
/// fold their key first, which a million-op plan would pay for several times an op.
struct Names<'c> {
    clients: FxHashMap<&'c str, &'c str>,
    locations: FxHashMap<&'c str, &'c str>,
    content: FxHashMap<&'c str, &'c str>,
}

impl<'c> Names<'c> {
    fn new(catalog: &'c Catalog) -> Names<'c> {
        Names {
            clients: catalog
                .clients
                .iter()
                .map(|c| (c.uuid.as_str(), c.name.as_str()))
                .collect(),
            locations: catalog
                .locations
                .iter()
                .map(|l| (l.uuid.as_str(), l.name.as_str()))
                .collect(),
            content: catalog
                .content
                .iter()
                .map(|c| (c.uuid.as_str(), c.sku.as_str()))
                .collect(),
        }
    }

    /// The name for `uuid` in `map`: exact first (the ledger holds the catalog's own
    /// spelling), else through the catalog's folding lookup, else the UUID itself.
    fn of(
        map: &FxHashMap<&str, &str>,
        uuid: &str,
        fallback: impl Fn() -> Option<String>,
    ) -> String {
        map.get(uuid)
            .map(|name| (*name).to_owned())
            .or_else(fallback)
            .unwrap_or_else(|| uuid.to_owned())
    }
}

/// Writes plan.csv at `path` while `plan` makes the plan in `tx`: every batch of ops the
/// transaction stores is passed to a thread of its own that describes and writes them, so
/// that neither the planner's thread nor the ledger's writer waits for the file, and the
/// plan is not read back from the ledger afterwards. If the plan withdrew ops it had stored
/// ([`PlanTx::withdrew_ops`]), the file is written again from the transaction. When `plan`
/// fails, the file is removed: it lists a plan that was never made.
pub fn write_while<T>(
    path: &Path,
    catalog: &Catalog,
    tx: &mut PlanTx,
    plan: impl FnOnce(&mut PlanTx) -> Result<T>,
) -> Result<(T, PlanFile)> {
    let streamed = std::thread::scope(|scope| {
        // Two batches on their way at most: the file cannot fall far behind the ledger.
        let (to_file, stored) = sync_channel::<Vec<PushedOp>>(2);
        let writing = scope.spawn(move || {
            write(path, catalog, |each| {
                for batch in stored {
                    for op in batch {
                        each(op.planned())?;
                    }
                }
                Ok(())
            })
        });
        let planned = tx.forward_ops(to_file).and_then(|()| plan(tx));
        // Closes the channel whatever happened, so that the thread ends before it is joined;
        // a writer that stopped has closed it already.
        let stopped = tx.stop_forwarding();
        let written = writing
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the plan.csv writer panicked")));
        let planned = planned?;
        stopped?;
        Ok((planned, written?))
    });
    let (planned, file) = match streamed {
        Ok(done) => done,
        Err(error) => {
            let _ = std::fs::remove_file(path);
            return Err(error);
        }
    };
    if !tx.withdrew_ops() {
        return Ok((planned, file));
    }
    let file = write(path, catalog, |each| tx.for_each_op(each))?;
    Ok((planned, file))
}

/// Writes plan.csv at `path` from the ops `source` hands over (see
/// [`crate::ledger::PlanTx::for_each_op`]).
pub fn write(
    path: &Path,
    catalog: &Catalog,
    source: impl FnOnce(&mut dyn FnMut(PlannedOp) -> Result<()>) -> Result<()>,
) -> Result<PlanFile> {
    let context = || format!("cannot write {}", path.display());
    // A large buffer: a million-op plan is a file of a few hundred megabytes.
    let mut writer = csv::WriterBuilder::new()
        .buffer_capacity(1 << 18)
        .from_writer(crate::fsmode::create_private_new(path)?);
    writer.write_record(HEADER).with_context(context)?;
    let mut file = PlanFile {
        path: path.to_path_buf(),
        ..PlanFile::default()
    };
    let names = Names::new(catalog);
    source(&mut |op| {
        let line = describe_with(&op, catalog, &names);
        writer
            .write_record(
                [
                    &line.external_id,
                    line.op,
                    &line.first_name,
                    &line.last_name,
                    &line.email,
                    &line.changes,
                ]
                .map(|cell| guarded(cell))
                .iter()
                .map(|cell| cell.as_bytes()),
            )
            .with_context(context)?;
        *file.written.entry(line.op).or_default() += 1;
        let first = file.first.entry(line.op).or_default();
        if first.len() < FIRST_PER_KIND {
            first.push(line);
        }
        Ok(())
    })?;
    writer.flush().with_context(context)?;
    Ok(file)
}

/// The profile fields an update may change, in the order they are listed.
const FIELDS: [&str; 8] = [
    "first_name",
    "last_name",
    "email",
    "role",
    "client",
    "locations",
    "position",
    "program_type",
];

/// A profile field as shown: names for UUIDs, lists sorted and joined by ", ".
fn field(user: &Profile, name: &str, catalog: &Catalog, names: &Names<'_>) -> String {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    match name {
        "first_name" => user.first_name.clone(),
        "last_name" => user.last_name.clone(),
        "email" => user.email.clone(),
        "role" => user.role.clone(),
        "client" if user.client.is_empty() => String::new(),
        "client" => Names::of(&names.clients, &user.client, || {
            catalog.client(&user.client).map(|c| c.name.clone())
        }),
        "locations" => {
            let mut shown: Vec<String> = user
                .locations
                .iter()
                .map(|uuid| {
                    Names::of(&names.locations, uuid, || {
                        catalog.location_by_uuid(uuid).map(|l| l.name.clone())
                    })
                })
                .collect();
            shown.sort();
            shown.join(", ")
        }
        "position" => text(&user.position),
        "program_type" => text(&user.program_type),
        _ => String::new(),
    }
}

/// Content items as shown: SKUs where the catalog knows them, sorted.
fn content(items: &[Grant], catalog: &Catalog, names: &Names<'_>) -> String {
    let mut shown: Vec<String> = items
        .iter()
        .map(|item| {
            Names::of(&names.content, &item.id, || {
                catalog.content_by_uuid(&item.id).map(|c| c.sku.clone())
            })
        })
        .collect();
    shown.sort();
    shown.join(", ")
}

fn or_empty(value: String) -> String {
    if value.is_empty() {
        "(empty)".to_owned()
    } else {
        value
    }
}

/// Who and what one op changes.
pub fn describe(op: &PlannedOp, catalog: &Catalog) -> PlanLine {
    describe_with(op, catalog, &Names::new(catalog))
}

fn describe_with(op: &PlannedOp, catalog: &Catalog, names: &Names<'_>) -> PlanLine {
    let before_profile = op.before.as_ref().and_then(|b| b.profile.as_ref());
    // Who: the person as the op leaves them, else as the ledger last confirmed them.
    let who = op.payload.profile.as_ref().or(before_profile);
    let name =
        |f: &str| who.map_or_else(|| NOT_RECORDED.to_owned(), |u| field(u, f, catalog, names));
    let items = || content(&op.payload.items, catalog, names);
    let changes = match op.kind {
        OpKind::Create => created(op.payload.profile.as_ref(), catalog, names),
        OpKind::Update => updated(
            op.before.as_ref(),
            op.payload.profile.as_ref(),
            catalog,
            names,
        ),
        // A target without catalogs grants groups and ends an account by deleting it.
        OpKind::Deactivate if catalog.groups => "account deleted".to_owned(),
        OpKind::Deactivate => "status: active → inactive".to_owned(),
        OpKind::Enroll if catalog.groups => format!("adds groups: {}", items()),
        OpKind::Remove if catalog.groups => format!("removes groups: {}", items()),
        OpKind::Enroll => format!("adds content: {}", items()),
        OpKind::Remove => format!("removes content: {}", items()),
        OpKind::ReEnroll => format!(
            "re-enrols content: {}{}",
            items(),
            completed(&op.payload.completions)
        ),
        OpKind::Remind => "invitation sent again (not accepted yet)".to_owned(),
    };
    PlanLine {
        external_id: op.key.clone(),
        op: op.kind.as_str(),
        first_name: name("first_name"),
        last_name: name("last_name"),
        email: name("email"),
        changes,
    }
}

/// Why a re-enrollment is planned: the completions whose expiry it answers.
fn completed(completions: &[i64]) -> String {
    let days: Vec<String> = completions
        .iter()
        .filter_map(|ms| chrono::DateTime::<chrono::Utc>::from_timestamp_millis(*ms))
        .map(|at| at.format("%Y-%m-%d").to_string())
        .collect();
    if days.is_empty() {
        String::new()
    } else {
        format!(" (recertification: last completed {})", days.join(", "))
    }
}

/// A new person: everything they are created with beyond their name and email, as
/// `new user; field: value; ...`. Built in place: a first import describes a million.
fn created(user: Option<&Profile>, catalog: &Catalog, names: &Names<'_>) -> String {
    let Some(user) = user else {
        return NOT_RECORDED.to_owned();
    };
    let mut shown = String::with_capacity(192);
    shown.push_str("new user");
    let part = |shown: &mut String, name: &str, value: &str| {
        shown.push_str("; ");
        shown.push_str(name);
        shown.push_str(": ");
        shown.push_str(value);
    };
    for name in &FIELDS[3..] {
        let value = field(user, name, catalog, names);
        if !value.is_empty() {
            part(&mut shown, name, &value);
        }
    }
    let items = user.grants.as_deref().unwrap_or_default();
    if !items.is_empty() {
        let label = if catalog.groups { "groups" } else { "content" };
        part(&mut shown, label, &content(items, catalog, names));
    }
    // As the parts joined after "new user; " would be, with that separator trimmed off the
    // end (all of it when there are no parts).
    let end = shown.trim_end_matches("; ").len();
    shown.truncate(end);
    shown
}

/// Each field an update changes, `before → after`.
fn updated(
    before: Option<&Before>,
    after: Option<&Profile>,
    catalog: &Catalog,
    names: &Names<'_>,
) -> String {
    let Some(after) = after else {
        return NOT_RECORDED.to_owned();
    };
    let mut parts = Vec::new();
    let status = if after.active { "active" } else { "inactive" };
    match before {
        Some(before) if !before.active && after.active => {
            parts.push(format!("status: inactive → {status}"));
        }
        Some(_) => {}
        None => parts.push(format!("status: {NOT_RECORDED} → {status}")),
    }
    let profile = before.and_then(|b| b.profile.as_ref());
    for name in FIELDS {
        let new = field(after, name, catalog, names);
        match profile {
            Some(old) => {
                let old = field(old, name, catalog, names);
                if old != new {
                    parts.push(format!("{name}: {} → {}", or_empty(old), or_empty(new)));
                }
            }
            None => parts.push(format!("{name}: {NOT_RECORDED} → {}", or_empty(new))),
        }
    }
    if parts.is_empty() {
        // The fingerprints differ but no field shown does (a field rostersync does not list,
        // or a ledger written by an older version): say so rather than show nothing.
        "profile sent again (no listed field differs from the ledger's record)".to_owned()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::OpPayload;

    fn user(first: &str, last: &str, email: &str, location: &str) -> Profile {
        let catalog = crate::samples::catalog();
        let client = catalog.client("Northwind Camps").unwrap().uuid.clone();
        let location = catalog.location(location, &client).unwrap().uuid.clone();
        Profile {
            key: "E1".into(),
            first_name: first.into(),
            last_name: last.into(),
            email: email.into(),
            role: "Learner".into(),
            active: true,
            client,
            locations: vec![location],
            ..Profile::default()
        }
    }

    fn op(kind: OpKind, after: Option<Profile>, before: Option<Before>) -> PlannedOp {
        PlannedOp {
            key: "E1".into(),
            kind,
            payload: OpPayload {
                remote_id: None,
                profile: after,
                items: vec![],
                profile_hash: 0,
                row: None,
                completions: Vec::new(),
            },
            before,
        }
    }

    fn sku(sku: &str) -> Grant {
        let item = crate::samples::catalog().content_item(sku).unwrap().clone();
        Grant {
            id: item.uuid,
            kind: item.kind.as_api_str().into(),
        }
    }

    #[test]
    fn an_update_lists_each_changed_field_before_and_after() {
        let catalog = crate::samples::catalog();
        let old = user("Ana", "Lima", "ana@x.com", "Lakeside Camp");
        let new = user("Ana", "Moreira", "ana.m@x.com", "Head Office");
        let before = Before {
            profile: Some(old),
            active: true,
            content: vec![],
        };
        let line = describe(&op(OpKind::Update, Some(new), Some(before)), &catalog);
        assert_eq!(
            line.changes,
            "last_name: Lima → Moreira; email: ana@x.com → ana.m@x.com; \
             locations: Lakeside Camp → Head Office"
        );
        assert_eq!(
            (line.first_name.as_str(), line.email.as_str()),
            ("Ana", "ana.m@x.com")
        );
    }

    #[test]
    fn a_reactivation_says_so_and_an_unknown_before_is_not_invented() {
        let catalog = crate::samples::catalog();
        let same = user("Bo", "Li", "bo@x.com", "Lakeside Camp");
        let before = Before {
            profile: Some(same.clone()),
            active: false,
            content: vec![],
        };
        let back = describe(
            &op(OpKind::Update, Some(same.clone()), Some(before)),
            &catalog,
        );
        assert_eq!(back.changes, "status: inactive → active");
        let unreadable = Before {
            profile: None,
            active: true,
            content: vec![],
        };
        let unknown = describe(&op(OpKind::Update, Some(same), Some(unreadable)), &catalog);
        assert!(
            unknown
                .changes
                .starts_with("first_name: (not recorded) → Bo; last_name: (not recorded) → Li"),
            "{}",
            unknown.changes
        );
    }

    #[test]
    fn creates_deactivations_and_content_changes_say_who_and_what() {
        let catalog = crate::samples::catalog();
        let mut new = user("Cy", "Ng", "cy@x.com", "Lakeside Camp");
        new.grants = Some(vec![sku("SAFE-201"), sku("SAFE-101")]);
        let create = describe(&op(OpKind::Create, Some(new.clone()), None), &catalog);
        assert_eq!(
            create.changes,
            "new user; role: Learner; client: Northwind Camps; locations: Lakeside Camp; \
             content: SAFE-101, SAFE-201"
        );
        let known = Before {
            profile: Some(new),
            active: true,
            content: vec![],
        };
        let gone = describe(&op(OpKind::Deactivate, None, Some(known.clone())), &catalog);
        assert_eq!(
            (
                gone.first_name.as_str(),
                gone.email.as_str(),
                gone.changes.as_str()
            ),
            ("Cy", "cy@x.com", "status: active → inactive")
        );
        let mut enroll = op(OpKind::Enroll, None, Some(known));
        enroll.payload.items = vec![sku("FA-100")];
        assert_eq!(describe(&enroll, &catalog).changes, "adds content: FA-100");
        let nobody = describe(&op(OpKind::Deactivate, None, None), &catalog);
        assert_eq!(nobody.email, NOT_RECORDED);
    }

    fn create(key: &str) -> crate::ledger::NewOp {
        let mut user = user("Ana", "Lima", "ana@x.com", "Lakeside Camp");
        user.key = key.into();
        crate::ledger::NewOp {
            key: key.into(),
            seq: 0,
            kind: OpKind::Create,
            payload: OpPayload {
                remote_id: None,
                profile: Some(user),
                items: vec![],
                profile_hash: 1,
                row: None,
                completions: Vec::new(),
            },
        }
    }

    fn keys_in(path: &Path) -> Vec<String> {
        csv::Reader::from_path(path)
            .unwrap()
            .records()
            .map(|r| r.unwrap()[0].to_owned())
            .collect()
    }

    /// Issue 11: plan.csv is written while the plan is made, from the ops as they are stored;
    /// an op withdrawn afterwards (its key found again further down) must not stay listed.
    #[test]
    fn ops_are_listed_as_stored_and_a_withdrawn_one_is_not() {
        use crate::plan::PlanIo;
        let catalog = crate::samples::catalog();
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = crate::ledger::Ledger::open(&dir.path().join("l.db")).unwrap();
        let run = ledger.begin_run("test").unwrap();
        let path = dir.path().join("plan.csv");
        let file = ledger
            .write_plan(run, |tx| {
                let (_, file) = write_while(&path, &catalog, tx, |tx| {
                    // More than a batch, so that some are written before the withdrawal.
                    for i in 0..5000 {
                        tx.push(create(&format!("E{i}")))?;
                    }
                    tx.retract(&["E7".to_owned()])
                })?;
                Ok(file)
            })
            .unwrap();
        let keys = keys_in(&path);
        assert_eq!(keys.len(), 4999);
        assert!(!keys.contains(&"E7".to_owned()));
        assert_eq!(file.written["create"], 4999);

        let run = ledger.begin_run("test").unwrap();
        let file = ledger
            .write_plan(run, |tx| {
                let (_, file) = write_while(&path, &catalog, tx, |tx| {
                    tx.push(create("F1"))?;
                    tx.push(create("F2"))
                })?;
                Ok(file)
            })
            .unwrap();
        assert_eq!(keys_in(&path), ["F1", "F2"]);
        assert_eq!(file.first["create"][1].external_id, "F2");
    }

    #[test]
    fn a_plan_that_fails_leaves_no_plan_csv() {
        use crate::plan::PlanIo;
        let catalog = crate::samples::catalog();
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = crate::ledger::Ledger::open(&dir.path().join("l.db")).unwrap();
        let run = ledger.begin_run("test").unwrap();
        let path = dir.path().join("plan.csv");
        let failed = ledger.write_plan(run, |tx| {
            write_while(&path, &catalog, tx, |tx| -> Result<()> {
                tx.push(create("G1"))?;
                anyhow::bail!("the roster changed while it was being read")
            })
        });
        assert!(failed.is_err());
        assert!(!path.exists());
    }

    #[test]
    fn the_file_is_csv_with_formula_cells_defused_and_a_few_lines_kept() {
        let catalog = crate::samples::catalog();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.csv");
        let evil = user("=HYPERLINK(\"x\")", "Lima, Jr.", "e@x.com", "Lakeside Camp");
        let ops: Vec<PlannedOp> = (0..7)
            .map(|i| {
                let mut op = op(OpKind::Create, Some(evil.clone()), None);
                op.key = format!("E{i}");
                op
            })
            .collect();
        let file = write(&path, &catalog, |each| {
            for op in ops {
                each(op)?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(file.written["create"], 7);
        assert_eq!(file.first["create"].len(), FIRST_PER_KIND);
        let rows: Vec<csv::StringRecord> = csv::Reader::from_path(&path)
            .unwrap()
            .records()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(rows.len(), 7);
        assert_eq!(&rows[0][2], "'=HYPERLINK(\"x\")");
        assert_eq!(&rows[0][3], "Lima, Jr.");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
