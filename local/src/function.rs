//! A function's pool of instances and its queue of invocations.
//!
//! All bookkeeping lives behind one synchronous mutex that is never held across
//! an `.await`; the HTTP handlers and process supervisors call in, change state,
//! and leave. That keeps every transition (dispatch, completion, timeout, crash)
//! atomic with respect to the others.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::{
    error::{Error, Result},
    instance::{Instance, Launcher},
    invocation::{Invocation, Outcome, epoch_millis},
    template::FunctionSpec,
};

/// How long shutdown waits for killed instances to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// An invocation handed to an instance, with the deadline it was given.
#[derive(Debug)]
pub struct Dispatch {
    pub invocation: Arc<Invocation>,
    pub deadline_ms: u64,
}

/// The answer to an instance's `/next`.
pub enum Next {
    Ready(Dispatch),
    Wait(oneshot::Receiver<Dispatch>),
    /// The instance is being killed or the emulator is stopping: the runtime gets
    /// no answer, because an error reply would only make it panic on the way out.
    Retired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Initialising, or between reporting a result and asking for the next one.
    Pending,
    /// Blocked in `/next`.
    Idle,
    Busy,
    /// Killed (timeout, init error, shutdown); waiting to be reaped.
    Dying,
}

struct Slot {
    instance: Arc<Instance>,
    status: Status,
    initialized: bool,
}

struct InFlight {
    invocation: Arc<Invocation>,
    instance: u64,
    started: Instant,
}

#[derive(Default)]
struct Pool {
    queue: VecDeque<Arc<Invocation>>,
    instances: HashMap<u64, Slot>,
    idle: VecDeque<(u64, oneshot::Sender<Dispatch>)>,
    in_flight: HashMap<String, InFlight>,
    next_instance_id: u64,
    /// The last instance died during init; only a new invocation retries it,
    /// so a broken binary cannot crash-loop.
    init_failed: bool,
    closed: bool,
    /// Spawn to first `/next` of every instance that got that far, oldest first.
    cold_starts: Vec<Duration>,
}

impl Pool {
    fn live(&self) -> usize {
        self.instances.values().filter(|s| s.status != Status::Dying).count()
    }

    fn pending(&self) -> usize {
        self.instances.values().filter(|s| s.status == Status::Pending).count()
    }

    fn fail_queue(&mut self, outcome: impl Fn(&str) -> Outcome) {
        for invocation in self.queue.drain(..) {
            invocation.complete(outcome(&invocation.request_id));
        }
    }
}

pub struct Function {
    pub spec: FunctionSpec,
    pub arn: String,
    /// The ARN as the runtime's `Lambda-Runtime-Invoked-Function-Arn` value,
    /// made once; `None` if a template-provided name cannot be a header value.
    pub(crate) arn_header: Option<http::HeaderValue>,
    max_instances: usize,
    launcher: Arc<Launcher>,
    pool: Mutex<Pool>,
}

