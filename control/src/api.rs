//! The operations the control socket serves ([`Control`]), and the [`Controller`] that
//! implements them over any [`Dataplane`] (the service's workers, or an in-process
//! engine): it validates and compiles every change away from the packet path, publishes
//! it as one snapshot, counts and logs refusals, and reads counters from the workers.
//!
//! Changes are serialized by one lock that only the control plane takes; workers never
//! see it (they follow the published snapshot).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use strata_dataplane::engine::Engine;
use strata_dataplane::policy::CompiledPolicy;
use strata_dataplane::report::Report;
use strata_rules::model::Policy;

use crate::edit::{Edit, PolicyState, Refusal};
use crate::inspect;
use crate::protocol::{
    Document, ErrorKind, ErrorReply, FlowInfo, LayerInfo, PolicyErrorInfo, PortInfo, Reply,
    Request, StatsInfo, Success, UpdateCounts, Updated,
};
use crate::service::ServiceHandle;

/// A failed operation, as the socket answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtlError(pub ErrorReply);

impl CtlError {
    pub fn request(message: impl Into<String>) -> CtlError {
        CtlError(ErrorReply {
            kind: ErrorKind::Request,
            message: message.into(),
            errors: Vec::new(),
        })
    }

    pub fn runtime(message: impl Into<String>) -> CtlError {
        CtlError(ErrorReply {
            kind: ErrorKind::Runtime,
            message: message.into(),
            errors: Vec::new(),
        })
    }

    fn refused(what: &str, r: Refusal) -> CtlError {
        match r {
            Refusal::Request(m) => CtlError::request(format!("{what} refused: {m}")),
            Refusal::Invalid(errors) => {
                let n = errors.len();
                CtlError(ErrorReply {
                    kind: ErrorKind::Invalid,
                    message: format!(
                        "{what} refused: {n} error{}; the running policy is unchanged",
                        if n == 1 { "" } else { "s" }
                    ),
                    errors: errors
                        .iter()
                        .map(|e| PolicyErrorInfo {
                            file: e.file.clone(),
                            line: e.line,
                            col: e.col,
                            object: e.object.clone(),
                            message: e.message.clone(),
                        })
                        .collect(),
                })
            }
        }
    }
}

/// What the control socket serves: one method per request (`docs/control.md`).
pub trait Control: Send + Sync {
    fn ports(&self) -> Result<Vec<PortInfo>, CtlError>;
    fn layers(&self, port: &str) -> Result<Vec<LayerInfo>, CtlError>;
    fn flows(&self, port: Option<&str>) -> Result<Vec<FlowInfo>, CtlError>;
    fn stats(&self) -> Result<StatsInfo, CtlError>;
    fn apply(&self, document: Document) -> Result<Updated, CtlError> {
        self.apply_files(vec![document])
    }
    /// A whole new policy made of several files (the watched `--config` files).
    fn apply_files(&self, documents: Vec<Document>) -> Result<Updated, CtlError>;
    fn edit(&self, edit: Edit) -> Result<Updated, CtlError>;
    fn counters_reset(&self) -> Result<(), CtlError>;
}

/// Answers one request.
pub fn dispatch(c: &dyn Control, request: Request) -> Reply {
    let result = match request {
        Request::Ports => c.ports().map(Success::Ports),
        Request::Layers { port } => c.layers(&port).map(Success::Layers),
        Request::Flows { port } => c.flows(port.as_deref()).map(Success::Flows),
        Request::Stats => c.stats().map(Success::Stats),
        Request::Apply { document } => c.apply(document).map(Success::Updated),
        Request::EndpointAdd { document } => {
            c.edit(Edit::EndpointAdd(document)).map(Success::Updated)
        }
        Request::EndpointAttach { endpoint } => {
            c.edit(Edit::EndpointAttach(endpoint)).map(Success::Updated)
        }
        Request::EndpointRemove { name } => {
            c.edit(Edit::EndpointRemove(name)).map(Success::Updated)
        }
        Request::RuleAdd { port, document } => c
            .edit(Edit::RuleAdd { port, document })
            .map(Success::Updated),
        Request::RuleRemove {
            port,
            rule,
            layer,
            group,
        } => c
            .edit(Edit::RuleRemove {
                port,
                rule,
                layer,
                group,
            })
            .map(Success::Updated),
        Request::CountersReset => c.counters_reset().map(|()| Success::CountersReset),
    };
    match result {
        Ok(ok) => Reply::Ok { ok },
        Err(CtlError(error)) => Reply::Err { error },
    }
}

