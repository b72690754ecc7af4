//! Statements that bind texts where they lie, for the writer's multi-row inserts.
//!
//! rusqlite binds every text with `SQLITE_TRANSIENT`: SQLite copies it into memory of its own
//! at once, and frees that copy when the parameter is bound again. For the writer, whose rows
//! carry kilobyte bodies, binding was 16% of its instructions (callgrind, 8-span traces): the
//! copy, the free of the previous one, and rusqlite's conversions. SQLite copies a text into
//! the record it writes anyway, so the first copy buys nothing when the text outlives the
//! statement's execution. [`InPlaceStatement::execute`] binds texts with `SQLITE_STATIC`, runs
//! the statement, and clears every binding before it returns: the statement never holds a
//! pointer past the borrow of the values it was given.
//!
//! This is the server's only `unsafe` code besides the allocator's options: a handful of
//! calls to SQLite's C API, each on a statement this type owns. The store conformance suite
//! and the store's unit tests ran clean under valgrind's memcheck when it was written.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

use rusqlite::{ffi, Connection};

use super::StoreError;

/// A value to bind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Param<'v> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'v str),
}

impl<'v> From<&'v str> for Param<'v> {
    fn from(text: &'v str) -> Self {
        Param::Text(text)
    }
}

impl<'v> From<&'v String> for Param<'v> {
    fn from(text: &'v String) -> Self {
        Param::Text(text)
    }
}

impl<'v> From<&'v Option<String>> for Param<'v> {
    fn from(text: &'v Option<String>) -> Self {
        text.as_deref().map_or(Param::Null, Param::Text)
    }
}

impl From<i64> for Param<'_> {
    fn from(number: i64) -> Self {
        Param::Integer(number)
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(number: Option<i64>) -> Self {
        number.map_or(Param::Null, Param::Integer)
    }
}

impl From<Option<f64>> for Param<'_> {
    fn from(number: Option<f64>) -> Self {
        number.map_or(Param::Null, Param::Real)
    }
}

impl From<bool> for Param<'_> {
    fn from(flag: bool) -> Self {
        Param::Integer(i64::from(flag))
    }
}

/// A prepared statement of a connection, finalized when dropped.
pub(crate) struct InPlaceStatement<'c> {
    statement: NonNull<ffi::sqlite3_stmt>,
    parameters: usize,
    connection: PhantomData<&'c Connection>,
}

impl<'c> InPlaceStatement<'c> {
    /// Prepares `sql` (one statement) on `connection`.
    pub(crate) fn prepare(connection: &'c Connection, sql: &str) -> Result<Self, StoreError> {
        let length = c_int::try_from(sql.len())
            .map_err(|_| StoreError::Database("statement too long".into()))?;
        let mut statement = std::ptr::null_mut();
        // SAFETY: the handle is the open connection's, valid while `connection` is borrowed
        // (and `'c` outlives this statement); the SQL pointer and length describe `sql`,
        // which SQLite only reads during the call; `statement` is a valid out pointer.
        let code = unsafe {
            let db = connection.handle();
            ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast::<c_char>(),
                length,
                ffi::SQLITE_PREPARE_PERSISTENT as _,
                &mut statement,
                std::ptr::null_mut(),
            )
        };
        let Some(statement) = NonNull::new(statement) else {
            // SAFETY: as above; the message is read before any other call on the handle.
            let message = unsafe { error_message(connection.handle()) };
            return Err(StoreError::Database(format!(
                "preparing {sql:?}: {message} (code {code})"
            )));
        };
        // SAFETY: `statement` was just prepared and is not finalized.
        let parameters = unsafe { ffi::sqlite3_bind_parameter_count(statement.as_ptr()) };
        Ok(Self {
            statement,
            parameters: usize::try_from(parameters).unwrap_or(0),
            connection: PhantomData,
        })
    }

    /// Binds `params` to the parameters in order (texts without a copy), runs the statement
    /// to its end and returns how many rows it changed. Every parameter is bound: fewer or
    /// more values than the statement has is an error, before it runs.
    pub(crate) fn execute<'v>(
        &mut self,
        params: impl IntoIterator<Item = Param<'v>>,
    ) -> Result<usize, StoreError> {
        let result = self.bind_and_step(params);
        // SAFETY: the statement is live; reset ends its execution and clearing the bindings
        // drops every pointer bound above, so none outlives `params`' borrow.
        unsafe {
            ffi::sqlite3_reset(self.statement.as_ptr());
            ffi::sqlite3_clear_bindings(self.statement.as_ptr());
        }
        result
    }

    fn bind_and_step<'v>(
        &mut self,
        params: impl IntoIterator<Item = Param<'v>>,
    ) -> Result<usize, StoreError> {
        let statement = self.statement.as_ptr();
        let mut bound = 0usize;
        for param in params {
            bound += 1;
            if bound > self.parameters {
                break;
            }
            let index = bound as c_int; // ≤ the statement's parameter count, a c_int
                                        // SAFETY: the statement is live and not running (reset after every execution);
                                        // a text's pointer and length describe a `&str` that outlives this call, and
                                        // `execute` clears the binding before returning (SQLITE_STATIC: no copy).
            let code = unsafe {
                match param {
                    Param::Null => ffi::sqlite3_bind_null(statement, index),
                    Param::Integer(number) => ffi::sqlite3_bind_int64(statement, index, number),
                    Param::Real(number) => ffi::sqlite3_bind_double(statement, index, number),
                    Param::Text(text) => ffi::sqlite3_bind_text64(
                        statement,
                        index,
                        // An empty string's pointer may dangle: point at a real (NUL) byte.
                        if text.is_empty() {
                            c"".as_ptr()
                        } else {
                            text.as_ptr().cast::<c_char>()
                        },
                        text.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                }
            };
            self.check(code)?;
        }
        if bound != self.parameters {
            return Err(StoreError::Database(format!(
                "{bound} values for a statement of {} parameters",
                self.parameters
            )));
        }
        loop {
            // SAFETY: the statement is live and every parameter is bound.
            match unsafe { ffi::sqlite3_step(statement) } {
                ffi::SQLITE_DONE => break,
                ffi::SQLITE_ROW => continue,
                code => self.check(code)?,
            }
        }
        // SAFETY: the statement is live, so is its connection.
        let changes = unsafe { ffi::sqlite3_changes64(ffi::sqlite3_db_handle(statement)) };
        Ok(usize::try_from(changes).unwrap_or(0))
    }

    fn check(&self, code: c_int) -> Result<(), StoreError> {
        if code == ffi::SQLITE_OK {
            return Ok(());
        }
        // SAFETY: the statement is live, so is its connection; the message is copied at once.
        let message = unsafe { error_message(ffi::sqlite3_db_handle(self.statement.as_ptr())) };
        Err(StoreError::Database(format!("{message} (code {code})")))
    }
}

