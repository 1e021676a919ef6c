//! orderflow's embedded engine: one SQLite database with the semantics of SQS, DynamoDB,
//! DynamoDB Streams and SNS, plus the pollers that run the core handlers on it.

pub mod backup;
pub mod blocking;
pub mod burst;
mod counters;
pub mod db;
pub mod delivery;
pub mod egress;
pub mod event_source;
pub mod fanout;
pub mod intake;
pub mod pollers;
pub mod preload;
pub mod private;
pub mod queue;
pub mod redrive;
pub mod retention;
pub mod schema;
pub mod stream;
pub mod table;
pub mod topic;
pub mod trace;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use orderflow_core::{OrderTable, Topic};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::blocking::BlockingThreads;

pub use burst::BurstConfig;
pub use db::{Db, DbError};
pub use delivery::DeliveryConfig;
pub use event_source::EventSources;
pub use fanout::FanoutConfig;
pub use pollers::StreamPollerConfig;
pub use queue::{Queue, QueueConfig, QueueStats};
pub use retention::RetentionConfig;
pub use stream::Stream;
pub use table::SqliteOrderTable;
pub use topic::{DeliveryStats, Protocol, SqliteTopic, Subscription, SubscriptionStatus};

pub const DATABASE_FILE: &str = "orderflow.db";
pub(crate) const STREAM_CONSUMER: &str = "publish-orders";

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub queue: QueueConfig,
    /// Store batches handled at once, like Lambda's concurrency for the SQS mapping.
    pub store_concurrency: usize,
    /// Most messages in one store batch (the SQS mapping's `BatchSize`). A batch takes what
    /// is waiting without holding back for more, so a larger size only matters under a
    /// backlog, where it means fewer commits per order.
    pub store_batch_size: usize,
    pub stream: StreamPollerConfig,
    pub delivery: DeliveryConfig,
    pub fanout: FanoutConfig,
    /// Limits on subscriptions made over the API.
    pub admission: fanout::admission::AdmissionLimits,
    /// How many steps lower (Unix `nice`, 0-19) the pipeline's threads run than the
    /// process: the API accepts a burst at full speed and the pipeline drains it with what
    /// is left, as SQS lets a Lambda consumer fall behind. 0 runs both alike.
    pub pipeline_nice: u8,
    /// When the pipeline steps aside for a burst; see [`burst`].
    pub burst: BurstConfig,
    /// How long history is kept; see [`retention`].
    pub retention: RetentionConfig,
    /// The topic's ARN in envelopes, headers, mails and subscription ARNs: the one the AWS
    /// protocols answer with, so a subscriber sees the same ARN both ways.
    pub topic_arn: String,
    /// The queue's and stream's ARNs and the region in the Lambda events the pollers build.
    pub event_sources: EventSources,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            queue: QueueConfig::orders(),
            store_concurrency: 4,
            store_batch_size: DEFAULT_STORE_BATCH_SIZE,
            stream: StreamPollerConfig::default(),
            delivery: DeliveryConfig::default(),
            fanout: FanoutConfig::default(),
            admission: fanout::admission::AdmissionLimits::default(),
            pipeline_nice: DEFAULT_PIPELINE_NICE,
            burst: BurstConfig::default(),
            retention: RetentionConfig::default(),
            topic_arn: topic::DEFAULT_TOPIC_ARN.to_owned(),
            event_sources: EventSources::default(),
        }
    }
}

/// See [`EngineConfig::store_batch_size`].
pub const DEFAULT_STORE_BATCH_SIZE: usize = 10;

/// The pipeline's default priority below the API's; see [`EngineConfig::pipeline_nice`].
/// Five steps give the API about three times the pipeline's share of a contended core; ten
/// gave it nine times, and bursts were accepted a little faster (BENCHMARKS.md), but then
/// any other busy program on the machine starved the pipeline too (a 5 s median end to end
/// at 1,000 orders/s beside two busy loops, against 0.5 s at five steps).
pub const DEFAULT_PIPELINE_NICE: u8 = 5;

/// Threads the pipeline runtime may start for blocking work (store reads, RSA signing): eight
/// on the two cores it was measured on. Tokio's default is 512: a burst of deliveries once
/// started a hundred, each signing or reading on two cores, each with its own stack, allocator
/// cache and SQLite connection (the database keeps as many idle readers as this bound).
/// Signing needs a core while it runs, so the bound grows with the cores: a fixed eight would
/// leave a larger machine's cores idle while deliveries wait for a thread.
const PIPELINE_BLOCKING_THREADS: BlockingThreads = crate::blocking::PIPELINE;

