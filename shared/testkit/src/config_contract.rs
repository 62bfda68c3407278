//! The [`omniline_ports::ConfigStore`] contract.

/// Contract of every [`omniline_ports::ConfigStore`]: documents per kind, created once
/// (`Expect::Absent`), replaced only at the stored version, listed in id order, deleted once, and
/// created again from version 1.
pub async fn config_store_contract(store: &dyn omniline_ports::ConfigStore) {
    use omniline_ports::{ConfigDoc, Expect};
    fn ids(docs: &[ConfigDoc]) -> Vec<&str> {
        docs.iter().map(|d| d.id.as_str()).collect()
    }
    assert_eq!(store.get_doc("queue", "q1").await.unwrap(), None);
    assert!(store.list_docs("queue").await.unwrap().is_empty());

    assert_eq!(
        store
            .put_doc("queue", "q2", r#"{"n":2}"#, Expect::Absent)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .put_doc("queue", "q1", r#"{"n":1}"#, Expect::Absent)
            .await
            .unwrap(),
        Some(1)
    );
    // Same id, another kind: a separate document.
    assert_eq!(
        store
            .put_doc("agent", "q1", r#"{"agent":true}"#, Expect::Absent)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store.get_doc("queue", "q1").await.unwrap(),
        Some(ConfigDoc {
            id: "q1".into(),
            doc: r#"{"n":1}"#.into(),
            version: 1
        })
    );
    let queues = store.list_docs("queue").await.unwrap();
    assert_eq!(ids(&queues), ["q1", "q2"]);
    assert_eq!(ids(&store.list_docs("agent").await.unwrap()), ["q1"]);

    // Optimistic update: the right version wins once, a stale one loses.
    assert_eq!(
        store
            .put_doc("queue", "q1", r#"{"n":10}"#, Expect::Version(1))
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        store
            .put_doc("queue", "q1", r#"{"n":11}"#, Expect::Version(1))
            .await
            .unwrap(),
        None
    );
    let q1 = store.get_doc("queue", "q1").await.unwrap().unwrap();
    assert_eq!((q1.doc.as_str(), q1.version), (r#"{"n":10}"#, 2));
    assert_eq!(
        store
            .put_doc("queue", "q1", r#"{"n":12}"#, Expect::Version(2))
            .await
            .unwrap(),
        Some(3)
    );

    // Creating an existing id fails and leaves it alone; updating a missing one fails.
    assert_eq!(
        store
            .put_doc("queue", "q1", "{}", Expect::Absent)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.get_doc("queue", "q1").await.unwrap().unwrap().version,
        3
    );
    assert_eq!(
        store
            .put_doc("queue", "nope", "{}", Expect::Version(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_doc("queue", "nope").await.unwrap(), None);

    // Delete: once true, then false; other kinds untouched; the id can be created again.
    assert!(store.delete_doc("queue", "q1").await.unwrap());
    assert!(!store.delete_doc("queue", "q1").await.unwrap());
    assert_eq!(store.get_doc("queue", "q1").await.unwrap(), None);
    assert_eq!(ids(&store.list_docs("queue").await.unwrap()), ["q2"]);
    assert!(store.get_doc("agent", "q1").await.unwrap().is_some());
    assert_eq!(
        store
            .put_doc("queue", "q1", "{}", Expect::Version(3))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .put_doc("queue", "q1", "{}", Expect::Absent)
            .await
            .unwrap(),
        Some(1)
    );
}