impl Function {
    pub(crate) fn new(spec: FunctionSpec, arn: String, max_instances: usize, launcher: Arc<Launcher>) -> Function {
        let arn_header = http::HeaderValue::from_str(&arn).ok();
        if arn_header.is_none() {
            warn!(function = %spec.name, "the function ARN cannot be sent as a header value");
        }
        Function {
            spec,
            arn,
            arn_header,
            max_instances: max_instances.max(1),
            launcher,
            pool: Mutex::new(Pool::default()),
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Init durations (spawn to first `/next`) of this function's instances so far.
    pub fn cold_starts(&self) -> Vec<Duration> {
        self.pool().cold_starts.clone()
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        // A panic elsewhere must not wedge the whole function.
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the first instance up front so its cold start is not paid by a request.
    pub(crate) fn start(self: &Arc<Self>) -> Result<()> {
        let mut guard = self.pool();
        let pool = &mut *guard;
        self.spawn(pool)
    }

    pub(crate) fn submit(self: &Arc<Self>, invocation: Arc<Invocation>) {
        let mut guard = self.pool();
        let pool = &mut *guard;
        if pool.closed {
            invocation.complete(Outcome::failure("Runtime.Shutdown", "the emulator is shutting down"));
            return;
        }
        pool.queue.push_back(invocation);
        self.dispatch_to_idle(pool);
        // A new invocation is also Lambda's cue to retry a failed init.
        self.scale(pool, true);
    }

    /// Queues an asynchronous (`Event`) invocation. Nobody waits for its result, so
    /// the outcome is logged, tagged with `rule` for scheduled deliveries.
    pub(crate) fn submit_event(
        self: &Arc<Self>,
        invocation: Arc<Invocation>,
        outcome: oneshot::Receiver<Outcome>,
        rule: Option<Arc<str>>,
    ) {
        let name = self.name().to_owned();
        let request_id = invocation.request_id.clone();
        self.submit(invocation);
        tokio::spawn(async move {
            let rule = rule.as_deref().unwrap_or("");
            match outcome.await {
                Ok(Outcome::Failure { body, .. }) => {
                    warn!(function = %name, request_id, rule, error = %String::from_utf8_lossy(&body), "async invocation failed")
                }
                Ok(Outcome::Success(_)) => {
                    info!(function = %name, request_id, rule, "async invocation succeeded")
                }
                Err(_) => {}
            }
        });
    }

    /// The runtime of `instance` asks for work.
    pub(crate) fn next(self: &Arc<Self>, instance: u64) -> Result<Next> {
        let mut guard = self.pool();
        let pool = &mut *guard;
        let slot = match pool.instances.get_mut(&instance) {
            Some(slot) if slot.status == Status::Dying || pool.closed => return Ok(Next::Retired),
            Some(slot) => slot,
            None => return Err(self.unknown_instance(instance)),
        };
        let was_busy = slot.status == Status::Busy;
        if !slot.initialized {
            slot.initialized = true;
            // The first /next is the runtime saying its init is done: Lambda's Init Duration.
            let init = slot.instance.spawned.elapsed();
            info!(
                function = %self.spec.name,
                instance,
                init_ms = init.as_secs_f64() * 1000.0,
                "instance initialized (cold start)"
            );
            pool.cold_starts.push(init);
            pool.init_failed = false;
        }
        if was_busy {
            // The runtime moved on without reporting; Lambda treats that invocation as failed.
            let abandoned: Vec<String> =
                pool.in_flight.iter().filter(|(_, f)| f.instance == instance).map(|(id, _)| id.clone()).collect();
            for id in abandoned {
                if let Some(f) = pool.in_flight.remove(&id) {
                    warn!(function = %self.spec.name, request_id = %id, "runtime asked for the next invocation without reporting this one");
                    f.invocation.complete(Outcome::failure(
                        "Runtime.NoResponse",
                        format!("RequestId: {id} Error: the runtime requested the next invocation without reporting a result"),
                    ));
                }
            }
        }
        pool.idle.retain(|(id, _)| *id != instance);
        if let Some(invocation) = pool.queue.pop_front() {
            return Ok(Next::Ready(self.assign(pool, instance, invocation)));
        }
        let (tx, rx) = oneshot::channel();
        pool.idle.push_back((instance, tx));
        if let Some(slot) = pool.instances.get_mut(&instance) {
            slot.status = Status::Idle;
        }
        Ok(Next::Wait(rx))
    }

    /// The runtime of `instance` reports the result of `request_id`.
    pub(crate) fn complete(&self, instance: u64, request_id: &str, outcome: Outcome) -> Result<()> {
        let mut guard = self.pool();
        let pool = &mut *guard;
        match pool.in_flight.get(request_id) {
            Some(f) if f.instance == instance => {}
            _ => return Err(Error::UnknownRequestId(request_id.to_owned())),
        }
        let Some(flight) = pool.in_flight.remove(request_id) else {
            return Err(Error::UnknownRequestId(request_id.to_owned()));
        };
        if let Some(slot) = pool.instances.get_mut(&instance) {
            slot.status = Status::Pending;
            slot.instance.set_current_request(None);
        }
        drop(guard);
        let failed = matches!(outcome, Outcome::Failure { .. });
        info!(
            function = %self.spec.name,
            request_id,
            duration_ms = flight.started.elapsed().as_secs_f64() * 1000.0,
            total_ms = flight.invocation.received.elapsed().as_secs_f64() * 1000.0,
            failed,
            "REPORT"
        );
        flight.invocation.complete(outcome);
        Ok(())
    }

    /// The runtime of `instance` could not initialise.
    pub(crate) fn init_error(&self, instance: u64, outcome: Outcome) -> Result<()> {
        let mut guard = self.pool();
        let pool = &mut *guard;
        let Some(slot) = pool.instances.get_mut(&instance) else {
            return Err(self.unknown_instance(instance));
        };
        if let Outcome::Failure { body, .. } = &outcome {
            error!(function = %self.spec.name, instance, error = %String::from_utf8_lossy(body), "init error");
        }
        slot.status = Status::Dying;
        slot.instance.kill.cancel();
        pool.init_failed = true;
        if pool.live() == 0 {
            pool.fail_queue(|_| outcome.clone());
        }
        Ok(())
    }

    /// Called by an instance's supervisor once its process is gone.
    pub(crate) fn instance_exited(self: &Arc<Self>, instance: u64, exit: &str) {
        let mut guard = self.pool();
        let pool = &mut *guard;
        let Some(slot) = pool.instances.remove(&instance) else {
            return;
        };
        pool.idle.retain(|(id, _)| *id != instance);
        let stranded: Vec<String> =
            pool.in_flight.iter().filter(|(_, f)| f.instance == instance).map(|(id, _)| id.clone()).collect();
        for id in stranded {
            if let Some(f) = pool.in_flight.remove(&id) {
                warn!(function = %self.spec.name, request_id = %id, exit, "instance exited while handling a request");
                f.invocation.complete(Outcome::exit_error(&id, exit));
            }
        }
        if pool.closed {
            return;
        }
        let killed = slot.status == Status::Dying;
        if !slot.initialized && !killed {
            error!(function = %self.spec.name, instance, exit, "instance exited during init");
            pool.init_failed = true;
            if pool.live() == 0 {
                pool.fail_queue(|id| Outcome::exit_error(id, exit));
            }
        } else if !killed {
            warn!(function = %self.spec.name, instance, exit, "instance exited");
        }
        self.scale(pool, false);
    }

    /// Kills every instance, fails whatever is queued or running, and waits for the processes to go.
    pub(crate) async fn shutdown(&self) {
        let exits: Vec<_> = {
            let mut guard = self.pool();
            let pool = &mut *guard;
            pool.closed = true;
            pool.fail_queue(|_| Outcome::failure("Runtime.Shutdown", "the emulator is shutting down"));
            for (_, f) in pool.in_flight.drain() {
                f.invocation.complete(Outcome::failure("Runtime.Shutdown", "the emulator is shutting down"));
            }
            // Dropping the senders ends the runtimes' long polls.
            pool.idle.clear();
            pool.instances
                .values_mut()
                .map(|slot| {
                    slot.status = Status::Dying;
                    slot.instance.kill.cancel();
                    slot.instance.exited.clone()
                })
                .collect()
        };
        let all = futures::future::join_all(exits.iter().map(|e| e.cancelled()));
        if tokio::time::timeout(REAP_TIMEOUT, all).await.is_err() {
            warn!(function = %self.spec.name, "some instances did not exit in time");
        }
    }

    fn unknown_instance(&self, instance: u64) -> Error {
        Error::UnknownInstance { function: self.spec.name.clone(), instance: instance.to_string() }
    }

    fn assign(&self, pool: &mut Pool, instance: u64, invocation: Arc<Invocation>) -> Dispatch {
        let deadline_ms = epoch_millis() + self.spec.timeout_secs * 1000;
        if let Some(slot) = pool.instances.get_mut(&instance) {
            slot.status = Status::Busy;
            slot.instance.set_current_request(Some(invocation.request_id.clone()));
        }
        pool.in_flight.insert(
            invocation.request_id.clone(),
            InFlight { invocation: invocation.clone(), instance, started: Instant::now() },
        );
        Dispatch { invocation, deadline_ms }
    }

    /// Undoes `assign` for a dispatch nobody received.
    fn unassign(&self, pool: &mut Pool, instance: u64, dispatch: Dispatch) {
        pool.in_flight.remove(&dispatch.invocation.request_id);
        if let Some(slot) = pool.instances.get_mut(&instance) {
            if slot.status == Status::Busy {
                slot.status = Status::Pending;
            }
            slot.instance.set_current_request(None);
        }
        pool.queue.push_front(dispatch.invocation);
    }

    fn dispatch_to_idle(self: &Arc<Self>, pool: &mut Pool) {
        while !pool.queue.is_empty() {
            let Some((instance, waiter)) = pool.idle.pop_front() else {
                break;
            };
            let idle = pool.instances.get(&instance).is_some_and(|s| s.status == Status::Idle);
            if !idle {
                continue;
            }
            let Some(invocation) = pool.queue.pop_front() else {
                break;
            };
            let dispatch = self.assign(pool, instance, invocation);
            match waiter.send(dispatch) {
                Ok(()) => {}
                // The long poll was abandoned (connection closed); the runtime will ask again.
                Err(dispatch) => self.unassign(pool, instance, dispatch),
            }
        }
    }

    /// Adds instances while invocations wait and nobody is about to take them.
    fn scale(self: &Arc<Self>, pool: &mut Pool, retry_init: bool) {
        if pool.closed || (pool.init_failed && !retry_init) {
            return;
        }
        loop {
            let live = pool.live();
            let wanted = pool.queue.len() > pool.pending() || (live == 0 && !pool.init_failed);
            if !wanted || live >= self.max_instances {
                return;
            }
            if self.spawn(pool).is_err() {
                return;
            }
        }
    }

    fn spawn(self: &Arc<Self>, pool: &mut Pool) -> Result<()> {
        let id = pool.next_instance_id;
        pool.next_instance_id += 1;
        let function = self.clone();
        let on_exit = move |instance: u64, exit: &str| function.instance_exited(instance, exit);
        match self.launcher.launch(&self.spec, id, on_exit) {
            Ok(instance) => {
                info!(function = %self.spec.name, instance = id, pid = instance.pid, "instance started");
                tokio::spawn(self.clone().watchdog(instance.clone()));
                pool.instances.insert(id, Slot { instance, status: Status::Pending, initialized: false });
                Ok(())
            }
            Err(e) => {
                error!(function = %self.spec.name, "{e}");
                pool.init_failed = true;
                if pool.live() == 0 {
                    let message = e.to_string();
                    pool.fail_queue(|id| {
                        Outcome::failure("Runtime.InvalidEntrypoint", format!("RequestId: {id} Error: {message}"))
                    });
                }
                Err(e)
            }
        }
    }

    /// Enforces the timeout of whatever `instance` is running. One task per
    /// instance rather than one per invocation: spawning a timer and waking it on
    /// completion cost more than the rest of an invocation's bookkeeping. While
    /// the instance idles the task sleeps a whole timeout; an invocation assigned
    /// meanwhile has a later deadline, so the task then sleeps on to exactly that.
    async fn watchdog(self: Arc<Self>, instance: Arc<Instance>) {
        let timeout = Duration::from_secs(self.spec.timeout_secs);
        let mut wake = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                () = instance.exited.cancelled() => return,
                () = tokio::time::sleep_until(wake) => {}
            }
            let deadline = self.check_deadline(instance.id, timeout);
            wake = deadline.map_or_else(|| tokio::time::Instant::now() + timeout, Into::into);
        }
    }

    /// Times out `instance`'s invocation if its deadline has passed; otherwise
    /// returns that deadline, or `None` when the instance runs nothing.
    fn check_deadline(self: &Arc<Self>, instance: u64, timeout: Duration) -> Option<Instant> {
        let mut guard = self.pool();
        let pool = &mut *guard;
        let (request_id, deadline) = pool
            .in_flight
            .iter()
            .find(|(_, f)| f.instance == instance)
            .map(|(id, f)| (id.clone(), f.started + timeout))?;
        if Instant::now() < deadline {
            return Some(deadline);
        }
        self.timed_out(pool, &request_id);
        None
    }

    fn timed_out(self: &Arc<Self>, pool: &mut Pool, request_id: &str) {
        let Some(flight) = pool.in_flight.remove(request_id) else {
            return;
        };
        warn!(
            function = %self.spec.name,
            request_id,
            timeout_secs = self.spec.timeout_secs,
            "invocation timed out; killing its instance"
        );
        flight.invocation.complete(Outcome::timed_out(request_id, self.spec.timeout_secs));
        if let Some(slot) = pool.instances.get_mut(&flight.instance) {
            // The runtime is stuck in the handler; a fresh process is the only safe recovery.
            slot.status = Status::Dying;
            slot.instance.set_current_request(None);
            slot.instance.kill.cancel();
        }
        self.scale(pool, false);
    }
}
