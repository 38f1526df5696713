//! Forwarding container output to `tracing`, line by line.

use bollard::Docker;
use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;

/// Longest line of container output logged as one event.
const MAX_LINE_BYTES: usize = 4096;

pub(super) async fn forward_logs(docker: Docker, id: String) {
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut stream = docker.logs(&id, Some(options));
    let mut stdout = LineBuffer::default();
    let mut stderr = LineBuffer::default();
    while let Some(item) = stream.next().await {
        match item {
            Ok(bollard::container::LogOutput::StdErr { message }) => {
                stderr.push(&message, |line| log_line("stderr", line));
            }
            Ok(output) => stdout.push(output.as_ref(), |line| log_line("stdout", line)),
            Err(error) => {
                tracing::debug!(%error, "container log stream ended");
                break;
            }
        }
    }
    stdout.flush(|line| log_line("stdout", line));
    stderr.flush(|line| log_line("stderr", line));
}

fn log_line(stream: &'static str, line: &str) {
    tracing::info!(target: "hati::app", stream, "{line}");
}

/// Reassembles lines from chunks of output; lines longer than [`MAX_LINE_BYTES`] are split.
#[derive(Debug, Default)]
struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    fn push(&mut self, chunk: &[u8], mut emit: impl FnMut(&str)) {
        for &byte in chunk {
            if byte == b'\n' {
                self.flush(&mut emit);
            } else {
                self.pending.push(byte);
                if self.pending.len() >= MAX_LINE_BYTES {
                    self.flush(&mut emit);
                }
            }
        }
    }

    fn flush(&mut self, mut emit: impl FnMut(&str)) {
        if self.pending.last() == Some(&b'\r') {
            self.pending.pop();
        }
        if !self.pending.is_empty() {
            emit(&String::from_utf8_lossy(&self.pending));
        }
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_buffer_reassembles() {
        let mut lines = Vec::new();
        let mut buffer = LineBuffer::default();
        buffer.push(b"par", |l| lines.push(l.to_owned()));
        buffer.push(b"tial\r\nnext\nla", |l| lines.push(l.to_owned()));
        buffer.flush(|l| lines.push(l.to_owned()));
        assert_eq!(lines, ["partial", "next", "la"]);
    }
}