impl Drop for InPlaceStatement<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared by `prepare`, is finalized only here, and its
        // connection is still open (`'c`).
        unsafe {
            ffi::sqlite3_finalize(self.statement.as_ptr());
        }
    }
}

/// The connection's last error message, copied.
///
/// # Safety
/// `db` must be an open connection's handle.
unsafe fn error_message(db: *mut ffi::sqlite3) -> String {
    let message = ffi::sqlite3_errmsg(db);
    if message.is_null() {
        return "unknown error".into();
    }
    CStr::from_ptr(message).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_texts_in_place_and_keeps_no_binding() {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE t (a TEXT, b INTEGER, c REAL, d TEXT)")
            .unwrap();
        let mut insert = InPlaceStatement::prepare(
            &connection,
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4), (?5, ?6, ?7, ?8)",
        )
        .unwrap();
        {
            let first = String::from("é text\n");
            let second = "x".repeat(100_000);
            let changed = insert
                .execute([
                    Param::from(&first),
                    Param::from(7),
                    Param::from(Some(1.5)),
                    Param::Null,
                    Param::from(second.as_str()),
                    Param::from(None::<i64>),
                    Param::from(None::<f64>),
                    Param::from(&Some(String::new())),
                ])
                .unwrap();
            assert_eq!(changed, 2);
        }
        type Row = (Option<String>, Option<i64>, Option<f64>, Option<String>);
        let rows: Vec<Row> = connection
            .prepare("SELECT a, b, c, d FROM t ORDER BY rowid")
            .unwrap()
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (Some("é text\n".into()), Some(7), Some(1.5), None),
                (Some("x".repeat(100_000)), None, None, Some(String::new())),
            ]
        );
        // The bindings were cleared: a statement run again with nothing bound would insert
        // NULLs, and a wrong count is refused before it runs.
        let error = insert.execute([Param::Null]).unwrap_err();
        assert!(
            error.to_string().contains("1 values for a statement of 8"),
            "{error}"
        );
        let error = insert.execute([Param::Null; 9]).unwrap_err();
        assert!(error.to_string().contains("parameters"), "{error}");
        assert_eq!(insert.execute([Param::Null; 8]).unwrap(), 2);
        let nulls: i64 = connection
            .query_row("SELECT count(*) FROM t WHERE a IS NULL", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(nulls, 2);
    }

    #[test]
    fn reports_constraint_failures_and_stays_usable() {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY)")
            .unwrap();
        let mut insert =
            InPlaceStatement::prepare(&connection, "INSERT OR FAIL INTO t VALUES (?1)").unwrap();
        assert_eq!(insert.execute([Param::Text("a")]).unwrap(), 1);
        let error = insert.execute([Param::Text("a")]).unwrap_err();
        assert!(error.to_string().contains("UNIQUE"), "{error}");
        assert_eq!(insert.execute([Param::Text("b")]).unwrap(), 1);
        assert!(InPlaceStatement::prepare(&connection, "INSERT INTO nowhere VALUES (1)").is_err());
    }
}
