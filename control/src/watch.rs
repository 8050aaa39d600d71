//! The policy file, watched (inotify through `notify`) and re-applied when it changes,
//! as `strata ctl apply` would: a valid file is published, an invalid one is refused,
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

/// Watches a policy file until dropped.
pub struct PolicyWatcher {
    _watcher: notify::RecommendedWatcher,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PolicyWatcher {
    /// Watches `file`, whose current text (`running`) is what runs now.
    pub fn start(
        file: &Path,
        running: String,
        control: Arc<dyn Control>,
    ) -> Result<PolicyWatcher, String> {
        let file = std::path::absolute(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let dir = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let name = file.file_name().map(|n| n.to_os_string());
        let (tx, rx) = unbounded();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev
                && ev.paths.iter().any(|p| p.file_name() == name.as_deref())
            {
                let _ = tx.send(());
            }
        })
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
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
                    reload(&file, &mut last, control.as_ref());
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

fn reload(file: &Path, last: &mut String, control: &dyn Control) {
    let name = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            // Removed or half-renamed: the next event will bring it back.
            tracing::warn!(file = %name, error = %e, "policy file unreadable; the running policy stays");
            return;
        }
    };
    if text == *last {
        return;
    }
    *last = text.clone();
    match control.apply(Document::new(name.clone(), text)) {
        Ok(u) => tracing::info!(file = %name, generation = u.generation, "policy file reloaded"),
        Err(e) => {
            for err in &e.0.errors {
                tracing::warn!("{err}");
            }
            tracing::warn!(file = %name, "{}", e.0.message);
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
