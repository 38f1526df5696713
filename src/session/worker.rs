//! A session's media worker: the one place its pipelines are built and torn down.
//!
//! Building a pipeline, changing its state and dropping it (which stops GStreamer's streaming
//! threads and joins the sender thread) block for milliseconds to seconds. None of that may run
//! on an async task: the control stream's single loop, the RTSP server and the browser's
//! signalling would wait on it, and with them every other client's input. So each session
//! queues that work here; jobs run one at a time, in the order they were queued, on tokio's
//! blocking pool. The order is what keeps a stream's teardown ahead of the next stream's start
//! (a pause followed at once by a resume), and a session's end behind a start already under
//! way.

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

type Job = Box<dyn FnOnce() + Send>;

/// Runs one session's pipeline work in order, off the async runtime.
#[derive(Debug)]
pub struct MediaWorker {
    jobs: mpsc::UnboundedSender<Job>,
}

impl MediaWorker {
    /// Starts the worker on the current runtime; it stops when the worker is dropped and its
    /// queue is empty.
    pub fn start(span: tracing::Span) -> Self {
        // Unbounded, but every job comes from an authenticated client's action (ANNOUNCE, a
        // disconnect, a browser's hello) or the session's own end, each at most a few at once.
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(
            async move {
                while let Some(job) = queue.recv().await {
                    if let Err(error) = tokio::task::spawn_blocking(job).await {
                        tracing::error!(%error, "a media job panicked");
                    }
                }
            }
            .instrument(span),
        );
        Self { jobs }
    }

    /// Queues `job` and returns at once (a teardown nobody waits for).
    pub fn detach(&self, job: impl FnOnce() + Send + 'static) {
        // The queue only closes with the runtime; the job (and what it owns) is then dropped
        // here, which is what it would have done.
        let _ = self.jobs.send(Box::new(job));
    }

    /// Queues `job` and waits for its result; `None` if the runtime shut down first.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (done, result) = oneshot::channel();
        self.detach(move || {
            let _ = done.send(job());
        });
        result.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::MediaWorker;

    #[tokio::test(flavor = "current_thread")]
    async fn jobs_run_in_order_and_off_the_runtime_thread() {
        let worker = MediaWorker::start(tracing::Span::none());
        let order = Arc::new(Mutex::new(Vec::new()));
        let runtime_thread = std::thread::current().id();
        let slow = order.clone();
        worker.detach(move || {
            std::thread::sleep(Duration::from_millis(200));
            slow.lock().unwrap().push(1);
        });
        // The single runtime thread stays free while the slow job blocks its own thread.
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(started.elapsed() < Duration::from_millis(150));
        let fast = order.clone();
        let thread = worker
            .run(move || {
                fast.lock().unwrap().push(2);
                std::thread::current().id()
            })
            .await
            .unwrap();
        assert_ne!(thread, runtime_thread);
        assert_eq!(*order.lock().unwrap(), vec![1, 2], "queued order kept");
    }
}
