//! The task pool built-in: tasks submitted to a pool of workers, each run once as a durable
//! job, with a per-host concurrency, capabilities that route tasks to the hosts that have
//! them, and a predicate that lets a host turn a task away.
//!
//! [`TaskPool`] configures one pool on a host: the handler that runs its tasks, how many of
//! them this host runs at once, the capabilities this host offers (say `"gpu"`), and
//! optionally which tasks it accepts. It registers the actor type
//! `francis.builtin.taskpool.<name>`, plus `francis.builtin.taskpool.<name>.<capability>` per
//! capability offered, all in the capacity group `francis.builtin.taskpool.<name>` whose limit
//! is the concurrency (and with the concurrency as each type's placement limit).
//! [`TaskPool::handle`] gives the typed [`TaskPoolHandle`], from any host: submit a task,
//! look it up, cancel it, retry a dead-lettered one.
//!
//! A submitted task is job `run` of a fresh worker actor (its ID is the task's key, or a random
//! UUID), of the base type or of the type of the capability it requires, so only hosts that
//! registered that type take it. The job's ID identifies the task. A host whose capacity
//! group is full, or whose predicate turns the task down, releases it to run elsewhere
//! without counting an attempt. A failed run is retried (on the same host if the retry is
//! soon) until its attempts are used up, then dead-lettered. A worker halts once its task
//! succeeded or was dead-lettered, which frees its activation. Results are not kept: a
//! handler stores what it produces itself.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::actor::context::ActorContext;
use crate::actor::job::{JobFailed, JobFailure, JobId, JobSpec, RunningJob};
use crate::actor::service::Service;
use crate::builtin::{BuiltIn, Registration, config, sealed, type_name, unconfigured};
use crate::clock::BoxFuture;
use crate::error::{Error, validate_name};
use crate::host::ActorOptions;
use crate::model::{CodecError, DeadLetter, DeadLetterQuery, Envelope, JobInfo, JobStatus};

/// The kind part of the type names: `francis.builtin.taskpool.<name>[.<capability>]`.
const KIND: &str = "taskpool";

/// The workers' job method.
const RUN: &str = "run";

/// How many tasks of a pool one host runs at once, unless [`TaskPool::concurrency`] says
/// otherwise: 1.
pub const DEFAULT_CONCURRENCY: u32 = 1;

/// How many times a task runs before it is dead-lettered, unless [`TaskPool::max_attempts`]
/// says otherwise: 3.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// The delay before a failed task's first retry, unless [`TaskPool::retry_delay`] says
/// otherwise: 2 seconds (later retries back off by 1.5x, up to 10x).
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(2);

/// The largest task input, in bytes of its MessagePack encoding: 1 MiB. Larger inputs belong
/// in a store of their own, with the task carrying where to find them.
pub const MAX_INPUT_SIZE: usize = 1024 * 1024;

/// How long a worker waiting for a retry stays active without one.
const WORKER_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a handler returns, boxed.
type TaskFuture = BoxFuture<'static, Result<(), JobFailure>>;

/// A pool's handler, taking the task's encoded input.
type HandlerFn = Arc<dyn Fn(TaskInfo, Vec<u8>, Service) -> TaskFuture + Send + Sync>;

/// A pool's accept predicate.
type AcceptFn = Arc<dyn Fn(&TaskInfo) -> bool + Send + Sync>;

/// A task pool to register on a host, named `name`, with the handler that runs its tasks.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// use francis::builtin::taskpool::{Task, TaskPool};
///
/// #[derive(Serialize, Deserialize)]
/// struct Thumbnail {
///     image: String,
///     width: u32,
/// }
///
/// let pool = TaskPool::new("thumbnails")
///     .handler(|task: Task<Thumbnail>| async move {
///         println!("resizing {} to {}", task.input.image, task.input.width);
///         Ok::<(), francis::JobFailure>(())
///     })
///     .concurrency(4)
///     .capability("gpu");
/// ```
#[derive(Clone)]
#[must_use = "register it with `HostBuilder::builtin`"]
pub struct TaskPool {
    name: String,
    handler: Option<HandlerFn>,
    concurrency: u32,
    capabilities: Vec<String>,
    accept: Option<AcceptFn>,
    max_attempts: u32,
    retry_delay: Duration,
}

