//! The engine's one error type. Data read back from disk is never trusted:
//! whatever fails to decode is reported as [`Error::Corruption`], with the
//! key or region it came from, and never panics.

use thiserror::Error;

use flotilla_raft::StorageError;

/// What can go wrong in the engine.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Data on disk is malformed: a key or value failed to decode, or a
    /// decoded record contradicts its key (for example an entry stored
    /// under index 7 that says it is entry 8). RocksDB's own checksum
    /// failures land here too.
    #[error("corruption: {context}")]
    Corruption {
        /// What was being read, and where.
        context: String,
    },
    /// An I/O failure, from the file system or reported by RocksDB.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Something that must exist does not (for example the state of a
    /// region being loaded).
    #[error("not found: {context}")]
    NotFound {
        /// What was looked for.
        context: String,
    },
    /// An argument is outside what the target allows: a key outside the
    /// region's range, a snapshot older than the applied state, ...
    #[error("out of range: {context}")]
    OutOfRange {
        /// What was out of which range.
        context: String,
    },
    /// Any other failure reported by RocksDB.
    #[error("rocksdb: {0}")]
    RocksDb(String),
}

impl Error {
    pub(crate) fn corruption(context: impl Into<String>) -> Self {
        Error::Corruption {
            context: context.into(),
        }
    }

    pub(crate) fn not_found(context: impl Into<String>) -> Self {
        Error::NotFound {
            context: context.into(),
        }
    }

    pub(crate) fn out_of_range(context: impl Into<String>) -> Self {
        Error::OutOfRange {
            context: context.into(),
        }
    }

    /// True for [`Error::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        match e.kind() {
            rocksdb::ErrorKind::Corruption => Error::corruption(e.into_string()),
            rocksdb::ErrorKind::IOError => Error::Io(std::io::Error::other(e.into_string())),
            _ => Error::RocksDb(e.into_string()),
        }
    }
}

impl From<Error> for StorageError {
    fn from(e: Error) -> Self {
        StorageError::Other(Box::new(e))
    }
}

impl From<Error> for flotilla_raft::Error {
    fn from(e: Error) -> Self {
        flotilla_raft::Error::Store(e.into())
    }
}

/// The engine's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Decodes a prost message read from disk; a failure is corruption, with
/// `context` (a closure, so the happy path builds no string) saying where.
pub(crate) fn decode<M: prost::Message + Default>(
    bytes: &[u8],
    context: impl FnOnce() -> String,
) -> Result<M> {
    M::decode(bytes).map_err(|e| Error::corruption(format!("{}: {e}", context())))
}
