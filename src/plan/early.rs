//! Rows read ahead while the ledger's index loads.

use anyhow::Result;

use crate::ingest::roster::{Mark, RawRow, RosterReader};

/// Rows read ahead while the ledger's index loads (the two long steps of a big night, which
/// need nothing from each other), with a mark every [`EarlyRows::MARK_EVERY`] rows to read
/// them again from, and one after the last.
#[derive(Default)]
pub struct EarlyRows {
    pub(super) rows: Vec<RawRow>,
    pub(super) marks: Vec<Mark>,
    pub(super) end: Option<Mark>,
}

impl EarlyRows {
    /// Close together: a night's changed rows are scattered all over the file (1% of a
    /// million rows is one in a hundred), and only the rows between a mark and a changed row
    /// are parsed again. A mark is a few dozen bytes.
    pub(super) const MARK_EVERY: usize = 16;

    /// Reads rows while `more()` says so and rows remain.
    pub fn read(reader: &mut RosterReader<'_>, more: impl Fn() -> bool) -> Result<EarlyRows> {
        let mut early = EarlyRows::default();
        while more() {
            if early.rows.len() % Self::MARK_EVERY == 0 {
                early.marks.push(reader.mark());
            }
            match reader.next_raw()? {
                Some(raw) => early.rows.push(raw),
                None => break,
            }
        }
        early.end = Some(reader.mark());
        Ok(early)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}