impl std::fmt::Debug for TaskPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskPool")
            .field("name", &self.name)
            .field("handler", &self.handler.as_ref().map(|_| "fn"))
            .field("concurrency", &self.concurrency)
            .field("capabilities", &self.capabilities)
            .field("accept", &self.accept.as_ref().map(|_| "fn"))
            .field("max_attempts", &self.max_attempts)
            .field("retry_delay", &self.retry_delay)
            .finish()
    }
}

impl TaskPool {
    /// A pool named `name` (its actor type is `francis.builtin.taskpool.<name>`; no `.` in the
    /// name), with the defaults: one task at a time on this host, no capability, every task
    /// accepted, 3 attempts, 2 s before the first retry. A handler is required.
    pub fn new(name: impl Into<String>) -> Self {
        TaskPool {
            name: name.into(),
            handler: None,
            concurrency: DEFAULT_CONCURRENCY,
            capabilities: Vec::new(),
            accept: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_delay: DEFAULT_RETRY_DELAY,
        }
    }

    /// The function that runs each task (required), given the task's input decoded as `In`.
    /// An error retries the task, until its attempts are used up (see [`JobFailure`] for
    /// giving up at once, or for sending the task to another host); any error type that
    /// converts into a [`JobFailure`] will do. An input that does not decode as `In` fails
    /// the task for good.
    pub fn handler<In, F, Fut, E>(mut self, f: F) -> Self
    where
        In: DeserializeOwned + Send + 'static,
        F: Fn(Task<In>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<JobFailure> + 'static,
    {
        let f = Arc::new(f);
        self.handler = Some(Arc::new(
            move |info: TaskInfo, input: Vec<u8>, service: Service| -> TaskFuture {
                match Envelope::from_msgpack_bytes(input).decode::<In>() {
                    Ok(input) => {
                        let future = f(Task {
                            input,
                            info,
                            service,
                        });
                        Box::pin(async move { future.await.map_err(Into::into) })
                    }
                    Err(e) => Box::pin(std::future::ready(Err(JobFailure::Permanent(format!(
                        "the task's input does not decode as the handler's input type: {e}"
                    ))))),
                }
            },
        ));
        self
    }

    /// How many of the pool's tasks this host runs at once (default 1; at least 1). Tasks
    /// beyond it wait, or run on another host.
    pub fn concurrency(mut self, tasks: u32) -> Self {
        self.concurrency = tasks;
        self
    }

    /// This host offers `capability` (e.g. `"gpu"`): it also runs the tasks submitted with it
    /// as their required capability. Call once per capability.
    pub fn capability(mut self, capability: impl Into<String>) -> Self {
        self.capabilities.push(capability.into());
        self
    }

    /// Run only the tasks `accept` says yes to on this host: a task it turns down is released
    /// to run on another host (or here again later), without counting an attempt. A task no
    /// host accepts is released and offered again every one to two poll intervals, for as
    /// long as it exists: cancel it to stop that.
    pub fn accept<F>(mut self, accept: F) -> Self
    where
        F: Fn(&TaskInfo) -> bool + Send + Sync + 'static,
    {
        self.accept = Some(Arc::new(accept));
        self
    }

    /// How many times a task runs before it is dead-lettered (default 3; at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The delay before a failed task's first retry; later retries back off by 1.5x, up to
    /// 10x (default 2 s).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// The handle for pool `name` through `service` (the pool must be registered on some host
    /// of the cluster to run its tasks).
    pub fn handle(service: &Service, name: &str) -> TaskPoolHandle {
        TaskPoolHandle {
            service: service.clone(),
            name: name.to_owned(),
            actor_type: type_name(KIND, name),
        }
    }

    /// The checked settings, or every problem with them.
    fn settings(&self) -> Result<Settings, Vec<String>> {
        let name = &self.name;
        let mut problems = Vec::new();
        if name.contains('.') {
            problems.push(format!(
                "taskpool {name:?}: the name holds a '.', which separates a pool's name from a capability in its actor types; name it without one"
            ));
        }
        if self.handler.is_none() {
            problems.push(format!(
                "taskpool {name:?}: no handler; give one with .handler(|task: Task<YourInput>| async move {{ .. }})"
            ));
        }
        if self.concurrency == 0 {
            problems.push(format!(
                "taskpool {name:?}: concurrency is 0, so this host would run none of its tasks; give at least 1 (default {DEFAULT_CONCURRENCY})"
            ));
        }
        if self.max_attempts == 0 {
            problems.push(format!(
                "taskpool {name:?}: max attempts is 0; a task must be tried at least once (default {DEFAULT_MAX_ATTEMPTS})"
            ));
        }
        for (i, capability) in self.capabilities.iter().enumerate() {
            if let Err(problem) = check_capability(capability) {
                problems.push(format!("taskpool {name:?}: {problem}"));
            } else if self.capabilities[..i].contains(capability) {
                problems.push(format!(
                    "taskpool {name:?}: capability {capability:?} is given twice; give each once"
                ));
            }
        }
        match &self.handler {
            Some(handler) if problems.is_empty() => Ok(Settings {
                name: name.clone(),
                handler: handler.clone(),
                accept: self.accept.clone(),
            }),
            _ => Err(problems),
        }
    }
}

/// Whether `capability` can name a capability: a valid name part, without `.`.
fn check_capability(capability: &str) -> Result<(), String> {
    if capability.is_empty() || capability.contains('.') {
        return Err(format!(
            "capability {capability:?} is empty or holds a '.'; name it with letters, digits, '-' or '_', e.g. \"gpu\""
        ));
    }
    validate_name("capability", capability).map_err(|e| e.to_string())
}

impl sealed::Sealed for TaskPool {}

impl BuiltIn for TaskPool {
    fn register(self, registration: &mut Registration) {
        let settings = match self.settings() {
            Ok(settings) => settings,
            Err(problems) => {
                problems.into_iter().for_each(|p| registration.problem(p));
                return;
            }
        };
        let options = ActorOptions::default()
            .idle_timeout(WORKER_IDLE_TIMEOUT)
            .capacity_group(type_name(KIND, &self.name), self.concurrency)
            .concurrency_limit(self.concurrency)
            .alarm_max_attempts(self.max_attempts)
            .alarm_retry_delay(self.retry_delay);
        registration.actor_type::<Worker, Settings>(
            KIND,
            &self.name,
            options.clone(),
            settings.clone(),
        );
        for capability in &self.capabilities {
            registration.actor_type::<Worker, Settings>(
                KIND,
                &format!("{}.{capability}", self.name),
                options.clone(),
                settings.clone(),
            );
        }
    }
}

/// What a task is, apart from its input: what [`TaskPool::accept`] decides on, and what a
/// [`Task`] carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The pool's name.
    pub pool: String,
    /// The task's ID: its job's.
    pub job_id: JobId,
    /// The ID of the worker actor running it (its key, if it was submitted with one).
    pub worker: String,
    /// The key it was submitted with, if any.
    pub key: Option<String>,
    /// The capability it requires, if any.
    pub capability: Option<String>,
    /// Which attempt this is: 1 for the first.
    pub attempt: u32,
}

