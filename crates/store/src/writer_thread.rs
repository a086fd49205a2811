//! A thread of its own for the writers of group commits (xAPI statements, SCIM creates).
//! Each statement of a group's transaction is an await, and on the server's runtime every
//! wake-up waits behind the request handlers the group is answering (parsing and checking
//! the next requests): a read of a few hundred rows, one wake-up a row on SQLite, took
//! 5–10 ms instead of one, and the whole line waited for it. The event writer has a thread
//! for the same reason.

use std::future::Future;
use std::sync::OnceLock;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Started on first use; the thread ends when the store (its last clone) is dropped.
#[derive(Default)]
pub(crate) struct WriterThread {
    started: OnceLock<Option<Started>>,
}

struct Started {
    handle: tokio::runtime::Handle,
    /// Dropped with the store: the thread's runtime then stops.
    _stop: oneshot::Sender<()>,
}

impl WriterThread {
    /// Runs `work` on the writer thread; on the caller's runtime should the thread fail
    /// to start (out of threads), so that nothing waits for it.
    pub(crate) fn spawn<F>(&self, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.started.get_or_init(start) {
            Some(started) => started.handle.spawn(work),
            None => tokio::spawn(work),
        }
    }
}

fn start() -> Option<Started> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .inspect_err(|e| tracing::warn!(error = %e, "the group writer's runtime did not start"))
        .ok()?;
    let handle = runtime.handle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("group-writer".into())
        .spawn(move || {
            let _ = runtime.block_on(stopped);
        })
        .inspect_err(|e| tracing::warn!(error = %e, "the group writer's thread did not start"))
        .ok()?;
    Some(Started {
        handle,
        _stop: stop,
    })
}
