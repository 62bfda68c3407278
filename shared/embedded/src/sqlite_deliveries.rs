//! [`DeliveryStore`] in the embedded database: one row per outbound message, its JSON document
//! beside the columns the store filters and orders on. The id, conversation and creation time are
//! fixed by [`DeliveryStore::begin`]; [`DeliveryStore::update`] replaces the document and version.
//!
//! `account_id` (indexed, for [`DeliveryStore::purge_account`]) came after the table's first
//! release: databases created before it get the nullable column when the store opens, and their
//! older rows keep it `NULL` (the purge then matches them by the document's `accountId`).

use crate::sql::{from_doc, to_json, version_i64};
use crate::EmbeddedDb;
use async_trait::async_trait;
use omniline_domain::delivery::Delivery;
use omniline_ports::{DeliveryStore, PortError, PurgePage};
use rusqlite::params;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS deliveries (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    doc             TEXT NOT NULL,
    account_id      TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_conversation
    ON deliveries (conversation_id, created_at, id);
"#;

/// The index on `account_id`: applied once the column exists (old databases are migrated first).
const ACCOUNT_SCHEMA: &str = r#"
CREATE INDEX IF NOT EXISTS deliveries_account ON deliveries (account_id);
"#;

/// `account_id`, added to the table of a database created before it.
const ACCOUNT_COLUMN: [(&str, &str, &str); 1] = [("deliveries", "account_id", "TEXT")];

/// [`DeliveryStore`] in the embedded database.
#[derive(Debug, Clone)]
pub struct SqliteDeliveryStore {
    db: EmbeddedDb,
}

impl SqliteDeliveryStore {
    /// Creates the store's table if needed, and adds the `account_id` column to the table of an
    /// older database.
    pub fn new(db: EmbeddedDb) -> Result<Self, PortError> {
        db.apply_schema(SCHEMA)?;
        db.add_columns(&ACCOUNT_COLUMN)?;
        db.apply_schema(ACCOUNT_SCHEMA)?;
        Ok(Self { db })
    }
}

#[async_trait]
impl DeliveryStore for SqliteDeliveryStore {
    async fn begin(&self, delivery: &Delivery) -> Result<Delivery, PortError> {
        let delivery = delivery.clone();
        self.db
            .run(move |conn| {
                let tx = conn.transaction()?;
                tx.execute(
                    "INSERT OR IGNORE INTO deliveries
                       (id, conversation_id, created_at, version, doc, account_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        delivery.id,
                        delivery.conversation_id,
                        delivery.created_at,
                        version_i64(delivery.version)?,
                        to_json(&delivery)?,
                        delivery.account_id
                    ],
                )?;
                let doc: String = tx.query_row(
                    "SELECT doc FROM deliveries WHERE id = ?1",
                    params![delivery.id],
                    |r| r.get(0),
                )?;
                tx.commit()?;
                from_doc(&doc)
            })
            .await
    }

    async fn update(&self, delivery: &Delivery) -> Result<bool, PortError> {
        let Some(previous) = delivery.version.checked_sub(1) else {
            return Ok(false);
        };
        let delivery = delivery.clone();
        self.db
            .run(move |conn| {
                let updated = conn.execute(
                    "UPDATE deliveries SET version = ?2, doc = ?3 WHERE id = ?1 AND version = ?4",
                    params![
                        delivery.id,
                        version_i64(delivery.version)?,
                        to_json(&delivery)?,
                        version_i64(previous)?
                    ],
                )?;
                Ok(updated == 1)
            })
            .await
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, PortError> {
        self.db
            .doc("SELECT doc FROM deliveries WHERE id = ?1", (id.to_owned(),))
            .await
    }

    async fn deliveries_for_conversation(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<Delivery>, PortError> {
        self.db
            .docs(
                "SELECT doc FROM deliveries WHERE conversation_id = ?1
                 ORDER BY created_at ASC, id ASC",
                (conversation_id.to_owned(),),
            )
            .await
    }

    async fn delete_for_conversation(&self, conversation_id: &str) -> Result<u64, PortError> {
        let deleted = self
            .db
            .execute(
                "DELETE FROM deliveries WHERE conversation_id = ?1",
                (conversation_id.to_owned(),),
            )
            .await?;
        Ok(deleted as u64)
    }

    /// The whole purge in one page (one statement): the next cursor is always `None`.
    async fn purge_account_page(
        &self,
        account_id: &str,
        _cursor: Option<&str>,
        _page_size: u32,
    ) -> Result<PurgePage<u64>, PortError> {
        // Rows written before the column existed have it `NULL`: matched by the document.
        let deleted = self
            .db
            .execute(
                "DELETE FROM deliveries WHERE account_id = ?1
                    OR (account_id IS NULL AND json_extract(doc, '$.accountId') = ?1)",
                (account_id.to_owned(),),
            )
            .await?;
        Ok(PurgePage {
            erased: deleted as u64,
            next: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn store(dir: &tempfile::TempDir) -> SqliteDeliveryStore {
        SqliteDeliveryStore::new(EmbeddedDb::open(dir.path()).unwrap()).unwrap()
    }

    use omniline_testkit::delivery_contract::{self as contract, delivery, ids, sent};

    // The [`DeliveryStore`] contract (also run against DynamoDB on moto).
    contract_scenarios!(store =>
        begin_twice_keeps_the_first_retry_key,
        update_needs_the_previous_version,
        listed_per_conversation_in_creation_order,
    );

    /// The [`DeliveryStore`] contract (also run against DynamoDB on moto).
    #[tokio::test]
    async fn deliveries_concurrent_updates_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        contract::concurrent_updates_exactly_one_wins(Arc::new(store(&dir))).await;
    }

    #[tokio::test]
    async fn deliveries_deleted_per_conversation_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        for (id, conversation, at) in [("m1", "c1", 1000), ("m2", "c1", 2000), ("x1", "c2", 500)] {
            s.begin(&delivery(id, conversation, "k", at)).await.unwrap();
        }
        assert_eq!(s.delete_for_conversation("c1").await.unwrap(), 2);
        assert!(s
            .deliveries_for_conversation("c1")
            .await
            .unwrap()
            .is_empty());
        assert_eq!(s.delivery("m1").await.unwrap(), None);
        assert_eq!(s.delivery("m2").await.unwrap(), None);
        // Another conversation's deliveries stay; deleting again, or an unknown one, is 0.
        assert_eq!(
            ids(&s.deliveries_for_conversation("c2").await.unwrap()),
            ["x1"]
        );
        assert_eq!(s.delete_for_conversation("c1").await.unwrap(), 0);
        assert_eq!(s.delete_for_conversation("nope").await.unwrap(), 0);
        // The id can be used again.
        let again = delivery("m1", "c3", "k2", 3000);
        assert_eq!(s.begin(&again).await.unwrap(), again);
    }

    #[tokio::test]
    async fn deliveries_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let d2 = {
            let s = store(&dir);
            let d1 = s
                .begin(&delivery("m1", "c1", "key-first", 1000))
                .await
                .unwrap();
            let d2 = sent(&d1);
            assert!(s.update(&d2).await.unwrap());
            d2
        };
        let s = store(&dir);
        assert_eq!(s.delivery("m1").await.unwrap(), Some(d2.clone()));
        assert_eq!(
            s.deliveries_for_conversation("c1").await.unwrap(),
            vec![d2.clone()]
        );
        let again = s
            .begin(&delivery("m1", "c1", "key-second", 5000))
            .await
            .unwrap();
        assert_eq!(again, d2);
        assert!(s.update(&sent(&d2)).await.unwrap());
    }

    fn delivery_of(account_id: &str, id: &str, conversation_id: &str, now: i64) -> Delivery {
        Delivery::new(id, account_id, conversation_id, "k", now)
    }

    #[tokio::test]
    async fn deliveries_purged_per_account_only() {
        let dir = tempfile::tempdir().unwrap();
        let pages = contract::purge_erases_one_accounts_deliveries(&store(&dir), 1000, false).await;
        assert_eq!(pages, 1);
    }

    /// In pages of one, each run twice: the database does it in one page.
    #[tokio::test]
    async fn deliveries_purged_in_small_pages() {
        let dir = tempfile::tempdir().unwrap();
        let pages = contract::purge_erases_one_accounts_deliveries(&store(&dir), 1, true).await;
        assert_eq!(pages, 1);
    }

    /// The table as first released: no `account_id`.
    const OLD_SCHEMA: &str = r#"
    CREATE TABLE deliveries (
        id              TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        version         INTEGER NOT NULL,
        doc             TEXT NOT NULL
    );
    CREATE INDEX deliveries_conversation ON deliveries (conversation_id, created_at, id);
    "#;

    async fn column_names(s: &SqliteDeliveryStore) -> Vec<String> {
        s.db.run(|conn| crate::sql::column_names(conn, "deliveries"))
            .await
            .unwrap()
    }

    async fn account_column(s: &SqliteDeliveryStore, id: &str) -> Option<Option<String>> {
        let id = id.to_owned();
        s.db.run(move |conn| {
            crate::sql::query_value(
                conn,
                "SELECT account_id FROM deliveries WHERE id = ?1",
                (id,),
            )
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn deliveries_of_an_old_database_are_purged_too() {
        let dir = tempfile::tempdir().unwrap();
        let old1 = delivery_of("acc1", "o1", "c1", 1000);
        let old2 = delivery_of("acc2", "o2", "c2", 1000);
        {
            let conn = rusqlite::Connection::open(dir.path().join("omniline.db")).unwrap();
            conn.execute_batch(OLD_SCHEMA).unwrap();
            for d in [&old1, &old2] {
                conn.execute(
                    "INSERT INTO deliveries VALUES (?1, ?2, ?3, 1, ?4)",
                    params![
                        d.id,
                        d.conversation_id,
                        d.created_at,
                        serde_json::to_string(d).unwrap()
                    ],
                )
                .unwrap();
            }
        }
        let s = store(&dir);
        let names = column_names(&s).await;
        assert_eq!(
            names.iter().filter(|n| *n == "account_id").count(),
            1,
            "{names:?}"
        );
        // The old rows read as before, with no account in the column.
        assert_eq!(s.delivery("o1").await.unwrap(), Some(old1.clone()));
        assert_eq!(account_column(&s, "o1").await, Some(None));
        // A new write fills the column.
        let new1 = delivery_of("acc1", "n1", "c1", 2000);
        s.begin(&new1).await.unwrap();
        assert_eq!(account_column(&s, "n1").await, Some(Some("acc1".into())));
        assert_eq!(
            s.deliveries_for_conversation("c1").await.unwrap(),
            vec![old1, new1]
        );

        assert_eq!(
            contract::purge_to_the_end(&s, "acc1", 1000, false).await.0,
            2
        );
        assert!(s
            .deliveries_for_conversation("c1")
            .await
            .unwrap()
            .is_empty());
        assert_eq!(s.delivery("o1").await.unwrap(), None);
        assert_eq!(
            s.deliveries_for_conversation("c2").await.unwrap(),
            vec![old2.clone()]
        );

        // Opening again (column present) is a no-op; so is a second store on the same database.
        drop(s);
        let again = store(&dir);
        SqliteDeliveryStore::new(again.db.clone()).unwrap();
        assert_eq!(column_names(&again).await.len(), 6);
        assert_eq!(again.delivery("o2").await.unwrap(), Some(old2));
        assert_eq!(
            contract::purge_to_the_end(&again, "acc2", 1000, false)
                .await
                .0,
            1
        );
        assert_eq!(again.delivery("o2").await.unwrap(), None);
    }
}
