//! The SQLite plumbing every embedded store shares, written once: JSON documents in `TEXT`
//! columns, versions as SQLite's signed integers, reading one value, a column or documents, and
//! adding a column to the table of an older database.

use rusqlite::types::FromSql;
use rusqlite::{Connection, OptionalExtension, Params, Row, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// `value` as the JSON text of a column; a failure is SQLite's parameter conversion error.
pub(crate) fn to_json<T: Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
}

/// The JSON text read from column `column` as a `T`; a failure is SQLite's conversion error
/// naming that column.
pub(crate) fn from_json<T: DeserializeOwned>(column: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, e.into())
    })
}

/// A document read as the first column (`SELECT doc …`).
pub(crate) fn from_doc<T: DeserializeOwned>(doc: &str) -> rusqlite::Result<T> {
    from_json(0, doc)
}

/// A version as SQLite's signed integer.
pub(crate) fn version_i64(version: u64) -> rusqlite::Result<i64> {
    i64::try_from(version).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
}

/// The row `sql` selects as a tuple of its columns, if there is a row.
pub(crate) fn query_one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> rusqlite::Result<Option<T>>
where
    T: for<'r> TryFrom<&'r Row<'r>, Error = rusqlite::Error>,
{
    conn.query_row(sql, params, |r| T::try_from(r)).optional()
}

/// The first column of the row `sql` selects, if there is a row.
pub(crate) fn query_value<T: FromSql>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> rusqlite::Result<Option<T>> {
    Ok(query_one::<(T,)>(conn, sql, params)?.map(|(value,)| value))
}

/// Whether `sql` selects a row.
pub(crate) fn exists(conn: &Connection, sql: &str, params: impl Params) -> rusqlite::Result<bool> {
    conn.query_row(sql, params, |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
}

/// Every row `sql` selects, in its order, as `row` reads it.
pub(crate) fn query_rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, row)?;
    rows.collect()
}

/// The first column of every row `sql` selects, in its order.
pub(crate) fn query_column<T: FromSql>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> rusqlite::Result<Vec<T>> {
    query_rows(conn, sql, params, |r| r.get(0))
}

/// The document (first column) of the row `sql` selects, if there is a row.
pub(crate) fn query_doc<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> rusqlite::Result<Option<T>> {
    query_value::<String>(conn, sql, params)?
        .as_deref()
        .map(from_doc)
        .transpose()
}

/// The documents (first column) of every row `sql` selects, in its order.
pub(crate) fn query_docs<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> rusqlite::Result<Vec<T>> {
    query_rows(conn, sql, params, |r| from_doc(&r.get::<_, String>(0)?))
}

/// The names of `table`'s columns, in order.
pub(crate) fn column_names(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    query_rows(conn, &format!("PRAGMA table_info({table})"), [], |r| {
        r.get(1)
    })
}

/// Adds each `(table, column, type)` its table lacks (a database created before the column), in
/// one immediate transaction, so two processes opening the same old database do not both add it.
pub(crate) fn add_missing_columns(
    conn: &mut Connection,
    columns: &[(&str, &str, &str)],
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (table, column, kind) in columns {
        if !column_names(&tx, table)?.iter().any(|name| name == column) {
            tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
        }
    }
    tx.commit()
}
