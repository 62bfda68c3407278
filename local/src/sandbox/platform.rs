//! The simulated LINE platform behind the sandbox: its simulated users (the "phones"), what each
//! chat shows, and the Messaging API the stack calls. LINE's rules are [`omniline_linesim`]'s
//! (the load test's stand-in keeps the same): a reply token is accepted once and for a minute, a
//! push's `X-Line-Retry-Key` is accepted once (409 after), a profile exists only for a known
//! user, content only for what a user sent. This file keeps what the sandbox adds: the users'
//! profiles, the chats, the content bytes and the read marks, and carries out what the simulator
//! accepted.
//!
//! Users, chats, accepted retry keys and sent content are kept in `DATA_DIR/sandbox.db` (its own
//! SQLite file: the product's database holds no sandbox table), so a restart of the local stack
//! keeps the sandbox's people and chats as it keeps their conversations; the simulator is given
//! them back when the file is opened.

use omniline_domain::secret::SecretString;
use omniline_linesim::{
    Answer, Call, Channel, ClientCredentials, Config, Delivery, Endpoint, LineError, Millis,
    Pushed, ReplyTarget, SentMessage, Simulator, UrlPolicy, Via,
};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The Messaging API endpoints the sandbox does not serve (LINE's 404; the PNP ones are LINE's
/// 403 first, as partner-only endpoints no simulated channel is granted).
const NOT_SERVED: [Endpoint; 3] = [
    Endpoint::GetWebhookEndpoint,
    Endpoint::PnpPush,
    Endpoint::PnpDeliveries,
];

/// The Messaging API endpoints the sandbox serves: every other one.
fn serves() -> Vec<Endpoint> {
    Endpoint::ALL
        .into_iter()
        .filter(|e| !NOT_SERVED.contains(e))
        .collect()
}

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
CREATE TABLE IF NOT EXISTS groups (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, avatar INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS group_members (
    group_id TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY (group_id, user_id));
";

/// Columns added to `timeline` since the first sandbox: who in a group sent a bubble, and the
/// LINE message id of a bubble (what a quote names). Added to a `sandbox.db` that lacks them.
const TIMELINE_COLUMNS: [(&str, &str); 2] = [("member", "TEXT"), ("message_id", "TEXT")];

/// The most members a simulated group has (besides the account).
pub const MAX_GROUP_MEMBERS: usize = 20;

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
    /// The channel as the simulator knows it: an ordinary channel (the partner-only APIs are
    /// LINE's 403) whose chat marks messages read manually (`markAsReadMode` `manual`), so the
    /// customer sees "Read" when the product marks a message event's `markAsReadToken`.
    fn simulated(&self) -> Channel {
        Channel {
            bot_user_id: self.bot_user_id.clone(),
            access_token: self.access_token.clone(),
            basic_id: "@sandbox".into(),
            display_name: "Sandbox shop".into(),
            mark_as_read_mode: "manual".into(),
            credentials: Some(ClientCredentials {
                channel_id: self.channel_id.clone(),
                channel_secret: self.channel_secret.clone(),
            }),
        }
    }

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

/// A simulated group chat: simulated users and the account.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    pub name: String,
    pub picture_url: String,
    /// Member user ids, in the order they were given.
    pub members: Vec<String>,
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
    /// In a group: the user who sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// LINE's id of the message (what a quote names), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// A bubble a simulated user sends: the chat (a user's, or a group's), who in a group, LINE's
/// message id and what the chat shows.
pub struct Sent<'a> {
    pub chat: &'a str,
    pub member: Option<&'a str>,
    pub message_id: Option<&'a str>,
    pub shown: Value,
}

/// What a push with a retry key met.
pub enum PushOutcome {
    Accepted {
        request_id: String,
        sent: Vec<SentMessage>,
    },
    /// The key was accepted before: LINE's 409, with the first request's id.
    AlreadyAccepted {
        request_id: String,
        sent: Vec<SentMessage>,
    },
}

/// A request to the simulated Messaging API, as received (path without the sandbox's prefix).
pub struct LineRequest {
    pub method: String,
    pub path: String,
    pub authorization: Option<Vec<u8>>,
    pub retry_key: Option<Vec<u8>>,
    pub body: Vec<u8>,
}

/// The simulated Messaging API's answer.
pub struct LineAnswer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// `x-line-request-id` and, for a 409, `x-line-accepted-request-id`.
    pub headers: Vec<(&'static str, String)>,
}

impl LineAnswer {
    fn json(answer: &Answer) -> Self {
        Self {
            status: answer.status,
            content_type: "application/json".into(),
            body: answer.body.to_string().into_bytes(),
            headers: answer
                .headers()
                .into_iter()
                .map(|(name, value)| (name, value.to_owned()))
                .collect(),
        }
    }
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
    /// LINE's side: tokens, retry keys, friends, content ids, loading animations. Locked after
    /// `conn` when both are held.
    line: Mutex<Simulator>,
    read_up_to: Mutex<HashMap<String, i64>>,
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
        add_missing_columns(&conn).map_err(store_error)?;
        let channel = conn
            .query_row("SELECT value FROM state WHERE name = 'channel'", [], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(store_error)?
            .and_then(|v| serde_json::from_str::<SandboxChannel>(&v).ok());
        let public_base = public_base.trim_end_matches('/');
        let line = restore(&conn, channel.as_ref(), public_base).map_err(store_error)?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                public_base: public_base.to_owned(),
                channel: Mutex::new(channel),
                line: Mutex::new(line),
                read_up_to: Mutex::new(HashMap::new()),
                changed: watch::channel(0).0,
            }),
        })
    }

    fn line(&self) -> Result<MutexGuard<'_, Simulator>, PlatformError> {
        self.inner
            .line
            .lock()
            .map_err(|_| PlatformError::Store("lock poisoned".into()))
    }

    /// The current channel's bot user id (the channel reply tokens are issued for).
    fn bot_user_id(&self) -> Option<String> {
        self.channel().map(|c| c.bot_user_id)
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
        match self.line() {
            Ok(mut line) => line.next_message_id(),
            Err(_) => (now_ms() as u64 * 1000).to_string(),
        }
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
        {
            let mut line = self.line()?;
            if let Some(old) = self.channel() {
                line.remove_channel(&old.bot_user_id);
            }
            line.add_channel(channel.simulated());
        }
        if let Ok(mut c) = self.inner.channel.lock() {
            *c = Some(channel);
        }
        Ok(())
    }

    /// The channel secret as a [`SecretString`], for signing webhooks.
    pub fn channel_secret(&self) -> Option<SecretString> {
        self.channel().map(|c| SecretString::new(c.channel_secret))
    }

    // --- users --------------------------------------------------------------------------------

    pub fn avatar_url(&self, n: u8) -> String {
        avatar_url(&self.inner.public_base, n)
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
        // The user adds the account as a friend.
        self.line()?.add_user(user.id.clone());
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

    /// Appends what a simulated user sent; its seq.
    pub async fn append_sent(&self, sent: Sent<'_>) -> Result<i64, PlatformError> {
        let (chat, member, message_id) = (
            sent.chat.to_owned(),
            sent.member.map(str::to_owned),
            sent.message_id.map(str::to_owned),
        );
        let message = sent.shown.to_string();
        let seq = self
            .with_conn(move |conn| {
                conn.execute(
                    "INSERT INTO timeline (user_id, at, sender, via, message, member, message_id)
                     VALUES (?1, ?2, 'user', 'webhook', ?3, ?4, ?5)",
                    params![chat, now_ms(), message, member, message_id],
                )?;
                Ok(conn.last_insert_rowid())
            })
            .await?;
        self.notify();
        Ok(seq)
    }

    /// The bubble of `chat` whose LINE message id is `message_id`, if that chat has it.
    pub async fn message_in_chat(
        &self,
        chat: &str,
        message_id: &str,
    ) -> Result<Option<TimelineEntry>, PlatformError> {
        let (chat, id) = (chat.to_owned(), message_id.to_owned());
        self.with_conn(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM timeline WHERE user_id = ?1 AND message_id = ?2"
                ),
                params![chat, id],
                entry_from_row,
            )
            .optional()
        })
        .await
    }

    // --- groups -------------------------------------------------------------------------------

    /// A group chat of `members` (simulated users, 2 to [`MAX_GROUP_MEMBERS`]) and the account.
    pub async fn create_group(
        &self,
        name: &str,
        members: &[String],
    ) -> Result<Group, PlatformError> {
        let name = name.trim().to_owned();
        let chars = name.chars().count();
        if chars == 0 || chars > 50 || name.chars().any(char::is_control) {
            return Err(PlatformError::Invalid(
                "name: 1 to 50 characters, no control characters".into(),
            ));
        }
        let mut distinct: Vec<String> = Vec::new();
        for m in members {
            if !distinct.contains(m) {
                distinct.push(m.clone());
            }
        }
        if distinct.len() < 2 || distinct.len() > MAX_GROUP_MEMBERS {
            return Err(PlatformError::Invalid(format!(
                "members: 2 to {MAX_GROUP_MEMBERS} different customers"
            )));
        }
        for m in &distinct {
            if self.user(m).await?.is_none() {
                return Err(PlatformError::Invalid(format!(
                    "members: {m} is not a customer of the sandbox"
                )));
            }
        }
        let id = format!("C{}", uuid::Uuid::new_v4().simple());
        let avatar =
            (id.as_bytes()[1..].iter().map(|b| *b as u32).sum::<u32>() % AVATARS as u32) as u8;
        let group = Group {
            picture_url: self.avatar_url(avatar),
            id,
            name,
            members: distinct,
        };
        let row = group.clone();
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO groups (id, name, avatar, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![row.id, row.name, avatar as i64, now_ms()],
            )?;
            for m in &row.members {
                tx.execute(
                    "INSERT INTO group_members (group_id, user_id) VALUES (?1, ?2)",
                    params![row.id, m],
                )?;
            }
            tx.commit()
        })
        .await?;
        self.line()?
            .add_group(group.id.clone(), simulated_group(&group));
        Ok(group)
    }

    /// Every group, oldest first.
    pub async fn groups(&self) -> Result<Vec<Group>, PlatformError> {
        let base = self.inner.public_base.clone();
        self.with_conn(move |conn| load_groups(conn, &base)).await
    }

    pub async fn group(&self, id: &str) -> Result<Option<Group>, PlatformError> {
        Ok(self.groups().await?.into_iter().find(|g| g.id == id))
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
                &format!("SELECT {ENTRY_COLUMNS} FROM timeline WHERE seq = ?1"),
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
            let mut stmt = conn.prepare(&format!(
                "SELECT {ENTRY_COLUMNS} FROM timeline
                 WHERE user_id = ?1 AND seq > ?2 ORDER BY seq LIMIT 500"
            ))?;
            let rows = stmt.query_map(params![user_id, after], entry_from_row)?;
            rows.collect()
        })
        .await
    }

    /// Until when the loading animation shows in `user_id`'s chat (epoch ms), if it does.
    pub fn typing_until(&self, user_id: &str) -> Option<i64> {
        let line = self.line().ok()?;
        line.loading_until(user_id, Millis(now_ms())).map(|m| m.0)
    }

    pub fn read_up_to(&self, user_id: &str) -> Option<i64> {
        self.inner.read_up_to.lock().ok()?.get(user_id).copied()
    }

    fn set_read_up_to(&self, user_id: &str, seq: i64) {
        if let Ok(mut r) = self.inner.read_up_to.lock() {
            let e = r.entry(user_id.to_owned()).or_insert(0);
            *e = (*e).max(seq);
        }
    }

    // --- tokens -------------------------------------------------------------------------------

    /// A reply token for an event of `user_id`'s (for the current channel).
    pub fn issue_reply_token(&self, user_id: &str) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let target = ReplyTarget {
            channel: self.bot_user_id(),
            chat: user_id.to_owned(),
        };
        if let Ok(mut line) = self.line() {
            line.issue_reply_token(token.clone(), target, Millis(now_ms()));
        }
        token
    }

    /// Uses a reply token: its user, or `None` when it is unknown, used or expired.
    pub fn use_reply_token(&self, token: &str) -> Option<String> {
        let channel = self.bot_user_id();
        let mut line = self.line().ok()?;
        line.use_reply_token(channel.as_deref(), token, Millis(now_ms()))
            .ok()
            .map(|target| target.chat)
    }

    pub fn issue_read_token(&self, user_id: &str, seq: i64) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        if let Ok(mut line) = self.line() {
            line.issue_read_token(token.clone(), user_id, seq);
        }
        token
    }

    // --- the Messaging API ----------------------------------------------------------------------

    /// A call of the stack's LINE client: the simulator applies LINE's rules, then what it
    /// accepted is carried out here (chat bubbles, profiles, content, read marks). A delivery
    /// and its retry key commit together; one that cannot be recorded is rolled back in the
    /// simulator (the call answers 500 and may be retried).
    pub async fn line_call(&self, request: LineRequest) -> Result<LineAnswer, PlatformError> {
        let this = self.clone();
        let (answer, changed) = tokio::task::spawn_blocking(move || this.line_call_now(&request))
            .await
            .map_err(store_error)??;
        if changed {
            self.notify();
        }
        Ok(answer)
    }

    /// [`Self::line_call`] on this thread: the answer, and whether a chat changed.
    fn line_call_now(&self, r: &LineRequest) -> Result<(LineAnswer, bool), PlatformError> {
        // The connection first, for the whole call: a second push with the same retry key waits
        // until the first is recorded (or rolled back).
        let mut conn = self
            .inner
            .conn
            .lock()
            .map_err(|_| PlatformError::Store("lock poisoned".into()))?;
        let request = omniline_linesim::Request {
            method: &r.method,
            path: &r.path,
            authorization: r.authorization.as_deref(),
            retry_key: r.retry_key.as_deref(),
            body: &r.body,
        };
        let call = self.line()?.call(&request, Millis(now_ms()));
        Ok(match call {
            Call::Deliver(delivery) => {
                self.record(&mut conn, &delivery)?;
                (LineAnswer::json(&delivery.answer()), true)
            }
            Call::Profile {
                user_id,
                request_id,
                group_id,
            } => {
                let user = conn
                    .query_row(
                        "SELECT id, name, language, avatar FROM users WHERE id = ?1",
                        params![user_id],
                        |r| self.user_from_row(r),
                    )
                    .optional()
                    .map_err(store_error)?;
                let answer = match user {
                    // A member's profile in a group: LINE gives these three only.
                    Some(u) if group_id.is_some() => Answer::ok(
                        json!({"userId": u.id, "displayName": u.name, "pictureUrl": u.picture_url}),
                        request_id,
                    ),
                    Some(u) => Answer::ok(
                        json!({
                            "userId": u.id, "displayName": u.name, "pictureUrl": u.picture_url,
                            "language": u.language, "statusMessage": "Trying omniline's sandbox"
                        }),
                        request_id,
                    ),
                    None => LineError::not_found().into_answer(request_id),
                };
                (LineAnswer::json(&answer), false)
            }
            Call::Content {
                message_id,
                request_id,
            } => {
                let content = conn
                    .query_row(
                        "SELECT content_type, bytes FROM content WHERE message_id = ?1",
                        params![message_id],
                        |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)),
                    )
                    .optional()
                    .map_err(store_error)?;
                let answer = match content {
                    Some((content_type, body)) => LineAnswer {
                        status: 200,
                        content_type,
                        body,
                        headers: vec![("x-line-request-id", request_id)],
                    },
                    None => LineAnswer::json(&LineError::not_found().into_answer(request_id)),
                };
                (answer, false)
            }
            Call::MarkRead {
                user_id,
                up_to,
                answer,
            } => {
                self.set_read_up_to(&user_id, up_to);
                (LineAnswer::json(&answer), true)
            }
            Call::Loading { answer, .. } => (LineAnswer::json(&answer), true),
            Call::Answer(answer) => (LineAnswer::json(&answer), false),
        })
    }

    /// Records messages the simulator accepted for a user (a reply or a push): the chat shows
    /// them; a push's retry key is kept with them, in one transaction. Rolls the delivery back
    /// in the simulator when that fails.
    fn record(&self, conn: &mut Connection, d: &Delivery) -> Result<(), PlatformError> {
        let written = (|| {
            let tx = conn.transaction()?;
            if let Via::Push {
                retry_key: Some(key),
            } = &d.via
            {
                let sent = serde_json::to_string(&d.sent).unwrap_or_else(|_| "[]".into());
                tx.execute(
                    "INSERT INTO retry_keys (key, request_id, sent, at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key) DO UPDATE SET request_id = excluded.request_id,
                     sent = excluded.sent, at = excluded.at",
                    params![key, d.request_id, sent, d.at.0],
                )?;
            }
            for (i, message) in d.messages.iter().enumerate() {
                let message_id = d.sent.get(i).map(|m| m.id.as_str());
                tx.execute(
                    "INSERT INTO timeline (user_id, at, sender, via, message, message_id)
                     VALUES (?1, ?2, 'account', ?3, ?4, ?5)",
                    params![
                        d.to,
                        now_ms(),
                        d.via.name(),
                        message.to_string(),
                        message_id
                    ],
                )?;
            }
            tx.commit()
        })();
        written.map_err(|e| {
            if let Ok(mut line) = self.line() {
                line.rollback(d);
            }
            store_error(e)
        })
    }

    /// A push with `retry_key` to a known user: delivered once; the same key again is
    /// [`PushOutcome::AlreadyAccepted`].
    pub async fn push_once(
        &self,
        user_id: &str,
        retry_key: &str,
        messages: Vec<Value>,
    ) -> Result<PushOutcome, PlatformError> {
        let this = self.clone();
        let (user_id, retry_key) = (user_id.to_owned(), retry_key.to_owned());
        let outcome = tokio::task::spawn_blocking(move || {
            let mut conn = this
                .inner
                .conn
                .lock()
                .map_err(|_| PlatformError::Store("lock poisoned".into()))?;
            let channel = this.bot_user_id();
            let pushed = this.line()?.push(
                channel.as_deref(),
                &user_id,
                Some(&retry_key),
                messages,
                Millis(now_ms()),
            );
            match pushed.map_err(|e| PlatformError::Invalid(e.message))? {
                Pushed::AlreadyAccepted { request_id, sent } => {
                    Ok(PushOutcome::AlreadyAccepted { request_id, sent })
                }
                Pushed::Accepted(delivery) => {
                    this.record(&mut conn, &delivery)?;
                    Ok(PushOutcome::Accepted {
                        request_id: delivery.request_id,
                        sent: delivery.sent,
                    })
                }
            }
        })
        .await
        .map_err(store_error)??;
        if matches!(outcome, PushOutcome::Accepted { .. }) {
            self.notify();
        }
        Ok(outcome)
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
        .await?;
        self.line()?.add_content(message_id);
        Ok(())
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

/// The simulator for `sandbox.db`: the sandbox's LINE rules, its channel, and what the file
/// keeps of LINE's state (friends, content ids, retry keys accepted within their window).
fn restore(
    conn: &Connection,
    channel: Option<&SandboxChannel>,
    public_base: &str,
) -> rusqlite::Result<Simulator> {
    let mut line = Simulator::new(Config {
        // The stack's own media links are http to this machine when no https PUBLIC_BASE_URL
        // is set: taken here, refused by LINE.
        urls: UrlPolicy::HttpsOrLoopbackHttp,
        serves: serves(),
        seed: uuid::Uuid::new_v4().as_u64_pair().0,
        first_message_id: now_ms() as u64 * 1000,
        ..Config::default()
    });
    if let Some(c) = channel {
        line.add_channel(c.simulated());
    }
    {
        let mut users = conn.prepare("SELECT id FROM users")?;
        for id in users.query_map([], |r| r.get::<_, String>(0))? {
            line.add_user(id?);
        }
        for group in load_groups(conn, public_base)? {
            line.add_group(group.id.clone(), simulated_group(&group));
        }
        let mut content = conn.prepare("SELECT message_id FROM content")?;
        for id in content.query_map([], |r| r.get::<_, String>(0))? {
            line.add_content(id?);
        }
    }
    let window = i64::try_from(line.config().retry_key_window.as_millis()).unwrap_or(i64::MAX);
    let mut keys =
        conn.prepare("SELECT key, request_id, sent, at FROM retry_keys WHERE at > ?1 ORDER BY at")?;
    let rows = keys.query_map(params![now_ms().saturating_sub(window)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (key, request_id, sent, at) = row?;
        let sent: Vec<SentMessage> = serde_json::from_str(&sent).unwrap_or_default();
        line.restore_push(key, request_id, sent, Millis(at));
    }
    Ok(line)
}

/// Picture `n` of the page's avatars, under `public_base`.
fn avatar_url(public_base: &str, n: u8) -> String {
    format!("{public_base}/sandbox/avatars/{n}.svg")
}

/// The columns [`entry_from_row`] reads, in its order.
const ENTRY_COLUMNS: &str = "seq, at, sender, via, message, failed, member, message_id";

fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TimelineEntry> {
    let message: String = r.get(4)?;
    Ok(TimelineEntry {
        seq: r.get(0)?,
        at: r.get(1)?,
        from: r.get(2)?,
        via: r.get(3)?,
        message: serde_json::from_str(&message).unwrap_or(Value::Null),
        failed: r.get::<_, i64>(5)? != 0,
        member: r.get(6)?,
        message_id: r.get(7)?,
    })
}

/// Adds [`TIMELINE_COLUMNS`] that an older `sandbox.db` lacks.
fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('timeline')")?;
    let have: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, kind) in TIMELINE_COLUMNS {
        if !have.iter().any(|h| h == name) {
            conn.execute_batch(&format!("ALTER TABLE timeline ADD COLUMN {name} {kind}"))?;
        }
    }
    Ok(())
}

