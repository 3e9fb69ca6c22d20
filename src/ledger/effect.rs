//! Journal entries as they are written: each op's new state, and for an acknowledged op its
//! effect on the user's row, in the same transaction.
//!
//! Owns the mapping of an acknowledged op to the users table (what the platform now holds),
//! and nothing else. It must never record a state the API did not acknowledge.

use anyhow::{Context, Result};
use rusqlite::params;

use super::{Effect, Entry};
use crate::model::{Grant, Op, OpKind};

/// The ledger column holding the time of the last change through this kind of op.
fn last_change_column(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Create => "created_at",
        OpKind::Update => "last_update_at",
        OpKind::Enroll => "last_enroll_at",
        OpKind::Remove => "last_remove_at",
        OpKind::ReEnroll => "last_reenroll_at",
        OpKind::Deactivate => "last_deactivate_at",
        OpKind::Remind => "last_remind_at",
    }
}

/// The content-list fingerprint and its stored JSON.
pub fn content_record(items: &[Grant]) -> (i64, String) {
    let mut sorted = items.to_vec();
    sorted.sort();
    sorted.dedup();
    (
        crate::model::fingerprint::content_hash(&sorted),
        serde_json::to_string(&sorted).expect("content refs serialize"),
    )
}

pub(super) fn write_entry(
    tx: &rusqlite::Transaction,
    run_id: i64,
    entry: &Entry,
    now: i64,
) -> Result<()> {
    match entry {
        Entry::Sending { op_id } => {
            tx.prepare_cached(
                "UPDATE ops SET state = 'sending', attempts = attempts + 1, updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![op_id, now])?;
        }
        Entry::Done { op, effect } => {
            tx.prepare_cached(
                "UPDATE ops SET state = 'done', http_status = ?2, message = ?3, done_run_id = ?4, updated_at = ?5 WHERE id = ?1",
            )?
            .execute(params![op.id, effect.http_status, effect.message, run_id, now])?;
            apply_effect(tx, op, effect, now)?;
        }
        Entry::DoneUnchanged { op_id, message } => {
            tx.prepare_cached(
                "UPDATE ops SET state = 'done', message = ?2, done_run_id = ?3, updated_at = ?4 WHERE id = ?1",
            )?
            .execute(params![op_id, message, run_id, now])?;
        }
        Entry::Failed {
            op_id,
            http_status,
            message,
        } => {
            tx.prepare_cached(
                "UPDATE ops SET state = 'failed', http_status = ?2, message = ?3, done_run_id = ?4, updated_at = ?5 WHERE id = ?1",
            )?
            .execute(params![op_id, http_status, message, run_id, now])?;
        }
        Entry::InDoubt { op_id, message } => {
            tx.prepare_cached(
                "UPDATE ops SET state = 'in_doubt', message = ?2, done_run_id = ?3, updated_at = ?4 WHERE id = ?1",
            )?
            .execute(params![op_id, message, run_id, now])?;
        }
        Entry::Unsend {
            op_id,
            was_in_doubt,
        } => {
            tx.prepare_cached("UPDATE ops SET state = ?2 WHERE id = ?1 AND state = 'sending'")?
                .execute(params![
                    op_id,
                    if *was_in_doubt { "in_doubt" } else { "pending" }
                ])?;
        }
    }
    Ok(())
}

/// `execute` through the statement cache: apply runs the same few statements for every op.
fn execute_cached(
    tx: &rusqlite::Transaction,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<usize> {
    Ok(tx.prepare_cached(sql)?.execute(params)?)
}

fn apply_effect(tx: &rusqlite::Transaction, op: &Op, effect: &Effect, now: i64) -> Result<()> {
    let column = last_change_column(op.kind);
    match op.kind {
        // Gone from the platform (deleted by this op, or found deleted by hand): forgotten,
        // so that a person on the roster is created (invited) again.
        kind if effect.deleted && kind != OpKind::Create => {
            let (content_hash, content) = content_record(&[]);
            execute_cached(
                tx,
                &format!(
                    "UPDATE users SET active = 0, uuid = NULL, content_hash = ?3, content = ?4, {column} = ?2 WHERE key = ?1"
                ),
                params![op.key, now, content_hash, content],
            )?;
        }
        OpKind::Create | OpKind::Update => {
            let mut profile = op
                .payload
                .profile
                .clone()
                .context("create/update op without a profile")?;
            let content = profile.grants.take().unwrap_or_default();
            let email = profile.email.clone();
            let active = profile.active;
            let profile = serde_json::to_string(&profile)?;
            let uuid = effect.uuid.clone().or_else(|| op.payload.remote_id.clone());
            if op.kind == OpKind::Create {
                // A key created again (its account deleted, then back on the roster) has a new
                // invitation: what was known of the old one must not hold back reminders.
                let (content_hash, content_json) = content_record(&content);
                execute_cached(
                    tx,
                    &format!(
                        "INSERT INTO users (key, uuid, email, profile_hash, profile, active, content_hash, content, {column},
                                            row_digest, row_state, row_email)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                         ON CONFLICT (key) DO UPDATE SET uuid = ?2, email = ?3, profile_hash = ?4, profile = ?5,
                         active = ?6, content_hash = ?7, content = ?8, {column} = ?9,
                         row_digest = ?10, row_state = ?11, row_email = ?12,
                         accepted = 0, last_remind_at = NULL"
                    ),
                    params![
                        op.key,
                        uuid,
                        email,
                        op.payload.profile_hash,
                        profile,
                        active,
                        content_hash,
                        content_json,
                        now,
                        op.payload.row.map(|r| r.digest),
                        op.payload.row.map(|r| r.state),
                        op.payload.row.map(|r| r.email)
                    ],
                )?;
            } else {
                execute_cached(
                    tx,
                    &format!(
                        "UPDATE users SET email = ?2, profile_hash = ?3, profile = ?4, active = ?5, {column} = ?6 WHERE key = ?1"
                    ),
                    params![op.key, email, op.payload.profile_hash, profile, active, now],
                )?;
            }
        }
        OpKind::Remind => {
            execute_cached(
                tx,
                &format!(
                    "UPDATE users SET accepted = accepted OR ?3, {column} = ?2 WHERE key = ?1"
                ),
                params![op.key, now, effect.accepted],
            )?;
        }
        OpKind::Deactivate => {
            execute_cached(
                tx,
                &format!("UPDATE users SET active = 0, {column} = ?2 WHERE key = ?1"),
                params![op.key, now],
            )?;
        }
        OpKind::Enroll | OpKind::Remove | OpKind::ReEnroll => {
            let current: String = tx
                .prepare_cached("SELECT content FROM users WHERE key = ?1")?
                .query_row([&op.key], |r| r.get(0))?;
            let mut content: Vec<Grant> = serde_json::from_str(&current).unwrap_or_default();
            match op.kind {
                OpKind::Remove => {
                    content.retain(|c| !op.payload.items.iter().any(|i| i.id == c.id))
                }
                _ => content.extend(op.payload.items.iter().cloned()),
            }
            let (hash, json) = content_record(&content);
            execute_cached(
                tx,
                &format!(
                    "UPDATE users SET content_hash = ?2, content = ?3, {column} = ?4 WHERE key = ?1"
                ),
                params![op.key, hash, json, now],
            )?;
            if op.kind == OpKind::ReEnroll {
                // The expiries this re-enrollment answered: never answered twice.
                for (item, completed_at) in op.payload.items.iter().zip(&op.payload.completions) {
                    execute_cached(
                        tx,
                        "INSERT INTO recertified (key, content_uuid, completed_at, reenrolled_at)
                         VALUES (?1, lower(?2), ?3, ?4)
                         ON CONFLICT (key, content_uuid) DO UPDATE SET
                             completed_at = max(completed_at, excluded.completed_at),
                             reenrolled_at = excluded.reenrolled_at",
                        params![op.key, item.id, completed_at, now],
                    )?;
                }
            }
        }
    }
    Ok(())
}
