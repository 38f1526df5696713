//! Captures the whole binary's tracing output (app output lines come from other threads, so a
//! thread-local subscriber would miss them). Tests find their own lines by a unique marker.

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        BUFFER.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once per test binary).
pub fn init() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| Capture)
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

/// Every captured line containing `marker`.
pub fn lines_with(marker: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&BUFFER.lock().unwrap()).into_owned();
    text.lines()
        .filter(|l| l.contains(marker))
        .map(str::to_owned)
        .collect()
}

/// Waits up to `limit` for a captured line containing `marker`.
pub async fn wait_for(marker: &str, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(line) = lines_with(marker).into_iter().next() {
            return Some(line);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