/// The nice value `steps` below the calling thread's, for [`set_thread_nice`]; `None` when
/// priorities stay as they are.
fn nice_below_current(steps: u8) -> Option<i32> {
    if steps == 0 {
        return None;
    }
    #[cfg(target_os = "linux")]
    {
        let current = rustix::process::getpriority_process(Some(rustix::thread::gettid())).ok()?;
        Some((current + i32::from(steps)).min(19))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Sets the calling thread's nice value (Linux keeps one per thread). Absolute, because a
/// thread inherits its creator's: a pipeline thread started by another must not go lower.
fn set_thread_nice(nice: Option<i32>) {
    #[cfg(target_os = "linux")]
    if let Some(nice) = nice
        && let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice)
    {
        tracing::warn!(error = %e, "cannot lower the pipeline's thread priority");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot create the data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot make the data directory {path} private to its owner; orderflow does not start on a directory others can read (chmod -R go-rwx it, as its owner)"
    )]
    NotPrivate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the database")]
    Db(#[from] DbError),
    #[error("the data directory {0} is in use by another orderflow process")]
    Locked(PathBuf),
    #[error("cannot lock the data directory {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the pipeline's threads")]
    Runtime(#[source] std::io::Error),
    #[error("cannot build the HTTP client for deliveries")]
    HttpClient(#[source] reqwest::Error),
    #[error("the SMTP relay settings are not valid")]
    Smtp(#[from] fanout::email::SmtpError),
    #[error("cannot load or create the message signing key")]
    Signing(#[from] fanout::signing::SigningError),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub queue: QueueStats,
    pub orders: OrderStats,
    pub stream: StreamStats,
    pub deliveries: DeliveryStats,
    pub subscriptions: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderStats {
    pub stored: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStats {
    pub pending: u64,
    pub failed: u64,
}

/// The whole embedded pipeline: storage plus its background pollers.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    db: Arc<Db>,
    queue: Arc<Queue>,
    table: Arc<SqliteOrderTable>,
    stream: Arc<Stream>,
    topic: Arc<SqliteTopic>,
    pull_queues: Arc<fanout::pull::PullQueues>,
    admission: fanout::admission::Admission,
    /// Created (or loaded) at start; serves `SigningCertURL`.
    signer: Arc<OnceLock<Arc<fanout::signing::Signer>>>,
    /// When the pipeline steps aside for a burst; shared by its stages.
    burst: Arc<burst::Burst>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The runtime the pollers and deliveries run on, apart from the API's, at a lower
    /// priority; its blocking pool does their reads and signing too.
    pipeline: Mutex<Option<tokio::runtime::Runtime>>,
    /// Held while open: one process per data directory, so queue receipts are ours alone.
    _lock: std::fs::File,
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(path)
    }
}

/// Creates files readable and writable by their owner only (mode 0600).
fn private_file_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

impl Engine {
    /// Opens (or creates) the data directory and its database. Nothing runs until `start`.
    pub fn open(config: EngineConfig) -> Result<Arc<Engine>, EngineError> {
        create_private_dir(&config.data_dir).map_err(|source| EngineError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        private::make_private(&config.data_dir).map_err(|source| EngineError::NotPrivate {
            path: config.data_dir.clone(),
            source,
        })?;
        let lock_path = config.data_dir.join("orderflow.lock");
        let lock = private_file_options()
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| EngineError::Lock {
                path: lock_path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(EngineError::Locked(config.data_dir.clone()));
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(EngineError::Lock {
                    path: lock_path,
                    source,
                });
            }
        }
        let db_path = config.data_dir.join(DATABASE_FILE);
        // Created owner-only before SQLite opens it; SQLite gives the WAL and shm files the
        // database file's permissions.
        private_file_options()
            .truncate(false)
            .write(true)
            .open(&db_path)
            .map_err(|source| EngineError::DataDir {
                path: db_path.clone(),
                source,
            })?;
        let db = Db::open(&db_path, schema::migrate)?;
        let queue = Arc::new(Queue::new(Arc::clone(&db), config.queue.clone()));
        let burst = Arc::new(burst::Burst::new(
            config.burst.clone(),
            Arc::clone(queue.flow()),
        ));
        let table = Arc::new(SqliteOrderTable::new(Arc::clone(&db)));
        let stream = Arc::new(
            Stream::new(Arc::clone(&db), STREAM_CONSUMER).with_sources(&config.event_sources),
        );
        let topic = Arc::new(SqliteTopic::new(Arc::clone(&db)).with_arn(&config.topic_arn));
        let pull_queues = Arc::new(fanout::pull::PullQueues::new(Arc::clone(&db)));
        let admission = fanout::admission::Admission::new(config.admission);
        let (shutdown, _) = watch::channel(false);
        Ok(Arc::new(Engine {
            config,
            db,
            queue,
            table,
            stream,
            topic,
            pull_queues,
            admission,
            signer: Arc::new(OnceLock::new()),
            burst,
            shutdown,
            tasks: Mutex::new(Vec::new()),
            pipeline: Mutex::new(None),
            _lock: lock,
        }))
    }

    /// Starts the pollers and the delivery worker. `public_url` is how subscribers reach us.
    pub async fn start(&self, public_url: &str) -> Result<(), EngineError> {
        let renamed = self.topic.adopt_arn().await?;
        if renamed > 0 {
            tracing::info!(
                renamed,
                topic_arn = self.topic.arn(),
                "subscriptions renamed after the topic's ARN (another region or account)"
            );
        }
        let released = self.queue.release_all_in_flight().await?;
        if released > 0 {
            tracing::info!(
                released,
                "messages in flight before the last stop are visible again"
            );
        }
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("orderflow/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(5))
            // Subscribers often share a host (and the bench's all do): with fewer idle
            // connections kept than deliveries in flight, each burst closed the surplus and
            // the next opened them again, a TCP handshake per notification.
            .pool_max_idle_per_host(self.config.delivery.max_in_flight.max(1))
            // A 3xx is a failed delivery: following it would let an endpoint send the
            // order (a 307 replays the POST) to an address the policy never checked.
            .redirect(reqwest::redirect::Policy::none())
            // No HTTP(S)_PROXY from the environment: through a proxy the policy would see
            // only the proxy's address while the proxy resolves and reaches the endpoint.
            .no_proxy()
            .dns_resolver(self.config.delivery.egress.resolver())
            .build()
            .map_err(EngineError::HttpClient)?;
        let mailer = match &self.config.fanout.smtp {
            Some(smtp) => Some(fanout::email::Mailer::new(smtp)?),
            None => None,
        };
        let deliverers = fanout::Deliverers {
            http: client,
            mailer,
            signer: None,
            queues: Arc::clone(&self.pull_queues),
            logs: fanout::log::LogWriter::new(self.log_dir()),
            envelopes: Default::default(),
        };
        let nice = nice_below_current(self.config.pipeline_nice);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("orderflow-pipeline")
            .max_blocking_threads(PIPELINE_BLOCKING_THREADS.here())
            .on_thread_start(move || set_thread_nice(nice))
            .enable_all()
            .build()
            .map_err(EngineError::Runtime)?;
        let pipeline = runtime.handle().clone();
        let mut tasks = self.tasks.lock().expect("tasks lock");
        let table: Arc<dyn OrderTable> = self.table.clone();
        let sources = Arc::new(self.config.event_sources.clone());
        for _ in 0..self.config.store_concurrency.max(1) {
            tasks.push(pipeline.spawn(pollers::run_store_poller(
                Arc::clone(&self.queue),
                Arc::clone(&table),
                self.config.store_batch_size,
                Arc::clone(&sources),
                Arc::clone(&self.burst),
                self.shutdown.subscribe(),
            )));
        }
        let topic: Arc<dyn Topic> = self.topic.clone();
        tasks.push(pipeline.spawn(pollers::run_stream_poller(
            Arc::clone(&self.stream),
            Arc::clone(self.table.stream_notify()),
            topic,
            self.config.stream.clone(),
            Arc::clone(&self.burst),
            self.shutdown.subscribe(),
        )));
        tasks.push(pipeline.spawn(self.pruner().run(self.shutdown.subscribe())));
        let mut delivery = self.config.delivery.clone();
        delivery.public_url = public_url.to_owned();
        // Creating the signing key on a first start takes long enough (an RSA key pair) to
        // delay readiness, so the delivery worker makes it before it starts; orders are
        // accepted and stored meanwhile, and nothing is delivered unsigned.
        let (signer_cell, dir, topic, shutdown) = (
            Arc::clone(&self.signer),
            self.config.data_dir.clone(),
            Arc::clone(&self.topic),
            self.shutdown.subscribe(),
        );
        let delivery_burst = Arc::clone(&self.burst);
        let sign = delivery.sign;
        tasks.push(pipeline.spawn(async move {
            if !sign {
                tracing::warn!("deliveries are not signed (--sign-deliveries false)");
                let deliverers = Arc::new(deliverers);
                delivery::run_delivery_worker(topic, deliverers, delivery, delivery_burst, shutdown)
                    .await;
                return;
            }
            let signer = match signer_cell.get() {
                Some(signer) => Arc::clone(signer),
                None => {
                    let created = tokio::task::spawn_blocking(move || {
                        fanout::signing::Signer::load_or_create(&dir)
                    })
                    .await
                    .expect("the signing key task does not panic");
                    match created {
                        Ok(signer) => Arc::clone(signer_cell.get_or_init(|| Arc::new(signer))),
                        Err(e) => {
                            // The worker stops, so /healthz reports the pipeline as down.
                            tracing::error!(error = %orderflow_core::error_chain(&e), "cannot load or create the signing key; nothing will be delivered");
                            return;
                        }
                    }
                }
            };
            let deliverers = Arc::new(fanout::Deliverers {
                signer: Some(signer),
                ..deliverers
            });
            delivery::run_delivery_worker(topic, deliverers, delivery, delivery_burst, shutdown)
                    .await;
        }));
        *self.pipeline.lock().expect("pipeline lock") = Some(runtime);
        Ok(())
    }

    /// True while every background task is alive.
    pub fn is_running(&self) -> bool {
        let tasks = self.tasks.lock().expect("tasks lock");
        !tasks.is_empty() && tasks.iter().all(|t| !t.is_finished()) && !*self.shutdown.borrow()
    }

    /// Stops the pollers (each finishes its current batch), then closes the database.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let tasks: Vec<_> = self.tasks.lock().expect("tasks lock").drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        self.stop_pipeline_runtime();
        let db = Arc::clone(&self.db);
        let _ = tokio::task::spawn_blocking(move || db.close()).await;
    }

    /// Drops the pipeline's runtime without waiting (a runtime cannot be dropped, blocking,
    /// inside another one); its tasks have finished or are abandoned.
    fn stop_pipeline_runtime(&self) {
        if let Some(runtime) = self.pipeline.lock().expect("pipeline lock").take() {
            runtime.shutdown_background();
        }
    }

    /// Prunes expired history now (a pass also runs on its own every
    /// [`RetentionConfig::every`] once started).
    pub async fn prune_history(&self) -> Result<retention::PruneReport, DbError> {
        self.pruner().prune().await
    }

    fn pruner(&self) -> retention::Pruner {
        retention::Pruner::new(
            Arc::clone(&self.db),
            STREAM_CONSUMER,
            self.config.retention.clone(),
        )
    }

    /// Whether the pipeline is stepping aside for a burst right now.
    pub fn absorbing_burst(&self) -> bool {
        self.burst.was_absorbing()
    }

    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    pub fn table(&self) -> &Arc<SqliteOrderTable> {
        &self.table
    }

    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// Publishes the stream's kept failures again (all, or the given sequence numbers).
    pub async fn redrive_stream_failures(
        &self,
        seqs: Option<Vec<i64>>,
    ) -> Result<redrive::RedriveReport, DbError> {
        let topic: Arc<dyn Topic> = self.topic.clone();
        redrive::redrive_stream_failures(&self.stream, topic, seqs).await
    }

    pub fn topic(&self) -> &Arc<SqliteTopic> {
        &self.topic
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The pull queues of `queue` subscriptions.
    /// Subscribes for the API: an identical subscription is returned as it is, within the
    /// limits on subscriptions and confirmation requests.
    pub async fn subscribe(
        &self,
        spec: fanout::spec::SubscriptionSpec,
    ) -> Result<fanout::admission::Admitted, fanout::admission::AdmissionError> {
        self.admission.subscribe(&self.topic, spec).await
    }

    pub fn pull_queues(&self) -> &Arc<fanout::pull::PullQueues> {
        &self.pull_queues
    }

    /// The message signer, once `start` has run.
    pub fn signer(&self) -> Option<&Arc<fanout::signing::Signer>> {
        self.signer.get()
    }

    /// Where `log` subscriptions with a relative file name write.
    pub fn log_dir(&self) -> PathBuf {
        self.config.data_dir.join("subscription-logs")
    }

    /// The rules a new subscription is checked against; `trusted` for the operator's file.
    /// Where deliveries may connect; subscriptions are checked against it too.
    pub fn egress(&self) -> &egress::EgressPolicy {
        &self.config.delivery.egress
    }

    pub fn subscription_rules(&self, trusted: bool) -> fanout::spec::Validation {
        fanout::spec::Validation {
            email_enabled: self.config.fanout.smtp.is_some(),
            trusted,
        }
    }

    pub async fn stats(&self) -> Result<Stats, DbError> {
        let queue = self.queue.stats().await?;
        let (stored, failed) = self
            .db
            .read(|c| {
                Ok((
                    counters::counter(c, "orders")?,
                    counters::counter(c, "stream_failures")?,
                ))
            })
            .await?;
        let pending = self.stream.pending_count().await?;
        let deliveries = self.topic.delivery_stats().await?;
        let subscriptions = self
            .db
            .read(|c| {
                Ok(c.query_row("SELECT count(*) FROM subscriptions", [], |r| {
                    r.get::<_, i64>(0)
                })?)
            })
            .await?;
        Ok(Stats {
            queue,
            orders: OrderStats { stored },
            stream: StreamStats { pending, failed },
            deliveries,
            subscriptions: subscriptions as u64,
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_pipeline_runtime();
    }
}

#[cfg(test)]
mod tests;
