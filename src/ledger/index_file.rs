//! The planner's index kept in a file beside the ledger (`<ledger>-index`), so that a night's
//! plan need not read a million users out of SQLite before it can diff a row.
//!
//! Reading the index from the ledger costs about 0.7 s for a million users (SQLite's row
//! stepping, page reads, hashing every key); the same index from this file costs a tenth of
//! that. The file is a cache and nothing more: it holds only what the ledger holds, it is
//! written by whoever last had the whole index in hand (a plan after its commit, an apply
//! after it changed users), and it is used only while it is certainly the ledger's own:
//! the ledger's id and the version of its users table ([`UsersVersion`], a new random value
//! drawn by triggers at every change to a user, whoever makes it) must be the ones it was
//! taken at, and its checksum must hold. Anything else, and the index is read from the ledger
//! as before. It must never hand back an index that differs from the ledger's.
//!
//! Layout (little-endian): `MAGIC`, the ledger id (32 bytes), the users version, the entry
//! count and the key count; the entries (fingerprint and [`Known`], 41 bytes each); the
//! deactivatable keys ([`KnownKeys`]: their lengths as u32, then their bytes); an XXH3 of
//! everything before it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use rusqlite::Connection;
use xxhash_rust::xxh3::Xxh3;

use super::file::sibling;
use crate::plan::{Known, KnownKeys, LedgerIndex};

const MAGIC: &[u8; 8] = b"RSIDX\x00\x00\x01";
const ENTRY: usize = 8 * 5 + 1;
const IO_BUFFER: usize = 1 << 20;

/// What identifies the state of a ledger's users: the ledger's own id (random, made by
/// migration 009) and the random value its users' last change drew (a ledger restored from a
/// backup and changed again never draws the value a newer index file was taken at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersVersion {
    pub ledger_id: String,
    pub version: i64,
}

impl UsersVersion {
    /// Reads the ledger's users version (inside the caller's transaction, if it has one).
    pub fn of(conn: &Connection) -> Result<UsersVersion> {
        let read = |name: &str| -> Result<String> {
            conn.query_row(
                "SELECT value FROM ledger_meta WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .with_context(|| format!("cannot read {name} from ledger_meta"))
        };
        let ledger_id = read("ledger_id")?;
        let version = read("users_version")?;
        let version = version
            .parse()
            .with_context(|| format!("users_version {version:?} in ledger_meta is not a number"))?;
        ensure!(
            ledger_id.len() == 32 && ledger_id.bytes().all(|b| b.is_ascii_hexdigit()),
            "ledger_id {ledger_id:?} in ledger_meta is not 32 hexadecimal digits"
        );
        Ok(UsersVersion { ledger_id, version })
    }
}

/// Where the index file of the ledger at `ledger` lives.
pub fn path_of(ledger: &Path) -> PathBuf {
    sibling(ledger, "-index")
}

/// The index kept for the ledger at `ledger`, if the file is there and is certainly the
/// ledger's at `version`; `Ok(None)` when there is none or it is stale, an error when it is
/// unreadable or damaged (the caller reads the ledger instead in every case).
pub fn read(ledger: &Path, version: &UsersVersion) -> Result<Option<(LedgerIndex, KnownKeys)>> {
    let path = path_of(ledger);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let size = file.metadata()?.len();
    let mut input = Checked::new(BufReader::with_capacity(IO_BUFFER, file));
    let mut header = [0u8; 8 + 32 + 8 * 3];
    if size < header.len() as u64 + 8 {
        bail!("{} is {size} bytes, too short for an index", path.display());
    }
    input.read_exact(&mut header[..VERSION_AT as usize])?;
    input
        .inner
        .read_exact(&mut header[VERSION_AT as usize..VERSION_AT as usize + 8])?;
    input.read_exact(&mut header[VERSION_AT as usize + 8..])?;
    if &header[..8] != MAGIC {
        bail!("{} is not an index file of this rostersync", path.display());
    }
    let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or_default());
    let taken = UsersVersion {
        ledger_id: String::from_utf8_lossy(&header[8..40]).into_owned(),
        version: word(40) as i64,
    };
    if &taken != version {
        return Ok(None);
    }
    let (entries, keys) = (word(48), word(56));
    // Checked against the file's size before anything is allocated for them.
    let least = (header.len() as u64)
        .saturating_add(entries.saturating_mul(ENTRY as u64))
        .saturating_add(keys.saturating_mul(4))
        .saturating_add(8);
    ensure!(
        least <= size,
        "{} says it holds {entries} users and {keys} keys but is only {size} bytes",
        path.display()
    );
    let mut index = LedgerIndex::with_capacity_and_hasher(entries as usize, Default::default());
    let mut entry = [0u8; ENTRY];
    for _ in 0..entries {
        input.read_exact(&mut entry)?;
        let word = |at: usize| i64::from_le_bytes(entry[at..at + 8].try_into().unwrap_or_default());
        let flags = entry[40];
        index.insert(
            word(0) as u64,
            Known {
                profile_hash: word(8),
                content_hash: word(16),
                active: flags & 1 != 0,
                has_uuid: flags & 2 != 0,
                settled_digest: word(24),
                row_email: word(32),
                seen: false,
                first_line: 0,
            },
        );
    }
    let mut lengths = vec![0u8; keys as usize * 4];
    input.read_exact(&mut lengths)?;
    let total: u64 = lengths
        .chunks_exact(4)
        .map(|l| u64::from(u32::from_le_bytes([l[0], l[1], l[2], l[3]])))
        .sum();
    ensure!(
        least.saturating_add(total) == size,
        "{} is {size} bytes, expected {}",
        path.display(),
        least.saturating_add(total)
    );
    let mut bytes = vec![0u8; total as usize];
    input.read_exact(&mut bytes)?;
    let sum = input.hasher.digest();
    let mut trailer = [0u8; 8];
    input.inner.read_exact(&mut trailer)?;
    if u64::from_le_bytes(trailer) != sum {
        bail!(
            "{} is damaged (its checksum does not match)",
            path.display()
        );
    }
    let bytes = String::from_utf8(bytes)
        .with_context(|| format!("{}: a key is not UTF-8", path.display()))?;
    let mut known_keys = KnownKeys::with_capacity(keys as usize);
    let mut at = 0;
    for length in lengths.chunks_exact(4) {
        let end = at + u32::from_le_bytes([length[0], length[1], length[2], length[3]]) as usize;
        let key = bytes
            .get(at..end)
            .with_context(|| format!("{}: a key is cut inside a character", path.display()))?;
        known_keys.push(key);
        at = end;
    }
    Ok(Some((index, known_keys)))
}

