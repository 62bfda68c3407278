//! Queues: where classified work waits. Records live in the config store (kind `queue`);
//! deleting a queue a workstream or rule uses is refused, naming them; agents serving a deleted
//! queue leave it.

use super::{parse_doc, set, to_doc, AdminError, AdminService, UsedBy};
use omniline_domain::clock::new_id;
use omniline_domain::queues::{Queue, QUEUE_KIND};
use omniline_ports::{ConfigDoc, Expect};

/// A queue and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredQueue {
    pub queue: Queue,
    pub version: u64,
}

/// A queue to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQueue {
    pub name: String,
    pub skills: Vec<String>,
}

/// What to change of a queue (`None`: keep).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueuePatch {
    pub name: Option<String>,
    pub skills: Option<Vec<String>>,
}

/// The id of a queue that existed when it was checked: only
/// [`AdminService::existing_queue`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingQueue(String);

impl ExistingQueue {
    pub fn id(&self) -> &str {
        &self.0
    }

    pub(crate) fn into_id(self) -> String {
        self.0
    }
}

fn stored_queue(doc: &ConfigDoc) -> Result<StoredQueue, AdminError> {
    Ok(StoredQueue {
        queue: parse_doc(doc, "queue")?,
        version: doc.version,
    })
}

impl AdminService {
    /// Every queue, oldest first.
    pub async fn queues(&self) -> Result<Vec<StoredQueue>, AdminError> {
        let docs = self.deps.config.list_docs(QUEUE_KIND).await?;
        let mut queues = docs
            .iter()
            .map(stored_queue)
            .collect::<Result<Vec<_>, AdminError>>()?;
        queues.sort_by(|a, b| {
            (a.queue.created_at.cmp(&b.queue.created_at)).then(a.queue.id.cmp(&b.queue.id))
        });
        Ok(queues)
    }

    /// The queue and its version; `NotFound` when there is none.
    pub async fn queue(&self, id: &str) -> Result<StoredQueue, AdminError> {
        stored_queue(&self.doc(QUEUE_KIND, id, "queue").await?)
    }

    /// `id` when such a queue exists; `UnknownReference` naming `field` otherwise.
    pub async fn existing_queue(&self, field: &str, id: &str) -> Result<ExistingQueue, AdminError> {
        self.require_queue(field, id).await?;
        Ok(ExistingQueue(id.to_owned()))
    }

    /// Each of `ids` (the list `field`), checked in order; an error names `field[i]`.
    pub async fn existing_queues(
        &self,
        field: &str,
        ids: Vec<String>,
    ) -> Result<Vec<ExistingQueue>, AdminError> {
        let mut queues = Vec::with_capacity(ids.len());
        for (i, id) in ids.into_iter().enumerate() {
            self.require_queue(&format!("{field}[{i}]"), &id).await?;
            queues.push(ExistingQueue(id));
        }
        Ok(queues)
    }

    /// `UnknownReference` naming `field` unless queue `id` exists.
    pub(crate) async fn require_queue(&self, field: &str, id: &str) -> Result<(), AdminError> {
        if self.deps.config.get_doc(QUEUE_KIND, id).await?.is_some() {
            Ok(())
        } else {
            Err(AdminError::unknown_reference(
                field,
                format!("{field}: there is no queue {id:?}"),
            ))
        }
    }

    pub async fn create_queue(&self, new: NewQueue) -> Result<StoredQueue, AdminError> {
        let now = self.now();
        let queue = Queue {
            id: new_id(),
            name: new.name,
            skills: new.skills,
            created_at: now.clone(),
            updated_at: now,
        };
        let version = self
            .put_doc(
                QUEUE_KIND,
                &queue.id,
                to_doc(&queue, "queue")?,
                Expect::Absent,
            )
            .await?;
        tracing::info!(queue_id = %queue.id, "queue created");
        Ok(StoredQueue { queue, version })
    }

    /// Changes `current` (as read by [`Self::queue`]) unless it changed since.
    pub async fn update_queue(
        &self,
        current: StoredQueue,
        patch: QueuePatch,
    ) -> Result<StoredQueue, AdminError> {
        let StoredQueue { mut queue, version } = current;
        set(&mut queue.name, patch.name);
        set(&mut queue.skills, patch.skills);
        queue.updated_at = self.now();
        let version = self
            .put_doc(
                QUEUE_KIND,
                &queue.id,
                to_doc(&queue, "queue")?,
                Expect::Version(version),
            )
            .await?;
        Ok(StoredQueue { queue, version })
    }

    /// Deletes the queue unless a workstream or a rule routes to it (`QueueInUse`, naming them);
    /// agents serving it leave it.
    pub async fn delete_queue(&self, id: &str) -> Result<(), AdminError> {
        self.queue(id).await?;
        let mut used_by = Vec::new();
        for ws in self.deps.workstreams.list_workstreams().await? {
            if ws.default_queue == id {
                used_by.push(UsedBy::Workstream {
                    id: ws.id.clone(),
                    name: Some(ws.name.clone()),
                });
            }
            for rule in ws.rules.iter().filter(|r| r.result.queue == id) {
                used_by.push(UsedBy::Rule {
                    id: rule.id.clone(),
                    name: rule.name.clone(),
                    workstream_id: ws.id.clone(),
                });
            }
        }
        if !used_by.is_empty() {
            return Err(AdminError::QueueInUse(used_by));
        }
        for mut agent in self.deps.agents.list_agents().await? {
            if agent.queues.iter().any(|q| q == id) {
                agent.queues.retain(|q| q != id);
                self.deps.agents.put_agent(&agent).await?;
            }
        }
        self.deps.config.delete_doc(QUEUE_KIND, id).await?;
        tracing::info!(queue_id = %id, "queue deleted");
        Ok(())
    }
}