/// The sandbox's groups, their pictures served under `public_base`.
fn load_groups(conn: &Connection, public_base: &str) -> rusqlite::Result<Vec<Group>> {
    let mut stmt =
        conn.prepare("SELECT id, name, avatar FROM groups ORDER BY created_at, rowid")?;
    let rows: Vec<(String, String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut members =
        conn.prepare("SELECT user_id FROM group_members WHERE group_id = ?1 ORDER BY rowid")?;
    let mut groups = Vec::with_capacity(rows.len());
    for (id, name, avatar) in rows {
        let list = members
            .query_map(params![id], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<_>>()?;
        let avatar = avatar.clamp(0, AVATARS as i64 - 1) as u8;
        groups.push(Group {
            picture_url: avatar_url(public_base, avatar),
            id,
            name,
            members: list,
        });
    }
    Ok(groups)
}

/// The group as LINE's side knows it (its summary and members).
fn simulated_group(group: &Group) -> omniline_linesim::Group {
    omniline_linesim::Group {
        name: group.name.clone(),
        picture_url: Some(group.picture_url.clone()).filter(|u| !u.is_empty()),
        members: group.members.iter().cloned().collect(),
    }
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
    async fn a_group_is_kept_refused_when_bad_and_known_to_line_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = Platform::open(dir.path(), "http://x").unwrap();
        let a = p.create_user("Aoi", None, None).await.unwrap();
        let b = p.create_user("Ken", None, None).await.unwrap();
        let ids = [a.id.clone(), b.id.clone()];
        assert!(p.create_group(" ", &ids).await.is_err());
        assert!(p
            .create_group("Solo", &[a.id.clone(), a.id.clone()])
            .await
            .is_err());
        assert!(p
            .create_group("Ghosts", &[a.id.clone(), "Unobody".into()])
            .await
            .is_err());
        let group = p.create_group("Regulars", &ids).await.unwrap();
        assert!(group.id.starts_with('C'));
        let seq = p
            .append_sent(Sent {
                chat: &group.id,
                member: Some(&b.id),
                message_id: Some("42"),
                shown: json!({"type": "text", "text": "hi"}),
            })
            .await
            .unwrap();
        drop(p);
        let p = Platform::open(dir.path(), "http://x").unwrap();
        assert_eq!(p.groups().await.unwrap(), vec![group.clone()]);
        let found = p.message_in_chat(&group.id, "42").await.unwrap().unwrap();
        assert_eq!(
            (found.seq, found.member.as_deref()),
            (seq, Some(b.id.as_str()))
        );
        assert!(p.message_in_chat(&a.id, "42").await.unwrap().is_none());
        // LINE's side knows the group again: a push reaches it.
        let pushed = p
            .push_once(
                &group.id,
                "k-group",
                vec![json!({"type": "text", "text": "hello"})],
            )
            .await
            .unwrap();
        assert!(matches!(pushed, PushOutcome::Accepted { .. }));
        let chat = p.timeline(&group.id, 0).await.unwrap();
        assert_eq!(chat.len(), 2);
        assert!(
            chat[1].message_id.is_some(),
            "a sent message keeps LINE's id"
        );
    }

    #[tokio::test]
    async fn a_sandbox_db_from_before_groups_and_quotes_opens_with_its_chats() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join("sandbox.db")).unwrap();
            conn.execute_batch(
                "CREATE TABLE timeline (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, at INTEGER NOT NULL,
                    sender TEXT NOT NULL, via TEXT NOT NULL, message TEXT NOT NULL,
                    failed INTEGER NOT NULL DEFAULT 0);
                 INSERT INTO timeline (user_id, at, sender, via, message)
                    VALUES ('U1', 1, 'user', 'webhook', '{\"type\":\"text\",\"text\":\"old\"}');",
            )
            .unwrap();
        }
        let p = Platform::open(dir.path(), "http://x").unwrap();
        let chat = p.timeline("U1", 0).await.unwrap();
        assert_eq!(chat.len(), 1);
        assert_eq!(chat[0].message["text"], "old");
        assert_eq!(
            (chat[0].member.clone(), chat[0].message_id.clone()),
            (None, None)
        );
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

    #[tokio::test]
    async fn a_retry_key_accepted_before_a_reopen_is_still_answered_409() {
        let dir = tempfile::tempdir().unwrap();
        let p = Platform::open(dir.path(), "http://x").unwrap();
        let user = p.create_user("Pat", None, None).await.unwrap();
        let msg = vec![json!({"type": "text", "text": "hi"})];
        let PushOutcome::Accepted { request_id, sent } =
            p.push_once(&user.id, "k1", msg.clone()).await.unwrap()
        else {
            panic!("first push not accepted");
        };
        drop(p);
        let p = Platform::open(dir.path(), "http://x").unwrap();
        let PushOutcome::AlreadyAccepted {
            request_id: again,
            sent: sent_again,
        } = p.push_once(&user.id, "k1", msg).await.unwrap()
        else {
            panic!("the key was forgotten");
        };
        assert_eq!((again, sent_again), (request_id, sent));
        assert_eq!(p.timeline(&user.id, 0).await.unwrap().len(), 1);
        assert!(p.push_once("Unobody", "k2", vec![]).await.is_err());
    }

    #[test]
    fn the_channel_debug_shows_no_secret() {
        let c = SandboxChannel::generate();
        let shown = format!("{c:?}");
        assert!(!shown.contains(&c.channel_secret) && !shown.contains(&c.access_token));
    }
}