/// Whether the index file says it was taken at `version` (its header only: the body is
/// checked when it is read).
pub fn is_current(ledger: &Path, version: &UsersVersion) -> bool {
    let mut header = [0u8; 8 + 32 + 8];
    File::open(path_of(ledger))
        .and_then(|mut file| file.read_exact(&mut header))
        .is_ok()
        && &header[..8] == MAGIC
        && header[8..40] == *version.ledger_id.as_bytes()
        && header[40..48] == version.version.to_le_bytes()
}

/// Writes the index of the ledger at `ledger`, taken at `version`: to a file of its own
/// first, renamed over the old one only once complete, so a reader never sees half of one.
pub fn write(
    ledger: &Path,
    version: &UsersVersion,
    index: &LedgerIndex,
    keys: &KnownKeys,
) -> Result<()> {
    let building = write_body(ledger, &version.ledger_id, index, keys)?;
    building.finish(version.version)
}

/// An index file written but for the users version, which is known only once the plan that
/// made the index is committed ([`Building::finish`]).
pub struct Building {
    building: PathBuf,
    path: PathBuf,
}

/// Where the users version sits in the file (it is left out of the checksum so that it can
/// be written last).
const VERSION_AT: u64 = 40;

/// Writes everything of the index file but the users version, to `<path>.new`.
fn write_body(
    ledger: &Path,
    ledger_id: &str,
    index: &LedgerIndex,
    keys: &KnownKeys,
) -> Result<Building> {
    let path = path_of(ledger);
    let building = sibling(&path, ".new");
    let written = (|| -> Result<()> {
        ensure!(
            ledger_id.len() == 32,
            "a ledger id of {} bytes",
            ledger_id.len()
        );
        let file = crate::fsmode::create_private_new(&building)?;
        let mut out = Checked::new(BufWriter::with_capacity(IO_BUFFER, file));
        out.write_all(MAGIC)?;
        out.write_all(ledger_id.as_bytes())?;
        out.inner.write_all(&0i64.to_le_bytes())?;
        out.write_all(&(index.len() as u64).to_le_bytes())?;
        out.write_all(&(keys.len() as u64).to_le_bytes())?;
        let mut entry = [0u8; ENTRY];
        for (fingerprint, known) in index {
            entry[0..8].copy_from_slice(&fingerprint.to_le_bytes());
            entry[8..16].copy_from_slice(&known.profile_hash.to_le_bytes());
            entry[16..24].copy_from_slice(&known.content_hash.to_le_bytes());
            entry[24..32].copy_from_slice(&known.settled_digest.to_le_bytes());
            entry[32..40].copy_from_slice(&known.row_email.to_le_bytes());
            entry[40] = u8::from(known.active) | (u8::from(known.has_uuid) << 1);
            out.write_all(&entry)?;
        }
        for key in keys.iter() {
            let length = u32::try_from(key.len()).context("a key of over 4 GB")?;
            out.write_all(&length.to_le_bytes())?;
        }
        for key in keys.iter() {
            out.write_all(key.as_bytes())?;
        }
        let sum = out.hasher.digest();
        let mut file = out.inner;
        file.write_all(&sum.to_le_bytes())?;
        file.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    })();
    match written {
        Ok(()) => Ok(Building { building, path }),
        Err(e) => {
            let _ = std::fs::remove_file(&building);
            Err(e)
        }
    }
}

