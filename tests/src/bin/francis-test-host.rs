//! A host process for the multi-process tests: a local host on a shared SQLite file, with a
//! `#[job]` actor, a singleton and a cron schedule that write what they do to a shared log file (one line per
//! event, appended), so a test can kill this process at any moment and still read what ran.
//!
//! `francis-test-host <sqlite-file> <log-file> <name>`; it prints `ready` once serving and
//! runs until killed, or interrupted (then it leaves the cluster cleanly).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use francis::builtin::cron::CronJob;
use francis::prelude::*;

/// Where events go, and this host's name.
struct Log {
    path: PathBuf,
    host: String,
}

impl Log {
    fn write(&self, event: &str) {
        let line = format!("{event} on {}\n", self.host);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .expect("the log file opens");
        // One write per line: lines from several processes never interleave.
        file.write_all(line.as_bytes()).expect("the log is written");
    }
}

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
struct WorkError(String);

impl JobError for WorkError {}

/// A unit of work: which item, and how long it takes.
#[derive(Debug, Serialize, Deserialize)]
struct Item {
    name: String,
    millis: u64,
}

struct Work {
    log: Arc<Log>,
}

#[francis::actor]
impl Work {
    fn activate(ctx: &ActorContext) -> Self {
        Work {
            log: ctx
                .data::<Arc<Log>>()
                .expect("the log is registered")
                .as_ref()
                .clone(),
        }
    }

    /// Log the start, take the item's time, log the end.
    #[job]
    pub async fn process(&mut self, item: Item) -> Result<(), WorkError> {
        self.log.write(&format!("start {}", item.name));
        tokio::time::sleep(Duration::from_millis(item.millis)).await;
        self.log.write(&format!("done {}", item.name));
        Ok(())
    }
}

struct Leader {
    log: Arc<Log>,
}

#[francis::actor]
impl Leader {
    fn activate(ctx: &ActorContext) -> Self {
        Leader {
            log: ctx
                .data::<Arc<Log>>()
                .expect("the log is registered")
                .as_ref()
                .clone(),
        }
    }

    /// Log each bootstrap, with the data it was given (the registering host's name).
    #[bootstrap]
    pub async fn bootstrap(&mut self, data: String) -> Result<(), WorkError> {
        self.log.write(&format!("bootstrap {data}"));
        Ok(())
    }

    /// Nothing; the singleton only has to exist.
    pub async fn ping(&self) -> Result<(), WorkError> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, log, name] = args.as_slice() else {
        anyhow::bail!("usage: francis-test-host <sqlite-file> <log-file> <name>");
    };
    let log = Log {
        path: log.into(),
        host: name.clone(),
    };
    log.write("started");
    let log = Arc::new(log);
    let ticks = log.clone();
    // Every second, cluster-wide: each occurrence logs its nominal time where it ran.
    let cron = CronJob::new("tick")
        .every(Duration::from_secs(1))
        .run(move |run| {
            let ticks = ticks.clone();
            async move {
                ticks.write(&format!("tick {}", run.scheduled().as_millisecond()));
                Ok::<(), String>(())
            }
        });
    let host = Host::local()
        .sqlite(db)
        .runtime_psk("multi-process test psk, 32 bytes or more")
        .address(francis::testing::free_local_address())
        .health_check_deadline(Duration::from_secs(3))
        .alarms_lease_duration(Duration::from_secs(3))
        .alarms_poll_interval(Duration::from_millis(200))
        .data(log)
        .builtin(cron)
        .register::<Work>()
        .register_singleton::<Leader>(&name)
        .build()
        .await?;
    println!("ready");
    host.run(francis::host::shutdown_signal()).await?;
    Ok(())
}