/// What the controller needs from the packet path: publishing a policy, and the
/// workers' figures (summed over workers) and connections. Implemented by the service's
/// [`ServiceHandle`] and by [`crate::local::LocalDataplane`].
pub trait Dataplane: Send + Sync {
    /// Compiles `policy` against the running snapshot and publishes it (attaching what
    /// it needs first); returns the compile-and-publish time. `changed`, when known,
    /// names the only ports that may differ from the running policy.
    fn publish(&self, policy: &Policy, changed: Option<&[String]>) -> Result<Duration, String>;
    /// The running snapshot.
    fn snapshot(&self) -> Arc<CompiledPolicy>;
    /// The workers' figures, summed.
    fn report(&self) -> Result<Report, String>;
    /// Recorded connections of one port (by name) or all, from every worker.
    fn flows(&self, port: Option<&str>) -> Result<Vec<FlowInfo>, String>;
    /// Zeroes every worker's counters.
    fn reset_counters(&self) -> Result<(), String>;
    fn workers(&self) -> usize;
}

/// Update results since start, for `stats` and metrics.
#[derive(Default, Debug)]
pub struct UpdateCounters {
    pub applied: AtomicU64,
    pub refused: AtomicU64,
    /// The last publish's compile-and-swap time, nanoseconds.
    pub last_publish_ns: AtomicU64,
}

