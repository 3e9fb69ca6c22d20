//! Group commit of the op journal while apply runs.
//!
//! Every op writes the journal twice (`sending` before its request leaves, then its outcome)
//! and each commit rewrites a few ledger pages: one commit per entry held apply near 2,400
//! ops/s on loopback. Here one thread owns the writing: entries queued while it commits are
//! written together in the next transaction, and each caller waits until its entry is
//! committed. So the guarantees are those of a commit per entry (`sending` is on disk before
//! the request leaves; an outcome and its user's row change together) at a fraction of the
//! commits. It must never acknowledge an entry that is not committed.

use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow};
use tokio::sync::oneshot;

use crate::ledger::{Entry, Ledger};

/// Most entries in one transaction: bounds how long a commit holds the ledger.
const MOST_PER_COMMIT: usize = 512;

type Ack = oneshot::Sender<Result<(), String>>;

/// The journal writer: dropped, its thread finishes the entries queued and ends.
pub struct Journal {
    to_writer: Mutex<Option<Sender<(Entry, Ack)>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Journal {
    pub fn start(ledger: Arc<Mutex<Ledger>>, run_id: i64) -> Journal {
        let (to_writer, entries) = channel();
        let writer = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || write_loop(&ledger, run_id, &entries))
            .expect("the journal thread starts");
        Journal {
            to_writer: Mutex::new(Some(to_writer)),
            writer: Mutex::new(Some(writer)),
        }
    }

    /// Writes an entry; returns once it is committed.
    pub async fn write(&self, entry: Entry) -> Result<()> {
        let (ack, committed) = oneshot::channel();
        self.to_writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .ok_or_else(|| anyhow!("the journal is closed"))?
            .send((entry, ack))
            .map_err(|_| anyhow!("the journal writer stopped"))?;
        committed
            .await
            .map_err(|_| anyhow!("the journal writer stopped"))?
            .map_err(|e| anyhow!("cannot write the op journal: {e}"))
    }

    /// Lets the writer finish what is queued and waits for it.
    pub fn close(&self) {
        drop(
            self.to_writer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        if let Some(writer) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

fn write_loop(ledger: &Mutex<Ledger>, run_id: i64, entries: &Receiver<(Entry, Ack)>) {
    // Blocks for the first entry, then takes whatever else queued up meanwhile.
    while let Ok(first) = entries.recv() {
        let mut batch = vec![first];
        while batch.len() < MOST_PER_COMMIT {
            match entries.try_recv() {
                Ok(next) => batch.push(next),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let (written, acks): (Vec<Entry>, Vec<Ack>) = batch.into_iter().unzip();
        let result = ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .journal(run_id, &written)
            .map_err(|e| format!("{e:#}"));
        for ack in acks {
            let _ = ack.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{NewOp, OpKind, OpPayload};
    use crate::plan::PlanIo;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_entries_are_committed_before_they_are_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        let mut ledger = Ledger::open(&path).unwrap();
        let run = ledger.begin_run("test").unwrap();
        ledger
            .write_plan(run, |tx| {
                for i in 0..200 {
                    tx.push(NewOp {
                        key: format!("K{i}"),
                        seq: 0,
                        kind: OpKind::Deactivate,
                        payload: OpPayload::of_account(&format!("u-{i}")),
                    })?;
                }
                tx.commit()
            })
            .unwrap();
        let ids: Vec<i64> = ledger.pending_ops().unwrap().iter().map(|o| o.id).collect();
        let journal = Arc::new(Journal::start(Arc::new(Mutex::new(ledger)), run));
        let mut writers = tokio::task::JoinSet::new();
        for id in ids {
            let (journal, path) = (journal.clone(), path.clone());
            writers.spawn(async move {
                journal.write(Entry::Sending { op_id: id }).await.unwrap();
                // Acknowledged: another connection (another process, after a crash) sees it.
                let other = rusqlite::Connection::open(&path).unwrap();
                let state: String = other
                    .query_row("SELECT state FROM ops WHERE id = ?1", [id], |r| r.get(0))
                    .unwrap();
                assert_eq!(state, "sending");
            });
        }
        while let Some(written) = writers.join_next().await {
            written.unwrap();
        }
        journal.close();
        let refused = journal.write(Entry::Sending { op_id: 1 }).await;
        assert!(refused.unwrap_err().to_string().contains("closed"));
    }
}
