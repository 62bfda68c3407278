//! The simulated LINE platform behind the sandbox: its simulated users (the "phones"), what each
//! chat shows, and LINE's rules the stack's Messaging API calls meet here — a reply token is
//! accepted once and for a minute, a push's `X-Line-Retry-Key` is accepted once (409 after), a
//! profile exists only for a known user, content only for what a user sent.
//!
//! Users, chats, accepted retry keys and sent content are kept in `DATA_DIR/sandbox.db` (its own
//! SQLite file: the product's database holds no sandbox table), so a restart of the local stack
//! keeps the sandbox's people and chats as it keeps their conversations.

use omniline_domain::secret::SecretString;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// How long LINE accepts a reply token.
pub const REPLY_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Pictures a simulated user can choose from (`/sandbox/avatars/{n}.svg`).
pub const AVATARS: u8 = 8;
/// Languages offered for simulated users (LINE's profile `language`).
pub const LANGUAGES: [&str; 5] = ["en", "ja", "th", "zh-TW", "id"];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, language TEXT NOT NULL, avatar INTEGER NOT NULL,
    created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS timeline (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, at INTEGER NOT NULL,
    sender TEXT NOT NULL, via TEXT NOT NULL, message TEXT NOT NULL, failed INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS timeline_by_user ON timeline (user_id, seq);
CREATE TABLE IF NOT EXISTS retry_keys (
    key TEXT PRIMARY KEY, request_id TEXT NOT NULL, sent TEXT NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS content (
    message_id TEXT PRIMARY KEY, content_type TEXT NOT NULL, bytes BLOB NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
";

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("sandbox database: {0}")]
    Store(String),
    #[error("{0}")]
    Invalid(String),
}

fn store_error(e: impl std::fmt::Display) -> PlatformError {
    PlatformError::Store(e.to_string())
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The sandbox's LINE channel and the records the bootstrap made through the admin API.
/// `Debug` prints no secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxChannel {
    pub channel_id: String,
    pub channel_secret: String,
    pub access_token: String,
    pub bot_user_id: String,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub queue_id: Option<String>,
    #[serde(default)]
    pub workstream_id: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub agent_token: Option<String>,
}

impl std::fmt::Debug for SandboxChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxChannel")
            .field("channel_id", &self.channel_id)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

impl SandboxChannel {
    /// New random credentials, as the LINE Developers console would issue them.
    pub fn generate() -> Self {
        let hex = || uuid::Uuid::new_v4().simple().to_string();
        let digits: String = uuid::Uuid::new_v4()
            .as_u128()
            .to_string()
            .chars()
            .take(10)
            .collect();
        Self {
            channel_id: format!("2{}", &digits[1..]),
            channel_secret: hex(),
            access_token: format!("sandbox.{}{}", hex(), hex()),
            bot_user_id: format!("U{}", hex()),
            account_id: None,
            queue_id: None,
            workstream_id: None,
            agent_id: None,
            agent_token: None,
        }
    }
}

/// A simulated LINE user.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub name: String,
    pub language: String,
    #[serde(skip)]
    pub avatar: u8,
    pub picture_url: String,
}

/// One bubble of a chat.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    pub seq: i64,
    pub at: i64,
    /// `user` (the customer) or `account` (what the stack sent).
    pub from: String,
    /// `webhook`, `reply` or `push`.
    pub via: String,
    pub message: Value,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

struct ReplyToken {
    user_id: String,
    issued: Instant,
    used: bool,
}

/// What a push with a retry key met.
pub enum PushOutcome {
    Accepted {
        request_id: String,
        sent: Vec<Value>,
    },
    /// The key was accepted before: LINE's 409, with the first request's id.
    AlreadyAccepted {
        request_id: String,
        sent: Vec<Value>,
    },
}

/// The simulated platform. Cheap to clone.
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    /// Base URL of the page's assets (avatars), as the browser reaches the stack.
    public_base: String,
    channel: Mutex<Option<SandboxChannel>>,
    reply_tokens: Mutex<HashMap<String, ReplyToken>>,
    /// `markAsReadToken` → (user, seq of the message).
    read_tokens: Mutex<HashMap<String, (String, i64)>>,
    typing_until: Mutex<HashMap<String, i64>>,
    read_up_to: Mutex<HashMap<String, i64>>,
    next_id: AtomicU64,
    /// Bumped on every change a chat shows: the long polls wait on it.
    changed: watch::Sender<u64>,
}