impl UpdateCounters {
    pub fn counts(&self) -> UpdateCounts {
        UpdateCounts {
            applied: self.applied.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

/// The control plane over a dataplane: the running policy state, and the counts of
/// updates.
pub struct Controller<D: Dataplane> {
    dataplane: D,
    state: Mutex<PolicyState>,
    pub updates: Arc<UpdateCounters>,
}

impl<D: Dataplane> Controller<D> {
    /// Takes over `dataplane`, whose running snapshot must hold `state`'s policy.
    pub fn new(dataplane: D, state: PolicyState) -> Controller<D> {
        Controller {
            dataplane,
            state: Mutex::new(state),
            updates: Arc::new(UpdateCounters::default()),
        }
    }

    pub fn dataplane(&self) -> &D {
        &self.dataplane
    }

    /// The running snapshot.
    pub fn snapshot(&self) -> Arc<CompiledPolicy> {
        self.dataplane.snapshot()
    }

    /// The running policy model.
    pub fn policy(&self) -> Policy {
        self.lock().current().clone()
    }

    fn lock(&self) -> MutexGuard<'_, PolicyState> {
        // A panic while holding it cannot leave a half-made state (states are replaced
        // whole): carry on with the last one.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn report(&self) -> Result<Report, CtlError> {
        self.dataplane
            .report()
            .map_err(|e| CtlError::runtime(format!("the workers did not report: {e}")))
    }

    /// Validates a whole new state and publishes it.
    fn update(
        &self,
        what: &str,
        change: impl FnOnce(&PolicyState) -> Result<PolicyState, Refusal>,
    ) -> Result<Updated, CtlError> {
        let mut state = self.lock();
        let next = change(&state).map_err(|r| self.refuse(what, r))?;
        let before = self.dataplane.snapshot();
        let took = self
            .dataplane
            .publish(next.current(), None)
            .map_err(|e| self.refuse(what, Refusal::Request(e)))?;
        *state = next;
        // Counted before the lock goes, so that whoever sees the new policy sees it counted.
        self.updates.applied.fetch_add(1, Ordering::Relaxed);
        drop(state);
        Ok(self.published(what, &before, took))
    }

    /// Makes one edit to the running state and publishes it, naming the port it changed
    /// so that the others are not compared; taken back if publishing fails.
    fn update_in_place(
        &self,
        what: &str,
        edit: Edit,
        changed: &[String],
    ) -> Result<Updated, CtlError> {
        let mut state = self.lock();
        let undo = state
            .edit_in_place(edit)
            .map_err(|r| self.refuse(what, r))?;
        let before = self.dataplane.snapshot();
        match self.dataplane.publish(state.current(), Some(changed)) {
            Ok(took) => {
                self.updates.applied.fetch_add(1, Ordering::Relaxed);
                drop(state);
                Ok(self.published(what, &before, took))
            }
            Err(e) => {
                state.undo(undo);
                Err(self.refuse(what, Refusal::Request(e)))
            }
        }
    }

    fn refuse(&self, what: &str, r: Refusal) -> CtlError {
        self.updates.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(what, refusal = %r, "policy update refused; the running policy is unchanged");
        CtlError::refused(what, r)
    }

    fn published(&self, what: &str, before: &CompiledPolicy, took: Duration) -> Updated {
        let after = self.dataplane.snapshot();
        self.updates
            .last_publish_ns
            .store(took.as_nanos() as u64, Ordering::Relaxed);
        let updated = diff(before, &after, took);
        tracing::info!(
            what,
            generation = updated.generation,
            changed = ?updated.changed_ports,
            added = ?updated.added_ports,
            removed = ?updated.removed_ports,
            publish_us = updated.publish_us,
            "policy published"
        );
        updated
    }
}

/// Which ports a publish changed.
fn diff(before: &CompiledPolicy, after: &CompiledPolicy, took: Duration) -> Updated {
    let mut u = Updated {
        generation: after.serial,
        changed_ports: Vec::new(),
        added_ports: Vec::new(),
        removed_ports: Vec::new(),
        publish_us: took.as_micros() as u64,
    };
    for (_, p) in after.ports() {
        match before.ports().find(|(_, b)| b.name() == p.name()) {
            None => u.added_ports.push(p.name().to_string()),
            Some((_, b)) if b.generation != p.generation => {
                u.changed_ports.push(p.name().to_string())
            }
            Some(_) => {}
        }
    }
    for (_, b) in before.ports() {
        if !after.ports().any(|(_, p)| p.name() == b.name()) {
            u.removed_ports.push(b.name().to_string());
        }
    }
    u
}

impl<D: Dataplane> Control for Controller<D> {
    fn ports(&self) -> Result<Vec<PortInfo>, CtlError> {
        let report = self.report()?;
        Ok(inspect::ports(&self.snapshot(), &report))
    }

    fn layers(&self, port: &str) -> Result<Vec<LayerInfo>, CtlError> {
        let report = self.report()?;
        inspect::layers(&self.snapshot(), &report, port)
            .ok_or_else(|| CtlError::request(format!("no endpoint port named {port:?}")))
    }

    fn flows(&self, port: Option<&str>) -> Result<Vec<FlowInfo>, CtlError> {
        if let Some(p) = port
            && !self.snapshot().ports().any(|(_, q)| q.name() == p)
        {
            return Err(CtlError::request(format!("no endpoint port named {p:?}")));
        }
        self.dataplane
            .flows(port)
            .map_err(|e| CtlError::runtime(format!("the workers did not answer: {e}")))
    }

    fn stats(&self) -> Result<StatsInfo, CtlError> {
        let report = self.report()?;
        let mut s = inspect::stats(&self.snapshot(), &report);
        s.workers = self.dataplane.workers();
        s.updates = self.updates.counts();
        Ok(s)
    }

    fn apply_files(&self, documents: Vec<Document>) -> Result<Updated, CtlError> {
        let names: Vec<&str> = documents.iter().map(|d| d.name.as_str()).collect();
        let what = format!("apply {}", names.join(" + "));
        self.update(&what, |s| s.apply_files(documents))
    }

    fn edit(&self, edit: Edit) -> Result<Updated, CtlError> {
        let what = match &edit {
            Edit::EndpointAdd(d) => format!("endpoint add {}", d.name),
            Edit::EndpointAttach(s) => format!("endpoint attach {}", s.name),
            Edit::EndpointRemove(n) => format!("endpoint remove {n}"),
            Edit::RuleAdd { port, document } => format!("rule add {port} {}", document.name),
            Edit::RuleRemove { port, rule, .. } => format!("rule remove {port} {rule}"),
        };
        // An edit changes its own port only (added endpoints are compiled in full, being
        // new): the others are not compared rule by rule.
        let changed: Vec<String> = match &edit {
            Edit::RuleAdd { port, .. } | Edit::RuleRemove { port, .. } => vec![port.clone()],
            Edit::EndpointAdd(_) | Edit::EndpointAttach(_) | Edit::EndpointRemove(_) => Vec::new(),
        };
        self.update_in_place(&what, edit, &changed)
    }

    fn counters_reset(&self) -> Result<(), CtlError> {
        self.dataplane
            .reset_counters()
            .map_err(|e| CtlError::runtime(format!("the workers did not answer: {e}")))
    }
}

/// One engine's connections, as [`Dataplane::flows`] lists them.
pub fn engine_flows(engine: &Engine, port: Option<&str>) -> Vec<FlowInfo> {
    inspect::flows(engine, port)
}

/// The service as the control plane drives it.
impl Dataplane for ServiceHandle {
    fn publish(&self, policy: &Policy, changed: Option<&[String]>) -> Result<Duration, String> {
        self.apply_changed(policy, changed)
            .map_err(|e| e.to_string())
    }

    fn snapshot(&self) -> Arc<CompiledPolicy> {
        ServiceHandle::snapshot(self)
    }

    fn report(&self) -> Result<Report, String> {
        let r = ServiceHandle::report(self);
        if r.workers == 0 {
            return Err("no worker answered".into());
        }
        Ok(r.report)
    }

    fn flows(&self, port: Option<&str>) -> Result<Vec<FlowInfo>, String> {
        let port = port.map(str::to_string);
        let lists = self.inspect(move |engine| inspect::flows(engine, port.as_deref()));
        if lists.is_empty() {
            return Err("no worker answered".into());
        }
        Ok(lists.into_iter().flatten().collect())
    }

    fn reset_counters(&self) -> Result<(), String> {
        ServiceHandle::reset_counters(self);
        Ok(())
    }

    fn workers(&self) -> usize {
        self.workers()
    }
}
