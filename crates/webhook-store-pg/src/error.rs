//! The one place where PostgreSQL failures become the domain's [`StoreError`].

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;
use webhook_domain::ports::StoreError;

/// An error inside a transaction: from the database, or a decision of the store's own checks.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TxError {
    #[error(transparent)]
    Db(#[from] DieselError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stored row that the domain refuses: a bug or a hand-edited database.
#[derive(Debug, thiserror::Error)]
#[error("corrupt row: {0}")]
pub(crate) struct CorruptRow(pub(crate) &'static str);

pub(crate) fn corrupt(what: &'static str) -> StoreError {
    StoreError::Internal(Box::new(CorruptRow(what)))
}

/// No connection could be had within the configured wait.
#[derive(Debug, thiserror::Error)]
#[error("no database connection became available in time")]
pub(crate) struct PoolTimeout;

/// Why an operation failed, for the caller to decide on.
///
/// `connection_lost` says whether the connection was closed or left broken by the failure: any
/// error on a lost connection (a terminated backend, a server shutting down, a network cut)
/// means the database is unavailable, whatever error code it came with.
pub(crate) fn store_error(error: TxError, connection_lost: bool) -> StoreError {
    let error = match error {
        TxError::Store(error) => return error,
        TxError::Db(error) => error,
    };
    match &error {
        DieselError::NotFound => StoreError::NotFound,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            StoreError::Conflict("the id or a unique value is already stored")
        }
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
            StoreError::NotFound
        }
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::SerializationFailure
            | DatabaseErrorKind::ReadOnlyTransaction,
            _,
        ) => StoreError::Unavailable(Box::new(error)),
        DieselError::DatabaseError(_, info) if is_unavailable_message(info.message()) => {
            StoreError::Unavailable(Box::new(error))
        }
        _ if connection_lost => StoreError::Unavailable(Box::new(error)),
        _ => StoreError::Internal(Box::new(error)),
    }
}

/// The server's words for "shutting down / terminated" (SQLSTATE 57P01–57P03, 53300) and for a
/// deadlock victim (40P01, transient like a serialization failure: nothing of the transaction
/// was written and a retry may succeed): the asynchronous driver reports these without their
/// code.
fn is_unavailable_message(message: &str) -> bool {
    const MESSAGES: [&str; 6] = [
        "deadlock detected",
        "terminating connection due to administrator command",
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is in recovery mode",
        "sorry, too many clients already",
    ];
    MESSAGES.iter().any(|m| message.contains(m))
}

/// Whether a write that failed with `error` may have committed all the same, so that only
/// reading it back can tell: the connection was lost while the statement was in flight.
///
/// `connection_lost` says whether the connection was closed or left broken by the failure. A
/// lost connection (an I/O error, "connection closed", "error communicating with the server",
/// which the asynchronous driver reports as [`DatabaseErrorKind::UnableToSendCommand`]) hides
/// the commit's answer; so does a server that ends the session ("terminating connection …",
/// SQLSTATE 57P01–57P03): an immediate shutdown stops a backend at any point, also after its
/// commit record was flushed, and recovery then keeps the write. An error the server answered
/// on a live connection (a constraint, a serialization failure, a deadlock) rolled the
/// statement back: its outcome is known.
pub(crate) fn may_have_committed(error: &DieselError, connection_lost: bool) -> bool {
    match error {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        DieselError::DatabaseError(_, info) if is_session_end_message(info.message()) => true,
        _ => connection_lost,
    }
}

/// The server's words for ending a session (SQLSTATE 57P01–57P03), sent in place of a
/// statement's answer.
fn is_session_end_message(message: &str) -> bool {
    const MESSAGES: [&str; 3] = [
        "terminating connection",
        "the database system is shutting down",
        "server closed the connection",
    ];
    MESSAGES.iter().any(|m| message.contains(m))
}

/// A pool that cannot hand out a connection: the database is unreachable or saturated.
pub(crate) fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::NoRuntimeSpecified => StoreError::Internal(Box::new(error)),
        PoolError::Timeout(_)
        | PoolError::Backend(_)
        | PoolError::Closed
        | PoolError::PostCreateHook(_) => StoreError::Unavailable(Box::new(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_database_errors_to_decisions() {
        let db = |kind| {
            TxError::Db(DieselError::DatabaseError(
                kind,
                Box::new(String::from("x")),
            ))
        };
        assert!(matches!(
            store_error(db(DatabaseErrorKind::UniqueViolation), false),
            StoreError::Conflict(_)
        ));
        assert!(matches!(
            store_error(db(DatabaseErrorKind::ForeignKeyViolation), false),
            StoreError::NotFound
        ));
        assert!(matches!(
            store_error(db(DatabaseErrorKind::UnableToSendCommand), false),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(db(DatabaseErrorKind::Unknown), false),
            StoreError::Internal(_)
        ));
        assert!(matches!(
            store_error(db(DatabaseErrorKind::Unknown), true),
            StoreError::Unavailable(_)
        ));
        let shutdown = TxError::Db(DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(String::from(
                "terminating connection due to administrator command",
            )),
        ));
        assert!(matches!(
            store_error(shutdown, false),
            StoreError::Unavailable(_)
        ));
        let deadlock = TxError::Db(DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(String::from("deadlock detected")),
        ));
        assert!(matches!(
            store_error(deadlock, false),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(TxError::Db(DieselError::NotFound), false),
            StoreError::NotFound
        ));
        assert!(matches!(
            pool_error(PoolError::Closed),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn tells_a_lost_commit_from_a_refused_one() {
        let db =
            |kind, message: &str| DieselError::DatabaseError(kind, Box::new(String::from(message)));
        let lost = [
            db(DatabaseErrorKind::UnableToSendCommand, "connection closed"),
            db(
                DatabaseErrorKind::UnableToSendCommand,
                "error communicating with the server: Connection reset by peer",
            ),
            db(DatabaseErrorKind::ClosedConnection, "closed"),
            db(
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            db(
                DatabaseErrorKind::Unknown,
                "terminating connection due to immediate shutdown command",
            ),
        ];
        for error in &lost {
            assert!(may_have_committed(error, false), "{error}");
        }
        let refused = [
            db(DatabaseErrorKind::UniqueViolation, "duplicate key"),
            db(DatabaseErrorKind::ForeignKeyViolation, "fk"),
            db(
                DatabaseErrorKind::SerializationFailure,
                "could not serialize",
            ),
            db(DatabaseErrorKind::Unknown, "deadlock detected"),
        ];
        for error in &refused {
            assert!(!may_have_committed(error, false), "{error}");
        }
        assert!(may_have_committed(
            &db(DatabaseErrorKind::Unknown, "anything"),
            true
        ));
    }
}