impl Platform {
    /// Opens (creating) `sandbox.db` under `data_dir`.
    pub fn open(data_dir: &Path, public_base: &str) -> Result<Self, PlatformError> {
        // The simulated users' names and chats: private before the first byte (the WAL takes
        // the database file's mode).
        let path = data_dir.join("sandbox.db");
        omniline_embedded::private_fs::create_private_dir(data_dir)
            .and_then(|()| omniline_embedded::private_fs::create_private_file(&path))
            .map_err(|e| PlatformError::Store(e.to_string()))?;
        let conn = Connection::open(&path).map_err(store_error)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(store_error)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(store_error)?;
        conn.execute_batch(SCHEMA).map_err(store_error)?;
        let channel = conn
            .query_row("SELECT value FROM state WHERE name = 'channel'", [], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(store_error)?
            .and_then(|v| serde_json::from_str(&v).ok());
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                public_base: public_base.trim_end_matches('/').to_owned(),
                channel: Mutex::new(channel),
                reply_tokens: Mutex::new(HashMap::new()),
                read_tokens: Mutex::new(HashMap::new()),
                typing_until: Mutex::new(HashMap::new()),
                read_up_to: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(now_ms() as u64 * 1000),
                changed: watch::channel(0).0,
            }),
        })
    }

    async fn with_conn<T, F>(&self, f: F) -> Result<T, PlatformError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut conn = inner
                .conn
                .lock()
                .map_err(|_| PlatformError::Store("lock poisoned".into()))?;
            f(&mut conn).map_err(store_error)
        })
        .await
        .map_err(store_error)?
    }

    fn notify(&self) {
        self.inner.changed.send_modify(|v| *v += 1);
    }

    /// A receiver that sees the next change of any chat.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// A fresh numeric id, as LINE's message ids.
    pub fn next_message_id(&self) -> String {
        self.inner
            .next_id
            .fetch_add(1, Ordering::Relaxed)
            .to_string()
    }

    // --- the channel --------------------------------------------------------------------------

    pub fn channel(&self) -> Option<SandboxChannel> {
        self.inner.channel.lock().ok().and_then(|c| c.clone())
    }

    /// Keeps `channel` (in memory and in `sandbox.db`).
    pub async fn set_channel(&self, channel: SandboxChannel) -> Result<(), PlatformError> {
        let value = serde_json::to_string(&channel).map_err(store_error)?;
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO state (name, value) VALUES ('channel', ?1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![value],
            )
            .map(drop)
        })
        .await?;
        if let Ok(mut c) = self.inner.channel.lock() {
            *c = Some(channel);
        }
        Ok(())
    }

    /// Whether `token` is the sandbox channel's access token.
    pub fn accepts_token(&self, token: &str) -> bool {
        self.channel().is_some_and(|c| {
            use subtle::ConstantTimeEq;
            bool::from(c.access_token.as_bytes().ct_eq(token.as_bytes()))
        })
    }

    /// The channel secret as a [`SecretString`], for signing webhooks.
    pub fn channel_secret(&self) -> Option<SecretString> {
        self.channel().map(|c| SecretString::new(c.channel_secret))
    }

    // --- users --------------------------------------------------------------------------------

    pub fn avatar_url(&self, n: u8) -> String {
        format!("{}/sandbox/avatars/{n}.svg", self.inner.public_base)
    }

    fn user_from_row(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
        let avatar: i64 = r.get(3)?;
        let avatar = avatar.clamp(0, AVATARS as i64 - 1) as u8;
        Ok(User {
            id: r.get(0)?,
            name: r.get(1)?,
            language: r.get(2)?,
            avatar,
            picture_url: self.avatar_url(avatar),
        })
    }

    pub async fn create_user(
        &self,
        name: &str,
        language: Option<&str>,
        avatar: Option<u8>,
    ) -> Result<User, PlatformError> {
        let name = name.trim().to_owned();
        let chars = name.chars().count();
        if chars == 0 || chars > 50 || name.chars().any(char::is_control) {
            return Err(PlatformError::Invalid(
                "name: 1 to 50 characters, no control characters".into(),
            ));
        }
        let language = language.unwrap_or("en").to_owned();
        if !LANGUAGES.contains(&language.as_str()) {
            return Err(PlatformError::Invalid(format!(
                "language: one of {}",
                LANGUAGES.join(", ")
            )));
        }
        let id = format!("U{}", uuid::Uuid::new_v4().simple());
        let avatar = match avatar {
            Some(n) if n < AVATARS => n,
            Some(_) => {
                return Err(PlatformError::Invalid(format!(
                    "avatar: 0 to {}",
                    AVATARS - 1
                )))
            }
            None => {
                (id.as_bytes()[1..].iter().map(|b| *b as u32).sum::<u32>() % AVATARS as u32) as u8
            }
        };
        let user = User {
            picture_url: self.avatar_url(avatar),
            id,
            name,
            language,
            avatar,
        };
        let row = user.clone();
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO users (id, name, language, avatar, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![row.id, row.name, row.language, row.avatar as i64, now_ms()],
            )
            .map(drop)
        })
        .await?;
        Ok(user)
    }

    pub async fn users(&self) -> Result<Vec<User>, PlatformError> {
        let this = self.clone();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, name, language, avatar FROM users ORDER BY created_at, rowid",
            )?;
            let rows = stmt.query_map([], |r| this.user_from_row(r))?;
            rows.collect()
        })
        .await
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>, PlatformError> {
        let (this, id) = (self.clone(), id.to_owned());
        self.with_conn(move |conn| {
            conn.query_row(
                "SELECT id, name, language, avatar FROM users WHERE id = ?1",
                params![id],
                |r| this.user_from_row(r),
            )
            .optional()
        })
        .await
    }

    // --- chats --------------------------------------------------------------------------------

    /// Appends bubbles to `user_id`'s chat; their seqs.
    pub async fn append(
        &self,
        user_id: &str,
        from: &'static str,
        via: &'static str,
        messages: Vec<Value>,
    ) -> Result<Vec<i64>, PlatformError> {
        let user_id = user_id.to_owned();
        let seqs = self
            .with_conn(move |conn| {
                let tx = conn.transaction()?;
                let mut seqs = Vec::with_capacity(messages.len());
                for message in &messages {
                    tx.execute(
                        "INSERT INTO timeline (user_id, at, sender, via, message) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![user_id, now_ms(), from, via, message.to_string()],
                    )?;
                    seqs.push(tx.last_insert_rowid());
                }
                tx.commit()?;
                Ok(seqs)
            })
            .await?;
        self.notify();
        Ok(seqs)
    }

    /// Marks a user's bubble as not delivered (the webhook refused it).
    pub async fn mark_failed(&self, seq: i64) -> Result<(), PlatformError> {
        self.with_conn(move |conn| {
            conn.execute(
                "UPDATE timeline SET failed = 1 WHERE seq = ?1",
                params![seq],
            )
            .map(drop)
        })
        .await?;
        self.notify();
        Ok(())
    }

    pub async fn entry(&self, seq: i64) -> Result<Option<TimelineEntry>, PlatformError> {
        self.with_conn(move |conn| {
            conn.query_row(
                "SELECT seq, at, sender, via, message, failed FROM timeline WHERE seq = ?1",
                params![seq],
                entry_from_row,
            )
            .optional()
        })
        .await
    }

    /// `user_id`'s bubbles after `after`, oldest first (at most 500).
    pub async fn timeline(
        &self,
        user_id: &str,
        after: i64,
    ) -> Result<Vec<TimelineEntry>, PlatformError> {
        let user_id = user_id.to_owned();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT seq, at, sender, via, message, failed FROM timeline
                 WHERE user_id = ?1 AND seq > ?2 ORDER BY seq LIMIT 500",
            )?;
            let rows = stmt.query_map(params![user_id, after], entry_from_row)?;
            rows.collect()
        })
        .await
    }

    pub fn typing_until(&self, user_id: &str) -> Option<i64> {
        let until = *self.inner.typing_until.lock().ok()?.get(user_id)?;
        (until > now_ms()).then_some(until)
    }

    pub fn start_typing(&self, user_id: &str, seconds: u32) {
        if let Ok(mut t) = self.inner.typing_until.lock() {
            t.insert(user_id.to_owned(), now_ms() + seconds as i64 * 1000);
        }
        self.notify();
    }

    fn stop_typing(&self, user_id: &str) {
        if let Ok(mut t) = self.inner.typing_until.lock() {
            t.remove(user_id);
        }
    }

    pub fn read_up_to(&self, user_id: &str) -> Option<i64> {
        self.inner.read_up_to.lock().ok()?.get(user_id).copied()
    }

    /// The account read `user_id`'s messages up to `seq` (every one when `None`).
    pub async fn mark_read(&self, user_id: &str, seq: Option<i64>) -> Result<(), PlatformError> {
        let seq = match seq {
            Some(seq) => seq,
            None => {
                let user_id = user_id.to_owned();
                self.with_conn(move |conn| {
                    conn.query_row(
                        "SELECT COALESCE(MAX(seq), 0) FROM timeline WHERE user_id = ?1 AND sender = 'user'",
                        params![user_id],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .await?
            }
        };
        if let Ok(mut r) = self.inner.read_up_to.lock() {
            let e = r.entry(user_id.to_owned()).or_insert(0);
            *e = (*e).max(seq);
        }
        self.notify();
        Ok(())
    }

    // --- tokens -------------------------------------------------------------------------------

    /// A reply token for an event of `user_id`'s.
    pub fn issue_reply_token(&self, user_id: &str) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        if let Ok(mut tokens) = self.inner.reply_tokens.lock() {
            let now = Instant::now();
            tokens.retain(|_, t| now.duration_since(t.issued) < REPLY_TOKEN_LIFETIME * 2);
            tokens.insert(
                token.clone(),
                ReplyToken {
                    user_id: user_id.to_owned(),
                    issued: now,
                    used: false,
                },
            );
        }
        token
    }

    /// Uses a reply token: its user, or `None` when it is unknown, used or expired.
    pub fn use_reply_token(&self, token: &str) -> Option<String> {
        let mut tokens = self.inner.reply_tokens.lock().ok()?;
        let t = tokens.get_mut(token)?;
        if t.used || t.issued.elapsed() > REPLY_TOKEN_LIFETIME {
            return None;
        }
        t.used = true;
        Some(t.user_id.clone())
    }

    pub fn issue_read_token(&self, user_id: &str, seq: i64) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        if let Ok(mut tokens) = self.inner.read_tokens.lock() {
            tokens.insert(token.clone(), (user_id.to_owned(), seq));
        }
        token
    }

    pub fn read_token(&self, token: &str) -> Option<(String, i64)> {
        self.inner.read_tokens.lock().ok()?.get(token).cloned()
    }

    // --- messages the stack sends ---------------------------------------------------------------

    /// Records messages accepted for `user_id` (a reply or a push): the chat shows them and the
    /// loading animation stops, as on LINE. Returns LINE's `sentMessages`.
    pub async fn deliver(
        &self,
        user_id: &str,
        via: &'static str,
        messages: Vec<Value>,
    ) -> Result<Vec<Value>, PlatformError> {
        let sent: Vec<Value> = messages
            .iter()
            .map(|_| json!({"id": self.next_message_id(), "quoteToken": uuid::Uuid::new_v4().simple().to_string()}))
            .collect();
        self.stop_typing(user_id);
        self.append(user_id, "account", via, messages).await?;
        Ok(sent)
    }

    /// A push with `retry_key`: delivered once; the same key again is [`PushOutcome::AlreadyAccepted`].
    pub async fn push_once(
        &self,
        user_id: &str,
        retry_key: &str,
        messages: Vec<Value>,
    ) -> Result<PushOutcome, PlatformError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let sent: Vec<Value> = messages
            .iter()
            .map(|_| json!({"id": self.next_message_id(), "quoteToken": uuid::Uuid::new_v4().simple().to_string()}))
            .collect();
        let (key, rid, sent_text, user) = (
            retry_key.to_owned(),
            request_id.clone(),
            Value::Array(sent.clone()).to_string(),
            user_id.to_owned(),
        );
        // Claiming the key and recording the bubbles commit together: a crash between them can
        // neither lose the message nor show it twice.
        let earlier = self
            .with_conn(move |conn| {
                let tx = conn.transaction()?;
                let earlier = tx
                    .query_row(
                        "SELECT request_id, sent FROM retry_keys WHERE key = ?1",
                        params![key],
                        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                    )
                    .optional()?;
                if earlier.is_none() {
                    tx.execute(
                        "INSERT INTO retry_keys (key, request_id, sent, at) VALUES (?1, ?2, ?3, ?4)",
                        params![key, rid, sent_text, now_ms()],
                    )?;
                    for message in &messages {
                        tx.execute(
                            "INSERT INTO timeline (user_id, at, sender, via, message) VALUES (?1, ?2, 'account', 'push', ?3)",
                            params![user, now_ms(), message.to_string()],
                        )?;
                    }
                }
                tx.commit()?;
                Ok(earlier)
            })
            .await?;
        Ok(match earlier {
            Some((request_id, sent)) => PushOutcome::AlreadyAccepted {
                request_id,
                sent: serde_json::from_str(&sent).unwrap_or_default(),
            },
            None => {
                self.stop_typing(user_id);
                self.notify();
                PushOutcome::Accepted { request_id, sent }
            }
        })
    }

    // --- content ------------------------------------------------------------------------------

    pub async fn put_content(
        &self,
        message_id: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<(), PlatformError> {
        let (id, ct) = (message_id.to_owned(), content_type.to_owned());
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO content (message_id, content_type, bytes, at) VALUES (?1, ?2, ?3, ?4)",
                params![id, ct, bytes, now_ms()],
            )
            .map(drop)
        })
        .await
    }

    pub async fn content(
        &self,
        message_id: &str,
    ) -> Result<Option<(String, Vec<u8>)>, PlatformError> {
        let id = message_id.to_owned();
        self.with_conn(move |conn| {
            conn.query_row(
                "SELECT content_type, bytes FROM content WHERE message_id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
        .await
    }
}

fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TimelineEntry> {
    let message: String = r.get(4)?;
    Ok(TimelineEntry {
        seq: r.get(0)?,
        at: r.get(1)?,
        from: r.get(2)?,
        via: r.get(3)?,
        message: serde_json::from_str(&message).unwrap_or(Value::Null),
        failed: r.get::<_, i64>(5)? != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn platform() -> (Platform, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (
            Platform::open(dir.path(), "http://127.0.0.1:1").unwrap(),
            dir,
        )
    }

    #[tokio::test]
    async fn a_reply_token_is_accepted_once() {
        let (p, _d) = platform().await;
        let token = p.issue_reply_token("U1");
        assert_eq!(p.use_reply_token(&token).as_deref(), Some("U1"));
        assert_eq!(p.use_reply_token(&token), None);
        assert_eq!(p.use_reply_token("unknown"), None);
    }

    #[tokio::test]
    async fn a_retry_key_delivers_once_and_answers_the_first_request_after() {
        let (p, _d) = platform().await;
        let user = p.create_user("Pat", Some("en"), Some(2)).await.unwrap();
        let msg = vec![json!({"type": "text", "text": "hi"})];
        let PushOutcome::Accepted { request_id, sent } =
            p.push_once(&user.id, "k1", msg.clone()).await.unwrap()
        else {
            panic!("first push not accepted");
        };
        let PushOutcome::AlreadyAccepted {
            request_id: again,
            sent: sent_again,
        } = p.push_once(&user.id, "k1", msg).await.unwrap()
        else {
            panic!("second push accepted");
        };
        assert_eq!((again, sent_again), (request_id, sent));
        let chat = p.timeline(&user.id, 0).await.unwrap();
        assert_eq!(chat.len(), 1);
        assert_eq!(chat[0].message["text"], "hi");
        assert_eq!(chat[0].via, "push");
    }

    #[tokio::test]
    async fn users_and_chats_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = Platform::open(dir.path(), "http://x").unwrap();
        let user = p.create_user("Mai", Some("ja"), None).await.unwrap();
        p.append(
            &user.id,
            "user",
            "webhook",
            vec![json!({"type": "text", "text": "a"})],
        )
        .await
        .unwrap();
        let mut channel = SandboxChannel::generate();
        channel.account_id = Some("acc".into());
        p.set_channel(channel).await.unwrap();
        drop(p);
        let p = Platform::open(dir.path(), "http://x").unwrap();
        assert_eq!(p.users().await.unwrap(), vec![user.clone()]);
        assert_eq!(p.timeline(&user.id, 0).await.unwrap().len(), 1);
        assert_eq!(p.channel().unwrap().account_id.as_deref(), Some("acc"));
    }

    #[tokio::test]
    async fn bad_users_are_refused() {
        let (p, _d) = platform().await;
        assert!(p.create_user("  ", None, None).await.is_err());
        assert!(p.create_user(&"x".repeat(51), None, None).await.is_err());
        assert!(p.create_user("Pat", Some("xx"), None).await.is_err());
        assert!(p.create_user("Pat", None, Some(AVATARS)).await.is_err());
        assert!(p.users().await.unwrap().is_empty());
    }

    #[test]
    fn the_channel_debug_shows_no_secret() {
        let c = SandboxChannel::generate();
        let shown = format!("{c:?}");
        assert!(!shown.contains(&c.channel_secret) && !shown.contains(&c.access_token));
    }
}
