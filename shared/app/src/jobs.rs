//! Background jobs: an account's purge. The admin API records the job (a disconnection or a
//! workstream deletion with `purge=true`) and answers at once; the schedule (the router's, every
//! minute: EventBridge on AWS, a timer in `omniline-local`) advances unfinished jobs page by page
//! within a budget ([`PurgeJobs::run`]) until they are done. No request reads more than the job
//! documents: the pages (a Scan on DynamoDB) run only here.
//!
//! Storage, in the [`ConfigStore`]:
//!
//! | kind | id | document |
//! |---|---|---|
//! | [`PURGE_JOB_KIND`] | the job id | the [`PurgeJob`] (status, stage, cursors, counts, times) |
//! | [`OPEN_PURGE_KIND`] | the account id | `{"jobId", "createdAt"}`: the account's unfinished purge |
//!
//! The unfinished jobs are listed from [`OPEN_PURGE_KIND`] (one small document per account with
//! a purge in progress: a Query of one partition on DynamoDB, never a Scan); a finished job's
//! entry is deleted, its document stays for the status route. An account has at most one
//! unfinished purge: asking again returns it.
//!
//! A purge erases, in this order (each stage page by page where the store pages): the
//! account's delivery records (they point at its conversations), its conversations with
//! transcripts, customers and processed-event records, its contacts and its list of tags, its
//! inbound media. Each
//! page's cursor is saved with the job (optimistic concurrency on its version: of two runners,
//! one goes on, the other leaves the job), so an interrupted run goes on from the last saved
//! page, and a page run again finds only what is left. Counts are what the saved pages erased.

use omniline_domain::clock::{new_id, rfc3339_millis, Clock};
use omniline_domain::contacts::contact_kind;
use omniline_domain::media_links::inbound_media_prefix;
use omniline_ports::{
    ConfigDoc, ConfigStore, ConversationStore, DeliveryStore, Expect, ObjectStore, PortError,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The [`ConfigStore`] kind of purge jobs, by job id.
pub const PURGE_JOB_KIND: &str = "purgeJob";
/// The [`ConfigStore`] kind of unfinished purges, by account id (see the module documentation).
pub const OPEN_PURGE_KIND: &str = "purgeJobOpen";
/// Items a store reads per page (a DynamoDB Scan page: at most 1 MB whatever this says). Each
/// conversation found costs a Query of its transcript and its deletions too: small pages keep a
/// page well inside the router's timeout, so a page's progress is saved before it could be cut.
pub const PURGE_PAGE_SIZE: u32 = 200;
/// After this many failed pages in a row (storage unavailable, an item that does not parse), a
/// job is `failed` and left alone; before, the next run tries the page again.
pub const MAX_FAILURES: u32 = 5;
/// An unfinished-purge entry without its job document (a creation that failed halfway) is
/// deleted once this old; younger, its creation may still be in flight.
const ORPHAN_AFTER_MS: i64 = 10 * 60 * 1000;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Recorded, no page run yet.
    Pending,
    /// Some pages run.
    Running,
    /// Everything erased.
    Done,
    /// Given up after [`MAX_FAILURES`] failed pages in a row (`lastError` says why).
    Failed,
}

impl JobStatus {
    pub fn finished(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Failed)
    }
}

/// Which of the account's data a purge is erasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PurgeStage {
    Deliveries,
    Conversations,
    Contacts,
    Media,
    Finished,
}

/// What a purge erased so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeJobCounts {
    pub deliveries: u64,
    pub conversations: u64,
    pub customers: u64,
    pub contacts: u64,
    pub media: u64,
}

/// Where each paged store's purge goes on (opaque cursors; `None`: from the start, or done
/// when the stage is past it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeCursors {
    pub deliveries: Option<String>,
    pub conversations: Option<String>,
}

