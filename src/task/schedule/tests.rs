use super::*;
use chrono::TimeZone;
use std::sync::atomic::{AtomicUsize, Ordering};

fn start_time() -> DateTime<Local> {
    Local
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 30)
        .single()
        .unwrap()
}

fn task(schedule: &str) -> Task {
    Task {
        schedule: schedule.into(),
        ..Task::default()
    }
}

/// A runner that takes `secs` of (tokio) time and counts its runs.
fn runner(secs: u64, count: Arc<AtomicUsize>, status: RunStatus) -> Runner {
    Arc::new(move |_t: Task| {
        let count = count.clone();
        Box::pin(async move {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(secs)).await;
            let mut r = failed_report("");
            r.status = status;
            r.exit_code = if status == RunStatus::Success { 0 } else { 23 };
            r.error = None;
            r
        })
    })
}

#[tokio::test(start_paused = true)]
async fn fires_on_schedule() {
    let count = Arc::new(AtomicUsize::new(0));
    let mut s = Scheduler::new()
        .with_start_time(start_time())
        .with_runner(runner(5, count.clone(), RunStatus::Success));
    s.add("every-15", task("*/15 * * * *")).unwrap();
    s.add("hourly", task("@hourly")).unwrap();
    let mut off = task("* * * * *");
    off.enabled = false;
    s.add("off", off).unwrap();
    let h = s.start();
    // 00:00:30 + 2 h: every-15 fires at :15 :30 :45 :00 twice = 8, hourly twice.
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    assert_eq!(count.load(Ordering::SeqCst), 10);
    let hist = h.history("every-15");
    assert_eq!(hist.len(), 8);
    assert_eq!(
        hist[0].due,
        Local.with_ymd_and_hms(2024, 1, 1, 0, 15, 0).unwrap()
    );
    assert_eq!(hist[0].started, hist[0].due);
    assert_eq!((hist[0].ended - hist[0].started).num_seconds(), 5);
    assert!(
        hist.iter()
            .all(|e| e.status == EntryStatus::Success && e.exit_code == Some(0))
    );
    assert_eq!(h.history("hourly").len(), 2);
    assert!(h.history("off").is_empty());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn overlapping_run_is_skipped_and_reported() {
    let count = Arc::new(AtomicUsize::new(0));
    let mut s = Scheduler::new()
        .with_start_time(start_time())
        .with_runner(runner(150, count.clone(), RunStatus::Failed));
    s.add("slow", task("* * * * *")).unwrap();
    let h = s.start();
    let mut ev = h.subscribe();
    // Due at 00:01, 00:02, 00:03, 00:04: the run from 00:01 lasts to
    // 00:03:30, so 00:02 and 00:03 are skipped; 00:04 runs.
    tokio::time::sleep(Duration::from_secs(4 * 60)).await;
    assert_eq!(count.load(Ordering::SeqCst), 2);
    let hist = h.history("slow");
    let st: Vec<_> = hist.iter().map(|e| e.status.clone()).collect();
    assert_eq!(
        st,
        [
            EntryStatus::Skipped,
            EntryStatus::Skipped,
            EntryStatus::Failed
        ]
    );
    let mut skipped = 0;
    while let Ok(e) = ev.try_recv() {
        if matches!(e, SchedulerEvent::Skipped { .. }) {
            skipped += 1;
        }
    }
    assert_eq!(skipped, 2);
    assert!(h.is_running("slow"));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn history_is_bounded() {
    let count = Arc::new(AtomicUsize::new(0));
    let mut s = Scheduler::new()
        .with_start_time(start_time())
        .with_history(3)
        .with_runner(runner(1, count.clone(), RunStatus::Success));
    s.add("t", task("* * * * *")).unwrap();
    let h = s.start();
    tokio::time::sleep(Duration::from_secs(10 * 60 + 5)).await;
    assert_eq!(count.load(Ordering::SeqCst), 10);
    let hist = h.history("t");
    assert_eq!(hist.len(), 3);
    assert_eq!(
        hist[2].due,
        Local.with_ymd_and_hms(2024, 1, 1, 0, 10, 0).unwrap()
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stop_waits_for_runs_in_flight_and_starts_no_more() {
    let count = Arc::new(AtomicUsize::new(0));
    let mut s = Scheduler::new()
        .with_start_time(start_time())
        .with_runner(runner(600, count.clone(), RunStatus::Success));
    s.add("t", task("* * * * *")).unwrap();
    let h = s.start();
    let mut ev = h.subscribe();
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let before = tokio::time::Instant::now();
    let shared = h.shared.clone();
    h.stop().await;
    // The run (10 minutes) finished; nothing new started meanwhile.
    assert!(tokio::time::Instant::now() - before >= Duration::from_secs(500));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let last = shared.lock()[0].history.back().cloned().unwrap();
    assert_eq!(last.status, EntryStatus::Success);
    let mut finished = false;
    while let Ok(e) = ev.try_recv() {
        finished |= matches!(e, SchedulerEvent::Finished { .. });
    }
    assert!(finished);
}

#[test]
fn add_refuses_bad_schedules_and_duplicate_names() {
    let mut s = Scheduler::new();
    assert!(s.add("a", task("not cron")).unwrap_err().has("schedule"));
    s.add("a", task("@daily")).unwrap();
    assert!(s.add("a", task("@daily")).unwrap_err().has("name"));
}
