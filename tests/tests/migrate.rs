//! `omniline-migrate` (issue 3/7) on moto: a stack's tables as the release before the indexes
//! wrote them (a conversation `META` item without index attributes, an account without its
//! `ACCOUNTS` entry, an agent without its email index entry) are readable through the request
//! paths' reads after one run, and a second run changes nothing.

use aws_sdk_dynamodb::types::AttributeValue;
use omniline_aws::dynamo_conversations::DynamoConversationStore;
use omniline_aws::DynamoAccountStore;
use omniline_domain::agents::{AGENT_ACCOUNT_KIND, AGENT_EMAIL_KIND};
use omniline_domain::conversation::{Conversation, ConversationFilter, ConversationState};
use omniline_ports::{AccountStore, ConfigStore, ConversationStore};
use omniline_tests::{endpoint, pk_sk_table, sdk_config};

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn one_run_makes_old_items_readable_and_a_second_changes_nothing() {
    use omniline_testkit::account_contract::account;
    let config = sdk_config(&endpoint()).await;
    let config_table = pk_sk_table(&config, "config").await;
    let conversations_table = pk_sk_table(&config, "conversations").await;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let s = |v: &str| AttributeValue::S(v.to_owned());

    // An account as written before the list: its profile only.
    let accounts = DynamoAccountStore::new(&config, &config_table);
    accounts
        .create(&account("acc-old", "2024-01-01T00:00:00.000Z"))
        .await
        .unwrap();
    ddb.delete_item()
        .table_name(&config_table)
        .key("pk", s("ACCOUNTS"))
        .key("sk", s("acc-old"))
        .send()
        .await
        .unwrap();
    // Two agents' accounts as written before the email index; the second has the first's
    // address (allowed then).
    let docs = omniline_aws::config_docs::DynamoConfigStore::new(&config, &config_table);
    for (id, email) in [
        ("ag-old", "Old@Example.com"),
        ("ag-twin", "old@example.com"),
    ] {
        let account = serde_json::json!({"id": id, "email": email, "tokenHash": "00",
            "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-01T00:00:00.000Z"});
        docs.put_doc(
            AGENT_ACCOUNT_KIND,
            id,
            &account.to_string(),
            omniline_ports::Expect::Absent,
        )
        .await
        .unwrap();
    }
    assert!(docs
        .get_doc(AGENT_EMAIL_KIND, "old@example.com")
        .await
        .unwrap()
        .is_none());
    // A waiting conversation of queue q1 as written before the indexes.
    let c: Conversation = serde_json::from_value(serde_json::json!({
        "id": "c-old", "accountId": "acc-old", "sourceType": "user", "sourceId": "Uold",
        "state": "waiting", "workstreamId": "ws1", "queueId": "q1", "priority": 0,
        "skills": [], "members": [], "openedAt": 1_700_000_000_000_i64,
        "lastActivityAt": 1_700_000_000_000_i64, "version": 1
    }))
    .unwrap();
    ddb.put_item()
        .table_name(&conversations_table)
        .item("pk", s("CONV#c-old"))
        .item("sk", s("META"))
        .item("doc", s(&serde_json::to_string(&c).unwrap()))
        .item("version", AttributeValue::N("1".into()))
        .item("accountId", s("acc-old"))
        .item("sourceId", s("Uold"))
        .item("state", s("waiting"))
        .item(
            "lastActivityAt",
            AttributeValue::N(c.last_activity_at.to_string()),
        )
        .send()
        .await
        .unwrap();

    let conversations = DynamoConversationStore::new(&config, &conversations_table);
    let waiting_in_q1 = ConversationFilter {
        state: Some(ConversationState::Waiting),
        queue_ids: vec!["q1".into()],
        agent_id: None,
        limit: 10,
        after: None,
    };
    let listed = |found: Vec<Conversation>| found.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert!(listed(
        conversations
            .list_conversations(&waiting_in_q1)
            .await
            .unwrap()
    )
    .is_empty());
    assert!(accounts.list().await.unwrap().is_empty());

    let first = omniline_local::migrate::migrate(&config, &config_table, &conversations_table)
        .await
        .unwrap();
    assert_eq!(first.conversations, 1);
    assert_eq!(first.agent_emails, 1);
    assert_eq!(first.agents_sharing_an_email, ["ag-twin"]);
    let entry = docs
        .get_doc(AGENT_EMAIL_KIND, "old@example.com")
        .await
        .unwrap()
        .expect("the email index entry");
    assert!(entry.doc.contains("ag-old"), "{}", entry.doc);
    assert_eq!(
        listed(
            conversations
                .list_conversations(&waiting_in_q1)
                .await
                .unwrap()
        ),
        ["c-old"]
    );
    assert_eq!(
        listed(
            conversations
                .conversations_of_source("acc-old", "Uold")
                .await
                .unwrap()
        ),
        ["c-old"]
    );
    let ids: Vec<_> = accounts
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, ["acc-old"]);

    let again = omniline_local::migrate::migrate(&config, &config_table, &conversations_table)
        .await
        .unwrap();
    assert_eq!(again.conversations, 0, "nothing left to index");
    assert_eq!(again.agent_emails, 0);
    assert_eq!(
        listed(
            conversations
                .list_conversations(&waiting_in_q1)
                .await
                .unwrap()
        ),
        ["c-old"]
    );
}