/// One account's purge, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeJob {
    pub id: String,
    pub account_id: String,
    pub status: JobStatus,
    pub stage: PurgeStage,
    pub cursors: PurgeCursors,
    pub counts: PurgeJobCounts,
    /// Pages run (saved) so far.
    pub pages: u64,
    /// Failed pages in a row.
    pub failures: u32,
    pub last_error: Option<String>,
    /// RFC 3339 (ms), from the injected clock.
    pub created_at: String,
    pub updated_at: String,
    /// The stored document's version (not part of the document).
    #[serde(skip)]
    pub version: u64,
}

/// The unfinished-purge entry of an account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenPurge {
    job_id: String,
    /// Epoch ms.
    created_at: i64,
}

/// How much a run may do: at most `pages` pages, and no page started once `millis` have passed
/// on the injected clock since the run began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobBudget {
    pub pages: u32,
    pub millis: i64,
}

/// The schedule's budget per tick (every minute; the router's timeout is 50 s, the rest of the
/// schedule runs first): up to 200 pages or 25 s.
pub const SCHEDULE_BUDGET: JobBudget = JobBudget {
    pages: 200,
    millis: 25_000,
};

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobsRun {
    /// Pages run (failed ones included).
    pub pages: u32,
    /// Jobs that finished (done or failed) in this run.
    pub finished: u32,
}

/// The stores a purge erases, and the job documents.
#[derive(Clone)]
pub struct PurgeDeps {
    pub config: Arc<dyn ConfigStore>,
    pub conversations: Arc<dyn ConversationStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub media: Arc<dyn ObjectStore>,
}

/// Records purge jobs (the admin API) and runs them (the schedule).
#[derive(Clone)]
pub struct PurgeJobs {
    deps: PurgeDeps,
    clock: Clock,
    page_size: u32,
}

fn unreadable(what: &str, id: &str, e: serde_json::Error) -> PortError {
    PortError::Unavailable(format!("stored {what} {id} does not parse: {e}"))
}

fn unwritable(what: &str, e: serde_json::Error) -> PortError {
    PortError::Unavailable(format!("{what} does not serialise: {e}"))
}

fn parse_job(doc: &ConfigDoc) -> Result<PurgeJob, PortError> {
    let mut job: PurgeJob =
        serde_json::from_str(&doc.doc).map_err(|e| unreadable("purge job", &doc.id, e))?;
    job.version = doc.version;
    Ok(job)
}

/// One page's result, before it is saved.
enum Step {
    /// The page ran; the job says what changed.
    Advanced,
    Failed(PortError),
}

impl PurgeJobs {
    pub fn new(deps: PurgeDeps, clock: Clock) -> Self {
        Self {
            deps,
            clock,
            page_size: PURGE_PAGE_SIZE,
        }
    }

    /// Pages of `page_size` items (tests use small ones to need many pages).
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The job `id`, if there is one.
    pub async fn job(&self, id: &str) -> Result<Option<PurgeJob>, PortError> {
        self.deps
            .config
            .get_doc(PURGE_JOB_KIND, id)
            .await?
            .as_ref()
            .map(parse_job)
            .transpose()
    }

    /// The account's unfinished purge, if any (one GetItem and the job's).
    pub async fn unfinished_for(&self, account_id: &str) -> Result<Option<PurgeJob>, PortError> {
        let Some(entry) = self
            .deps
            .config
            .get_doc(OPEN_PURGE_KIND, account_id)
            .await?
        else {
            return Ok(None);
        };
        let open: OpenPurge = serde_json::from_str(&entry.doc)
            .map_err(|e| unreadable("unfinished purge", account_id, e))?;
        Ok(self
            .job(&open.job_id)
            .await?
            .filter(|job| !job.status.finished()))
    }

