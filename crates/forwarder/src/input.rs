//! Where records come from: a followed JSON-lines file (rotation and truncation
//! included), standard input, or records pushed to a local HTTP endpoint. Every input
//! commits what it read to the outbox before it counts as read.

use crate::Shared;
use crate::mapping::Mapped;
use crate::outbox::{Accepted, Position};
use anyhow::Context;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncSeekExt, BufReader};

/// Lines read between two commits of a busy input (each commit is one fsync).
const COMMIT_LINES: usize = 10_000;
/// How often a followed file at its end is checked for growth, rotation and truncation.
const POLL: Duration = Duration::from_millis(200);
const READ_BUFFER: usize = 256 * 1024;

/// Where records come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A JSON-lines file; with `follow`, read as it grows, across rotation and truncation.
    File { path: PathBuf, follow: bool },
    /// Standard input, to its end.
    Stdin,
    /// `POST /records` on the local listener.
    Http,
}

impl Shared {
    /// Files one input line (`number` counts from 1) into `batch`.
    pub(crate) fn take_line(&self, batch: &mut Accepted, origin: &str, number: u64, line: &[u8]) {
        let text = line.trim_ascii();
        if text.is_empty() {
            return;
        }
        let record = match serde_json::from_slice::<Map<String, Value>>(text) {
            Ok(record) => record,
            Err(e) => {
                let why = format!("{origin} line {number}: not a JSON object ({e})");
                return self.reject(batch, why, text);
            }
        };
        match self.mapping.map(&record) {
            Mapped::Event(event) if event.occurred_ms < self.send_since => {
                batch.before_activation += 1;
            }
            Mapped::Event(event) => batch.events.push(event),
            Mapped::Ignored => batch.ignored += 1,
            Mapped::Invalid(why) => {
                self.reject(batch, format!("{origin} line {number}: {why}"), text)
            }
        }
    }

    fn reject(&self, batch: &mut Accepted, why: String, text: &[u8]) {
        tracing::warn!("{why}; kept in the dead letters, the rest is forwarded");
        batch
            .dead
            .push((why, String::from_utf8_lossy(text).into_owned()));
    }

    /// Commits a batch and wakes the delivery.
    pub(crate) async fn commit(&self, batch: &mut Accepted) -> anyhow::Result<()> {
        if batch.is_empty() && batch.position.is_none() {
            return Ok(());
        }
        self.outbox.accept(batch, self.now_ms()).await?;
        if !batch.events.is_empty() {
            self.wake.notify_one();
        }
        *batch = Accepted::default();
        Ok(())
    }
}

/// Reads standard input (or any stream) to its end.
pub(crate) async fn read_stream(
    shared: &Shared,
    stream: impl AsyncRead + Unpin,
    origin: &str,
) -> anyhow::Result<()> {
    let mut reader = BufReader::with_capacity(READ_BUFFER, stream);
    let (mut buf, mut number, mut batch) = (Vec::new(), 0u64, Accepted::default());
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).await?;
        if n == 0 {
            break;
        }
        number += 1;
        shared.take_line(&mut batch, origin, number, &buf);
        // A pipe that pauses is committed at once: its records are accepted when they
        // are durable, not when the next 10,000 lines arrive.
        if batch.len() >= COMMIT_LINES || reader.buffer().is_empty() {
            shared.commit(&mut batch).await?;
        }
    }
    shared.commit(&mut batch).await
}

/// The identity of a file: a rotated file has a new one.
fn file_id(meta: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        format!("{}:{}", meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        String::from("file")
    }
}

/// An open file and how far it was read.
struct Open {
    reader: BufReader<tokio::fs::File>,
    at: Position,
}

async fn open(path: &Path, resume: Option<&Position>) -> std::io::Result<Open> {
    let file = tokio::fs::File::open(path).await?;
    let meta = file.metadata().await?;
    let id = file_id(&meta);
    let at = match resume {
        // The same file, not shorter than where we were: go on from there.
        Some(p) if p.file_id == id && meta.len() >= p.offset => p.clone(),
        _ => Position {
            file_id: id,
            offset: 0,
            line: 0,
        },
    };
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    reader.seek(std::io::SeekFrom::Start(at.offset)).await?;
    Ok(Open { reader, at })
}

/// Reads a JSON-lines file from where the last run stopped; with `follow`, keeps reading
/// as it grows, moves to the new file when it is rotated (after finishing the old one)
/// and starts over when it is truncated.
pub(crate) async fn read_file(shared: &Shared, path: &Path, follow: bool) -> anyhow::Result<()> {
    let name = format!("file:{}", path.display());
    let origin = path.display().to_string();
    let resume = shared.outbox.position(&name).await?;
    let mut file = loop {
        match open(path, resume.as_ref()).await {
            Ok(file) => break file,
            Err(e) if follow && e.kind() == std::io::ErrorKind::NotFound => {
                tokio::time::sleep(POLL).await
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {origin}")),
        }
    };
    let (mut buf, mut batch) = (Vec::new(), Accepted::default());
    let mut rotated = false;
    // What the outbox holds as this input's position: an idle file costs no writes.
    let mut committed = resume;
    loop {
        let n = file.reader.read_until(b'\n', &mut buf).await?;
        let complete = buf.last() == Some(&b'\n');
        // A line without its newline yet is still being written, unless nobody will
        // write more (not following).
        if n > 0 && (complete || !follow) {
            file.at.offset += buf.len() as u64;
            file.at.line += 1;
            shared.take_line(&mut batch, &origin, file.at.line, &buf);
            buf.clear();
            if batch.len() >= COMMIT_LINES {
                batch.position = Some((name.clone(), file.at.clone()));
                shared.commit(&mut batch).await?;
                committed = Some(file.at.clone());
            }
            continue;
        }
        if n > 0 {
            continue;
        }
        // At the end of what is written so far.
        if committed.as_ref() != Some(&file.at) || !batch.is_empty() {
            batch.position = Some((name.clone(), file.at.clone()));
            shared.commit(&mut batch).await?;
            committed = Some(file.at.clone());
        }
        if !follow {
            return Ok(());
        }
        if rotated {
            // A last line the old file ended without a newline.
            if !buf.is_empty() {
                file.at.line += 1;
                shared.take_line(&mut batch, &origin, file.at.line, &buf);
                buf.clear();
            }
            // The old file is finished: the path's new file, from its start.
            match open(path, None).await {
                Ok(next) => {
                    tracing::info!("{origin} was rotated: reading the new file");
                    (file, rotated) = (next, false);
                    buf.clear();
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot read {origin}")),
            }
        }
        match tokio::fs::metadata(path).await {
            Ok(meta) if file_id(&meta) != file.at.file_id => {
                // Read the old file to its end once more (its writer may have added to it
                // before it moved on), then switch.
                rotated = true;
                continue;
            }
            Ok(meta) if meta.len() < file.at.offset => {
                tracing::info!("{origin} was truncated: reading it from its start");
                file.reader.seek(std::io::SeekFrom::Start(0)).await?;
                file.at.offset = 0;
                file.at.line = 0;
                buf.clear();
                continue;
            }
            // Unchanged, or moved away with no new file yet.
            _ => {}
        }
        tokio::time::sleep(POLL).await;
    }
}
