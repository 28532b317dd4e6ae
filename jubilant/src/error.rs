//! The one error type of the embedded API and of [`Kv`](crate::Kv):
//! whatever a call did, embedded or remote, it fails with an [`Error`].

use jubilant_client::ClientError;
use jubilant_core::db::{DbError, UpdateError};
use jubilant_core::txn::TxnError;

/// Why a call failed.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let db = jubilant::blocking::open(dir.path())?;
/// let too_long = vec![b'k'; 1 << 20];
/// match db.set(too_long, "value") {
///     Err(jubilant::Error::Db(error)) => println!("refused: {error}"),
///     other => panic!("{other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused or failed the call (bad input, a full disk, a
    /// storage failure, a snapshot that ended).
    #[error(transparent)]
    Db(#[from] DbError),
    /// A transaction failed: an assertion, a type, a limit, or the
    /// database under it.
    #[error(transparent)]
    Txn(#[from] TxnError),
    /// `update` or `compare_and_swap` found the key changed: after
    /// `attempts` attempts, its revision was `found` (0: missing).
    #[error("the key changed under {attempts} attempts (its revision is now {found})")]
    Conflict {
        /// Attempts made.
        attempts: u32,
        /// The revision the last attempt found.
        found: u64,
    },
    /// The remote server or the connection to it failed the call.
    #[error(transparent)]
    Remote(#[from] ClientError),
    /// `close` was called while other handles to the database were alive.
    #[error("the database is still used by {handles} other handles; drop them before close")]
    InUse {
        /// Handles besides the one closing.
        handles: usize,
    },
    /// An I/O error outside the database: the blocking API's runtime did
    /// not start (or, through `?`, an I/O error of the caller's own).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A value did not encode or decode with the codec asked for.
    #[error("the value of key {key:?} does not {doing}: {reason}")]
    Codec {
        /// The key, lossily as text.
        key: String,
        /// `encode` or `decode`.
        doing: &'static str,
        /// What went wrong.
        reason: String,
    },
}

impl<E: Into<Error>> From<UpdateError<E>> for Error {
    fn from(error: UpdateError<E>) -> Self {
        match error {
            UpdateError::Conflict { attempts, found } => Error::Conflict { attempts, found },
            UpdateError::Txn(error) => error.into(),
        }
    }
}

/// What every call of this crate returns.
///
/// ```
/// fn parse_count(text: &str) -> jubilant::Result<i64> {
///     Ok(text.len() as i64)
/// }
/// assert_eq!(parse_count("abc").ok(), Some(3));
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