    /// Records a purge of the account (`pending`), or returns its unfinished one.
    pub async fn start(&self, account_id: &str) -> Result<PurgeJob, PortError> {
        // A few rounds: each lost race means another request recorded or finished one meanwhile.
        for _ in 0..3 {
            let now = self.now();
            let existing = self
                .deps
                .config
                .get_doc(OPEN_PURGE_KIND, account_id)
                .await?;
            let expect = match &existing {
                Some(entry) => {
                    let open: OpenPurge = serde_json::from_str(&entry.doc)
                        .map_err(|e| unreadable("unfinished purge", account_id, e))?;
                    if let Some(job) = self.job(&open.job_id).await? {
                        if !job.status.finished() {
                            return Ok(job);
                        }
                    }
                    // Finished (its entry not deleted yet) or never written: replaced.
                    Expect::Version(entry.version)
                }
                None => Expect::Absent,
            };
            let job = PurgeJob {
                id: new_id(),
                account_id: account_id.to_owned(),
                status: JobStatus::Pending,
                stage: PurgeStage::Deliveries,
                cursors: PurgeCursors::default(),
                counts: PurgeJobCounts::default(),
                pages: 0,
                failures: 0,
                last_error: None,
                created_at: rfc3339_millis(now),
                updated_at: rfc3339_millis(now),
                version: 1,
            };
            let entry = OpenPurge {
                job_id: job.id.clone(),
                created_at: now,
            };
            let entry =
                serde_json::to_string(&entry).map_err(|e| unwritable("unfinished purge", e))?;
            // The entry first: a job is never recorded where no run finds it.
            if self
                .deps
                .config
                .put_doc(OPEN_PURGE_KIND, account_id, &entry, expect)
                .await?
                .is_none()
            {
                continue;
            }
            let doc = serde_json::to_string(&job).map_err(|e| unwritable("purge job", e))?;
            self.deps
                .config
                .put_doc(PURGE_JOB_KIND, &job.id, &doc, Expect::Absent)
                .await?
                .ok_or_else(|| {
                    PortError::Unavailable(format!("purge job id {} already taken", job.id))
                })?;
            tracing::info!(account_id, job_id = %job.id, "account purge recorded");
            return Ok(job);
        }
        Err(PortError::Unavailable(format!(
            "the unfinished purge of account {account_id} kept changing"
        )))
    }

