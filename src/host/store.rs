//! The baseline on disk: one redb file, `baseline.redb`, in the state directory.
//!
//! Why redb: it is pure Rust (no C library to build or audit beside libbpf), keeps one file,
//! and every commit is an ACID transaction written copy-on-write with checksummed pages, so a
//! process killed mid-write (kill -9, power loss) reopens at its last commit, not half-way
//! through one. sled was the other pure-Rust candidate, but its on-disk format is unstable and
//! its maintainers call it beta; rusqlite would bring SQLite's C sources and a SQL layer for
//! what is a key-value table. redb also refuses a second process on the same file, so two
//! replays cannot interleave their writes.
//!
//! Layout: table `pairs` maps an encoded [`Pair`] to its [`Seen`] (24 bytes); table `meta`
//! keeps when learning began (`created_ns`) and the latest packet time seen (`clock_ns`).

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::pair::{Pair, Seen};

const PAIRS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("pairs");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub const FILE_NAME: &str = "baseline.redb";

/// A store problem, naming the file and what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {doing}: {message}")]
pub struct StoreError {
    pub path: String,
    pub doing: &'static str,
    pub message: String,
}

/// What the `meta` table holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta {
    /// Packet time of the first pair ever learned (0: nothing yet).
    pub created_ns: u64,
    /// Latest packet time seen: retention ages entries against it.
    pub clock_ns: u64,
}

/// What a store holds, as `Store::load` reads it.
pub struct Loaded {
    pub meta: Meta,
    pub pairs: Vec<(Pair, Seen)>,
    /// Rows that did not decode (written by a later version): counted, left in place.
    pub undecoded: u64,
}

pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) `dir/baseline.redb`. A file left by a killed process is
    /// recovered to its last commit here.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(FILE_NAME);
        let shown = path.display().to_string();
        std::fs::create_dir_all(dir).map_err(|e| StoreError {
            path: dir.display().to_string(),
            doing: "creating the state directory",
            message: e.to_string(),
        })?;
        let db = Database::create(&path).map_err(|e| StoreError {
            path: shown.clone(),
            doing: "opening the baseline store",
            message: match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    "another unmask process has it open; give this one its own --state directory"
                        .into()
                }
                e => e.to_string(),
            },
        })?;
        let store = Store { db, path };
        // Both tables exist from the first open on, so readers never meet a missing table.
        let txn = store
            .db
            .begin_write()
            .map_err(|e| store.err("creating tables", e))?;
        {
            txn.open_table(PAIRS)
                .map_err(|e| store.err("creating tables", e))?;
            txn.open_table(META)
                .map_err(|e| store.err("creating tables", e))?;
        }
        txn.commit().map_err(|e| store.err("creating tables", e))?;
        Ok(store)
    }

    fn err(&self, doing: &'static str, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.display().to_string(),
            doing,
            message: e.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every pair and the meta values. Keys that do not decode (written by a later version)
    /// are counted and left alone.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let doing = "reading the baseline";
        let txn = self.db.begin_read().map_err(|e| self.err(doing, e))?;
        let meta_t = txn.open_table(META).map_err(|e| self.err(doing, e))?;
        let get = |k: &str| -> Result<u64, StoreError> {
            Ok(meta_t
                .get(k)
                .map_err(|e| self.err(doing, e))?
                .map_or(0, |v| v.value()))
        };
        let meta = Meta {
            created_ns: get("created_ns")?,
            clock_ns: get("clock_ns")?,
        };
        let pairs_t = txn.open_table(PAIRS).map_err(|e| self.err(doing, e))?;
        let mut pairs = Vec::with_capacity(pairs_t.len().map_err(|e| self.err(doing, e))? as usize);
        let mut undecoded = 0;
        for row in pairs_t.iter().map_err(|e| self.err(doing, e))? {
            let (k, v) = row.map_err(|e| self.err(doing, e))?;
            match (Pair::decode(k.value()), Seen::decode(v.value())) {
                (Some(p), Some(s)) => pairs.push((p, s)),
                _ => undecoded += 1,
            }
        }
        Ok(Loaded {
            meta,
            pairs,
            undecoded,
        })
    }

    /// One transaction: every upsert and removal, and the meta values. Durable on return.
    pub fn commit<'a>(
        &self,
        upserts: impl Iterator<Item = (&'a [u8], Seen)>,
        removals: impl Iterator<Item = &'a [u8]>,
        meta: Meta,
    ) -> Result<(), StoreError> {
        let doing = "committing the baseline";
        let txn = self.db.begin_write().map_err(|e| self.err(doing, e))?;
        {
            let mut pairs = txn.open_table(PAIRS).map_err(|e| self.err(doing, e))?;
            for k in removals {
                pairs.remove(k).map_err(|e| self.err(doing, e))?;
            }
            for (k, s) in upserts {
                pairs
                    .insert(k, s.encode().as_slice())
                    .map_err(|e| self.err(doing, e))?;
            }
            let mut m = txn.open_table(META).map_err(|e| self.err(doing, e))?;
            m.insert("created_ns", meta.created_ns)
                .map_err(|e| self.err(doing, e))?;
            m.insert("clock_ns", meta.clock_ns)
                .map_err(|e| self.err(doing, e))?;
        }
        txn.commit().map_err(|e| self.err(doing, e))
    }
}
