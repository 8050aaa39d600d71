//! The policy files, watched (inotify through `notify`) and re-applied when one changes,
//! as `strata ctl apply` would (all of them, a policy of several files being linked): a valid file is published, an invalid one is refused,
//! logged with `strata check`'s errors and counted, and the running policy stays.
//!
//! The file's directory is watched, not the file: editors save by writing a new file and
//! renaming it over the old one, which a watch on the old inode would miss. Bursts of
//! events (write, then close, then rename) are folded into one reload, and a file whose
//! text did not change is not applied again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, unbounded};
use notify::{RecursiveMode, Watcher};

use crate::api::Control;
use crate::protocol::Document;

/// How long events are gathered before the file is read again.
const SETTLE: Duration = Duration::from_millis(100);

/// Watches the files of a policy until dropped.
pub struct PolicyWatcher {
    _watcher: notify::RecommendedWatcher,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PolicyWatcher {
    /// Watches `files`, whose current texts (`running`) are what runs now.
    pub fn start(
        files: &[PathBuf],
        running: Vec<String>,
        control: Arc<dyn Control>,
    ) -> Result<PolicyWatcher, String> {
        let files: Vec<PathBuf> = files
            .iter()
            .map(|f| std::path::absolute(f).map_err(|e| format!("{}: {e}", f.display())))
            .collect::<Result<_, _>>()?;
        let names: Vec<PathBuf> = files.clone();
        let (tx, rx) = unbounded();
        let kick = tx.clone();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev
                && ev.paths.iter().any(|p| {
                    names
                        .iter()
                        .any(|f| f.file_name() == p.file_name() && f.parent() == p.parent())
                })
            {
                let _ = tx.send(());
            }
        })
        .map_err(|e| format!("cannot watch the policy files: {e}"))?;
        let mut dirs: Vec<PathBuf> = files
            .iter()
            .map(|f| {
                f.parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("/"))
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        for dir in &dirs {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        }
        // A save between reading `running` and the watches taking hold sent no event:
        // look once now (an unchanged text is not applied again).
        let _ = kick.send(());
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("strata-watch".into())
            .spawn(move || {
                let mut last = running;
                while !stopping.load(Ordering::Relaxed) {
                    match rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(()) => {}
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    std::thread::sleep(SETTLE);
                    while rx.try_recv().is_ok() {}
                    reload(&files, &mut last, control.as_ref());
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(PolicyWatcher {
            _watcher: watcher,
            stop,
            thread: Some(thread),
        })
    }
}

fn reload(files: &[PathBuf], last: &mut Vec<String>, control: &dyn Control) {
    let mut texts = Vec::with_capacity(files.len());
    for file in files {
        match std::fs::read_to_string(file) {
            Ok(t) => texts.push(t),
            Err(e) => {
                // Removed or half-renamed: the next event will bring it back.
                tracing::warn!(file = %file.display(), error = %e, "policy file unreadable; the running policy stays");
                return;
            }
        }
    }
    if texts == *last {
        return;
    }
    *last = texts.clone();
    let docs: Vec<Document> = files
        .iter()
        .zip(texts)
        .map(|(f, t)| Document::new(f.display().to_string(), t))
        .collect();
    match control.apply_files(docs) {
        Ok(u) => tracing::info!(generation = u.generation, "policy files reloaded"),
        Err(e) => {
            for err in &e.0.errors {
                tracing::warn!("{err}");
            }
            tracing::warn!("{}", e.0.message);
        }
    }
}

impl Drop for PolicyWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
