//! The control socket (DESIGN §4, §5): a Unix stream socket, mode 0600 whatever the
//! umask, serving line-delimited JSON requests ([`crate::protocol`]) to any number of
//! clients at once, each on its own thread.
//!
//! A client's mistakes are its own: a line that is not a request gets an error reply and
//! the connection stays usable; a line longer than [`MAX_REQUEST_BYTES`] gets an error and
//! the connection is closed (the rest of it cannot be resynchronised); a client silent
//! for [`IDLE_TIMEOUT`] is dropped; past [`MAX_CLIENTS`] connections, a newcomer is told
//! so and closed. None of it reaches the service or the other clients.
//!
//! A socket file left by a killed run is removed at start, unless a live service still
//! answers on it.

use std::io::{BufRead, BufReader, ErrorKind as IoErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::api::{Control, dispatch};
use crate::protocol::{ErrorKind, MAX_REQUEST_BYTES, Reply, Request};

/// Clients served at once.
pub const MAX_CLIENTS: usize = 64;
/// A client that sends nothing for this long is disconnected.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Why the socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("control socket {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("control socket {0}: another service is running and answering on it")]
    InUse(String),
    #[error("control socket {0}: a file that is not a socket is in the way")]
    NotSocket(String),
}

/// A running control socket; dropping it stops serving and removes the socket file.
pub struct ControlSocket {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlSocket {
    /// Opens `path` (its directory is created, mode 0755, if missing) and serves
    /// `control` on it.
    pub fn serve(path: &Path, control: Arc<dyn Control>) -> Result<ControlSocket, SocketError> {
        let io = |err| SocketError::Io {
            path: path.display().to_string(),
            err,
        };
        let listener = bind(path)?;
        listener.set_nonblocking(true).map_err(io)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("strata-ctl-accept".into())
            .spawn(move || accept_loop(listener, control, stopping))
            .map_err(io)?;
        Ok(ControlSocket {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the socket with mode 0600 from the start: it is created in a private (0700)
/// directory beside `path`, its mode set, then renamed into place, so no client ever
/// sees it with the umask's mode.
fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    let shown = path.display().to_string();
    let io = |err| SocketError::Io {
        path: shown.clone(),
        err,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    remove_stale(path)?;
    let file = path.file_name().unwrap_or_default().to_string_lossy();
    let private = dir.join(format!(".{file}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::create_dir(&private).map_err(io)?;
    let made = (|| {
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700))?;
        let inner = private.join("s");
        let listener = UnixListener::bind(&inner)?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&inner, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    made.map_err(io)
}

/// Removes a socket file nobody answers on (left by a killed run).
fn remove_stale(path: &Path) -> Result<(), SocketError> {
    use std::os::unix::fs::FileTypeExt;
    let shown = path.display().to_string();
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(SocketError::NotSocket(shown));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(SocketError::InUse(shown));
    }
    std::fs::remove_file(path).map_err(|err| SocketError::Io { path: shown, err })
}

fn accept_loop(listener: UnixListener, control: Arc<dyn Control>, stop: Arc<AtomicBool>) {
    let clients = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == IoErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket: accept failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::AcqRel);
            let mut s = stream;
            let _ = reply(
                &mut s,
                &Reply::error(
                    ErrorKind::Runtime,
                    format!("too many clients (at most {MAX_CLIENTS}): try again later"),
                ),
            );
            continue;
        }
        let control = Arc::clone(&control);
        let count = Arc::clone(&clients);
        let stop = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name("strata-ctl-client".into())
            .spawn(move || {
                serve_client(stream, control.as_ref(), &stop);
                count.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            clients.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Serves one client until it closes, errs or oversteps.
fn serve_client(stream: UnixStream, control: &dyn Control, stop: &AtomicBool) {
    // Short read timeouts let the thread notice a stop; idleness is counted across them.
    let tick = Duration::from_millis(250);
    if stream.set_read_timeout(Some(tick)).is_err() {
        return;
    }
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut input = BufReader::new(stream);
    let mut line: Vec<u8> = Vec::new();
    let mut idle = Duration::ZERO;
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let room = (MAX_REQUEST_BYTES + 1).saturating_sub(line.len()) as u64;
        match (&mut input).take(room).read_until(b'\n', &mut line) {
            Ok(0) if line.is_empty() => return,
            Ok(0) => {
                // End of stream without a newline: answer what came, then close.
                if line.len() <= MAX_REQUEST_BYTES {
                    let _ = answer(&mut out, control, &line);
                }
                return;
            }
            Ok(_) => idle = Duration::ZERO,
            Err(e) if matches!(e.kind(), IoErrorKind::WouldBlock | IoErrorKind::TimedOut) => {
                idle += tick;
                if idle >= IDLE_TIMEOUT {
                    return;
                }
                continue;
            }
            Err(e) if e.kind() == IoErrorKind::Interrupted => continue,
            Err(_) => return,
        }
        if line.len() > MAX_REQUEST_BYTES {
            let _ = reply(
                &mut out,
                &Reply::error(
                    ErrorKind::Request,
                    format!(
                        "request larger than {} MiB: refused unread; closing the connection",
                        MAX_REQUEST_BYTES >> 20
                    ),
                ),
            );
            return;
        }
        if line.last() != Some(&b'\n') {
            continue; // the rest of the line is still coming
        }
        if answer(&mut out, control, &line).is_err() {
            return;
        }
        line.clear();
    }
}

fn answer(out: &mut UnixStream, control: &dyn Control, line: &[u8]) -> std::io::Result<()> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return Ok(());
    }
    let r = match serde_json::from_str::<Request>(text) {
        Ok(request) => dispatch(control, request),
        Err(e) => Reply::error(ErrorKind::Request, format!("not a request: {e}")),
    };
    reply(out, &r)
}

fn reply(out: &mut UnixStream, r: &Reply) -> std::io::Result<()> {
    let mut text = serde_json::to_vec(r).unwrap_or_else(|_| {
        br#"{"error":{"kind":"runtime","message":"reply could not be written"}}"#.to_vec()
    });
    text.push(b'\n');
    out.write_all(&text)?;
    out.flush()
}

/// A client: sends one request, reads one reply (what `strata ctl` and `strata-cni` do).
pub struct Client {
    stream: BufReader<UnixStream>,
}

impl Client {
    pub fn connect(path: &Path) -> std::io::Result<Client> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Client {
            stream: BufReader::new(s),
        })
    }

    pub fn call(&mut self, request: &Request) -> std::io::Result<Reply> {
        let mut text = serde_json::to_vec(request)?;
        text.push(b'\n');
        self.stream.get_mut().write_all(&text)?;
        let mut line = String::new();
        if self.stream.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                IoErrorKind::UnexpectedEof,
                "the service closed the connection",
            ));
        }
        serde_json::from_str(&line)
            .map_err(|e| std::io::Error::new(IoErrorKind::InvalidData, format!("bad reply: {e}")))
    }
}