impl Building {
    /// Writes the users version the index was taken at and puts the file in place.
    pub fn finish(self, version: i64) -> Result<()> {
        let done = (|| -> Result<()> {
            use std::os::unix::fs::FileExt;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&self.building)
                .with_context(|| format!("cannot open {}", self.building.display()))?;
            file.write_all_at(&version.to_le_bytes(), VERSION_AT)?;
            drop(file);
            std::fs::rename(&self.building, &self.path).with_context(|| {
                format!(
                    "cannot rename {} to {}",
                    self.building.display(),
                    self.path.display()
                )
            })
        })();
        if done.is_err() {
            let _ = std::fs::remove_file(&self.building);
        }
        done
    }

    /// Drops the file (the plan it was made for was not committed).
    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.building);
    }
}

/// An index file being written on a thread of its own while the plan commits.
pub struct Keeping(std::thread::JoinHandle<Result<Building>>);

impl Keeping {
    /// Starts writing `index` and `keys` of the ledger at `ledger` (whose id is `ledger_id`).
    pub fn start(ledger: &Path, ledger_id: String, index: LedgerIndex, keys: KnownKeys) -> Keeping {
        let ledger = ledger.to_owned();
        Keeping(std::thread::spawn(move || {
            write_body(&ledger, &ledger_id, &index, &keys)
        }))
    }

    /// Waits for the file; `Some` with the version once the plan is committed (the file is
    /// put in place), `None` when it was not (the file is dropped).
    pub fn finish(self, version: Option<&UsersVersion>) -> Result<()> {
        let building = self
            .0
            .join()
            .map_err(|_| anyhow::anyhow!("the index writer panicked"))??;
        match version {
            Some(version) => building.finish(version.version),
            None => {
                building.abandon();
                Ok(())
            }
        }
    }
}

/// Removes the index file (a stale one is never used, but need not stay either).
pub fn remove(ledger: &Path) {
    let _ = std::fs::remove_file(path_of(ledger));
}

/// A reader or writer that hashes every byte that passes through it.
struct Checked<T> {
    inner: T,
    hasher: Xxh3,
}

impl<T> Checked<T> {
    fn new(inner: T) -> Self {
        Checked {
            inner,
            hasher: Xxh3::new(),
        }
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RowMemo;

    fn version(n: i64) -> UsersVersion {
        UsersVersion {
            ledger_id: "0123456789abcdef0123456789abcdef".into(),
            version: n,
        }
    }

    fn sample() -> (LedgerIndex, KnownKeys) {
        let mut index = LedgerIndex::default();
        let mut keys = KnownKeys::default();
        for i in 0..1000i64 {
            let memo = (i % 3 == 0).then_some(RowMemo {
                digest: i * 7,
                state: crate::model::fingerprint::state_hash(true, i, -i),
                email: i * 11,
            });
            index.insert(
                i as u64 * 0x9e37_79b9,
                Known::new(i, -i, i % 2 == 0, i % 5 != 0, memo),
            );
            if i % 2 == 0 {
                keys.push(&format!("EMP{i:05}é"));
            }
        }
        (index, keys)
    }

    #[test]
    fn reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("l.db");
        let (index, keys) = sample();
        write(&ledger, &version(7), &index, &keys).unwrap();
        let (read_index, read_keys) = read(&ledger, &version(7)).unwrap().unwrap();
        assert_eq!(read_index, index);
        assert_eq!(
            read_keys.iter().collect::<Vec<_>>(),
            keys.iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn another_version_or_ledger_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("l.db");
        let (index, keys) = sample();
        write(&ledger, &version(7), &index, &keys).unwrap();
        assert!(read(&ledger, &version(8)).unwrap().is_none());
        let other = UsersVersion {
            ledger_id: "ffffffffffffffffffffffffffffffff".into(),
            version: 7,
        };
        assert!(read(&ledger, &other).unwrap().is_none());
        assert!(
            read(&dir.path().join("none.db"), &version(7))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_damaged_or_cut_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("l.db");
        let (index, keys) = sample();
        write(&ledger, &version(7), &index, &keys).unwrap();
        let path = path_of(&ledger);
        let whole = std::fs::read(&path).unwrap();
        // One bit anywhere after the header, and the checksum catches it.
        for at in [64, 64 + ENTRY * 500 + 3, whole.len() - 20, whole.len() - 1] {
            let mut bad = whole.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            assert!(read(&ledger, &version(7)).is_err(), "flip at {at}");
        }
        for len in [0, 10, 70, whole.len() / 2, whole.len() - 1] {
            std::fs::write(&path, &whole[..len]).unwrap();
            assert!(read(&ledger, &version(7)).is_err(), "cut at {len}");
        }
        // Counts that promise more than the file holds are refused before any allocation.
        let mut huge = whole.clone();
        huge[48..56].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&path, &huge).unwrap();
        assert!(read(&ledger, &version(7)).is_err());
    }
}
