//! Quick replies ([`omniline_domain::quick_replies`]): texts per language agents insert by
//! shortcut. Config documents (kind [`QUICK_REPLY_KIND`], a few hundred at most: listed whole);
//! a shortcut names one quick reply (409 `shortcut_taken`).

use super::{parse_doc, set, to_doc, AdminError, AdminService};
use omniline_domain::clock::new_id;
use omniline_domain::quick_replies::{QuickReply, MAX_QUICK_REPLIES, QUICK_REPLY_KIND};
use omniline_ports::{ConfigDoc, Expect};
use std::collections::BTreeMap;

/// A quick reply and its version.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredQuickReply {
    pub reply: QuickReply,
    pub version: u64,
}

/// A new quick reply, or what to change of one (`None`: keep).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuickReplyPatch {
    pub shortcut: Option<String>,
    pub title: Option<String>,
    pub texts: Option<BTreeMap<String, String>>,
    pub queue_ids: Option<Vec<String>>,
}

fn stored(doc: &ConfigDoc) -> Result<StoredQuickReply, AdminError> {
    Ok(StoredQuickReply {
        reply: parse_doc(doc, "quick reply")?,
        version: doc.version,
    })
}

impl AdminService {
    /// Every quick reply, by shortcut.
    pub async fn quick_replies(&self) -> Result<Vec<StoredQuickReply>, AdminError> {
        let docs = self.deps.config.list_docs(QUICK_REPLY_KIND).await?;
        let mut all = docs
            .iter()
            .map(stored)
            .collect::<Result<Vec<_>, AdminError>>()?;
        all.sort_by(|a, b| a.reply.shortcut.cmp(&b.reply.shortcut));
        Ok(all)
    }

    pub async fn quick_reply(&self, id: &str) -> Result<StoredQuickReply, AdminError> {
        stored(&self.doc(QUICK_REPLY_KIND, id, "quick reply").await?)
    }

    /// `ShortcutTaken` when another quick reply has `shortcut`; `UnknownReference` for a queue
    /// that does not exist.
    async fn check_quick_reply(&self, reply: &QuickReply) -> Result<(), AdminError> {
        let all = self.quick_replies().await?;
        if all
            .iter()
            .any(|o| o.reply.id != reply.id && o.reply.shortcut == reply.shortcut)
        {
            return Err(AdminError::ShortcutTaken);
        }
        for (i, queue) in reply.queue_ids.iter().enumerate() {
            self.require_queue(&format!("queueIds[{i}]"), queue).await?;
        }
        Ok(())
    }

    /// A new quick reply (shortcut, title and texts required: the caller checked their form).
    pub async fn create_quick_reply(
        &self,
        patch: QuickReplyPatch,
    ) -> Result<StoredQuickReply, AdminError> {
        let (Some(shortcut), Some(title), Some(texts)) = (patch.shortcut, patch.title, patch.texts)
        else {
            return Err(AdminError::invalid(
                "shortcut",
                "shortcut, title and texts are required",
            ));
        };
        if self.deps.config.list_docs(QUICK_REPLY_KIND).await?.len() >= MAX_QUICK_REPLIES {
            return Err(AdminError::invalid(
                "shortcut",
                format!("at most {MAX_QUICK_REPLIES} quick replies"),
            ));
        }
        let now = self.now();
        let reply = QuickReply {
            id: new_id(),
            shortcut,
            title,
            texts,
            queue_ids: patch.queue_ids.unwrap_or_default(),
            created_at: now.clone(),
            updated_at: now,
        };
        self.check_quick_reply(&reply).await?;
        let version = self
            .put_doc(
                QUICK_REPLY_KIND,
                &reply.id,
                to_doc(&reply, "quick reply")?,
                Expect::Absent,
            )
            .await?;
        tracing::info!(quick_reply_id = %reply.id, shortcut = %reply.shortcut, "quick reply created");
        Ok(StoredQuickReply { reply, version })
    }

    /// Changes `current` unless it changed since it was read.
    pub async fn update_quick_reply(
        &self,
        current: StoredQuickReply,
        patch: QuickReplyPatch,
    ) -> Result<StoredQuickReply, AdminError> {
        let StoredQuickReply { mut reply, version } = current;
        set(&mut reply.shortcut, patch.shortcut);
        set(&mut reply.title, patch.title);
        set(&mut reply.texts, patch.texts);
        set(&mut reply.queue_ids, patch.queue_ids);
        reply.updated_at = self.now();
        self.check_quick_reply(&reply).await?;
        let version = self
            .put_doc(
                QUICK_REPLY_KIND,
                &reply.id,
                to_doc(&reply, "quick reply")?,
                Expect::Version(version),
            )
            .await?;
        Ok(StoredQuickReply { reply, version })
    }

    pub async fn delete_quick_reply(&self, id: &str) -> Result<(), AdminError> {
        if !self.deps.config.delete_doc(QUICK_REPLY_KIND, id).await? {
            return Err(AdminError::NotFound("quick reply"));
        }
        Ok(())
    }
}
