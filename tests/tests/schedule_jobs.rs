//! The schedule runs the background jobs: the router's `run_schedule`, as `omniline-local` and
//! the router function wire it (`omniline_wiring::router_service`), advances an account purge
//! the admin API recorded until it is done. On the embedded stores (no moto needed).

use omniline_app::jobs::JobStatus;
use omniline_embedded::EmbeddedDb;
use omniline_line::{HttpBotHook, HttpLineApi, LineApiConfig};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn the_routers_schedule_runs_an_account_purge_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = EmbeddedDb::open(dir.path()).unwrap();
    let stores = omniline_wiring::embedded::stores(&db, dir.path()).unwrap();
    let clock: omniline_domain::clock::Clock = Arc::new(|| 1_795_575_600_000);
    let line = Arc::new(HttpLineApi::new(&LineApiConfig::default()).unwrap());
    let router = omniline_wiring::router_service(
        &stores,
        Arc::new(omniline_wiring::embedded::outbound_queue(&db)),
        line.clone(),
        Arc::new(HttpBotHook::new(Duration::from_secs(1)).unwrap()),
        omniline_wiring::channel_tokens(&stores, line),
        clock.clone(),
    );
    let delivery = omniline_domain::delivery::Delivery::new("d1", "acc1", "c1", "k", 1);
    stores.deliveries.begin(&delivery).await.unwrap();

    // What the admin API records (`DELETE …?purge=true`).
    let jobs = omniline_wiring::purge_jobs(&stores, clock);
    let job = jobs.start("acc1").await.unwrap();
    assert_eq!(job.status, JobStatus::Pending);

    let outcome = router.run_schedule().await.unwrap();
    assert_eq!((outcome.closed, outcome.assigned), (0, 0));
    let done = jobs.job(&job.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Done);
    assert_eq!(done.counts.deliveries, 1);
    assert_eq!(stores.deliveries.delivery("d1").await.unwrap(), None);
    assert_eq!(jobs.unfinished_for("acc1").await.unwrap(), None);
}