/// A task as its handler gets it: the input, what the task is, and the service.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Task<In> {
    /// The task's input.
    pub input: In,
    /// What the task is.
    pub info: TaskInfo,
    service: Service,
}

impl<In> Task<In> {
    /// The service, for calling actors.
    pub fn service(&self) -> &Service {
        &self.service
    }
}

/// How to submit a task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitOptions {
    /// The task's key: the ID of its worker and its idempotency key. While a task with this
    /// key is pending, running, or succeeded within 24 hours, submitting another returns its
    /// ID. `None`: a fresh task each time.
    pub key: Option<String>,
    /// The capability the task requires: only hosts offering it
    /// ([`TaskPool::capability`]) run it. `None`: any host of the pool.
    pub capability: Option<String>,
}

/// Why a task pool call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The encoded input is larger than [`MAX_INPUT_SIZE`].
    #[error(
        "taskpool {pool}: the task's input is {size} bytes encoded, over the limit of {limit} bytes; keep large data elsewhere and send where to find it"
    )]
    InputTooLarge {
        /// The pool's name.
        pool: String,
        /// The encoded input's size, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The input does not encode.
    #[error("taskpool {pool}: the task's input does not encode: {source}")]
    Input {
        /// The pool's name.
        pool: String,
        /// What failed.
        source: CodecError,
    },
    /// The required capability cannot name one.
    #[error("taskpool {pool}: {problem}")]
    InvalidCapability {
        /// The pool's name.
        pool: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The call failed in the framework (an invalid key, the store, ...).
    #[error(transparent)]
    Call(#[from] Error),
}

/// Submits and manages the tasks of one pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TaskPoolHandle {
    service: Service,
    name: String,
    actor_type: String,
}

impl TaskPoolHandle {
    /// The pool's base actor type, `francis.builtin.taskpool.<name>`.
    pub fn actor_type(&self) -> &str {
        &self.actor_type
    }

    /// Submit a task with `input`: its ID (with a key that is taken, the existing task's). It
    /// runs as soon as a host of the pool (offering its capability, if it requires one) has
    /// room for it. A capability no host offers leaves it waiting.
    pub async fn submit<T: Serialize + ?Sized>(
        &self,
        input: &T,
        options: SubmitOptions,
    ) -> Result<JobId, TaskError> {
        let input = Envelope::encode(input)
            .map_err(|source| TaskError::Input {
                pool: self.name.clone(),
                source,
            })?
            .into_bytes();
        if input.len() > MAX_INPUT_SIZE {
            return Err(TaskError::InputTooLarge {
                pool: self.name.clone(),
                size: input.len(),
                limit: MAX_INPUT_SIZE,
            });
        }
        let actor_type = match &options.capability {
            None => self.actor_type.clone(),
            Some(capability) => {
                check_capability(capability).map_err(|problem| TaskError::InvalidCapability {
                    pool: self.name.clone(),
                    problem,
                })?;
                format!("{}.{capability}", self.actor_type)
            }
        };
        let worker = match &options.key {
            Some(key) => key.clone(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let payload = TaskPayload {
            input: ByteBuf::from(input),
            key: options.key.clone(),
        };
        let data = Envelope::encode(&payload).map_err(|source| TaskError::Input {
            pool: self.name.clone(),
            source,
        })?;
        let job = JobSpec {
            data: Some(data),
            key: options.key,
            ..JobSpec::default()
        };
        Ok(self
            .service
            .dispatch_job(&actor_type, &worker, RUN, job)
            .await?)
    }

    /// Task `job_id` of this pool: pending, running, succeeded (for 24 hours after it ran) or
    /// dead-lettered; `None` if unknown, cancelled, or another pool's.
    pub async fn get(&self, job_id: &str) -> Result<Option<JobInfo>, TaskError> {
        Ok(self
            .service
            .get_job(job_id)
            .await?
            .filter(|job| self.owns(&job.key.actor_type)))
    }

    /// Cancel task `job_id` if it has not finished: it does not run (again). A run in
    /// progress finishes, but is neither retried nor dead-lettered. Returns whether the task
    /// was there to cancel.
    pub async fn cancel(&self, job_id: &str) -> Result<bool, TaskError> {
        let Some(job) = self.get(job_id).await? else {
            return Ok(false);
        };
        if !matches!(job.status, JobStatus::Pending | JobStatus::Running) {
            return Ok(false);
        }
        Ok(self
            .service
            .cancel_job(&job.key.actor_type, &job.key.actor_id, job_id)
            .await?)
    }

    /// Run a dead-lettered task again, as a fresh task on the same worker (attempts start
    /// over): its new ID, or `None` if dead letter `dead_letter_id` is gone (retried or
    /// deleted already) or another pool's.
    pub async fn retry(&self, dead_letter_id: &str) -> Result<Option<JobId>, TaskError> {
        match self.service.dead_job(dead_letter_id).await? {
            Some(letter) if self.owns(&letter.key.actor_type) => {
                Ok(self.service.retry_dead_job(dead_letter_id).await?)
            }
            _ => Ok(None),
        }
    }

    /// The pool's dead-lettered tasks, newest first, among the newest dead letters of jobs
    /// (the store returns at most a page of them).
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, TaskError> {
        let mut letters = self.service.dead_jobs(&DeadLetterQuery::default()).await?;
        letters.retain(|letter| self.owns(&letter.key.actor_type));
        Ok(letters)
    }

    /// Whether `actor_type` is one of this pool's: its base type or a capability's.
    fn owns(&self, actor_type: &str) -> bool {
        actor_type
            .strip_prefix(self.actor_type.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    }
}

/// A pool's settings on a host.
#[derive(Clone)]
struct Settings {
    name: String,
    handler: HandlerFn,
    accept: Option<AcceptFn>,
}

/// A task's job payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TaskPayload {
    /// The input, MessagePack-encoded.
    input: ByteBuf,
    /// The key it was submitted with.
    key: Option<String>,
}

/// The worker of one task.
struct Worker {
    ctx: ActorContext,
    settings: Result<Arc<Settings>, String>,
}

#[crate::actor(name = "francis.builtin.taskpool")]
impl Worker {
    fn activate(ctx: &ActorContext) -> Self {
        Worker {
            ctx: ctx.clone(),
            settings: config::<Settings>(ctx).ok_or_else(|| unconfigured(ctx.actor_type())),
        }
    }

    /// Run the task, if this host accepts it.
    #[job]
    pub async fn run(&mut self, task: TaskPayload) -> Result<(), JobFailure> {
        let settings = self.settings.clone().map_err(JobFailure::Permanent)?;
        let job = RunningJob::current()
            .ok_or_else(|| JobFailure::Permanent("a task must run as a job".into()))?;
        let info = TaskInfo {
            pool: settings.name.clone(),
            job_id: JobId(job.job_id),
            worker: self.ctx.id().to_owned(),
            key: task.key,
            capability: capability_of(self.ctx.actor_type()),
            attempt: job.failures.saturating_add(1),
        };
        if let Some(accept) = &settings.accept
            && !accept(&info)
        {
            return Err(JobFailure::Reject(format!(
                "task pool {:?} on this host does not accept task {}",
                settings.name, info.job_id
            )));
        }
        let result =
            (settings.handler)(info, task.input.into_vec(), self.ctx.service().clone()).await;
        if result.is_ok() {
            // Done: free the activation (the job is completed before the turn ends).
            self.ctx.halt();
        }
        result
    }

    /// The task was dead-lettered: free the activation.
    #[job_failed(run)]
    pub async fn run_failed(&mut self, _failed: JobFailed<TaskPayload>) -> Result<(), JobFailure> {
        self.ctx.halt();
        Ok(())
    }
}

/// The capability of a worker's actor type, `francis.builtin.taskpool.<name>[.<capability>]`.
fn capability_of(actor_type: &str) -> Option<String> {
    let rest = actor_type.strip_prefix(crate::builtin::TYPE_PREFIX)?;
    let rest = rest.strip_prefix(KIND)?.strip_prefix('.')?;
    let (_pool, capability) = rest.split_once('.')?;
    Some(capability.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(pool: TaskPool) -> Vec<String> {
        match pool.settings() {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        }
    }

    fn with_handler(pool: TaskPool) -> TaskPool {
        pool.handler(|_task: Task<()>| async { Ok::<(), JobFailure>(()) })
    }

    #[test]
    fn settings_are_checked_with_what_to_do() {
        let all = problems(
            TaskPool::new("a.b")
                .concurrency(0)
                .max_attempts(0)
                .capability("")
                .capability("x.y")
                .capability("gpu")
                .capability("gpu"),
        );
        assert_eq!(all.len(), 7, "{all:?}");
        assert!(all[0].contains("holds a '.'"), "{all:?}");
        assert!(all[1].contains("no handler"), "{all:?}");
        assert!(all[2].contains("concurrency is 0"), "{all:?}");
        assert!(all[3].contains("max attempts is 0"), "{all:?}");
        assert!(all[4].contains("capability \"\""), "{all:?}");
        assert!(all[5].contains("capability \"x.y\""), "{all:?}");
        assert!(all[6].contains("given twice"), "{all:?}");
        assert!(problems(with_handler(TaskPool::new("p").capability("gpu"))).is_empty());
    }

    #[test]
    fn every_type_of_a_pool_shares_its_capacity_group() {
        let registration = Registration::of(with_handler(
            TaskPool::new("p").concurrency(3).capability("gpu"),
        ));
        let names: Vec<&str> = registration.types.iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "francis.builtin.taskpool.p",
                "francis.builtin.taskpool.p.gpu"
            ]
        );
        for entry in &registration.types {
            assert_eq!(
                entry.options.capacity_group,
                Some(("francis.builtin.taskpool.p".to_owned(), 3))
            );
            assert_eq!(entry.options.concurrency_limit, 3);
        }
    }

    #[test]
    fn a_worker_type_names_its_capability() {
        assert_eq!(capability_of("francis.builtin.taskpool.p"), None);
        assert_eq!(
            capability_of("francis.builtin.taskpool.p.gpu").as_deref(),
            Some("gpu")
        );
    }
}
