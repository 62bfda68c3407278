//! Issue 1/7's security findings held against the `omniline-local` binary started as the README
//! starts it: private data files from their first byte, refusal of a data directory open to
//! others.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const ADMIN: &str = "security-test-admin-token-0123456789abcdef";

/// The binary on `data`, in sandbox mode (no LINE settings): it writes secrets at start (the
/// sandbox account's channel secret and access token, through the admin API).
fn command(data: &Path) -> Command {
    common::sandbox_command(data, ADMIN)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_data_directory_database_wal_and_sandbox_files_are_private_from_the_first_write() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut child = command(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut base = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.trim().strip_prefix("listening on:") {
            base = Some(url.trim().to_owned());
        }
        if line.trim_start().starts_with("sandbox:") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let base = base.expect("a base URL");
    // The sandbox's bootstrap has written the account's secrets; its page's session reads them.
    let answer = reqwest::get(format!("{base}/sandbox/api/session"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(mode(&data), 0o700, "DATA_DIR");
    let wal = data.join("omniline.db-wal");
    assert!(wal.exists(), "the database runs in WAL mode");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), want, "{}", path.display());
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    for name in [
        "omniline.db",
        "omniline.db-wal",
        "omniline.db-shm",
        "sandbox.db",
    ] {
        assert!(seen.iter().any(|s| s == name), "{name} in {seen:?}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_data_directory_or_database_open_to_other_users_is_refused_with_exit_2() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = command(&data).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("chmod 700"), "{stderr}");
    assert!(!data.join("omniline.db").exists(), "nothing was written");

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(data.join("omniline.db"), b"").unwrap();
    std::fs::set_permissions(
        data.join("omniline.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = command(&data).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(stderr.contains("omniline.db"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// The agent API (LINE mocked by wiremock, sandbox off).

mod common;

use common::{agent_call, agent_ok, new_agent};
use serde_json::{json, Value};

/// An account, a queue and a push-mode workstream letting agents send attachments.
async fn channel(s: &common::Stack) -> (String, String) {
    channel_of(s, common::SECRET_A, "token-a").await
}

async fn channel_of(s: &common::Stack, secret: &str, token: &str) -> (String, String) {
    let account = s.account("Shop", secret, token).await;
    let queue = s.queue("Support").await;
    s.ok(
        "POST",
        "/admin/v1/workstreams",
        Some(
            json!({"name": "Support", "accountId": account, "language": "en",
                    "distribution": "push", "defaultQueueId": queue,
                    "attachments": {"customerCanSend": true, "agentCanSend": true}}),
        ),
    )
    .await;
    (account, queue)
}

async fn presence(s: &common::Stack, token: &str, status: &str) {
    agent_ok(
        s,
        token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": status})),
    )
    .await;
}

/// The customer writes; waits until the conversation is assigned to the agent of `token`.
async fn assigned_conversation(
    s: &common::Stack,
    account: &str,
    token: &str,
    event: &str,
    user: &str,
) -> String {
    assert_eq!(
        s.webhook(
            account,
            common::SECRET_A,
            json!([common::text_event(event, user, "hello")])
        )
        .await,
        200
    );
    for _ in 0..200 {
        let listed = agent_ok(s, token, "GET", "/agent/v1/conversations", None).await;
        if let Some(c) = listed["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["status"] == "active" && c["sourceId"] == user)
        {
            return c["id"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{user}'s conversation was never assigned");
}

/// Review 1/7 #2: agent B, in A's queue, transferred A's conversation to itself and wrote to the
/// customer. Only the holder transfers an assigned conversation.
#[tokio::test]
async fn an_agent_cannot_take_over_a_colleagues_conversation_by_transfer() {
    let s = common::start().await;
    let (account, queue) = channel(&s).await;
    let (a_id, a) = new_agent(&s, "Aiko", &[&queue]).await;
    let (b_id, b) = new_agent(&s, "Bunta", &[&queue]).await;
    presence(&s, &a, "available").await;
    let id = assigned_conversation(&s, &account, &a, "01TAKE1", "Utake").await;
    presence(&s, &b, "available").await;
    for body in [json!({"agentId": b_id}), json!({"queueId": queue})] {
        let (status, v) = agent_call(
            &s,
            &b,
            "POST",
            &format!("/agent/v1/conversations/{id}/transfer"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 403, "{body}: {v}");
        assert_eq!(v["error"]["code"], "forbidden", "{v}");
    }
    let (status, _) = agent_call(
        &s,
        &b,
        "POST",
        &format!("/agent/v1/conversations/{id}/messages"),
        Some(json!({"type": "text", "text": "I am taking over"})),
    )
    .await;
    assert_eq!(status, 403);
    let c = agent_ok(
        &s,
        &a,
        "GET",
        &format!("/agent/v1/conversations/{id}"),
        None,
    )
    .await;
    assert_eq!(
        c["conversation"]["agentId"]
            .as_str()
            .or(c["agentId"].as_str()),
        Some(a_id.as_str()),
        "{c}"
    );
}

/// Review 1/7 #4: a notification is handed out only while its agent may see the conversation.
#[tokio::test]
async fn notifications_of_a_conversation_the_agent_may_no_longer_see_are_withheld() {
    let s = common::start().await;
    let (account, queue) = channel(&s).await;
    let elsewhere = s.queue("Elsewhere").await;
    let (_, a) = new_agent(&s, "Aiko", &[&queue]).await;
    presence(&s, &a, "available").await;
    let id = assigned_conversation(&s, &account, &a, "01NOTE1", "Unote").await;
    // Settled: the poll hands out the assignment with the customer's message.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let page = agent_ok(&s, &a, "GET", "/agent/v1/notifications", None).await;
    assert!(
        page["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["conversationId"] == id.as_str()),
        "{page}"
    );
    // Moved to a queue Aiko does not serve: out of her sight, notifications included.
    agent_ok(
        &s,
        &a,
        "POST",
        &format!("/agent/v1/conversations/{id}/transfer"),
        Some(json!({"queueId": elsewhere})),
    )
    .await;
    let (status, _) = agent_call(
        &s,
        &a,
        "GET",
        &format!("/agent/v1/conversations/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let page = agent_ok(&s, &a, "GET", "/agent/v1/notifications", None).await;
    assert_eq!(page["notifications"], json!([]), "{page}");
    assert!(!page.to_string().contains("hello"), "{page}");
}

/// Review 1/7 #11: an upload is its uploader's, and preview links are https.
#[tokio::test]
async fn media_ids_are_bound_to_their_uploader_and_preview_links_must_be_https() {
    let s = common::start().await;
    let (account, queue) = channel(&s).await;
    let (_, a) = new_agent(&s, "Aiko", &[&queue]).await;
    let (_, b) = new_agent(&s, "Bunta", &[&queue]).await;
    presence(&s, &a, "available").await;
    let a_conversation = assigned_conversation(&s, &account, &a, "01MEDIA1", "Umedia1").await;
    presence(&s, &a, "away").await;
    presence(&s, &b, "available").await;
    let b_conversation = assigned_conversation(&s, &account, &b, "01MEDIA2", "Umedia2").await;

    let media_id = common::upload_png(&s, &a, vec![0x89, b'P', b'N', b'G', 0, 1, 2, 3]).await;
    let send = |token: &str, conversation: &str, body: Value| {
        let (token, route) = (
            token.to_owned(),
            format!("/agent/v1/conversations/{conversation}/messages"),
        );
        let s = &s;
        async move { agent_call(s, &token, "POST", &route, Some(body)).await }
    };
    let (status, v) = send(
        &b,
        &b_conversation,
        json!({"type": "image", "mediaId": media_id}),
    )
    .await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (400, Some("mediaId")),
        "{v}"
    );
    let (status, v) = send(
        &b,
        &b_conversation,
        json!({"type": "image", "originalContentUrl": "https://cdn.example.com/a.jpg",
               "previewImageUrl": "javascript:alert(1)"}),
    )
    .await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (400, Some("previewImageUrl")),
        "{v}"
    );
    let (status, v) = send(
        &a,
        &a_conversation,
        json!({"type": "image", "mediaId": media_id}),
    )
    .await;
    assert_eq!(status, 202, "the uploader may: {v}");
}

/// Review 1/7 #6: any agent listed every contact of every account. Contacts belong to an account,
/// only agents serving it see them, they can be deleted, and erasing the customer erases theirs.
#[tokio::test]
async fn contacts_belong_to_an_account_can_be_deleted_and_go_with_their_customer() {
    let s = common::start().await;
    let (shop, queue) = channel(&s).await;
    let (other, other_queue) = channel_of(&s, common::SECRET_B, "token-b").await;
    let (_, aiko) = new_agent(&s, "Aiko", &[&queue]).await;
    let (_, olga) = new_agent(&s, "Olga", &[&other_queue]).await;
    let contact = agent_ok(
        &s,
        &aiko,
        "POST",
        "/agent/v1/contacts",
        Some(json!({"name": "Taro Yamada", "email": "taro@example.com", "phone": "090-1234-5678"})),
    )
    .await;
    assert_eq!(contact["accountId"], shop.as_str());
    let contact_id = contact["id"].as_str().unwrap().to_owned();
    let mine = agent_ok(&s, &aiko, "GET", "/agent/v1/contacts?q=taro", None).await;
    assert_eq!(mine["contacts"].as_array().unwrap().len(), 1, "{mine}");

    // Olga serves the other account only: she sees none of it, by search or by id.
    let hers = agent_ok(&s, &olga, "GET", "/agent/v1/contacts?q=", None).await;
    assert_eq!(hers["contacts"], json!([]), "{hers}");
    assert!(!hers.to_string().contains("taro@example.com"));
    let (status, _) = agent_call(
        &s,
        &olga,
        "GET",
        &format!("/agent/v1/contacts?accountId={shop}"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = agent_call(
        &s,
        &olga,
        "POST",
        "/agent/v1/contacts",
        Some(json!({"accountId": shop, "name": "Intruder"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = agent_call(
        &s,
        &olga,
        "DELETE",
        &format!("/agent/v1/contacts/{contact_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let _ = other;

    // Deleted by an agent of its account.
    let (status, _) = agent_call(
        &s,
        &aiko,
        "DELETE",
        &format!("/agent/v1/contacts/{contact_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let mine = agent_ok(&s, &aiko, "GET", "/agent/v1/contacts?q=", None).await;
    assert_eq!(mine["contacts"], json!([]));

    // Linked to a customer, erased with the customer.
    presence(&s, &aiko, "available").await;
    let conversation = assigned_conversation(&s, &shop, &aiko, "01CONT1", "Ucontact").await;
    let contact = agent_ok(
        &s,
        &aiko,
        "POST",
        "/agent/v1/contacts",
        Some(json!({"name": "Hanako Sato", "email": "hanako@example.com"})),
    )
    .await;
    agent_ok(
        &s,
        &aiko,
        "POST",
        &format!("/agent/v1/conversations/{conversation}/link"),
        Some(json!({"contactId": contact["id"]})),
    )
    .await;
    let (status, v) = s
        .call(
            "DELETE",
            &format!("/admin/v1/customers/{shop}:Ucontact"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{v}");
    let mine = agent_ok(&s, &aiko, "GET", "/agent/v1/contacts?q=hanako", None).await;
    assert_eq!(mine["contacts"], json!([]), "{mine}");
}

/// Review 1/7 #17: erasing a customer left their notifications (name, picture), pending account
/// links and the files agents sent them. All go with the customer now.
#[tokio::test]
async fn erasing_a_customer_erases_notifications_link_requests_and_agent_uploads_sent_to_them() {
    use wiremock::matchers::{method, path_regex};
    use wiremock::{Mock, ResponseTemplate};
    let s = common::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/v2/bot/user/[^/]+/linkToken$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"linkToken": "LT-9"})))
        .mount(&s.line)
        .await;
    let (shop, queue) = channel(&s).await;
    let (_, aiko) = new_agent(&s, "Aiko", &[&queue]).await;
    presence(&s, &aiko, "available").await;
    let conversation = assigned_conversation(&s, &shop, &aiko, "01ERASE1", "Uerase").await;

    let media_id = common::upload_png(&s, &aiko, vec![0x89, b'P', b'N', b'G', 9, 9, 9, 9]).await;
    let file = s.data.path().join("media").join(&media_id);
    assert!(file.exists(), "{}", file.display());
    agent_ok(
        &s,
        &aiko,
        "POST",
        &format!("/agent/v1/conversations/{conversation}/messages"),
        Some(json!({"type": "image", "mediaId": media_id})),
    )
    .await;
    let contact = agent_ok(
        &s,
        &aiko,
        "POST",
        "/agent/v1/contacts",
        Some(json!({"name": "Erase Me"})),
    )
    .await;
    agent_ok(
        &s,
        &aiko,
        "POST",
        &format!("/agent/v1/conversations/{conversation}/link-request"),
        Some(json!({"contactId": contact["id"]})),
    )
    .await;

    let db = rusqlite::Connection::open(s.data.path().join("omniline.db")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    let notifications = format!(
        "SELECT COUNT(*) FROM agent_notifications WHERE json_extract(doc, '$.conversationId') = '{conversation}'"
    );
    let link_requests = "SELECT COUNT(*) FROM config_docs WHERE kind = 'linkRequest'";
    assert!(count(&notifications) >= 1);
    assert_eq!(count(link_requests), 1);

    let (status, v) = s
        .call(
            "DELETE",
            &format!("/admin/v1/customers/{shop}:Uerase"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{v}");
    assert_eq!(count(&notifications), 0, "notifications about them");
    assert_eq!(count(link_requests), 0, "their pending account link");
    assert!(!file.exists(), "the image the agent sent them");
}

/// Review 1/7 #16: an account's contacts were unlimited (and every search reads them). At most
/// 1,000 per account: the next is a 409 naming the limit.
#[tokio::test]
async fn an_account_holds_at_most_a_thousand_contacts() {
    let s = common::start().await;
    let (shop, queue) = channel(&s).await;
    let (_, aiko) = new_agent(&s, "Aiko", &[&queue]).await;
    // 999 contacts written straight to the store, as if made one by one.
    {
        let db = rusqlite::Connection::open(s.data.path().join("omniline.db")).unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        let kind = format!("contact@{shop}");
        let tx = db.unchecked_transaction().unwrap();
        for n in 0..999 {
            let doc = json!({"id": format!("seed{n}"), "accountId": shop, "name": format!("Seed {n}"),
                             "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z"});
            tx.execute(
                "INSERT INTO config_docs (kind, id, doc, version) VALUES (?1, ?2, ?3, 1)",
                rusqlite::params![kind, format!("seed{n}"), doc.to_string()],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    agent_ok(
        &s,
        &aiko,
        "POST",
        "/agent/v1/contacts",
        Some(json!({"name": "The thousandth"})),
    )
    .await;
    let (status, v) = agent_call(
        &s,
        &aiko,
        "POST",
        "/agent/v1/contacts",
        Some(json!({"name": "One too many"})),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("1000"),
        "{v}"
    );
    // Deleting one makes room again.
    let (status, _) = agent_call(&s, &aiko, "DELETE", "/agent/v1/contacts/seed0", None).await;
    assert_eq!(status, 204);
    agent_ok(
        &s,
        &aiko,
        "POST",
        "/agent/v1/contacts",
        Some(json!({"name": "Room again"})),
    )
    .await;
}