    /// Advances unfinished jobs (oldest account id first) page by page until `budget` is spent
    /// or none is left; a finished job leaves the list of unfinished ones.
    pub async fn run(&self, budget: JobBudget) -> Result<JobsRun, PortError> {
        let started = self.now();
        let mut run = JobsRun::default();
        let spent = |run: &JobsRun, now: i64| {
            run.pages >= budget.pages || now.saturating_sub(started) >= budget.millis
        };
        'jobs: for entry in self.deps.config.list_docs(OPEN_PURGE_KIND).await? {
            if spent(&run, self.now()) {
                break;
            }
            let open: OpenPurge = match serde_json::from_str(&entry.doc) {
                Ok(open) => open,
                Err(e) => {
                    tracing::error!(account_id = %entry.id, error = %e, "unfinished purge entry does not parse; dropped");
                    self.drop_entry(&entry).await?;
                    continue;
                }
            };
            let job = match self.job(&open.job_id).await {
                Ok(job) => job,
                // One unreadable job must not hold back the others: skipped (logged, kept for
                // an operator), the next ones run.
                Err(e) => {
                    tracing::error!(job_id = %open.job_id, account_id = %entry.id, error = %e, "purge job unreadable; skipped");
                    continue;
                }
            };
            let Some(mut job) = job else {
                if self.now().saturating_sub(open.created_at) >= ORPHAN_AFTER_MS {
                    self.drop_entry(&entry).await?;
                }
                continue;
            };
            while !job.status.finished() && !spent(&run, self.now()) {
                let step = self.step(&mut job).await;
                run.pages += 1;
                match step {
                    Step::Advanced => {
                        job.failures = 0;
                        job.last_error = None;
                        job.status = if job.stage == PurgeStage::Finished {
                            JobStatus::Done
                        } else {
                            JobStatus::Running
                        };
                    }
                    Step::Failed(e) => {
                        job.failures = job.failures.saturating_add(1);
                        job.last_error = Some(e.to_string());
                        tracing::warn!(job_id = %job.id, account_id = %job.account_id, failures = job.failures, error = %e, "purge page failed");
                        if job.failures >= MAX_FAILURES {
                            job.status = JobStatus::Failed;
                        }
                    }
                }
                job.pages += 1;
                job.updated_at = rfc3339_millis(self.now());
                if !self.save(&mut job).await? {
                    // Another runner saved it first: it goes on with it.
                    continue 'jobs;
                }
                if job.last_error.is_some() && !job.status.finished() {
                    // Tried again at the next run, not in a loop now.
                    break;
                }
            }
            if job.status.finished() {
                run.finished += 1;
                self.drop_entry(&entry).await?;
                let c = job.counts;
                match job.status {
                    JobStatus::Done => tracing::info!(
                        job_id = %job.id,
                        account_id = %job.account_id,
                        conversations = c.conversations,
                        customers = c.customers,
                        deliveries = c.deliveries,
                        contacts = c.contacts,
                        media = c.media,
                        "account data purged"
                    ),
                    _ => tracing::error!(
                        job_id = %job.id,
                        account_id = %job.account_id,
                        error = job.last_error.as_deref().unwrap_or(""),
                        "account purge failed"
                    ),
                }
            }
        }
        Ok(run)
    }

    /// Deletes an unfinished-purge entry, unless it changed since it was read (a new job).
    async fn drop_entry(&self, entry: &ConfigDoc) -> Result<(), PortError> {
        let current = self.deps.config.get_doc(OPEN_PURGE_KIND, &entry.id).await?;
        if current.is_some_and(|c| c.version == entry.version) {
            self.deps
                .config
                .delete_doc(OPEN_PURGE_KIND, &entry.id)
                .await?;
        }
        Ok(())
    }

    /// Writes the job at its next version; `false` when it changed meanwhile.
    async fn save(&self, job: &mut PurgeJob) -> Result<bool, PortError> {
        let doc = serde_json::to_string(&*job).map_err(|e| unwritable("purge job", e))?;
        match self
            .deps
            .config
            .put_doc(PURGE_JOB_KIND, &job.id, &doc, Expect::Version(job.version))
            .await?
        {
            Some(version) => {
                job.version = version;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// One page of the job's current stage, applied to `job` (cursor, counts, stage) when it
    /// succeeds; `job` is unchanged when it fails.
    async fn step(&self, job: &mut PurgeJob) -> Step {
        let deps = &self.deps;
        let account = job.account_id.as_str();
        let result = match job.stage {
            PurgeStage::Deliveries => deps
                .deliveries
                .purge_account_page(account, job.cursors.deliveries.as_deref(), self.page_size)
                .await
                .map(|page| {
                    job.counts.deliveries += page.erased;
                    if page.next.is_none() {
                        job.stage = PurgeStage::Conversations;
                    }
                    job.cursors.deliveries = page.next;
                }),
            PurgeStage::Conversations => deps
                .conversations
                .purge_account_page(
                    account,
                    job.cursors.conversations.as_deref(),
                    self.page_size,
                )
                .await
                .map(|page| {
                    job.counts.conversations += page.erased.conversations;
                    job.counts.customers += page.erased.customers;
                    if page.next.is_none() {
                        job.stage = PurgeStage::Contacts;
                    }
                    job.cursors.conversations = page.next;
                }),
            PurgeStage::Contacts => self.purge_contacts(account).await.map(|contacts| {
                job.counts.contacts += contacts;
                job.stage = PurgeStage::Media;
            }),
            PurgeStage::Media => {
                let erased = match inbound_media_prefix(account) {
                    Some(prefix) => deps.media.delete_prefix(&prefix).await,
                    None => Ok(0),
                };
                erased.map(|media| {
                    job.counts.media += media;
                    job.stage = PurgeStage::Finished;
                })
            }
            PurgeStage::Finished => Ok(()),
        };
        match result {
            Ok(()) => Step::Advanced,
            Err(e) => Step::Failed(e),
        }
    }

    /// The account's contacts (one partition of the config store), and its list of tags.
    async fn purge_contacts(&self, account_id: &str) -> Result<u64, PortError> {
        let kind = contact_kind(account_id);
        let mut contacts = 0;
        for doc in self.deps.config.list_docs(&kind).await? {
            contacts += u64::from(self.deps.config.delete_doc(&kind, &doc.id).await?);
        }
        self.deps
            .config
            .delete_doc(omniline_domain::tags::ACCOUNT_TAGS_KIND, account_id)
            .await?;
        Ok(contacts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use omniline_domain::delivery::Delivery;
    use omniline_embedded::config_docs::SqliteConfigStore;
    use omniline_embedded::objects::FsObjectStore;
    use omniline_embedded::sqlite_conversations::SqliteConversationStore;
    use omniline_embedded::sqlite_deliveries::SqliteDeliveryStore;
    use omniline_embedded::EmbeddedDb;
    use omniline_ports::{PurgeCounts, PurgePage};
    use omniline_testkit::conversation_contract::purge as scenario;
    use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

    const T0: i64 = 1_795_575_600_000;
    const EVERYTHING: JobBudget = JobBudget {
        pages: 1000,
        millis: i64::MAX,
    };

    fn pages(pages: u32) -> JobBudget {
        JobBudget {
            pages,
            millis: i64::MAX,
        }
    }

    struct Setup {
        _dir: tempfile::TempDir,
        deps: PurgeDeps,
        deliveries: Arc<SqliteDeliveryStore>,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let db = EmbeddedDb::open(dir.path()).unwrap();
        let deliveries = Arc::new(SqliteDeliveryStore::new(db.clone()).unwrap());
        let deps = PurgeDeps {
            config: Arc::new(SqliteConfigStore::new(db.clone()).unwrap()),
            conversations: Arc::new(SqliteConversationStore::new(db).unwrap()),
            deliveries: deliveries.clone(),
            media: Arc::new(FsObjectStore::new(dir.path().join("media"))),
        };
        Setup {
            _dir: dir,
            deps,
            deliveries,
        }
    }

    /// A clock standing still at `T0`.
    fn still() -> Clock {
        Arc::new(|| T0)
    }

    async fn open_entries(deps: &PurgeDeps) -> Vec<String> {
        let docs = deps.config.list_docs(OPEN_PURGE_KIND).await.unwrap();
        docs.into_iter().map(|d| d.id).collect()
    }

    /// Deliveries whose purge takes `pages` pages (one delivery each), failing the first
    /// `failures` calls; everything else is the wrapped store's.
    struct PagedDeliveries {
        inner: Arc<dyn DeliveryStore>,
        pages: u32,
        failures: AtomicU32,
        calls: AtomicU32,
    }

    impl PagedDeliveries {
        fn new(inner: Arc<dyn DeliveryStore>, pages: u32, failures: u32) -> Self {
            Self {
                inner,
                pages,
                failures: AtomicU32::new(failures),
                calls: AtomicU32::new(0),
            }
        }
    }

    #[async_trait]
    impl DeliveryStore for PagedDeliveries {
        async fn begin(&self, d: &Delivery) -> Result<Delivery, PortError> {
            self.inner.begin(d).await
        }
        async fn update(&self, d: &Delivery) -> Result<bool, PortError> {
            self.inner.update(d).await
        }
        async fn delivery(&self, id: &str) -> Result<Option<Delivery>, PortError> {
            self.inner.delivery(id).await
        }
        async fn deliveries_for_conversation(&self, c: &str) -> Result<Vec<Delivery>, PortError> {
            self.inner.deliveries_for_conversation(c).await
        }
        async fn delete_for_conversation(&self, c: &str) -> Result<u64, PortError> {
            self.inner.delete_for_conversation(c).await
        }
        async fn purge_account_page(
            &self,
            _account_id: &str,
            cursor: Option<&str>,
            _page_size: u32,
        ) -> Result<PurgePage<u64>, PortError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let failing = self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
                .is_ok();
            if failing {
                return Err(PortError::Unavailable("throttled".into()));
            }
            let page: u32 = match cursor {
                None => 0,
                Some(c) => c.parse().map_err(|_| PortError::Unavailable(c.into()))?,
            };
            let next = page + 1;
            Ok(PurgePage {
                erased: 1,
                next: (next < self.pages).then(|| next.to_string()),
            })
        }
    }

    #[tokio::test]
    async fn a_purge_erases_one_account_once_recorded_and_run() {
        let s = setup();
        scenario::populate(s.deps.conversations.as_ref()).await;
        for (account, id) in [("acc1", "d1"), ("acc1", "d2"), ("acc2", "x1")] {
            let d = Delivery::new(id, account, &format!("{account}-c1"), "k", T0);
            s.deliveries.begin(&d).await.unwrap();
        }
        for account in ["acc1", "acc2"] {
            s.deps
                .config
                .put_doc(&contact_kind(account), "ct1", "{}", Expect::Absent)
                .await
                .unwrap();
            s.deps
                .config
                .put_doc(
                    omniline_domain::tags::ACCOUNT_TAGS_KIND,
                    account,
                    r#"{"tags":["vip"]}"#,
                    Expect::Absent,
                )
                .await
                .unwrap();
            for key in ["m1", "m2"] {
                let key = format!("media/{account}/{key}");
                s.deps.media.put(&key, vec![1], None).await.unwrap();
            }
        }
        let jobs = PurgeJobs::new(s.deps.clone(), still());

        let job = jobs.start("acc1").await.unwrap();
        assert_eq!(
            (job.status, job.stage, job.pages, job.version),
            (JobStatus::Pending, PurgeStage::Deliveries, 0, 1)
        );
        assert_eq!(job.created_at, "2026-11-25T03:00:00.000Z");
        assert_eq!(job.updated_at, job.created_at);
        assert_eq!(job.id.len(), 32);
        // Asked again (a retried request, the workstream then the account): the same job.
        assert_eq!(jobs.start("acc1").await.unwrap(), job);
        assert_eq!(jobs.job(&job.id).await.unwrap(), Some(job.clone()));
        assert_eq!(
            jobs.unfinished_for("acc1").await.unwrap(),
            Some(job.clone())
        );
        assert_eq!(jobs.unfinished_for("acc2").await.unwrap(), None);
        assert_eq!(open_entries(&s.deps).await, ["acc1"]);
        // Nothing is erased before a run.
        assert!(s.deliveries.delivery("d1").await.unwrap().is_some());

        let run = jobs.run(EVERYTHING).await.unwrap();
        assert_eq!(
            run,
            JobsRun {
                pages: 4,
                finished: 1
            }
        );
        let done = jobs.job(&job.id).await.unwrap().unwrap();
        assert_eq!(
            (done.status, done.stage),
            (JobStatus::Done, PurgeStage::Finished)
        );
        assert_eq!(
            done.counts,
            PurgeJobCounts {
                deliveries: 2,
                conversations: 8,
                customers: 7,
                contacts: 1,
                media: 2,
            }
        );
        assert_eq!((done.pages, done.failures, done.last_error), (4, 0, None));
        assert_eq!(done.cursors, PurgeCursors::default());
        assert_eq!(jobs.unfinished_for("acc1").await.unwrap(), None);
        assert!(open_entries(&s.deps).await.is_empty());

        // Everything of acc1 is gone, acc2 is whole.
        assert_eq!(s.deliveries.delivery("d1").await.unwrap(), None);
        assert!(s.deliveries.delivery("x1").await.unwrap().is_some());
        let config = &s.deps.config;
        assert!(config
            .list_docs(&contact_kind("acc1"))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            config.list_docs(&contact_kind("acc2")).await.unwrap().len(),
            1
        );
        let tags = omniline_domain::tags::ACCOUNT_TAGS_KIND;
        assert!(config.get_doc(tags, "acc1").await.unwrap().is_none());
        assert!(config.get_doc(tags, "acc2").await.unwrap().is_some());
        assert_eq!(s.deps.media.get("media/acc1/m1").await.unwrap(), None);
        assert!(s.deps.media.get("media/acc2/m1").await.unwrap().is_some());
        let conversations = s.deps.conversations.as_ref();
        assert_eq!(conversations.conversation("acc1-c1").await.unwrap(), None);
        assert!(conversations
            .conversation("acc2-c1")
            .await
            .unwrap()
            .is_some());
        let (again, _) = scenario::to_the_end(conversations, "acc1", 100, false).await;
        assert_eq!(again, PurgeCounts::default());

        // Nothing left to run; a new purge of the account is a new job.
        assert_eq!(jobs.run(EVERYTHING).await.unwrap(), JobsRun::default());
        let next = jobs.start("acc1").await.unwrap();
        assert_ne!(next.id, job.id);
        assert_eq!(next.status, JobStatus::Pending);
    }

    #[tokio::test]
    async fn the_page_budget_stops_a_run_and_the_next_run_goes_on_from_the_cursor() {
        let s = setup();
        let paged = Arc::new(PagedDeliveries::new(s.deliveries.clone(), 5, 0));
        let deps = PurgeDeps {
            deliveries: paged.clone(),
            ..s.deps.clone()
        };
        let jobs = PurgeJobs::new(deps, still()).with_page_size(1);
        let job = jobs.start("acc1").await.unwrap();

        assert_eq!(
            jobs.run(pages(2)).await.unwrap(),
            JobsRun {
                pages: 2,
                finished: 0
            }
        );
        let partway = jobs.job(&job.id).await.unwrap().unwrap();
        assert_eq!(
            (partway.status, partway.stage, partway.pages),
            (JobStatus::Running, PurgeStage::Deliveries, 2)
        );
        assert_eq!(partway.cursors.deliveries.as_deref(), Some("2"));
        assert_eq!(partway.counts.deliveries, 2);
        assert_eq!(open_entries(&s.deps).await, ["acc1"]);

        assert_eq!(
            jobs.run(pages(3)).await.unwrap(),
            JobsRun {
                pages: 3,
                finished: 0
            }
        );
        let moved_on = jobs.job(&job.id).await.unwrap().unwrap();
        assert_eq!(moved_on.stage, PurgeStage::Conversations);
        assert_eq!(moved_on.cursors.deliveries, None);
        assert_eq!(moved_on.counts.deliveries, 5);

        // Conversations, contacts, media: three more pages.
        assert_eq!(
            jobs.run(EVERYTHING).await.unwrap(),
            JobsRun {
                pages: 3,
                finished: 1
            }
        );
        let done = jobs.job(&job.id).await.unwrap().unwrap();
        assert_eq!((done.status, done.pages), (JobStatus::Done, 8));
        // Each delivery page ran once.
        assert_eq!(paged.calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn the_time_budget_is_read_on_the_injected_clock() {
        let s = setup();
        let deps = PurgeDeps {
            deliveries: Arc::new(PagedDeliveries::new(s.deliveries.clone(), 100, 0)),
            ..s.deps.clone()
        };
        // Every reading of the clock is a second later.
        let ticks = Arc::new(AtomicI64::new(T0));
        let clock: Clock = Arc::new(move || ticks.fetch_add(1000, Ordering::SeqCst));
        let jobs = PurgeJobs::new(deps, clock);
        let job = jobs.start("acc1").await.unwrap();
        let run = jobs
            .run(JobBudget {
                pages: 1000,
                millis: 10_000,
            })
            .await
            .unwrap();
        assert!((1..10).contains(&run.pages), "{run:?}");
        let job = jobs.job(&job.id).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(job.pages, u64::from(run.pages));
        assert!(job.updated_at > job.created_at);
    }

    #[tokio::test]
    async fn a_failing_page_is_tried_again_at_the_next_run_then_the_job_fails() {
        let s = setup();
        // Fails twice, then works: the job goes on where it was.
        let flaky = Arc::new(PagedDeliveries::new(s.deliveries.clone(), 2, 2));
        let jobs = PurgeJobs::new(
            PurgeDeps {
                deliveries: flaky.clone(),
                ..s.deps.clone()
            },
            still(),
        );
        let job = jobs.start("acc1").await.unwrap();
        for failures in 1..=2 {
            // One failed page per run: not retried in a loop.
            assert_eq!(
                jobs.run(EVERYTHING).await.unwrap(),
                JobsRun {
                    pages: 1,
                    finished: 0
                }
            );
            let failed = jobs.job(&job.id).await.unwrap().unwrap();
            assert_eq!(failed.failures, failures);
            assert_eq!(failed.status, JobStatus::Pending);
            assert_eq!(failed.counts, PurgeJobCounts::default());
            assert!(failed.last_error.unwrap().contains("throttled"));
        }
        assert_eq!(jobs.run(EVERYTHING).await.unwrap().finished, 1);
        let done = jobs.job(&job.id).await.unwrap().unwrap();
        assert_eq!(
            (done.status, done.failures, done.last_error),
            (JobStatus::Done, 0, None)
        );
        assert_eq!(done.counts.deliveries, 2);

        // Always failing: `failed` after MAX_FAILURES runs, and no longer run.
        let broken = PagedDeliveries::new(s.deliveries.clone(), 2, u32::MAX);
        let jobs = PurgeJobs::new(
            PurgeDeps {
                deliveries: Arc::new(broken),
                ..s.deps.clone()
            },
            still(),
        );
        let job = jobs.start("acc2").await.unwrap();
        for _ in 1..MAX_FAILURES {
            assert_eq!(jobs.run(EVERYTHING).await.unwrap().finished, 0);
        }
        assert_eq!(
            jobs.run(EVERYTHING).await.unwrap(),
            JobsRun {
                pages: 1,
                finished: 1
            }
        );
        let failed = jobs.job(&job.id).await.unwrap().unwrap();
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.failures, MAX_FAILURES);
        assert!(open_entries(&s.deps).await.is_empty());
        assert_eq!(jobs.run(EVERYTHING).await.unwrap(), JobsRun::default());
        // A failed job is finished: asking again records a new one.
        assert_ne!(jobs.start("acc2").await.unwrap().id, job.id);
    }

    #[tokio::test]
    async fn an_entry_without_its_job_is_dropped_once_old_and_a_job_saved_meanwhile_is_left() {
        let s = setup();
        let now = Arc::new(AtomicI64::new(T0));
        let clock_now = now.clone();
        let jobs = PurgeJobs::new(
            s.deps.clone(),
            Arc::new(move || clock_now.load(Ordering::SeqCst)),
        );
        // A creation that failed after its entry.
        let entry =
            serde_json::json!({"jobId": "0123456789abcdef0123456789abcdef", "createdAt": T0});
        s.deps
            .config
            .put_doc(OPEN_PURGE_KIND, "acc9", &entry.to_string(), Expect::Absent)
            .await
            .unwrap();
        assert_eq!(jobs.run(EVERYTHING).await.unwrap(), JobsRun::default());
        assert_eq!(open_entries(&s.deps).await, ["acc9"]);
        now.store(T0 + ORPHAN_AFTER_MS, Ordering::SeqCst);
        assert_eq!(jobs.run(EVERYTHING).await.unwrap(), JobsRun::default());
        assert!(open_entries(&s.deps).await.is_empty());
        // Its account can be purged again.
        let job = jobs.start("acc9").await.unwrap();

        // Another runner saved the job first: this one leaves it (and counts no page saved).
        let stale = job.clone();
        let mut ahead = job.clone();
        assert!(jobs.save(&mut ahead).await.unwrap());
        let mut behind = stale;
        assert!(!jobs.save(&mut behind).await.unwrap());
        assert_eq!(jobs.run(EVERYTHING).await.unwrap().finished, 1);
        assert_eq!(
            jobs.job(&job.id).await.unwrap().map(|j| j.status),
            Some(JobStatus::Done)
        );
    }
}
