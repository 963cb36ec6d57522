//! The one place where SQLite and diesel errors become the domain's [`StoreError`].

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use webhook_domain::ports::StoreError;

/// What an operation inside the store failed with: a decision already made in domain terms, or
/// a database error still to be translated.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] DieselError),
}

impl Failure {
    pub(crate) fn not_found() -> Self {
        Self::Store(StoreError::NotFound)
    }

    pub(crate) fn conflict(what: &'static str) -> Self {
        Self::Store(StoreError::Conflict(what))
    }

    /// A stored value that cannot be read back into the domain's types.
    pub(crate) fn corrupt(what: &'static str) -> Self {
        Self::Store(StoreError::Internal(Box::new(CorruptRow(what))))
    }

    /// Whether this failure leaves the surrounding transaction usable: a decision or a
    /// constraint violation does; busy, I/O and other engine errors may have rolled it back.
    pub(crate) fn keeps_transaction(&self) -> bool {
        match self {
            Self::Store(_) | Self::Db(DieselError::NotFound) => true,
            Self::Db(DieselError::DatabaseError(kind, _)) => matches!(
                kind,
                DatabaseErrorKind::UniqueViolation
                    | DatabaseErrorKind::ForeignKeyViolation
                    | DatabaseErrorKind::NotNullViolation
                    | DatabaseErrorKind::CheckViolation
            ),
            Self::Db(_) => false,
        }
    }

    /// Whether this failure is the database's rather than one operation's: an I/O error, a full
    /// disk, a read-only or unopenable file. Every operation of a batch would fail the same way,
    /// so running them again one by one would only multiply the failed writes.
    pub(crate) fn is_engine_wide(&self) -> bool {
        match self {
            Self::Db(DieselError::DatabaseError(_, info)) => {
                let message = info.message().to_ascii_lowercase();
                ENGINE_WIDE_MESSAGES.iter().any(|m| message.contains(m))
            }
            _ => false,
        }
    }

    /// What a caller of a batch that failed engine-wide gets: `Unavailable`, with the batch's
    /// failure as its cause.
    pub(crate) fn batch_failed(cause: &Self) -> Self {
        let text = match cause {
            Self::Db(error) => error.to_string(),
            Self::Store(error) => error.to_string(),
        };
        Self::Store(StoreError::Unavailable(Box::new(BatchFailed(text))))
    }

    pub(crate) fn into_store(self) -> StoreError {
        match self {
            Self::Store(error) => error,
            Self::Db(error) => map_diesel(error),
        }
    }
}

/// A row that does not decode into the domain's types.
#[derive(Debug, thiserror::Error)]
#[error("a stored {0} cannot be read")]
pub(crate) struct CorruptRow(&'static str);

/// The writer thread is gone: the store was closed or its thread ended.
#[derive(Debug, thiserror::Error)]
#[error("the store's writer is not running")]
pub(crate) struct WriterClosed;

/// Rows that reference a row that does not exist, found after migrating.
#[derive(Debug, thiserror::Error)]
#[error("{0} rows reference rows that do not exist after migrating")]
pub(crate) struct BrokenReferences(pub(crate) i64);

/// The commit of a whole batch failed for a reason no one operation caused; nothing was written.
#[derive(Debug, thiserror::Error)]
#[error("the group commit failed: {0}")]
pub(crate) struct BatchFailed(String);

/// Messages of SQLite's result codes that concern the database file, not an operation.
const ENGINE_WIDE_MESSAGES: &[&str] = &[
    "disk i/o error",
    "database or disk is full",
    "unable to open database file",
    "attempt to write a readonly database",
];

/// Messages of SQLite's result codes that mean "not now": busy, locked, I/O, full, read-only.
const UNAVAILABLE_MESSAGES: &[&str] = &[
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "database or disk is full",
    "unable to open database file",
    "attempt to write a readonly database",
    "locking protocol",
    "out of memory",
    "database disk image is malformed",
];

/// Unique violation → `Conflict`; a missing referenced row → `NotFound`; busy, locked, I/O and
/// connection errors → `Unavailable`; anything else → `Internal`.
pub(crate) fn map_diesel(error: DieselError) -> StoreError {
    match &error {
        DieselError::NotFound => StoreError::NotFound,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            StoreError::Conflict("an object with this id or key already exists")
        }
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
            StoreError::NotFound
        }
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        )
        | DieselError::BrokenTransactionManager
        | DieselError::AlreadyInTransaction => StoreError::Unavailable(Box::new(error)),
        DieselError::DatabaseError(_, info) => {
            let message = info.message().to_ascii_lowercase();
            if UNAVAILABLE_MESSAGES.iter().any(|m| message.contains(m)) {
                StoreError::Unavailable(Box::new(error))
            } else {
                StoreError::Internal(Box::new(error))
            }
        }
        _ => StoreError::Internal(Box::new(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn maps_each_kind() {
        let check = |error: DieselError, expected: &str| {
            let mapped = match map_diesel(error) {
                StoreError::NotFound => "not_found",
                StoreError::Conflict(_) => "conflict",
                StoreError::Unavailable(_) => "unavailable",
                StoreError::OutcomeUnknown(_) => "outcome_unknown",
                StoreError::Internal(_) => "internal",
            };
            assert_eq!(mapped, expected);
        };
        check(db(DatabaseErrorKind::UniqueViolation, "UNIQUE"), "conflict");
        check(
            db(DatabaseErrorKind::ForeignKeyViolation, "FK"),
            "not_found",
        );
        for message in [
            "database is locked",
            "disk I/O error",
            "database or disk is full",
        ] {
            check(db(DatabaseErrorKind::Unknown, message), "unavailable");
        }
        check(
            db(DatabaseErrorKind::ClosedConnection, "closed"),
            "unavailable",
        );
        check(
            db(DatabaseErrorKind::Unknown, "no such table: x"),
            "internal",
        );
        check(DieselError::NotFound, "not_found");
        check(DieselError::RollbackTransaction, "internal");
    }
}
