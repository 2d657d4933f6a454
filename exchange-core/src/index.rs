//! The serving index: key → current record, for lookups at thousands of requests per second
//! without planning a query. An embedded redb file beside the library table, updated after each
//! library commit and stamped with the library version it reflects, so a crash between the
//! two is repaired by replaying the newer versions on open.

use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const RECORDS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("records");
const META: TableDefinition<'_, &str, i64> = TableDefinition::new("meta");
const VERSION_KEY: &str = "library_version";

/// A library's current record for one key, as the index stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// Field values in schema order; dates as `YYYY-MM-DD`.
    pub values: Vec<Option<String>>,
    /// The department code whose data the record is (the authoritative source when known).
    pub source: String,
    /// The library version that last changed the record.
    pub version: i64,
}

/// The key → current-record index of one library.
pub struct ServingIndex {
    db: Database,
}

impl ServingIndex {
    /// Opens or creates the index file.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(Error::index)?;
        let tx = db.begin_write().map_err(Error::index)?;
        tx.open_table(RECORDS).map_err(Error::index)?;
        tx.open_table(META).map_err(Error::index)?;
        tx.commit().map_err(Error::index)?;
        Ok(Self { db })
    }

    /// The library version the index reflects, `None` when it was never written.
    pub fn version(&self) -> Result<Option<i64>> {
        let tx = self.db.begin_read().map_err(Error::index)?;
        let meta = tx.open_table(META).map_err(Error::index)?;
        Ok(meta.get(VERSION_KEY).map_err(Error::index)?.map(|v| v.value()))
    }

    /// The current record for `key`.
    pub fn get(&self, key: &str) -> Result<Option<StoredRecord>> {
        let tx = self.db.begin_read().map_err(Error::index)?;
        let records = tx.open_table(RECORDS).map_err(Error::index)?;
        match records.get(key).map_err(Error::index)? {
            Some(bytes) => serde_json::from_slice(bytes.value()).map(Some).map_err(Error::index),
            None => Ok(None),
        }
    }

    /// Number of keys held.
    pub fn len(&self) -> Result<u64> {
        use redb::ReadableTableMetadata;
        let tx = self.db.begin_read().map_err(Error::index)?;
        let records = tx.open_table(RECORDS).map_err(Error::index)?;
        records.len().map_err(Error::index)
    }

    /// Whether the index holds no key.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Applies one library version's changes (`None` deletes the key) and stamps the version, in
    /// one transaction. With `reset`, the index is emptied first (a rebuild).
    pub fn apply<'a>(
        &self,
        version: i64,
        reset: bool,
        changes: impl IntoIterator<Item = (&'a str, Option<&'a StoredRecord>)>,
    ) -> Result<()> {
        let tx = self.db.begin_write().map_err(Error::index)?;
        {
            if reset {
                tx.delete_table(RECORDS).map_err(Error::index)?;
            }
            let mut records = tx.open_table(RECORDS).map_err(Error::index)?;
            for (key, record) in changes {
                match record {
                    Some(record) => {
                        let bytes = serde_json::to_vec(record).map_err(Error::index)?;
                        records.insert(key, bytes.as_slice()).map_err(Error::index)?;
                    }
                    None => {
                        records.remove(key).map_err(Error::index)?;
                    }
                }
            }
            let mut meta = tx.open_table(META).map_err(Error::index)?;
            meta.insert(VERSION_KEY, version).map_err(Error::index)?;
        }
        tx.commit().map_err(Error::index)
    }
}
